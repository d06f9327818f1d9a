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
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .api import ENV_API_KEY, ENV_STACK, ENV_URL, LOCAL_URL, SmlError
from .sdk import (
    Client,
    comparison_table,
    duration,
    fit_table,
    format_duration,
    outcome_text,
    read_spec,
    trials_table,
    tuning_outcome,
)

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


# -- output ---------------------------------------------------------------------
def _line(text: str, *, err: bool = False) -> None:
    """One line, never wrapped (a file or a pipe reads it whole)."""
    (err_console if err else console).print(text, soft_wrap=True, highlight=False)


def _when(value: Any) -> str:
    """An API timestamp as a person reads it: 2026-01-01 12:00:05 (UTC), whole."""
    text = str(value or "")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text


def _table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None = None, drop: Sequence[str] = ()
) -> None:
    """Rows as a table: every cell whole (wrapped between words, never cut off), timestamps in _when's form; on a
    terminal too narrow for every column's longest word the ``drop`` columns are left out in turn."""
    # ids and timestamps stay whole on one line
    floors = {c: 19 if c.endswith("_at") else 16 for c in columns if c.endswith("_at") or c in ("run_id", "job_id")}
    cells = [[_when(row.get(c)) if c.endswith("_at") else _cell(row.get(c)) for c in columns] for row in rows]
    console.print(fit_table(list(columns), cells, console.width, drop=drop, floors=floors, title=title))


def _fields(doc: Mapping[str, Any], names: Sequence[str], title: str | None = None) -> None:
    """One document as a two-column table of the ``names`` it has."""
    _table(
        [{"field": n, "value": _when(doc[n]) if n.endswith("_at") else doc[n]} for n in names if n in doc],
        ["field", "value"],
        title,
    )


def _show(args: argparse.Namespace, doc: Any, human: Callable[[], None]) -> None:
    """--json: the API's document as it came; else ``human``, a table or a line."""
    if args.json:
        _print_json(doc)
    else:
        human()


# -- commands -------------------------------------------------------------------
def cmd_upload(client: Client, args: argparse.Namespace) -> int:
    doc = client.upload(Path(args.file), args.dataset, via_s3=args.via_s3)

    def human() -> None:
        _line(
            f"data set {doc['dataset']} version {doc['version']}: {doc.get('rows')} rows x "
            f"{doc.get('n_columns', len(doc.get('columns') or []))} columns"
            + ("" if doc.get("created", True) else " (already registered: the same content)")
        )
        _table(doc.get("columns") or [], ["name", "kind", "missing", "min", "max", "mean"])

    _show(args, doc, human)
    return 0


def cmd_datasets(client: Client, args: argparse.Namespace) -> int:
    if args.name:
        doc = client.dataset(args.name, args.version)

        def one() -> None:
            _fields(
                doc,
                ["dataset", "version", "status", "format", "rows", "n_columns", "bytes", "key", "created_at", "reason"],
                title=f"data set {args.name}",
            )
            _table(doc.get("columns") or [], ["name", "kind", "missing", "min", "max", "mean"])

        _show(args, doc, one)
        return 0
    listed = client.datasets()
    _show(args, listed, lambda: _table(listed, ["dataset", "version", "format", "rows", "n_columns", "created_at"]))
    return 0


def _request_options(args: argparse.Namespace) -> dict[str, Any]:
    spec = read_spec(args.spec) if args.spec else None
    target = args.target or (spec or {}).get("target")
    if not target:
        raise SmlError("train needs --target, or a --spec that names its target")
    return {"target": target, "spec": spec, "mode": args.mode, "test_fraction": args.test_fraction}


