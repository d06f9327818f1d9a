"""Batch inference over a CSV or JSON Lines file in S3: plan byte-range chunks, predict each, concatenate in order.

Workflow (statemachines/batch_inference.asl.json): ``plan`` scans the input once and writes
``batch/<job>/chunks.json`` (one item per chunk of ``batch_rows`` rows: first row index and byte range);
a Distributed Map reads that list with its ItemReader, and each ``predict_chunk`` reads only its byte
range, validates every row against the model's schema and writes a part file keyed by its first row
index (predictions) plus the rows it rejected (row number and reason). ``finalize`` concatenates the parts
in row order into ``predictions.jsonl`` and ``errors.jsonl`` and writes ``summary.json``.
Payloads carry keys and small numbers only.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from mlcore.infra import aws, jsontext, layout
from mlcore.infra.errors import ConflictError, InvalidInput, NotFoundError
from mlcore.infra.storage import NotFound, ObjectStore
from mlcore.serving import online, registry
from mlcore.serving.registry import ModelArtifact


class IncompleteJob(RuntimeError):
    """Finalize found planned chunks without their output: the job fails naming them."""


JOB_ID = re.compile(r"^batch-[0-9a-f]{12}$")
MAX_BATCH_ROWS = 10_000
MAX_ID_COLUMNS = 20
OUTPUT_FIELDS = ("row", "prediction", "probabilities")
OUTPUT_URL_SECONDS = 3600  # how long the URLs of GET /batch-jobs/{id}/output are valid


class BatchJobRequest(BaseModel):
    model: str = Field(pattern=layout.NAME.pattern, description="registered model name")
    input_key: str = Field(
        min_length=1, max_length=1024, description="key of a CSV (header row) or JSON Lines file in the data bucket"
    )
    format: Literal["csv", "jsonl"] | None = Field(
        None, description="input format; by default jsonl for keys ending .jsonl or .ndjson, else csv"
    )
    version: int | None = Field(None, ge=1, description="model version; the alias's version when omitted")
    alias: str = Field("production", pattern="^(production|latest)$")
    batch_rows: int = Field(1000, ge=1, le=MAX_BATCH_ROWS, description="rows per Distributed Map item")
    id_columns: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=MAX_ID_COLUMNS,
        description="input columns copied beside each prediction in the output (an id, a key), not features",
    )

    @field_validator("id_columns")
    @classmethod
    def _not_reserved(cls, names: list[str]) -> list[str]:
        reserved = [n for n in names if n in OUTPUT_FIELDS]
        if reserved:
            raise ValueError(f"id_columns may not be named {', '.join(reserved)}: the output's own fields")
        if len(set(names)) != len(names):
            raise ValueError("id_columns names a column twice")
        return names


# the steps of the batch inference workflow, told apart by ``action``
class Plan(BaseModel):
    action: Literal["plan"]
    job_id: str = Field(pattern=JOB_ID.pattern)


class PredictChunk(BaseModel):
    action: Literal["predict"]
    job_id: str = Field(pattern=JOB_ID.pattern)
    first_row: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Finalize(BaseModel):
    action: Literal["finalize"]
    job_id: str = Field(pattern=JOB_ID.pattern)


BatchStepEvent = Annotated[Plan | PredictChunk | Finalize, Field(discriminator="action")]


# -- API ------------------------------------------------------------------------------------------------


def start(store: ObjectStore, sfn, state_machine_arn: str, request: BatchJobRequest) -> dict[str, Any]:
    """Pin the model version, check the input exists, then start one execution named after the job id."""
    version = request.version or registry.resolve_alias(store, request.model, request.alias)
    registry.load_version(store, request.model, version)  # 404 now rather than in every worker
    if request.input_key.startswith(layout.BATCH) or not store.exists(request.input_key):
        raise NotFoundError(f"input {request.input_key!r} does not exist in the data bucket")
    job_id = f"batch-{uuid.uuid4().hex[:12]}"
    job = {
        "job_id": job_id,
        "model": request.model,
        "version": version,
        "input_key": request.input_key,
        "format": request.format or ("jsonl" if request.input_key.endswith((".jsonl", ".ndjson")) else "csv"),
        "batch_rows": request.batch_rows,
        "id_columns": request.id_columns,
        "created_at": datetime.now(UTC).isoformat(),
        "started": time.time(),
    }
    store.put_json(layout.job_key(job_id), job, if_absent=True)
    sfn.start_execution(stateMachineArn=state_machine_arn, name=job_id, input=json.dumps({"job_id": job_id}))
    return {"job_id": job_id, "status": "RUNNING", "model": request.model, "version": version}


def describe(store: ObjectStore, sfn, state_machine_arn: str, job_id: str) -> dict[str, Any]:
    if not JOB_ID.match(job_id):
        raise NotFoundError(f"batch job {job_id!r} does not exist")
    try:
        job = store.get_json(layout.job_key(job_id))
    except NotFound:
        raise NotFoundError(f"batch job {job_id!r} does not exist") from None
    arn = aws.execution_arn(state_machine_arn, job_id)
    with aws.missing_execution_is(f"batch job {job_id!r} has no workflow execution"):
        desc = sfn.describe_execution(executionArn=arn)
    out: dict[str, Any] = {k: job[k] for k in ("job_id", "model", "version", "input_key")}
    out["status"] = desc["status"]
    with contextlib.suppress(NotFound):
        out["summary"] = store.get_json(layout.job_summary_key(job_id))
    if desc["status"] == "FAILED":
        out["error"] = desc.get("error")
        out["cause"] = desc.get("cause")
    return out


def output(
    store: ObjectStore, sfn, state_machine_arn: str, job_id: str, expires_in: int = OUTPUT_URL_SECONDS
) -> dict[str, Any]:
    """Where to download a finished job's output: presigned GET URLs of its predictions and errors (valid
    ``expires_in`` seconds), their keys and the summary. A job that has not succeeded has no output (409)."""
    job = describe(store, sfn, state_machine_arn, job_id)
    if job["status"] != "SUCCEEDED" or "summary" not in job:
        raise ConflictError(f"batch job {job_id!r} is {job['status']}: its output is there once it SUCCEEDED")
    summary = job["summary"]
    return {
        "job_id": job_id,
        "predictions_url": store.presign_get(summary["predictions_key"], expires_in),
        "errors_url": store.presign_get(summary["errors_key"], expires_in),
        "expires_in": expires_in,
        "predictions_key": summary["predictions_key"],
        "errors_key": summary["errors_key"],
        "summary": summary,
    }


# -- workflow steps -------------------------------------------------------------------------------------


def _records(data: bytes):
    """(byte offset, raw bytes) of each CSV record; a quoted field may span lines."""
    offset, start, pending = 0, 0, b""
    for line in data.splitlines(keepends=True):
        if not pending:
            start = offset
        pending += line
        offset += len(line)
        if pending.count(b'"') % 2 == 0:
            yield start, pending
            pending = b""
    if pending:
        yield start, pending


def _lines(data: bytes):
    """(byte offset, raw bytes) of each line."""
    offset = 0
    for line in data.splitlines(keepends=True):
        yield offset, line
        offset += len(line)


def plan(store: ObjectStore, job_id: str) -> dict[str, Any]:
    """Check the header against the model and cut the input into chunks of ``batch_rows`` records."""
    job = store.get_json(layout.job_key(job_id))
    artifact = registry.load_version(store, job["model"], job["version"])
    data = store.get_bytes(job["input_key"])
    header = None
    if job.get("format", "csv") == "jsonl":  # one JSON instance per line, no header
        records = _lines(data)
    else:
        records = _records(data)
        try:
            _header_offset, header_raw = next(records)
        except StopIteration:
            raise InvalidInput(f"input {job['input_key']!r} is empty") from None
        header = next(csv.reader([header_raw.decode("utf-8-sig")]))
        missing = [n for n in (*artifact.preprocessor.input_names, *job.get("id_columns", [])) if n not in header]
        if missing:
            raise InvalidInput(f"input {job['input_key']!r} has no column(s): {', '.join(missing)}")
    chunks: list[dict[str, int]] = []
    rows = 0
    for offset, raw in records:
        if not raw.strip():
            continue
        if rows % job["batch_rows"] == 0:
            if chunks:
                chunks[-1]["end"] = offset
            chunks.append({"first_row": rows, "start": offset, "end": len(data)})
        rows += 1
    if header is not None:
        store.put_json(layout.job_header_key(job_id), header)
    store.put_json(layout.job_chunks_key(job_id), chunks)
    return {"job_id": job_id, "rows": rows, "chunks": len(chunks), "chunks_key": layout.job_chunks_key(job_id)}


def _coerce(artifact: ModelArtifact, header: list[str], values: list[str], row: int) -> dict[str, Any]:
    if len(values) != len(header):
        raise InvalidInput(f"row {row} has {len(values)} fields, the header has {len(header)}")
    record = dict(zip(header, values, strict=True))
    out: dict[str, Any] = {}
    for col in artifact.preprocessor.columns:
        v = record[col.name].strip()
        if v == "":
            out[col.name] = None
        elif col.kind == "numeric":
            try:
                x = float(v)
            except ValueError:
                raise InvalidInput(f"{col.name} must be a number, got {v!r}") from None
            if not math.isfinite(x):
                raise InvalidInput(f"{col.name} must be finite, got {v!r}")
            out[col.name] = x
        else:
            out[col.name] = v
    return out


def _parse_json_row(artifact: ModelArtifact, line: str, row: int) -> dict[str, Any]:
    """One JSON Lines instance (object keyed by feature name, or list in schema order), validated as Predict does."""
    try:
        instance = jsontext.loads(line)
    except jsontext.JsonRefused as err:
        raise InvalidInput(f"row {row} is refused: {err}") from None
    except ValueError:
        raise InvalidInput(f"row {row} is not valid JSON") from None
    if not isinstance(instance, dict | list):
        raise InvalidInput(f"row {row} must be an object keyed by feature name or a list in schema order")
    try:
        columns = online.instances_to_columns(artifact, [instance])
    except InvalidInput as err:
        message = str(err)
        if message.startswith("instances[0]."):
            message = message[len("instances[0].") :]
        elif message.startswith("instances[0] "):
            message = f"row {row} " + message[len("instances[0] ") :]
        raise InvalidInput(message) from None
    return {name: values[0] for name, values in columns.items()}


def _csv_records(text: str) -> Iterator[list[str] | InvalidInput]:
    """The CSV records of ``text``; a record the reader cannot parse (a field over csv.field_size_limit()
    characters) comes as the InvalidInput naming why, and reading goes on with the next line."""
    reader = csv.reader(io.StringIO(text))
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield InvalidInput(f"not well-formed CSV: {err}")


def _ids(id_columns: list[str], header: list[str] | None, values: Any) -> dict[str, Any]:
    """The id columns of a row that parsed: a CSV record's fields as text; a JSON Lines object's values (null
    for a list instance, which names no column, or an object without the column)."""
    if header is not None:
        record = dict(zip(header, values, strict=True))
        return {c: record[c] for c in id_columns}
    instance = json.loads(values)
    return {c: instance.get(c) if isinstance(instance, dict) else None for c in id_columns}


def predict_chunk(
    store: ObjectStore, cache: online.ModelCache, job_id: str, first_row: int, start: int, end: int
) -> dict[str, Any]:
    """Predict rows ``first_row...`` read from bytes [start, end) of the input; bad rows go to errors."""
    job = store.get_json(layout.job_key(job_id))
    jsonl = job.get("format", "csv") == "jsonl"
    header = None if jsonl else store.get_json(layout.job_header_key(job_id))
    artifact = cache.get_version(store, job["model"], job["version"])
    text = store.get_range(job["input_key"], start, end).decode("utf-8", errors="replace")
    valid: list[dict[str, Any]] = []
    valid_rows: list[int] = []
    valid_ids: list[dict[str, Any]] = []
    id_columns: list[str] = job.get("id_columns", [])
    errors: list[dict[str, Any]] = []
    row = first_row
    parse: Callable[[Any, int], dict[str, Any]]
    if header is None:
        records: Iterable[Any] = (line for line in text.splitlines() if line.strip())
        parse = functools.partial(_parse_json_row, artifact)
    else:
        records = _csv_records(text)
        parse = functools.partial(_coerce, artifact, header)
    for values in records:
        if not values:
            continue
        try:
            if isinstance(values, InvalidInput):
                raise values
            valid.append(parse(values, row))
            valid_rows.append(row)
            if id_columns:
                valid_ids.append(_ids(id_columns, header, values))
        except InvalidInput as err:
            errors.append({"row": row, "error": str(err)})
        row += 1
    lines: list[str] = []
    if valid:
        result, nonfinite = online.predictions(artifact, valid)
        probabilities = result.get("probabilities")
        for i, (r, p) in enumerate(zip(valid_rows, result["predictions"], strict=True)):
            if i in nonfinite:  # never Infinity or NaN in the output: the row is an error
                errors.append({"row": r, "error": online.NONFINITE})
                continue
            line: dict[str, Any] = {"row": r, **(valid_ids[i] if id_columns else {}), "prediction": p}
            if probabilities is not None:
                line["probabilities"] = probabilities[i]
            lines.append(json.dumps(line, allow_nan=False))
        errors.sort(key=lambda e: e["row"])
    store.put_bytes(layout.job_part_key(job_id, "parts", first_row), "".join(x + "\n" for x in lines).encode())
    errors_body = "".join(json.dumps(e) + "\n" for e in errors).encode()
    store.put_bytes(layout.job_part_key(job_id, "errors", first_row), errors_body)
    stats = {"first_row": first_row, "rows": row - first_row, "predicted": len(lines), "failures": len(errors)}
    store.put_json(layout.job_part_key(job_id, "stats", first_row), stats)
    return stats


PART_KINDS = ("parts", "errors", "stats")
MAX_NAMED_CHUNKS = 20


def _check_chunks(job_id: str, chunks: list[dict[str, int]], listed: dict[str, list[str]]) -> None:
    """IncompleteJob naming the planned chunks that lack a part file (what Finalize would silently drop)."""
    present = {kind: set(keys) for kind, keys in listed.items()}
    missing = []
    for chunk in chunks:
        kinds = [k for k in PART_KINDS if layout.job_part_key(job_id, k, chunk["first_row"]) not in present[k]]
        if kinds:
            missing.append(f"{chunk['first_row']} ({', '.join(kinds)})")
    if missing:
        more = ", ..." if len(missing) > MAX_NAMED_CHUNKS else ""
        raise IncompleteJob(
            f"batch job {job_id}: {len(missing)} planned chunk(s) have no output; chunks starting at row "
            f"{', '.join(missing[:MAX_NAMED_CHUNKS])}{more}"
        )


def finalize(store: ObjectStore, job_id: str, now: float | None = None) -> dict[str, Any]:
    """Check that every planned chunk wrote its parts, concatenate them in row order (keys are zero-padded
    first rows) and write the summary. A chunk without its predictions, errors or stats part fails the job,
    naming the chunks, and nothing is written."""
    job = store.get_json(layout.job_key(job_id))
    listed = {kind: store.list_keys(layout.job_part_prefix(job_id, kind)) for kind in PART_KINDS}
    _check_chunks(job_id, store.get_json(layout.job_chunks_key(job_id)), listed)
    outputs = {}
    for kind, name in (("parts", "predictions.jsonl"), ("errors", "errors.jsonl")):
        body = b"".join(store.get_bytes(k) for k in listed[kind])
        outputs[kind] = layout.job_output_key(job_id, name)
        store.put_bytes(outputs[kind], body, content_type="application/x-ndjson")
    stats = [store.get_json(k) for k in listed["stats"]]
    summary = {
        "job_id": job_id,
        "model": job["model"],
        "version": job["version"],
        "input_key": job["input_key"],
        "rows": sum(s["rows"] for s in stats),
        "predicted": sum(s["predicted"] for s in stats),
        "failures": sum(s["failures"] for s in stats),
        "chunks": len(stats),
        "duration_s": round((now if now is not None else time.time()) - job["started"], 3),
        "predictions_key": outputs["parts"],
        "errors_key": outputs["errors"],
    }
    store.put_json(layout.job_summary_key(job_id), summary)
    return summary
