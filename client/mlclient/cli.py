"""`sml`: upload, train, watch, predict, manage models and report, over the HTTP API.

Local by default (`make local` serves http://127.0.0.1:3000); `--stack NAME` reads a deployed
stack's URL and API key from its CloudFormation outputs; `--url`/`--api-key` set them explicitly.
Errors from the API are one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from .api import LOCAL_API_KEY, LOCAL_URL, ApiError, Client, from_stack, put_presigned

console = Console()
err_console = Console(stderr=True)
DIRECT_UPLOAD_LIMIT = 5 * 1024 * 1024  # the API's body limit; larger files go through a presigned URL
PREDICT_BATCH = 1000
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def _print_json(doc: Any) -> None:
    console.print_json(json.dumps(doc, default=str))


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_instances(path: Path) -> list[dict[str, Any]] | list[list[Any]]:
    """Instances from a CSV (header row), a JSON array / {"instances": [...]}, or JSON Lines."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return [{k: (None if v == "" else _number(v)) for k, v in row.items()} for row in rows]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    doc = json.loads(text)
    return doc["instances"] if isinstance(doc, dict) else doc


def _number(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


# -- commands -------------------------------------------------------------------
def cmd_upload(client: Client, args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    name = args.dataset or Path(args.file).stem
    columns = [
        TextColumn("uploading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(Path(args.file).name, total=len(data))
        if len(data) <= DIRECT_UPLOAD_LIMIT and not args.via_s3:
            content_type = "application/x-ndjson" if args.file.endswith((".jsonl", ".ndjson")) else "text/csv"
            result = client.post(f"/datasets/{name}", data, content_type=content_type)
            progress.update(task, completed=len(data))
        else:
            fmt = "jsonl" if args.file.endswith((".jsonl", ".ndjson")) else "csv"
            ticket = client.post("/datasets", {"name": name, "format": fmt})
            put_presigned(ticket["upload_url"], data, lambda n: progress.advance(task, n))
            result = _wait_dataset(client, name)
    _print_json(result)
    return 0


def _wait_dataset(client: Client, name: str, timeout: float = 600.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            doc = client.get(f"/datasets/{name}")
            if doc.get("status", "ready") != "pending":
                if doc.get("status") == "failed":
                    raise ApiError(f"data set {name!r} was rejected: {doc.get('reason')}")
                return doc
        except ApiError as err:
            if "HTTP 404" not in str(err):
                raise
        time.sleep(1.0)
    raise ApiError(f"data set {name!r} not registered after {timeout:.0f}s")


def cmd_train(client: Client, args: argparse.Namespace) -> int:
    hyper = {k: _parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set or [])}
    request: dict[str, Any] = {
        "dataset": args.dataset,
        "target": args.target,
        "model_name": args.model_name,
        "n_shards": args.shards,
        "hyperparameters": hyper,
    }
    if args.version:
        request["version"] = args.version
    started = client.post("/training-runs", request)
    err_console.print(
        f"started run [bold]{started['run_id']}[/bold] on {started['dataset']} version {started['version']}"
    )
    if args.watch:
        return watch(client, started["run_id"])
    _print_json(started)
    return 0


def watch(client: Client, run_id: str, poll: float = 1.0) -> int:
    """Follow a run live: round, loss, rate and ETA, until it ends."""
    run = client.get(f"/training-runs/{run_id}")
    max_rounds = run.get("request", {}).get("hyperparameters", {}).get("max_epochs")
    started = time.monotonic()
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rounds"),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(run_id, total=max_rounds, loss="")
        while True:
            done = run.get("rounds_completed", 0)
            last = run.get("last_round") or {}
            loss = f"loss {last['loss']:.6g}" if last.get("loss") is not None else ""
            progress.update(task, completed=done, loss=loss)
            if run["status"] in TERMINAL:
                break
            time.sleep(poll)
            run = client.get(f"/training-runs/{run_id}")
    elapsed = time.monotonic() - started
    if run["status"] != "SUCCEEDED":
        error = run.get("error") or {}
        raise ApiError(f"run {run_id} {run['status']}: {error.get('type')}: {error.get('message')}")
    model = run["model"]
    err_console.print(
        f"run {run_id} SUCCEEDED in {elapsed:.0f}s: model {model['model_name']} version {model['version']}"
    )
    _print_json(model)
    return 0


def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    return watch(client, args.run_id)


def cmd_runs(client: Client, args: argparse.Namespace) -> int:
    if args.run_id:
        _print_json(client.get(f"/training-runs/{args.run_id}", curve="true" if args.curve else None))
        return 0
    table = Table("run", "status", "started", "stopped")
    for run in client.get("/training-runs")["runs"]:
        table.add_row(run["run_id"], run["status"], run["started_at"], run.get("stopped_at", ""))
    console.print(table)
    return 0


def cmd_models(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        _print_json(client.get("/models"))
    elif args.action == "show":
        path = f"/models/{args.name}" + (f"/versions/{args.version}" if args.version else "")
        _print_json(client.get(path))
    elif args.action == "promote":
        _print_json(client.post(f"/models/{args.name}/promote", {"version": args.version, "force": args.force}))
    elif args.action == "rollback":
        _print_json(client.post(f"/models/{args.name}/rollback", {}))
    return 0


def cmd_predict(client: Client, args: argparse.Namespace) -> int:
    instances = read_instances(Path(args.file))
    if not instances:
        raise ApiError(f"{args.file} holds no instances")
    results: list[dict[str, Any]] = []
    for start in range(0, len(instances), PREDICT_BATCH):
        answer = client.post(f"/models/{args.model}/predict", {"instances": instances[start : start + PREDICT_BATCH]})
        for i, prediction in enumerate(answer["predictions"]):
            row = {"prediction": prediction}
            if answer.get("probabilities"):
                row.update({f"p({c})": p for c, p in zip(answer["classes"], answer["probabilities"][i], strict=True)})
            results.append(row)
    err_console.print(f"{len(results)} predictions from {answer['model']} version {answer['version']}")
    out = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.DictWriter(out, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    finally:
        if args.out:
            out.close()
    return 0


def cmd_batch(client: Client, args: argparse.Namespace) -> int:
    if args.action == "watch":
        return watch_batch(client, args.model)
    input_key = args.target
    if args.file:  # upload the rows as a data set version and predict over its stored file
        data = Path(args.file).read_bytes()
        content_type = "application/x-ndjson" if args.file.endswith((".jsonl", ".ndjson")) else "text/csv"
        stored = client.post(f"/datasets/batch-{Path(args.file).stem}", data, content_type=content_type)
        input_key = stored["key"]
    if not input_key:
        raise ApiError("batch start needs the input's key in the data bucket, or --file")
    body = {"model": args.model, "input_key": input_key}
    if args.version:
        body["version"] = args.version
    started = client.post("/batch-jobs", body)
    err_console.print(f"started batch job [bold]{started['job_id']}[/bold] over {input_key}")
    if args.watch:
        return watch_batch(client, started["job_id"])
    _print_json(started)
    return 0


def watch_batch(client: Client, job_id: str, poll: float = 1.0) -> int:
    with err_console.status(f"batch job {job_id} running"):
        job = client.get(f"/batch-jobs/{job_id}")
        while job["status"] not in TERMINAL:
            time.sleep(poll)
            job = client.get(f"/batch-jobs/{job_id}")
    if job["status"] != "SUCCEEDED":
        raise ApiError(f"batch job {job_id} {job['status']}: {job.get('error')}: {job.get('cause')}")
    _print_json(job)
    return 0


def cmd_report(client: Client, args: argparse.Namespace) -> int:
    from .report import build_report

    run = client.get(f"/training-runs/{args.run_id}", curve="true")
    if run["status"] != "SUCCEEDED":
        raise ApiError(f"run {args.run_id} is {run['status']}; a report needs a finished run")
    artifact = None
    try:
        model = run["model"]
        artifact = client.get(f"/models/{model['model_name']}/versions/{model['version']}")
    except ApiError:
        artifact = None  # older servers: the report uses what the run itself carries
    cost = client.get(f"/training-runs/{args.run_id}/cost", region=args.region)["actual"]
    cost["basis"] = f"{cost['region']} list prices; Lambda time as measured by Step Functions; S3 requests estimated"
    paths = build_report(run, artifact, Path(args.out), cost)
    for path in paths:
        console.print(str(path))
    return 0


def cmd_cost(client: Client, args: argparse.Namespace) -> int:
    doc = client.get(
        f"/training-runs/{args.run_id}/cost", region=args.region, rows=args.rows, shards=args.shards, rounds=args.rounds
    )
    blocks = [("this run", doc["actual"])] + ([("what if", doc["what_if"])] if "what_if" in doc else [])
    for title, block in blocks:
        usage = block["usage"]
        table = Table(
            "item",
            "USD",
            title=f"{title}: {usage['rounds']} rounds x {usage['shards']} shards, "
            f"{usage['train_rows']} rows ({block['region']})",
        )
        for item, usd in block["breakdown"].items():
            table.add_row(item, f"{usd:.6f}")
        table.add_row("[bold]total", f"[bold]{block['total']:.6f}")
        console.print(table)
    return 0


# -- entry point ----------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sml", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help=f"API base URL (default {LOCAL_URL}, or the --stack's)")
    parser.add_argument("--api-key", help="API key sent as x-api-key")
    parser.add_argument("--stack", help="a deployed stack's name: read ApiUrl and the API key from its outputs")
    parser.add_argument("--region", help="AWS region of --stack, and of the cost price table")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("upload", help="upload a CSV or JSON Lines data set (progress bar; large files via S3)")
    p.add_argument("file")
    p.add_argument("--dataset", help="data set name (default: the file name)")
    p.add_argument("--via-s3", action="store_true", help="upload through a presigned S3 URL whatever the size")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("train", help="start a training run")
    p.add_argument("--dataset", required=True)
    p.add_argument("--version")
    p.add_argument("--target", required=True)
    p.add_argument("--model-name", required=True)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a hyperparameter, e.g. --set optimizer=adam --set learning_rate=0.05 (repeatable)",
    )
    p.add_argument("--watch", action="store_true", help="follow the run until it ends")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("watch", help="follow a run live until it ends")
    p.add_argument("run_id")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("runs", help="list runs, or show one")
    p.add_argument("run_id", nargs="?")
    p.add_argument("--curve", action="store_true", help="include every round's summary")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("models", help="list, show, promote or roll back models")
    p.add_argument("action", choices=["list", "show", "promote", "rollback"])
    p.add_argument("name", nargs="?")
    p.add_argument("version", nargs="?", type=int)
    p.add_argument("--force", action="store_true", help="promote even if the metric is not better")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("predict", help="predict the rows of a CSV, JSON or JSON Lines file")
    p.add_argument("model")
    p.add_argument("file")
    p.add_argument("--out", help="CSV file for the predictions (default: stdout)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("batch", help="start a batch inference job over a file, or follow one")
    p.add_argument("action", choices=["start", "watch"])
    p.add_argument("model", help="start: the model name; watch: the job id")
    p.add_argument("target", nargs="?", help="start: the input's key in the data bucket")
    p.add_argument("--file", help="start: upload this CSV / JSON Lines file and predict its rows")
    p.add_argument("--version", type=int, help="start: this model version instead of production")
    p.add_argument("--watch", action="store_true", help="start: follow the job until it ends")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("cost", help="what a run cost, and what a bigger one would (--rows/--shards/--rounds)")
    p.add_argument("run_id")
    p.add_argument("--rows", type=int)
    p.add_argument("--shards", type=int)
    p.add_argument("--rounds", type=int)
    p.set_defaults(func=cmd_cost)

    p = sub.add_parser("report", help="loss curves, metrics, residuals or confusion matrix, timing: PNG + HTML")
    p.add_argument("run_id")
    p.add_argument("--out", default="report", help="output folder (default ./report)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.stack:
            client = from_stack(args.stack, args.region)
        else:
            client = Client(url=args.url or LOCAL_URL, api_key=args.api_key or (None if args.url else LOCAL_API_KEY))
        if args.api_key:
            client.api_key = args.api_key
        if args.command == "models" and args.action != "list" and not args.name:
            raise ApiError(f"models {args.action} needs a model name")
        return args.func(client, args)
    except ApiError as err:
        err_console.print(f"[red]error:[/red] {err}", highlight=False)
        return 1
    except (OSError, ValueError) as err:  # unreadable or malformed input files
        err_console.print(f"[red]error:[/red] {err}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