def cmd_train(client: Client, args: argparse.Namespace) -> int:
    hyper = {k: _parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set or [])}
    options = _request_options(args)
    started = client.train(
        args.dataset,
        options.pop("target"),
        args.model_name,
        shards=args.shards,
        version=args.version,
        hyperparameters=hyper,
        wait=False,
        **options,
    )
    _line(
        f"started run [bold]{started['run_id']}[/bold] on {started['dataset']} version {started['version']}", err=True
    )
    _problem_lines(started.get("problem"), started.get("model"))
    if args.watch:
        return watch(client, started["run_id"], args)
    _show(args, started, lambda: _line(f"follow it: sml watch {started['run_id']}"))
    return 0


def _problem_lines(problem: Mapping[str, Any] | None, model: str | None) -> None:
    """What the run inferred (its task, model and metric) and did with other columns, one line each."""
    if not problem:
        return
    why = f" ({problem['reason']})" if problem.get("reason") else ""
    model = model or problem.get("linear_model")
    _line(f"task {problem.get('task')}{why}: model {model}, metric {problem.get('metric')}", err=True)
    for decision in problem.get("decisions") or []:
        _line(f"  {decision.get('action')} column {decision.get('column')}: {decision.get('reason')}", err=True)


def watch(client: Client, run_id: str, args: argparse.Namespace, show_problem: bool = False) -> int:
    """Follow a run live: round, loss, rate and ETA, until it ends; then how it ended and its model (and, with
    ``show_problem``, its task and column decisions)."""
    run = client.wait(run_id)
    if show_problem:
        _problem_lines(run.get("problem"), ((run.get("request") or {}).get("hyperparameters") or {}).get("model"))
    model = run["model"]
    _line(f"run {run_id} {outcome_text(run)}: model {model['model_name']} version {model['version']}", err=True)
    _show(args, model, lambda: _model_line(model))
    return 0


def _model_line(model: Mapping[str, Any]) -> None:
    metrics = model.get("metrics") or {}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, int | float))
    _line(f"model {model.get('model_name')} version {model.get('version')}" + (f": {shown}" if shown else ""))


def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    return watch(client, args.run_id, args, show_problem=True)


RUN_FIELDS = ["run_id", "status", "started_at", "stopped_at", "duration", "rounds_completed", "stop_reason", "loss"]
# `sml runs`: what tells runs apart (GET /training-runs gives each run's key hyperparameters and test metric)
LIST_FIELDS = ["run_id", "status", "started_at", "setup", "test", "stop_reason"]
NARROW_LIST_DROPS = ("started_at",)  # left out at 80 columns, where the others' words would not fit whole


def _run_row(run: Mapping[str, Any]) -> dict[str, Any]:
    took = duration(run)
    last = run.get("last_round") or {}
    hp = run.get("hyperparameters") or {}
    value = run.get("test_metric")
    setup = [hp.get("model"), hp.get("optimizer"), f"lr {hp['learning_rate']:g}" if hp.get("learning_rate") else None]
    setup += [run.get("mode"), f"solver {hp['solver']}" if hp.get("solver") else None]
    return {
        **run,
        "duration": format_duration(took) if took is not None else "",
        "loss": last.get("loss"),
        "setup": " ".join(str(part) for part in setup if part),  # model, optimizer, learning rate, mode, solver
        "test": f"{run.get('metric')} {value:.4g}" if isinstance(value, int | float) else "",
    }


def cmd_runs(client: Client, args: argparse.Namespace) -> int:
    if args.run_id and args.run_id[0] == "compare":
        return compare_runs(client, args.run_id[1:], args)
    if len(args.run_id) > 1:
        raise SmlError("runs shows one run; to put several side by side: sml runs compare RUN RUN...")
    if args.run_id:
        args.run_id = args.run_id[0]
        run = client.run(args.run_id, curve=args.curve)

        def one() -> None:
            row = _run_row(run)
            error = run.get("error") or {}
            if error:
                row["error"] = f"{error.get('type')}: {error.get('message')}"
            if run.get("model"):
                row["model"] = f"{run['model'].get('model_name')} version {run['model'].get('version')}"
            _fields(row, [*RUN_FIELDS, "model", "error"], title=f"run {args.run_id}")

        _show(args, run, one)
        return 0
    listed = client.runs(None if args.all else args.limit)
    _show(args, listed, lambda: _table([_run_row(r) for r in listed], LIST_FIELDS, drop=NARROW_LIST_DROPS))
    return 0


