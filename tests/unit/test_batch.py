"""Batch inference pieces without AWS: record boundaries (quoted newlines) and per-row coercion messages."""

from __future__ import annotations

import json

import pytest

from mlcore.infra import layout
from mlcore.infra.errors import ConflictError, InvalidInput
from mlcore.serving import batch, online

from .fakes import FakeStore
from .helpers import make_artifact

QUOTED = b'a,b\n1,"x\ny"\n2,z\n\n3,"q"\n'


def test_records_keep_quoted_newlines():
    records = list(batch._records(QUOTED))
    assert [r for _, r in records] == [b"a,b\n", b'1,"x\ny"\n', b"2,z\n", b"\n", b'3,"q"\n']


def test_records_carry_their_byte_offsets():
    data = QUOTED
    records = list(batch._records(data))
    assert all(data[o : o + len(r)] == r for o, r in records)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["160", "a"], {"sqft": 160.0, "city": "a"}),
        (["", " "], {"sqft": None, "city": None}),
        (["1e2", "zzz"], {"sqft": 100.0, "city": "zzz"}),
    ],
)
def test_coerce(values, expected):
    assert batch._coerce(make_artifact(), ["sqft", "city"], values, 0) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["12x", "a"], "sqft must be a number, got '12x'"),
        (["nan", "a"], "sqft must be finite, got 'nan'"),
        (["1"], "row 4 has 1 fields, the header has 2"),
    ],
)
def test_coerce_errors_name_the_field(values, message):
    with pytest.raises(InvalidInput) as info:
        batch._coerce(make_artifact(), ["sqft", "city"], values, 4)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "row 3 is not valid JSON"),
        ("42", "row 3 must be an object keyed by feature name or a list in schema order"),
        ('{"sqft": 1}', "row 3 is missing feature(s): city"),
        ('{"sqft": "x", "city": "a"}', "sqft must be a number or null, got 'x'"),
        ('[NaN, "a"]', "sqft must be finite, got nan"),
        ('[1, "a", 3]', "row 3 has 3 values, expected 2 in this order: sqft, city"),
    ],
)
def test_json_lines_rows_name_the_problem(line, message):
    with pytest.raises(InvalidInput) as info:
        batch._parse_json_row(make_artifact(), line, 3)
    assert str(info.value) == message


def test_json_lines_rows_both_shapes():
    assert batch._parse_json_row(make_artifact(), '{"city": null, "sqft": 2}', 0) == {"sqft": 2, "city": None}
    assert batch._parse_json_row(make_artifact(), '[2.5, "b"]', 0) == {"sqft": 2.5, "city": "b"}


def _chunk_job(store: FakeStore, rows: list[bytes], fmt: str = "csv") -> tuple[int, int]:
    """Registers a model, the input file and the job; returns the data rows' size and where they start."""
    artifact = make_artifact()
    store.put_json(layout.version_key(artifact.name, artifact.version), artifact.model_dump(mode="json"))
    header = [b"sqft,city\n"] if fmt == "csv" else []
    data = b"".join([*header, *rows])
    store.put_bytes("landing/rows", data)
    job = {"model": artifact.name, "version": artifact.version, "input_key": "landing/rows", "format": fmt}
    store.put_json(layout.job_key(JOB), job)
    store.put_json(layout.job_header_key(JOB), ["sqft", "city"])
    return len(data) - len(b"".join(header)), len(b"".join(header))


JOB = "batch-0123456789ab"


DEEP_ROW = b'{"sqft": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"


