"""`sml`: upload, train, watch, predict, manage models and report, over the HTTP API.

Built on the SDK (mlclient.sdk.Client). Where it talks to: `--url`/`--api-key`/`--stack`, else SML_URL,
SML_API_KEY, SML_STACK; a local URL without a key gets the local server's; by default `make local`'s
http://127.0.0.1:3000. Errors from the API are one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .api import ENV_API_KEY, ENV_STACK, ENV_URL, LOCAL_URL, SmlError
from .sdk import Client, duration

console = Console()
err_console = Console(stderr=True)


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
    _print_json(client.upload(Path(args.file), args.dataset, via_s3=args.via_s3))
    return 0


def cmd_train(client: Client, args: argparse.Namespace) -> int:
    hyper = {k: _parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set or [])}
    started = client.train(
        args.dataset,
        args.target,
        args.model_name,
        shards=args.shards,
        version=args.version,
        hyperparameters=hyper,
        wait=False,
    )
    err_console.print(
        f"started run [bold]{started['run_id']}[/bold] on {started['dataset']} version {started['version']}"
    )
    if args.watch:
        return watch(client, started["run_id"])
    _print_json(started)
    return 0


def watch(client: Client, run_id: str) -> int:
    """Follow a run live: round, loss, rate and ETA, until it ends."""
    run = client.wait(run_id)
    model = run["model"]
    took = duration(run)
    err_console.print(
        f"run {run_id} SUCCEEDED"
        + (f" in {took:.0f}s" if took is not None else "")
        + f": model {model['model_name']} version {model['version']}"
    )
    _print_json(model)
    return 0


def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    return watch(client, args.run_id)


def cmd_runs(client: Client, args: argparse.Namespace) -> int:
    if args.run_id:
        _print_json(client.run(args.run_id, curve=args.curve))
        return 0
    table = Table("run", "status", "started", "stopped")
    for run in client.runs():
        table.add_row(run["run_id"], run["status"], run["started_at"], run.get("stopped_at", ""))
    console.print(table)
    return 0


def cmd_models(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        _print_json(client.models())
    elif args.action == "show":
        _print_json(client.model(args.name, args.version))
    elif args.action == "promote":
        if args.version is None:
            raise SmlError("models promote needs a version: sml models promote NAME VERSION")
        _print_json(client.promote(args.name, args.version, force=args.force))
    elif args.action == "rollback":
        _print_json(client.rollback(args.name))
    elif args.action == "compare":
        rows = client.version_metrics(args.name, [args.version] if args.version else None)
        columns = list(dict.fromkeys(k for row in rows for k in row))
        table = Table(*columns, title=f"model {args.name}")
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        console.print(table)
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def cmd_predict(client: Client, args: argparse.Namespace) -> int:
    instances = read_instances(Path(args.file))
    if not instances:
        raise SmlError(f"{args.file} holds no instances")
    answer = client.predict_rows(args.model, instances)
    results = answer.rows
    err_console.print(f"{len(results)} predictions from {answer.model} version {answer.version}")
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
    started = client.start_batch(args.model, args.target, file=args.file, version=args.version)
    err_console.print(f"started batch job [bold]{started['job_id']}[/bold] over {started['input_key']}")
    if args.watch:
        return watch_batch(client, started["job_id"])
    _print_json(started)
    return 0


def watch_batch(client: Client, job_id: str) -> int:
    _print_json(client.wait_batch(job_id))
    return 0


def cmd_report(client: Client, args: argparse.Namespace) -> int:
    for path in client.report(args.run_id, Path(args.out), region=args.region):
        console.print(str(path))
    return 0


def cmd_cost(client: Client, args: argparse.Namespace) -> int:
    doc = client.cost(args.run_id, region=args.region, rows=args.rows, shards=args.shards, rounds=args.rounds)
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
def _error(err: Exception) -> None:
    """One line on stderr, however long, and taken literally (``sml-client[report]`` is not markup)."""
    err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sml", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help=f"API base URL (default ${ENV_URL}, the --stack's, or {LOCAL_URL})")
    parser.add_argument(
        "--api-key", help=f"API key sent as x-api-key (default ${ENV_API_KEY}; the local server's for a local URL)"
    )
    parser.add_argument(
        "--stack", help=f"a deployed stack's name: read ApiUrl and the API key from its outputs (default ${ENV_STACK})"
    )
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

    p = sub.add_parser("models", help="list, show, compare, promote or roll back models")
    p.add_argument("action", choices=["list", "show", "compare", "promote", "rollback"])
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
        if args.command == "models" and args.action != "list" and not args.name:
            raise SmlError(f"models {args.action} needs a model name")
        with Client(args.url, args.api_key, stack=args.stack, region=args.region, console=err_console) as client:
            return int(args.func(client, args))
    except SmlError as err:
        _error(err)
        return 1
    except (OSError, ValueError) as err:  # unreadable or malformed input files
        _error(err)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