def compare_runs(client: Client, run_ids: Sequence[str], args: argparse.Namespace) -> int:
    """Runs side by side: a row per field (status, model, hyperparameters, rounds, stop reason, metrics,
    duration, cost), a column per run; --json: one flat document per run."""
    if not run_ids:
        raise SmlError("runs compare needs run ids: sml runs compare RUN [RUN...]")
    rows = client.run_comparison(run_ids)

    def human() -> None:
        table = []
        for line in comparison_table(rows):
            field = line.pop("field")
            if field == "duration_s":
                line = {k: format_duration(v) if isinstance(v, int | float) else v for k, v in line.items()}
            elif field == "cost_usd":
                line = {k: f"{v:.6f}" if isinstance(v, int | float) else v for k, v in line.items()}
            table.append({"field": {"duration_s": "duration", "cost_usd": "cost (USD)"}.get(field, field), **line})
        _table(table, ["field", *(str(r["run_id"]) for r in rows)], title="runs side by side")

    _show(args, rows, human)
    return 0


# -- tuning ---------------------------------------------------------------------
def cmd_tune(client: Client, args: argparse.Namespace) -> int:
    started = client.tune(
        args.dataset,
        args.target,
        args.model_name,
        version=args.version,
        max_trials=args.max_trials,
        max_parallel_trials=args.max_parallel,
        max_cost_usd=args.max_cost,
        seed=args.seed,
        search_space=args.space,
        min_epochs=args.min_epochs,
        max_epochs=args.max_epochs,
        reduction_factor=args.reduction_factor,
        shards=args.shards,
        test_fraction=args.test_fraction,
        validation_fraction=args.validation_fraction,
        spec=args.spec,
    )
    estimate = started.get("estimated_cost_usd")
    _line(
        f"started tuning job [bold]{started['job_id']}[/bold]: task {started.get('task')}, validation "
        f"{started.get('metric')}, {started.get('max_trials')} trials ({started.get('max_parallel_trials')} at a "
        f"time), rungs {started.get('rungs')} epochs, estimated cost "
        + (f"${estimate:.4f}" if isinstance(estimate, int | float) else "unknown"),
        err=True,
    )
    for decision in started.get("decisions") or []:
        _line(
            f"column {decision.get('column')}: {decision.get('action')} ({escape(str(decision.get('reason')))})",
            err=True,
        )
    if args.watch:
        return watch_tuning(client, started["job_id"], args)
    _show(args, started, lambda: _line(f"follow it: sml tuning watch {started['job_id']}"))
    return 0


def watch_tuning(client: Client, job_id: str, args: argparse.Namespace) -> int:
    """Follow a tuning job live (its trials as a table) until it ends; then the best trial and its model."""
    job = client.wait_tuning(job_id, poll=args.poll)
    _line(tuning_outcome(job), err=True)
    _show(args, job, lambda: None)
    return 0


def _leaderboard(job: Mapping[str, Any]) -> None:
    console.print(trials_table(job, console.width))
    _line(tuning_outcome(job))


def cmd_tuning(client: Client, args: argparse.Namespace) -> int:
    if args.action == "watch":
        return watch_tuning(client, args.job_id, args)
    if args.action == "stop":
        doc = client.stop_tuning(args.job_id)
        _show(args, doc, lambda: _line(f"tuning job {args.job_id} {doc.get('status')}"))
        return 0
    job = client.tuning_job(args.job_id)
    _show(args, job, lambda: _leaderboard(job))
    return 0