@pytest.mark.parametrize(
    ("rows", "fmt", "error"),
    [
        ([b"100,a\n", b"1," + b"x" * 140_000 + b"\n", b"120,b\n"], "csv", "field larger than field limit (131072)"),
        ([b'{"sqft": 100, "city": "a"}\n', DEEP_ROW, b"[120, null]\n"], "jsonl", "nested more than 64 levels deep"),
    ],
)
def test_a_hostile_row_is_an_error_of_its_own_and_the_chunk_goes_on(rows, fmt, error):
    store = FakeStore()
    size, start = _chunk_job(store, rows, fmt)
    stats = batch.predict_chunk(store, online.ModelCache(), JOB, 0, start, start + size)
    assert (stats["rows"], stats["predicted"], stats["failures"]) == (3, 2, 1)
    errors = [json.loads(line) for line in store.get_bytes(layout.job_part_key(JOB, "errors", 0)).splitlines()]
    assert [e["row"] for e in errors] == [1] and error in errors[0]["error"]
    predicted = [json.loads(line)["row"] for line in store.get_bytes(layout.job_part_key(JOB, "parts", 0)).splitlines()]
    assert predicted == [0, 2]


def test_a_row_without_a_finite_prediction_is_an_error_not_infinity_in_the_output():
    store = FakeStore()
    size, start = _chunk_job(store, [b"100,a\n", b"1e308,b\n"])
    artifact = make_artifact()
    sqft, city = artifact.preprocessor.columns
    narrow = artifact.preprocessor.model_copy(update={"columns": [sqft.model_copy(update={"scale": 1e-3}), city]})
    store.put_json(
        layout.version_key(artifact.name, artifact.version),
        artifact.model_copy(update={"preprocessor": narrow}).model_dump(mode="json"),
    )
    stats = batch.predict_chunk(store, online.ModelCache(), JOB, 0, start, start + size)
    assert (stats["predicted"], stats["failures"]) == (1, 1)
    errors = store.get_bytes(layout.job_part_key(JOB, "errors", 0)).decode()
    assert json.loads(errors) == {"row": 1, "error": online.NONFINITE}
    parts = store.get_bytes(layout.job_part_key(JOB, "parts", 0)).decode()
    assert [json.loads(line)["row"] for line in parts.splitlines()] == [0]


def _predicted_job(store: FakeStore) -> None:
    """A three-chunk CSV job (rows 0-1, 2-3, 4) with every chunk predicted."""
    rows = [b"100,a\n", b"110,b\n", b"120,c\n", b"130,a\n", b"140,b\n"]
    _size, start = _chunk_job(store, rows)
    store.documents[layout.job_key(JOB)]["started"] = 0.0
    offsets = [start + sum(len(r) for r in rows[:i]) for i in (0, 2, 4, 5)]
    chunks = [{"first_row": r, "start": offsets[i], "end": offsets[i + 1]} for i, r in enumerate((0, 2, 4))]
    store.put_json(layout.job_chunks_key(JOB), chunks)
    for c in chunks:
        batch.predict_chunk(store, online.ModelCache(), JOB, c["first_row"], c["start"], c["end"])


def test_finalize_accounts_for_every_planned_chunk():
    store = FakeStore()
    _predicted_job(store)
    store.documents[layout.job_key(JOB)]["job_id"] = JOB
    summary = batch.finalize(store, JOB, now=1.0)
    assert (summary["rows"], summary["predicted"], summary["chunks"]) == (5, 5, 3)


@pytest.mark.parametrize("kind", ["parts", "errors", "stats"])
def test_finalize_fails_naming_a_chunk_whose_output_is_missing(kind):
    store = FakeStore()
    _predicted_job(store)
    store.delete([layout.job_part_key(JOB, kind, 2)])
    with pytest.raises(batch.IncompleteJob) as info:
        batch.finalize(store, JOB, now=1.0)
    assert str(info.value) == (f"batch job {JOB}: 1 planned chunk(s) have no output; chunks starting at row 2 ({kind})")
    # nothing is written: no predictions.jsonl, errors.jsonl or summary
    assert not store.exists(layout.job_output_key(JOB, "predictions.jsonl"))
    assert not store.exists(layout.job_output_key(JOB, "errors.jsonl"))
    assert not store.exists(layout.job_summary_key(JOB))


def test_json_lines_rows_ignore_columns_that_are_not_features():
    assert batch._parse_json_row(make_artifact(), '{"id": 9, "city": "b", "sqft": 2}', 0) == {"sqft": 2, "city": "b"}