def cmd_tunings(client: Client, args: argparse.Namespace) -> int:
    listed = client.tuning_jobs(args.limit)
    columns = ["job_id", "status", "task", "metric", "model_name", "best_validation_metric", "started_at", "ended_at"]
    _show(args, listed, lambda: _table(listed, columns))
    return 0


def cmd_stop(client: Client, args: argparse.Namespace) -> int:
    doc = client.stop(args.run_id)
    _show(args, doc, lambda: _line(f"run {args.run_id} stopped; continue it with: sml resume {args.run_id}"))
    return 0


def cmd_resume(client: Client, args: argparse.Namespace) -> int:
    doc = client.resume(args.run_id)
    _line(f"run {args.run_id} resumed from round {doc.get('resumed_from_round')}", err=True)
    if args.watch:
        return watch(client, args.run_id, args)
    _show(args, doc, lambda: _line(f"follow it: sml watch {args.run_id}"))
    return 0


def _aliases(described: Mapping[str, Any]) -> dict[int, str]:
    named: dict[int, list[str]] = {}
    for alias, doc in (described.get("aliases") or {}).items():
        if isinstance(doc, dict) and doc.get("version") is not None:
            named.setdefault(int(doc["version"]), []).append(alias)
    return {v: ", ".join(sorted(a)) for v, a in named.items()}


def cmd_models(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        listed = client.models()
        _show(args, listed, lambda: _table(listed, ["name", "latest", "production"]))
    elif args.action == "show" and args.version is None:
        described = client.model(args.name)
        aliases = _aliases(described)
        rows = [{"version": v, "aliases": aliases.get(int(v), "")} for v in described.get("versions", [])]
        _show(args, described, lambda: _table(rows, ["version", "aliases"], title=f"model {args.name}"))
    elif args.action == "show":
        artifact = client.model(args.name, args.version)
        _show(args, artifact, lambda: _artifact_summary(artifact))
    elif args.action == "promote":
        if args.version is None:
            raise SmlError("models promote needs a version: sml models promote NAME VERSION")
        doc = client.promote(args.name, args.version, force=args.force)
        _show(args, doc, lambda: _line(f"model {args.name}: production is version {args.version}"))
    elif args.action == "rollback":
        doc = client.rollback(args.name)
        version = doc.get("version")
        _show(args, doc, lambda: _line(f"model {args.name}: production rolled back to version {version}"))
    elif args.action == "compare":
        rows = client.version_metrics(args.name, [args.version] if args.version else None)
        columns = list(dict.fromkeys(k for row in rows for k in row))
        _show(args, rows, lambda: _table(rows, columns, title=f"model {args.name}"))
    elif args.action == "export":
        version = args.export_version or args.version
        if version is None or not args.out:
            raise SmlError("models export needs a version and a file: sml models export NAME --version V -o FILE")
        doc = client.export_onnx(args.name, version, args.out)
        inputs = ", ".join(f"{i['name']} ({i['type']})" for i in doc.get("inputs", []))
        outputs = ", ".join(o["name"] for o in doc.get("outputs", []))
        text = f"model {args.name} version {version}: ONNX graph (opset {doc.get('opset')}, {doc.get('size')} bytes)"
        _show(args, doc, lambda: _line(f"{text} written to {args.out}\ninputs: {inputs}\noutputs: {outputs}"))
    return 0


def _artifact_summary(artifact: Mapping[str, Any]) -> None:
    """A version in a screen: what it is, how it was trained, how well it does; --json has everything."""
    metrics = artifact.get("metrics") or {}
    lineage = artifact.get("lineage") or {}
    row = {
        "model": f"{artifact.get('name')} version {artifact.get('version')}",
        "type": (artifact.get("model") or {}).get("type"),
        "target": artifact.get("target"),
        "features": len(artifact.get("feature_names") or []),
        "created_at": artifact.get("created_at"),
        "run": lineage.get("run_id"),
        "dataset": f"{lineage.get('dataset')} version {lineage.get('dataset_version')}" if lineage else None,
        "rounds": metrics.get("rounds"),
        "stop_reason": metrics.get("stop_reason"),
    }
    _fields({k: v for k, v in row.items() if v is not None}, list(row), title="model version")
    test = metrics.get("test") or {}
    reference = metrics.get("reference") or {}
    reference = reference.get("test", reference) if isinstance(reference, dict) else {}
    rows = [
        {"metric": k, "this model": v, "scikit-learn reference": reference.get(k)}
        for k, v in test.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    _table(rows, ["metric", "this model", "scikit-learn reference"], title="test metrics")
    for warning in artifact.get("warnings") or []:
        _line(f"[yellow]warning:[/yellow] {escape(str(warning))}", err=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def cmd_predict(client: Client, args: argparse.Namespace) -> int:
    instances = read_instances(Path(args.file))
    if not instances:
        raise SmlError(f"{args.file} holds no instances")
    answer = client.predict_rows(args.model, instances, strict=args.strict)
    for warning in answer.warnings:
        _line(f"[yellow]warning:[/yellow] {escape(warning)}", err=True)
    _line(f"{len(answer.rows)} predictions from {answer.model} version {answer.version}", err=True)
    kept = _kept_columns(instances, args.keep)
    rows = [
        {**{c: inst.get(c) for c in kept}, **result} if isinstance(inst, dict) else dict(result)
        for inst, result in zip(instances, answer.rows, strict=True)
    ]
    fieldnames = list(dict.fromkeys([*kept, *(k for row in answer.rows for k in row)]))
    out = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.DictWriter(out, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if args.out:
            out.close()
    return 0


def _kept_columns(instances: Sequence[Any], keep: Sequence[str] | None) -> list[str]:
    """The input columns written beside the predictions: ``--keep``'s, else every column of the input (rows given
    as lists have none)."""
    present = list(dict.fromkeys(k for inst in instances if isinstance(inst, dict) for k in inst))
    if not keep:
        return present
    missing = [c for c in keep if c not in present]
    if missing:
        raise SmlError(f"--keep names column(s) the input does not have: {', '.join(missing)}")
    return list(keep)


def cmd_batch(client: Client, args: argparse.Namespace) -> int:
    if args.action == "watch":
        return watch_batch(client, args.model, args)
    if args.action == "download":
        out = Path(args.out or f"{args.model}-predictions.jsonl")
        summary = client.download_batch(args.model, out, errors=args.errors)
        _line(
            f"wrote {summary.get('predicted')} predictions of batch job {args.model} to {out}"
            + (f" and {summary.get('failures')} refused rows to {args.errors}" if args.errors else ""),
            err=True,
        )
        return 0
    started = client.start_batch(
        args.model, args.target, file=args.file, dataset=args.dataset, version=args.version, id_columns=args.id_column
    )
    if "dataset" in started:
        _line(f"uploaded {args.file} as data set {started['dataset']} version {started['dataset_version']}", err=True)
    _line(f"started batch job [bold]{started['job_id']}[/bold] over {started['input_key']}", err=True)
    if args.watch:
        return watch_batch(client, started["job_id"], args)
    _show(args, started, lambda: _line(f"follow it: sml batch watch {started['job_id']}"))
    return 0


def watch_batch(client: Client, job_id: str, args: argparse.Namespace) -> int:
    job = client.wait_batch(job_id)
    summary = job.get("summary") or {}

    def human() -> None:
        _line(
            f"batch job {job_id} {job['status']}: {summary.get('predicted')} of {summary.get('rows')} rows predicted, "
            f"{summary.get('failures')} refused, in {summary.get('duration_s')}s; "
            f"download them: sml batch download {job_id}"
        )

    _show(args, job, human)
    return 0


def cmd_report(client: Client, args: argparse.Namespace) -> int:
    if args.tuning:
        if args.run_id:
            raise SmlError("report takes a run id or --tuning JOB, not both")
        for path in client.tuning_report(args.tuning, Path(args.out)):
            console.print(str(path))
        return 0
    if not args.run_id:
        raise SmlError("report needs a run id, or --tuning JOB for a tuning job's search")
    paths = client.report(args.run_id, Path(args.out), region=args.region)
    for path in paths:
        console.print(str(path))
    for warning in client.warnings(args.run_id):
        _line(f"[yellow]warning:[/yellow] {escape(warning)}", err=True)
    return 0


def cmd_cost(client: Client, args: argparse.Namespace) -> int:
    doc = client.cost(args.run_id, region=args.region, rows=args.rows, shards=args.shards, rounds=args.rounds)
    if args.json:
        _print_json(doc)
        return 0
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
    # every command prints tables for people, or with --json the API's documents for machines
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the API's JSON instead of tables")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[common])

    p = command("upload", "upload a CSV or JSON Lines data set (progress bar; large files via S3)")
    p.add_argument("file")
    p.add_argument("--dataset", help="data set name (default: the file name)")
    p.add_argument("--via-s3", action="store_true", help="upload through a presigned S3 URL whatever the size")
    p.set_defaults(func=cmd_upload)

    p = command("train", "start a training run")
    p.add_argument("--dataset", required=True)
    p.add_argument("--version")
    p.add_argument("--target", help="the column to predict (default: the --spec's target)")
    p.add_argument("--model-name", required=True)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--spec", help="a preprocessing spec, a JSON file (see docs/preprocessing.md)")
    p.add_argument("--mode", choices=["sync", "async"], help="sync (default) or async training (docs/training.md)")
    p.add_argument("--test-fraction", type=float, help="share of the rows held out for the test metrics (0.2)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a hyperparameter, e.g. --set optimizer=adam --set learning_rate=0.05 (repeatable)",
    )
    p.add_argument("--watch", action="store_true", help="follow the run until it ends")
    p.set_defaults(func=cmd_train)

    p = command("watch", "follow a run live until it ends")
    p.add_argument("run_id")
    p.set_defaults(func=cmd_watch)

    p = command("datasets", "list the data sets, or show one")
    p.add_argument("name", nargs="?")
    p.add_argument("--version", help="a version of the data set instead of the latest")
    p.set_defaults(func=cmd_datasets)

    p = command("runs", "list runs (newest first), show one, or compare several: runs compare RUN [RUN...]")
    p.add_argument("run_id", nargs="*", metavar="RUN", help="a run id; or `compare` and run ids")
    p.add_argument("--curve", action="store_true", help="include every round's summary (with --json)")
    p.add_argument("--limit", type=int, default=50, help="how many runs to list (default 50)")
    p.add_argument("--all", action="store_true", help="list every run, page after page")
    p.set_defaults(func=cmd_runs)

    p = command("stop", "stop a running run (sml resume continues it)")
    p.add_argument("run_id")
    p.set_defaults(func=cmd_stop)

    p = command("resume", "continue a failed or stopped run from its last stored round")
    p.add_argument("run_id")
    p.add_argument("--watch", action="store_true", help="follow the run until it ends")
    p.set_defaults(func=cmd_resume)

    p = command("models", "list, show, compare, promote, roll back or export (ONNX) models")
    p.add_argument("action", choices=["list", "show", "compare", "promote", "rollback", "export"])
    p.add_argument("name", nargs="?")
    p.add_argument("version", nargs="?", type=int)
    p.add_argument("--force", action="store_true", help="promote even if the metric is not better")
    p.add_argument("--version", dest="export_version", type=int, help="export: the version to export")
    p.add_argument("-o", "--out", help="export: the .onnx file to write")
    p.set_defaults(func=cmd_models)

    p = command("predict", "predict the rows of a CSV, JSON or JSON Lines file")
    p.add_argument("model")
    p.add_argument("file")
    p.add_argument("--out", help="CSV file for the predictions (default: stdout)")
    p.add_argument(
        "--keep", action="append", metavar="COLUMN", help="input column to write beside the predictions (default: all)"
    )
    p.add_argument("--strict", action="store_true", help="refuse rows with columns that are not features")
    p.set_defaults(func=cmd_predict)

    p = command("batch", "start a batch inference job over a file, follow one, or download its predictions")
    p.add_argument("action", choices=["start", "watch", "download"])
    p.add_argument("model", help="start: the model name; watch, download: the job id")
    p.add_argument("target", nargs="?", help="start: the input's key in the data bucket")
    p.add_argument("--file", help="start: upload this CSV / JSON Lines file first, as a data set, and predict its rows")
    p.add_argument("--dataset", help="start --file: the data set to register the file as (default: the file's name)")
    p.add_argument(
        "--id-column", action="append", default=[], metavar="COLUMN", help="start: copy this column into the output"
    )
    p.add_argument("--version", type=int, help="start: this model version instead of production")
    p.add_argument("--watch", action="store_true", help="start: follow the job until it ends")
    p.add_argument("--out", help="download: the predictions file (default JOB-predictions.jsonl)")
    p.add_argument("--errors", help="download: also write the refused rows to this file")
    p.set_defaults(func=cmd_batch)

    p = command("cost", "what a run cost, and what a bigger one would (--rows/--shards/--rounds)")
    p.add_argument("run_id")
    p.add_argument("--rows", type=int)
    p.add_argument("--shards", type=int)
    p.add_argument("--rounds", type=int)
    p.set_defaults(func=cmd_cost)

    p = command("report", "loss curves, metrics, feature importance, residuals or confusion matrix, timing: PNG + HTML")
    p.add_argument("run_id", nargs="?")
    p.add_argument("--tuning", metavar="JOB", help="a tuning job's search instead: metric against learning rate, rungs")
    p.add_argument("--out", default="report", help="output folder (default ./report)")
    p.set_defaults(func=cmd_report)

    p = command("tune", "start a tuning job: many trials in parallel, weak ones stopped early, the best registered")
    p.add_argument("--dataset", required=True)
    p.add_argument("--version")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument("--model-name", required=True)
    p.add_argument("--max-trials", type=int, help="trials to sample (default 16)")
    p.add_argument("--max-parallel", type=int, help="trials running at once (default 4)")
    p.add_argument("--max-cost", type=float, help="refuse the job if its estimated cost in USD is above this")
    p.add_argument("--seed", type=int, help="the search's seed: the same seed samples the same trials (default 0)")
    p.add_argument("--space", help="the search space, a JSON file (see docs/tuning.md); default: every model family")
    p.add_argument("--min-epochs", type=int, help="the first rung's epochs (default 15)")
    p.add_argument("--max-epochs", type=int, help="the last rung's epochs (default 135)")
    p.add_argument("--reduction-factor", type=int, help="1/eta of a rung's trials advance (default 3)")
    p.add_argument("--shards", type=int, help="shards per trial (default 2)")
    p.add_argument("--test-fraction", type=float)
    p.add_argument("--validation-fraction", type=float, help="rows the trials are ranked on (default 0.2)")
    p.add_argument("--spec", help="a preprocessing spec, a JSON file (see docs/preprocessing.md)")
    p.add_argument("--watch", action="store_true", help="follow the trials live until the job ends")
    p.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_tune)

    p = command("tuning", "a tuning job: watch its trials live, show its leaderboard, or stop it")
    p.add_argument("action", choices=["watch", "show", "stop"])
    p.add_argument("job_id")
    p.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_tuning)

    p = command("tunings", "list tuning jobs")
    p.add_argument("--limit", type=int, help="at most this many")
    p.set_defaults(func=cmd_tunings)
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