def test_named_id_columns_pass_through_to_the_output_csv():
    store = FakeStore()
    artifact = make_artifact()
    store.put_json(layout.version_key(artifact.name, artifact.version), artifact.model_dump(mode="json"))
    data = b"house,sqft,city\nh-1,100,a\nh-2,bad,b\nh-3,120,c\n"
    store.put_bytes("landing/ids.csv", data)
    job = {"model": artifact.name, "version": artifact.version, "input_key": "landing/ids.csv", "format": "csv"}
    store.put_json(layout.job_key(JOB), {**job, "batch_rows": 10, "id_columns": ["house"]})
    batch.plan(store, JOB)
    start = len(b"house,sqft,city\n")
    batch.predict_chunk(store, online.ModelCache(), JOB, 0, start, len(data))
    lines = [json.loads(x) for x in store.get_bytes(layout.job_part_key(JOB, "parts", 0)).splitlines()]
    assert [(x["row"], x["house"], list(x)) for x in lines] == [
        (0, "h-1", ["row", "house", "prediction"]),
        (2, "h-3", ["row", "house", "prediction"]),
    ]


def test_named_id_columns_pass_through_to_the_output_json_lines():
    store = FakeStore()
    size, start = _chunk_job(store, [b'{"id": 7, "sqft": 100, "city": "a"}\n', b"[120, null]\n"], "jsonl")
    store.documents[layout.job_key(JOB)]["id_columns"] = ["id"]
    batch.predict_chunk(store, online.ModelCache(), JOB, 0, start, start + size)
    lines = [json.loads(x) for x in store.get_bytes(layout.job_part_key(JOB, "parts", 0)).splitlines()]
    assert [(x["row"], x["id"]) for x in lines] == [(0, 7), (1, None)]


def test_an_id_column_missing_from_the_header_fails_the_plan():
    store = FakeStore()
    _chunk_job(store, [b"100,a\n"])
    store.documents[layout.job_key(JOB)].update(batch_rows=10, id_columns=["house"])
    with pytest.raises(InvalidInput, match=r"input 'landing/rows' has no column\(s\): house"):
        batch.plan(store, JOB)


@pytest.mark.parametrize(
    ("names", "message"),
    [(["row"], "id_columns may not be named row"), (["a", "a"], "id_columns names a column twice")],
)
def test_id_columns_that_would_clash_are_refused(names, message):
    with pytest.raises(ValueError, match=message):
        batch.BatchJobRequest(model="m", input_key="landing/x.csv", id_columns=names)


class _Sfn:
    def __init__(self, status: str):
        self.status = status

    def describe_execution(self, executionArn: str) -> dict:
        return {"status": self.status}


def test_a_finished_jobs_output_is_a_pair_of_download_urls():
    store = FakeStore()
    _predicted_job(store)
    store.documents[layout.job_key(JOB)]["job_id"] = JOB
    summary = batch.finalize(store, JOB, now=1.0)
    got = batch.output(store, _Sfn("SUCCEEDED"), "arn:aws:states:us-east-1:1:stateMachine:b", JOB)
    key = layout.job_output_key(JOB, "predictions.jsonl")
    assert got["predictions_url"] == store.presign_get(key, batch.OUTPUT_URL_SECONDS)
    assert got["errors_url"] == store.presign_get(layout.job_output_key(JOB, "errors.jsonl"), 3600)
    assert (got["predictions_key"], got["expires_in"], got["summary"]) == (key, 3600, summary)


def test_a_job_still_running_has_no_output_yet():
    store = FakeStore()
    _predicted_job(store)
    store.documents[layout.job_key(JOB)]["job_id"] = JOB
    with pytest.raises(ConflictError, match=f"batch job '{JOB}' is RUNNING: its output is there once it SUCCEEDED"):
        batch.output(store, _Sfn("RUNNING"), "arn:aws:states:us-east-1:1:stateMachine:b", JOB)
