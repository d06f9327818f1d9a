"""The Python SDK: the whole flow in a few lines, pandas in and out.

    from mlclient import Client

    sml = Client()                                   # SML_URL / SML_API_KEY / SML_STACK, else `make local`
    sml.upload(frame, "houses")                      # a DataFrame, a CSV / JSON Lines file, or bytes
    run = sml.train("houses", target="price_k", model_name="houses", max_epochs=40)   # waits, with progress
    sml.metrics(run["run_id"])                       # the model's test metrics
    sml.predict("houses", new_rows)                  # a Series (a DataFrame with probabilities for classifiers)
    sml.compare("houses"); sml.promote("houses", 2); sml.rollback("houses")

Every API error is an ApiError carrying the API's ``message`` and HTTP ``status``; a run that fails is RunFailed.
pandas (``sml-client[pandas]``) and matplotlib (``sml-client[report]``) are imported only when used.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import httpx
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from .api import ApiError, Config, RunFailed, SmlError, Transport

if TYPE_CHECKING:
    import pandas as pd

DIRECT_UPLOAD_LIMIT = 5 * 1024 * 1024  # the API's body limit; larger files go through a presigned URL
PREDICT_BATCH = 1000  # rows per predict request
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
Rows = Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise SmlError("DataFrames need pandas: pip install 'sml-client[pandas]'") from None
    return pandas


def _is_frame(value: object) -> bool:
    pandas = sys.modules.get("pandas")  # a DataFrame exists only if pandas was imported
    return pandas is not None and isinstance(value, pandas.DataFrame)


def _data_format(path: str) -> str:
    return "jsonl" if path.lower().endswith((".jsonl", ".ndjson")) else "csv"


def _content_type(fmt: str) -> str:
    return "application/x-ndjson" if fmt == "jsonl" else "text/csv"


# how much worse than the scikit-learn reference a model may be before it is flagged, per metric: higher-is-better
# metrics by an absolute margin, errors by a ratio
WORSE_BY = {
    "r2": ("higher", 0.05),
    "accuracy": ("higher", 0.05),
    "rmse": ("lower", 1.1),
    "mae": ("lower", 1.1),
    "log_loss": ("lower", 1.1),
}


def reference_warnings(metrics: Mapping[str, Any], reference: Mapping[str, Any] | None) -> list[str]:
    """One line per metric on which the model is clearly worse than the scikit-learn reference on the same split
    (``WORSE_BY``)."""
    found = []
    for name, (better, margin) in WORSE_BY.items():
        ours, ref = metrics.get(name), (reference or {}).get(name)
        if not isinstance(ours, int | float) or not isinstance(ref, int | float):
            continue
        if (better == "higher" and ours < ref - margin) or (better == "lower" and ref > 0 and ours > ref * margin):
            found.append(f"{name} {ours:.4g} is clearly worse than the scikit-learn reference's {ref:.4g}")
    return found


def read_spec(spec: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A preprocessing spec given as a dict, or a JSON file's path."""
    if isinstance(spec, Mapping):
        return dict(spec)
    doc = json.loads(Path(spec).read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise SmlError(f"{spec} must hold a JSON object (a preprocessing spec, see docs/preprocessing.md)")
    return doc


def read_json_object(value: Mapping[str, Any] | str | Path, what: str) -> dict[str, Any]:
    """A JSON object given as a dict, or a JSON file's path."""
    if isinstance(value, Mapping):
        return dict(value)
    doc = json.loads(Path(value).read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise SmlError(f"{value} must hold a JSON object ({what})")
    return doc


def duration(doc: Mapping[str, Any]) -> float | None:
    """Seconds between a run's or job's ``started_at`` and ``stopped_at`` (a tuning job's ``ended_at``), when it
    has both."""
    try:
        start = datetime.fromisoformat(str(doc["started_at"]).replace("Z", "+00:00"))
        stop = datetime.fromisoformat(str(doc.get("stopped_at") or doc["ended_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (stop - start).total_seconds()


def format_duration(seconds: float) -> str:
    """12.3s, 2m 05s, 1h 02m: a run's true duration as a person reads it."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def outcome_text(run: Mapping[str, Any]) -> str:
    """How a run ended, e.g. ``SUCCEEDED in 12.3s: converged after 152 rounds`` (its status, the time from its
    start to its end, and the stop reason the API reports)."""
    took = duration(run)
    text = str(run["status"]) + (f" in {format_duration(took)}" if took is not None else "")
    reason = run.get("stop_reason") or (run.get("model") or {}).get("stop_reason")
    if reason:
        text += f": {str(reason).replace('_', ' ')} after {run.get('rounds_completed', 0)} rounds"
    return text


# -- comparing runs -----------------------------------------------------------------
KEY_HYPERPARAMETERS = ("model", "optimizer", "learning_rate", "l2", "batch_size", "solver", "max_epochs")
COMPARED_BEFORE = ("run_id", "status", "model", "mode")  # then the hyperparameters, then COMPARED_AFTER
COMPARED_AFTER = ("rounds", "stop_reason")  # then the test metrics, then duration and cost


def comparison_row(run: Mapping[str, Any], cost_usd: float | None = None) -> dict[str, Any]:
    """One run as a flat row to compare: status, model type, mode, every hyperparameter of its request, rounds,
    stop reason, each test metric of its registered model, duration in seconds and cost in USD."""
    request = run.get("request") or {}
    hyperparameters = dict(request.get("hyperparameters") or {})
    model = run.get("model") or {}
    row: dict[str, Any] = {
        "run_id": run.get("run_id"),
        "status": run.get("status"),
        "model": hyperparameters.pop("model", None),
        "mode": request.get("mode"),
    }
    row.update({f"hp.{k}": v for k, v in hyperparameters.items()})
    row["rounds"] = run.get("rounds_completed")
    row["stop_reason"] = run.get("stop_reason") or model.get("stop_reason")
    metrics = model.get("metrics") or {}
    row.update({f"test.{k}": v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    row["duration_s"] = duration(run)
    row["cost_usd"] = cost_usd
    return row


def comparison_fields(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fields a comparison shows, in order: status, model, mode; the key hyperparameters
    (``KEY_HYPERPARAMETERS``) and any other that differs between the runs; rounds, stop reason; every test
    metric any run has; duration and cost."""
    present = list(dict.fromkeys(k for row in rows for k in row))
    hyper = [k for k in present if k.startswith("hp.")]
    shown = [
        k
        for k in hyper
        if k[3:] in KEY_HYPERPARAMETERS or len({json.dumps(r.get(k), sort_keys=True) for r in rows}) > 1
    ]
    shown.sort(key=lambda k: (KEY_HYPERPARAMETERS.index(k[3:]) if k[3:] in KEY_HYPERPARAMETERS else 99, k))
    metrics = [k for k in present if k.startswith("test.")]
    return [*COMPARED_BEFORE, *shown, *COMPARED_AFTER, *metrics, "duration_s", "cost_usd"]


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs side by side: one row per field (``comparison_fields``), one column per run id."""
    return [
        {"field": f, **{str(r["run_id"]): r.get(f) for r in rows}} for f in comparison_fields(rows) if f != "run_id"
    ]


# -- tuning jobs --------------------------------------------------------------------
TRIAL_COLUMNS = (
    "trial",
    "model",
    "optimizer",
    "solver",
    "lr",
    "l2",
    "mode",
    "rung",
    "epochs",
    "validation metric",
    "status",
    "stop reason",
)


def trial_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A leaderboard entry (``GET /tuning-jobs/{id}``) as a flat row: ``TRIAL_COLUMNS`` and the rest."""
    hp = entry.get("hyperparameters") or {}
    return {
        "trial": entry.get("trial"),
        "model": hp.get("model"),
        "optimizer": hp.get("optimizer"),
        "solver": hp.get("solver"),
        "lr": hp.get("learning_rate"),
        "l2": hp.get("l2"),
        "mode": entry.get("mode"),
        "rung": entry.get("rung"),
        "epochs": entry.get("epochs"),
        "validation metric": entry.get("validation_metric"),
        "validation loss": entry.get("validation_loss"),
        "status": entry.get("status"),
        "stop reason": entry.get("stop_reason"),
        "run_id": entry.get("run_id"),
        "cost_usd": entry.get("cost_usd"),
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("_", " ")


SETUP_COLUMNS = ("model", "optimizer", "solver", "lr", "l2", "mode")  # one "setup" column on a narrow terminal
WIDE_TABLE = 140  # characters a terminal needs for a column each
NARROW_TRIAL_DROPS = ("epochs",)  # left out of the trial table, in turn, while its words do not fit the terminal
LONGEST_WORD = 24  # a column is at least as wide as its longest word up to this many characters


def fit_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None,
    *,
    drop: Sequence[str] = (),
    floors: Mapping[str, int] | None = None,
    styles: Sequence[str | None] | None = None,
    title: str | None = None,
    caption: str | None = None,
) -> Table:
    """A rich table whose cells wrap between words, never inside one: each column at least as wide as its longest
    word (up to ``LONGEST_WORD``; a longer one folds) or its ``floors`` width; while those widths do not fit
    ``width`` (None: no limit), the ``drop`` columns are left out in turn. When the cells do not fit whole on one
    line, the room left over the columns' least widths goes, a character at a time, to the column that lacks the
    most (rich alone narrows the widest columns first, below their longest word)."""
    cells = [[str(header[i]), *(str(r[i]) for r in rows)] for i in range(len(header))]

    def least(i: int) -> int:
        words = [len(w) for text in cells[i] for w in text.split()]
        return max(min(LONGEST_WORD, max(words, default=1)), (floors or {}).get(header[i], 0))

    def room(columns: Sequence[int]) -> int:  # the characters left for the cells: each column has a border and padding
        return (width or 0) - 3 * len(columns) - 1

    keep = list(range(len(header)))
    for name in drop:
        if width is None or sum(least(i) for i in keep) <= room(keep):
            break
        if name in header:
            keep.remove(header.index(name))
    sizes: dict[int, int | None] = dict.fromkeys(keep)
    whole = {i: max(least(i), *(len(text) for text in cells[i])) for i in keep}
    if width is not None and sum(whole.values()) > room(keep) and sum(least(i) for i in keep) <= room(keep):
        fixed = {i: least(i) for i in keep}
        for _ in range(room(keep) - sum(fixed.values())):
            lacking = max(keep, key=lambda i: whole[i] - fixed[i])
            if whole[lacking] == fixed[lacking]:
                break
            fixed[lacking] += 1
        sizes.update(fixed)
    table = Table(title=title, caption=caption)
    for i in keep:
        table.add_column(header[i], min_width=least(i), width=sizes[i], overflow="fold")
    for row, style in zip(rows, styles or [None] * len(rows), strict=True):
        table.add_row(*(row[i] for i in keep), style=style)
    return table


def trials_table(job: Mapping[str, Any], width: int | None = None) -> Table:
    """A tuning job's leaderboard as a rich table, best first (as the API ranks it): ``TRIAL_COLUMNS``; on a
    terminal narrower than ``WIDE_TABLE`` (``width``) the trial's model, optimizer, lr, l2 and mode share one
    ``setup`` column, so the table wraps there instead of in every column, and where even that does not fit whole
    words (80 columns) ``NARROW_TRIAL_DROPS`` are left out (``fit_table``)."""
    board = job.get("leaderboard") or []
    narrow = width is not None and width < WIDE_TABLE
    columns = [c for c in TRIAL_COLUMNS if not (narrow and c in SETUP_COLUMNS)]
    if narrow:
        columns.insert(1, "setup")
    counts: dict[str, int] = {}
    for entry in board:
        counts[str(entry.get("status"))] = counts.get(str(entry.get("status")), 0) + 1
    told = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
    metric = job.get("metric") or "metric"
    title = f"tuning job {job.get('job_id')} {job.get('status')} ({job.get('task')}, validation {metric})"
    best = (job.get("best") or {}).get("trial")
    rows, styles = [], []
    for entry in board:
        row = trial_row(entry)
        row["setup"] = " ".join(
            (f"{c} " if c in ("solver", "lr", "l2") else "") + _cell(row[c]).replace(" ", "_")
            for c in SETUP_COLUMNS
            if row[c] is not None
        )
        styles.append("bold green" if best is not None and row["trial"] == best else None)
        rows.append([row["setup"] if c == "setup" else _cell(row[c]) for c in columns])
    header = [f"validation {metric}" if c == "validation metric" else c for c in columns]
    caption = f"{len(board)} trials: {told}" if board else "no trial yet"
    drop = NARROW_TRIAL_DROPS if narrow else ()
    return fit_table(header, rows, width, drop=drop, styles=styles, title=title, caption=caption)


def trial_line(entry: Mapping[str, Any], metric: str | None = None) -> str:
    """One leaderboard entry as a plain line (a log or a pipe shows one per change of a trial): ``trial 2:
    mlp_regression, rung 1, stopped early, validation r2 0.81 (diverged)``."""
    hp = entry.get("hyperparameters") or {}
    parts = [f"trial {entry.get('trial')}: {hp.get('model')}", f"rung {entry.get('rung')}"]
    parts.append(str(entry.get("status")).replace("_", " "))
    value = entry.get("validation_metric")
    if isinstance(value, int | float):
        parts.append(f"validation {metric or 'metric'} {value:.4g}")
    reason = entry.get("stop_reason")
    return ", ".join(parts) + (f" ({reason})" if reason else "")


def _trial_state(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(entry.get(k) for k in ("rung", "status", "validation_metric", "stop_reason"))


def tuning_outcome(job: Mapping[str, Any]) -> str:
    """How a tuning job ended: its status and duration, the best trial and the model it registered."""
    took = duration(job)
    text = f"tuning job {job.get('job_id')} {job.get('status')}" + (
        f" in {format_duration(took)}" if took is not None else ""
    )
    best = job.get("best")
    if best:
        hp = best.get("hyperparameters") or {}
        value = best.get("validation_metric")
        shown = f"{value:.4g}" if isinstance(value, int | float) else "n/a"
        setup = [hp.get("model"), hp.get("optimizer")]  # a trial's solver may need no optimizer nor learning rate
        setup += [f"solver {hp['solver']}" if hp.get("solver") else None]
        setup += [f"learning rate {hp['learning_rate']:g}" if hp.get("learning_rate") else None, best.get("mode")]
        told = ", ".join(str(part) for part in setup if part)
        text += f": best trial {best.get('trial')} ({told}), validation {job.get('metric')} {shown}"
        folds = [f for f in best.get("cross_validation") or [] if f.get("trial") == best.get("trial")]
        if folds and isinstance(folds[0].get("cv_metric"), int | float):
            finalists = len(best["cross_validation"])
            text += f", cross-validated {folds[0]['cv_metric']:.4g} (chosen among {finalists} finalists)"
    model = job.get("model")
    if model:
        text += f"; model {model.get('model_name')} version {model.get('version')}"
        reason = str(model.get("reason") or "")
        if "promot" in reason:  # the API's reason says whether it was promoted, and why
            text += f": {reason}"
        else:
            text += " promoted to production" if model.get("promoted") else " registered, not promoted"
            text += f" ({reason})" if reason else ""
    return text


class _EtaOrOutcome(TimeRemainingColumn):
    """The estimated time left while a run goes on; once it ended, how (``outcome_text``)."""

    def render(self, task: Any) -> Any:
        outcome = task.fields.get("outcome")
        return Text(outcome) if outcome else super().render(task)


@dataclass
class Predictions:
    """One row per instance: ``prediction`` and, for classifiers, ``p(<class>)`` per class; and who answered."""

    rows: list[dict[str, Any]]
    model: str
    version: int
    warnings: list[str] = field(default_factory=list)


class Client:
    """A client of one deployment of the API (a local server or a deployed stack).

    Configuration: the arguments, else the environment (``SML_URL``, ``SML_API_KEY``, ``SML_STACK``); a local URL
    (127.0.0.1, localhost) without a key gets the local server's; with nothing set, ``make local``'s
    http://127.0.0.1:3000. ``stack`` reads the URL and key from a deployed stack's outputs (``sml-client[aws]``).
    Requests are retried with backoff on 429, on 5xx for reads, and when the connection fails
    (see :mod:`mlclient.api`). ``progress`` shows rich progress bars (on stderr) for uploads and runs.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        stack: str | None = None,
        region: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        progress: bool = True,
        console: Console | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.config = Config.resolve(url, api_key, stack, region)
        self.region = region
        self.http = Transport(self.config, timeout=timeout, retries=retries, transport=transport, sleep=sleep)
        self.progress = progress
        self.console = console or Console(stderr=True)
        self.sleep = sleep or time.sleep

    @property
    def url(self) -> str:
        return self.config.url

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **query: Any) -> Any:
        """Any GET route's JSON answer (``None`` query values are left out)."""
        return self.http.request("GET", path, query=query or None)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        """Any POST route's JSON answer; ``body`` is JSON unless bytes (then pass ``content_type=``)."""
        return self.http.request("POST", path, body, **kwargs)

    # -- progress ---------------------------------------------------------------
    def _plain(self, text: str) -> None:
        """One line, never wrapped, without markup (a log or a pipe reads it whole)."""
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)

    @contextmanager
    def _bar(
        self, label: str, total: float | None, columns: Sequence[ProgressColumn], show: bool | None
    ) -> Iterator[Any]:
        if not (self.progress if show is None else show):
            yield None
            return
        with Progress(*columns, console=self.console, transient=False) as bar:
            yield bar, bar.add_task(label, total=total, loss="", outcome="")

    # -- data sets ----------------------------------------------------------------
    def upload(
        self,
        data: pd.DataFrame | str | Path | bytes,
        name: str | None = None,
        *,
        data_format: str | None = None,
        via_s3: bool = False,
        progress: bool | None = None,
    ) -> dict[str, Any]:
        """Register a new version of data set ``name`` from a DataFrame (sent as CSV), a CSV or JSON Lines file
        (``name`` defaults to the file's stem) or bytes. Up to 5 MiB in the request, larger (or ``via_s3``) through
        a presigned URL, then waits until it is registered. Returns the data set's document."""
        if _is_frame(data):
            frame: Any = data
            payload, fmt, label = frame.to_csv(index=False).encode(), "csv", str(name)
        elif isinstance(data, bytes):
            payload, fmt, label = data, data_format or "csv", str(name)
        else:
            path = Path(data)  # type: ignore[arg-type]
            payload, fmt, label = path.read_bytes(), data_format or _data_format(path.name), path.name
            name = name or path.stem
        if not name:
            raise SmlError("upload needs a data set name (name=...) for a DataFrame or bytes")
        columns = [TextColumn("uploading {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
        with self._bar(label, len(payload), columns, progress) as shown:

            def advance(n: int) -> None:
                if shown:
                    shown[0].advance(shown[1], n)

            if len(payload) <= DIRECT_UPLOAD_LIMIT and not via_s3:
                result = self.post(f"/datasets/{name}", payload, content_type=_content_type(fmt))
                advance(len(payload))
            else:
                ticket = self.post("/datasets", {"name": name, "format": fmt})
                self.http.put_presigned(ticket["upload_url"], payload, advance)
                result = self.wait_dataset(name)
        return dict(result)

    def datasets(self) -> list[dict[str, Any]]:
        """Every data set: its latest version's name, version, format, rows, column count, size, creation time."""
        return list(self.get("/datasets")["datasets"])

    def dataset(self, name: str, version: str | None = None) -> dict[str, Any]:
        """The latest version of a data set (or ``version``): rows, columns, profile and upload state."""
        return dict(self.get(f"/datasets/{name}", version=version))

    def wait_dataset(self, name: str, timeout: float = 600.0, poll: float = 1.0) -> dict[str, Any]:
        """Wait until an upload through a presigned URL is registered (or refused: SmlError with the reason)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                doc = self.dataset(name)
                if doc.get("status", "ready") != "pending":
                    if doc.get("status") == "failed":
                        raise SmlError(f"data set {name!r} was rejected: {doc.get('reason')}")
                    return doc
            except ApiError as err:
                if err.status != 404:
                    raise
            self.sleep(poll)
        raise SmlError(f"data set {name!r} not registered after {timeout:.0f}s")

    # -- training -----------------------------------------------------------------
    def train(
        self,
        dataset: str,
        target: str,
        model_name: str,
        *,
        shards: int = 4,
        version: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        spec: Mapping[str, Any] | str | Path | None = None,
        mode: str | None = None,
        test_fraction: float | None = None,
        wait: bool = True,
        progress: bool | None = None,
        **more_hyperparameters: Any,
    ) -> dict[str, Any]:
        """Start a training run on ``dataset`` (its latest version unless ``version``), predicting ``target``.

        Hyperparameters come from ``hyperparameters`` and keyword arguments (``optimizer="adam",
        max_epochs=40``); ``spec`` is the preprocessing spec (a dict or a JSON file, see docs/preprocessing.md);
        ``mode`` (``sync``/``async``) and ``test_fraction`` as in the request; ``options`` adds other request fields
        (see docs/training.md). With ``wait`` (the default) returns the finished run (RunFailed if it does not
        succeed), else the start answer (``run_id``, ...)."""
        request: dict[str, Any] = {
            "dataset": dataset,
            "target": target,
            "model_name": model_name,
            "n_shards": shards,
            "hyperparameters": {**(hyperparameters or {}), **more_hyperparameters},
            **(options or {}),
        }
        if version:
            request["version"] = version
        if spec is not None:
            request["preprocessing"] = read_spec(spec)
        if mode is not None:
            request["mode"] = mode
        if test_fraction is not None:
            request["test_fraction"] = test_fraction
        started = dict(self.post("/training-runs", request))
        return self.wait(started["run_id"], progress=progress) if wait else started

    def run(self, run_id: str, curve: bool = False) -> dict[str, Any]:
        """One run: status, request, progress; its model once it succeeded; ``curve`` adds every round."""
        return dict(self.get(f"/training-runs/{run_id}", curve="true" if curve else None))

    def runs(self, limit: int | None = 50) -> list[dict[str, Any]]:
        """The ``limit`` most recent runs (every run with ``None``), newest first, following the API's pages."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        while limit is None or len(found) < limit:
            size = 100 if limit is None else min(100, limit - len(found))
            page = self.get("/training-runs", limit=None if size == 50 else size, next=token)  # 50: the API's page
            found += page["runs"]
            token = page.get("next")
            if not token:
                break
        return found

    def stop(self, run_id: str) -> dict[str, Any]:
        """Stop a running run (its stored rounds stay: ``resume`` continues from the last one)."""
        return dict(self.post(f"/training-runs/{run_id}/stop", {}))

    def resume(self, run_id: str) -> dict[str, Any]:
        """Continue a failed or stopped run from its last stored round."""
        return dict(self.post(f"/training-runs/{run_id}/resume", {}))

    def wait(
        self, run_id: str, *, poll: float = 1.0, timeout: float | None = None, progress: bool | None = None
    ) -> dict[str, Any]:
        """Follow a run until it ends (a progress bar of rounds and loss on a terminal; in a log or a pipe, where a
        bar shows nothing until it ends, one plain line per change of its status or rounds); the finished run, or
        RunFailed."""
        run = self.run(run_id)
        rounds = run.get("request", {}).get("hyperparameters", {}).get("max_epochs")
        deadline = None if timeout is None else time.monotonic() + timeout
        plain = (self.progress if progress is None else progress) and not self.console.is_terminal
        told = None
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} rounds"),
            TextColumn("{task.fields[loss]}"),
            _EtaOrOutcome(),
        ]
        with self._bar(run_id, rounds, columns, False if plain else progress) as shown:
            while True:
                done = run.get("rounds_completed", 0)
                last = run.get("last_round") or {}
                loss = f"loss {last['loss']:.6g}" if last.get("loss") is not None else ""
                if plain and (run["status"], done) != told:
                    told = (run["status"], done)
                    if run["status"] in TERMINAL:  # after how many rounds and why (the caller tells the rest)
                        why = f" ({run['stop_reason'].replace('_', ' ')})" if run.get("stop_reason") else ""
                        self._plain(f"run {run_id} {run['status']} after {done} rounds{why}")
                    else:
                        said = f"run {run_id} {run['status']}: round {done}/{rounds}"
                        self._plain(said + (f", {loss}" if loss else ""))
                if shown:
                    # a run that ended early ends with a full bar, not at 152/300, and says why and how long it took
                    ended, finished = run["status"] in TERMINAL, run["status"] == "SUCCEEDED"
                    total = max(done, 1) if finished else rounds
                    outcome = outcome_text(run) if ended else ""
                    completed = total if finished else done
                    shown[0].update(shown[1], completed=completed, total=total, loss=loss, outcome=outcome)
                if run["status"] in TERMINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise SmlError(f"run {run_id} still {run['status']} after {timeout:.0f}s")
                self.sleep(poll)
                run = self.run(run_id)
        if run["status"] != "SUCCEEDED":
            error = run.get("error") or {}
            message = f"run {run_id} {run['status']}: {error.get('type')}: {error.get('message')}"
            raise RunFailed(message, run)
        return run

    def metrics(self, run_id: str) -> dict[str, Any]:
        """The test metrics of the model a run registered."""
        run = self.run(run_id)
        model = run.get("model")
        if not model:
            raise SmlError(f"run {run_id} is {run['status']}: it has no model yet")
        artifact = self.model(model["model_name"], model["version"])
        test = artifact.get("metrics", {}).get("test")
        return dict(test if isinstance(test, dict) else model.get("metrics", {}))

    def cost(
        self,
        run_id: str,
        *,
        region: str | None = None,
        rows: int | None = None,
        shards: int | None = None,
        rounds: int | None = None,
    ) -> dict[str, Any]:
        """What a run cost (``actual``) and, given rows/shards/rounds, what a bigger one would (``what_if``)."""
        query = {"region": region or self.region, "rows": rows, "shards": shards, "rounds": rounds}
        return dict(self.get(f"/training-runs/{run_id}/cost", **query))

    def report(self, run_id: str, out: str | Path = "report", *, region: str | None = None) -> list[Path]:
        """Write a run's figures (PNG) and report.html into ``out``; returns the paths (``sml-client[report]``)."""
        try:
            from .report import build_report
        except ImportError as err:
            if not (err.name or "").startswith("matplotlib"):
                raise
            raise SmlError("reports need matplotlib: pip install 'sml-client[report]'") from None
        run = self.run(run_id, curve=True)
        if run["status"] != "SUCCEEDED":
            raise SmlError(f"run {run_id} is {run['status']}; a report needs a finished run")
        model = run["model"]
        try:
            artifact: dict[str, Any] | None = self.model(model["model_name"], model["version"])
        except ApiError:
            artifact = None  # older servers: the report uses what the run itself carries
        cost = self.cost(run_id, region=region)["actual"]
        cost["basis"] = (
            f"{cost['region']} list prices; Lambda time as measured by Step Functions; S3 requests estimated"
        )
        return build_report(run, artifact, Path(out), cost)

    def warnings(self, run_id: str) -> list[str]:
        """What a finished run's model should be read with: the metrics on which it is clearly worse than the
        scikit-learn reference fit on the same split (``reference_warnings``), and the model's own warnings."""
        run = self.run(run_id)
        model = run.get("model")
        if not model:
            return []
        artifact = self.model(model["model_name"], model["version"])
        metrics = artifact.get("metrics") or {}
        reference = metrics.get("reference")
        if isinstance(reference, dict) and "test" in reference:
            reference = reference["test"]
        found = reference_warnings(metrics.get("test") or {}, reference if isinstance(reference, dict) else None)
        return found + [str(w) for w in artifact.get("warnings") or []]

    def run_comparison(self, run_ids: Sequence[str], *, costs: bool = True) -> list[dict[str, Any]]:
        """One flat row per run (``comparison_row``): status, model, mode, hyperparameters, rounds, stop reason,
        test metrics, duration and (with ``costs``, when the API can tell it) cost in USD."""
        if not run_ids:
            raise SmlError("compare needs at least one run id")
        rows = []
        for run_id in run_ids:
            run = self.run(run_id)
            usd = None
            if costs and run.get("status") in TERMINAL:
                try:
                    usd = self.cost(run_id)["actual"]["total"]
                except (ApiError, KeyError):
                    usd = None  # a run that never trained has no usage to price
            rows.append(comparison_row(run, usd))
        return rows

    def compare_runs(self, run_ids: Sequence[str], *, costs: bool = True) -> pd.DataFrame:
        """Runs side by side: a DataFrame with one column per run id and one row per field (status, model,
        hyperparameters, rounds, stop reason, test metrics, duration, cost: ``comparison_fields``)."""
        pandas = _pandas()
        rows = self.run_comparison(run_ids, costs=costs)
        frame = pandas.DataFrame(comparison_table(rows)).set_index("field")
        frame.columns.name = "run_id"
        return frame

    # -- tuning -------------------------------------------------------------------
    def tune(
        self,
        dataset: str,
        target: str,
        model_name: str,
        *,
        version: str | None = None,
        max_trials: int | None = None,
        max_parallel_trials: int | None = None,
        max_cost_usd: float | None = None,
        seed: int | None = None,
        search_space: Mapping[str, Any] | str | Path | None = None,
        min_epochs: int | None = None,
        max_epochs: int | None = None,
        reduction_factor: int | None = None,
        shards: int | None = None,
        test_fraction: float | None = None,
        validation_fraction: float | None = None,
        spec: Mapping[str, Any] | str | Path | None = None,
        options: Mapping[str, Any] | None = None,
        wait: bool = False,
        progress: bool | None = None,
    ) -> dict[str, Any]:
        """Start a tuning job (``POST /tuning-jobs``, see docs/tuning.md): many trials of the training engine in
        parallel, weak ones stopped early, the best registered. Only ``dataset``, ``target`` and ``model_name``
        are needed; an argument left ``None`` takes the API's default. ``search_space`` is a dict or a JSON file;
        ``spec`` the preprocessing spec. Returns the start answer (``job_id``, ``task``, ``metric``,
        ``estimated_cost_usd``, ``rungs``, ``search_space``, ``decisions``), or with ``wait`` the finished job
        (``wait_tuning``). A request over ``max_cost_usd`` is refused (ApiError 400 with the estimate)."""
        request: dict[str, Any] = {"dataset": dataset, "target": target, "model_name": model_name}
        optional = {
            "version": version,
            "max_trials": max_trials,
            "max_parallel_trials": max_parallel_trials,
            "max_cost_usd": max_cost_usd,
            "seed": seed,
            "search_space": read_json_object(search_space, "a search space") if search_space is not None else None,
            "min_epochs": min_epochs,
            "max_epochs": max_epochs,
            "reduction_factor": reduction_factor,
            "n_shards": shards,
            "test_fraction": test_fraction,
            "validation_fraction": validation_fraction,
            "preprocessing": read_spec(spec) if spec is not None else None,
        }
        request.update({k: v for k, v in optional.items() if v is not None})
        request.update(options or {})
        started = dict(self.post("/tuning-jobs", request))
        return self.wait_tuning(started["job_id"], progress=progress) if wait else started

    def tuning_job(self, job_id: str) -> dict[str, Any]:
        """A tuning job: status, task, metric, request, rungs, cost so far, its ``leaderboard`` (best first),
        the ``best`` trial and the ``model`` it registered."""
        return dict(self.get(f"/tuning-jobs/{job_id}"))

    def tuning_jobs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Tuning jobs (all unless ``limit``), following the API's pages: id, status, task, metric, model name,
        best validation metric, start and end."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        while limit is None or len(found) < limit:
            page = self.get("/tuning-jobs", next=token)
            found += page["jobs"]
            token = page.get("next")
            if not token:
                break
        return found if limit is None else found[:limit]

    def stop_tuning(self, job_id: str) -> dict[str, Any]:
        """Stop a running tuning job (its trials are stopped; the job ends ABORTED)."""
        return dict(self.post(f"/tuning-jobs/{job_id}/stop", {}))

    def leaderboard(self, job: str | Mapping[str, Any]) -> pd.DataFrame:
        """A tuning job's trials (a job id or its document) as a DataFrame indexed by trial, best first: model,
        optimizer, lr, l2, mode, rung, epochs, validation metric and loss, status, stop reason, run id, cost."""
        pandas = _pandas()
        doc = self.tuning_job(job) if isinstance(job, str) else job
        rows = [trial_row(e) for e in doc.get("leaderboard") or []]
        return pandas.DataFrame(rows, columns=list(trial_row({}))).set_index("trial")

    def wait_tuning(
        self,
        job_id: str,
        *,
        poll: float = 2.0,
        timeout: float | None = None,
        progress: bool | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Follow a tuning job until it ends, showing its trials (``progress``, on the client's console): on a
        terminal a live table; in a log or a pipe, where a live display shows nothing until it ends, one plain line
        per change of the job's status or of a trial (``trial_line``), then the table once. ``on_update`` gets every
        document read. The finished job, or RunFailed unless it SUCCEEDED."""
        shown = self.progress if progress is None else progress
        live_table = shown and self.console.is_terminal
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.tuning_job(job_id)
        width = self.console.width
        told: dict[Any, tuple[Any, ...]] = {}
        status = None
        with (
            Live(trials_table(job, width), console=self.console, auto_refresh=False)
            if live_table
            else _nothing() as live
        ):
            while True:
                if on_update is not None:
                    on_update(job)
                if live is not None:
                    live.update(trials_table(job, width), refresh=True)
                elif shown:
                    if job.get("status") != status:
                        status = job.get("status")
                        self._plain(f"tuning job {job_id} {status}")
                    for entry in job.get("leaderboard") or []:
                        state = _trial_state(entry)
                        unstarted = entry.get("status") == "pending" and entry.get("run_id") is None
                        if told.get(entry.get("trial")) != state and not (unstarted and entry.get("trial") not in told):
                            told[entry.get("trial")] = state
                            self._plain(trial_line(entry, job.get("metric")))
                if job["status"] in TERMINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise SmlError(f"tuning job {job_id} still {job['status']} after {timeout:.0f}s")
                self.sleep(poll)
                job = self.tuning_job(job_id)
        if shown and not live_table:
            self.console.print(trials_table(job, width))  # the summary: the final leaderboard once
        if job["status"] != "SUCCEEDED":
            error = job.get("error")
            if isinstance(error, dict):
                error = f"{error.get('type')}: {error.get('message')}"
            raise RunFailed(f"{tuning_outcome(job)}: {error or 'see the leaderboard'}", job)
        return job

    def tuning_report(self, job_id: str, out: str | Path = "report") -> list[Path]:
        """Write a tuning job's search figures (validation metric against learning rate by model family, the
        rung curves of its trials) and tuning.html into ``out`` (``sml-client[report]``)."""
        try:
            from .report import build_tuning_report
        except ImportError as err:
            if not (err.name or "").startswith("matplotlib"):
                raise
            raise SmlError("reports need matplotlib: pip install 'sml-client[report]'") from None
        job = self.tuning_job(job_id)
        curves: dict[int, list[dict[str, Any]]] = {}
        for entry in job.get("leaderboard") or []:
            if entry.get("history") or not entry.get("run_id"):
                continue  # the API gave its rung history, or it never ran
            try:
                curves[int(entry["trial"])] = self.run(str(entry["run_id"]), curve=True).get("curve") or []
            except ApiError:
                continue
        return build_tuning_report(job, Path(out), curves)

    # -- models -------------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """Every model with its ``latest`` and ``production`` versions."""
        return list(self.get("/models"))

    def model(self, name: str, version: int | None = None) -> dict[str, Any]:
        """A model's versions and aliases, or with ``version`` that version's artifact (metrics, lineage...)."""
        return dict(self.get(f"/models/{name}" + (f"/versions/{version}" if version else "")))

    def version_metrics(self, name: str, versions: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """One row per version (all unless ``versions``): ``version``, ``production``, ``created_at`` and every
        numeric test metric."""
        described = self.model(name)
        production = (described.get("aliases", {}).get("production") or {}).get("version")
        rows = []
        for version in versions or described["versions"]:
            artifact = self.model(name, version)
            test = artifact.get("metrics", {}).get("test") or {}
            row: dict[str, Any] = {"version": version, "production": version == production}
            row["created_at"] = artifact.get("created_at")
            row.update({k: v for k, v in test.items() if isinstance(v, int | float) and not isinstance(v, bool)})
            rows.append(row)
        return rows

    def compare(self, name: str, versions: Sequence[int] | None = None) -> pd.DataFrame:
        """A model's versions side by side (a DataFrame indexed by version): test metrics, which is production."""
        pandas = _pandas()
        return pandas.DataFrame(self.version_metrics(name, versions)).set_index("version")

    def promote(self, name: str, version: int, *, force: bool = False) -> dict[str, Any]:
        """Make ``version`` the production version (``force``: even if its test metric is not better)."""
        return dict(self.post(f"/models/{name}/promote", {"version": version, "force": force}))

    def rollback(self, name: str) -> dict[str, Any]:
        """Move production back to its previous version."""
        return dict(self.post(f"/models/{name}/rollback", {}))

    def export_onnx(self, name: str, version: int, path: str | Path) -> dict[str, Any]:
        """Write the version's ONNX graph (its saved preprocessing and the model, for onnxruntime or any other ONNX
        runtime) to ``path``. Returns the export's description: ``key``, ``size``, ``opset``, ``inputs`` (one per
        raw feature column), ``outputs`` and, for a classifier, ``classes``."""
        answer = dict(self.get(f"/models/{name}/versions/{int(version)}/onnx"))
        Path(path).write_bytes(self.http.get_presigned(answer["download_url"]))
        return answer

    # -- predictions --------------------------------------------------------------
    def predict_rows(
        self,
        model: str,
        instances: Rows,
        *,
        version: int | None = None,
        alias: str | None = None,
        batch_size: int = PREDICT_BATCH,
        strict: bool = False,
    ) -> Predictions:
        """Predictions for ``instances`` (dicts by column name, or lists in feature order), ``batch_size`` rows
        per request, from the production version unless ``version`` or ``alias``. Columns that are not features
        are ignored and named in ``warnings``; ``strict`` refuses them (ApiError 400)."""
        if not instances:
            raise SmlError("no rows to predict")
        rows: list[dict[str, Any]] = []
        answer: dict[str, Any] = {}
        warnings: list[str] = []
        for start in range(0, len(instances), batch_size):
            body = {"instances": list(instances[start : start + batch_size])}
            query = {"version": version, "alias": alias, "strict": "true" if strict else None}
            answer = self.post(f"/models/{model}/predict", body, query=query)
            warnings.extend(w for w in answer.get("warnings") or [] if w not in warnings)
            for i, prediction in enumerate(answer["predictions"]):
                row = {"prediction": prediction}
                if answer.get("probabilities"):
                    classes = answer["classes"]
                    row.update({f"p({c})": p for c, p in zip(classes, answer["probabilities"][i], strict=True)})
                rows.append(row)
        return Predictions(rows=rows, model=answer["model"], version=answer["version"], warnings=warnings)

    @overload
    def predict(
        self,
        model: str,
        rows: pd.DataFrame,
        *,
        version: int | None = ...,
        alias: str | None = ...,
        batch_size: int = ...,
    ) -> pd.Series | pd.DataFrame: ...
    @overload
    def predict(
        self, model: str, rows: Rows, *, version: int | None = ..., alias: str | None = ..., batch_size: int = ...
    ) -> Predictions: ...
    def predict(
        self,
        model: str,
        rows: Any,
        *,
        version: int | None = None,
        alias: str | None = None,
        batch_size: int = PREDICT_BATCH,
    ) -> Any:
        """Predict a DataFrame: a Series ``prediction`` on the frame's index (a DataFrame with ``prediction`` and
        ``p(<class>)`` columns for classifiers), with the serving model and version in ``.attrs``. A list of rows
        gives :class:`Predictions`."""
        if not _is_frame(rows):
            return self.predict_rows(model, rows, version=version, alias=alias, batch_size=batch_size)
        pandas = _pandas()
        frame: Any = rows
        instances = json.loads(frame.to_json(orient="records", date_format="iso"))  # NaN -> null, numpy -> JSON
        result = self.predict_rows(model, instances, version=version, alias=alias, batch_size=batch_size)
        out: Any
        if any(len(row) > 1 for row in result.rows):
            out = pandas.DataFrame(result.rows, index=frame.index)
        else:
            out = pandas.Series([r["prediction"] for r in result.rows], index=frame.index, name="prediction")
        out.attrs.update({"model": result.model, "version": result.version, "warnings": result.warnings})
        return out

    # -- batch inference ----------------------------------------------------------
    def start_batch(
        self,
        model: str,
        input_key: str | None = None,
        *,
        file: str | Path | None = None,
        dataset: str | None = None,
        version: int | None = None,
        id_columns: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Start batch inference over a file in the data bucket (``input_key``) or a local ``file``, uploaded first
        as a version of data set ``dataset`` (default: the file's stem, as ``upload`` names it). ``id_columns`` are
        copied beside each prediction. The answer (``job_id``, ...) with the ``input_key`` predicted over and, for
        a file, the ``dataset`` and ``dataset_version`` it was registered as."""
        registered: dict[str, Any] = {}
        if file is not None:
            path = Path(file)
            name = dataset or path.stem
            stored = self.post(
                f"/datasets/{name}", path.read_bytes(), content_type=_content_type(_data_format(path.name))
            )
            input_key = stored["key"]
            registered = {"dataset": name, "dataset_version": stored.get("version")}
        if not input_key:
            raise SmlError("batch start needs the input's key in the data bucket, or a file (--file)")
        body: dict[str, Any] = {"model": model, "input_key": input_key}
        if version:
            body["version"] = version
        if id_columns:
            body["id_columns"] = list(id_columns)
        return {**self.post("/batch-jobs", body), "input_key": input_key, **registered}

    def batch_output(self, job_id: str) -> dict[str, Any]:
        """A finished job's download URLs (``predictions_url``, ``errors_url``), keys and summary."""
        return dict(self.get(f"/batch-jobs/{job_id}/output"))

    def download_batch(self, job_id: str, out: str | Path, *, errors: str | Path | None = None) -> dict[str, Any]:
        """Write a finished job's predictions (JSON Lines: ``row``, id columns, ``prediction``...) to ``out`` and,
        given ``errors``, the rows it refused there. Returns the job's summary."""
        where = self.batch_output(job_id)
        Path(out).write_bytes(self.http.get_presigned(where["predictions_url"]))
        if errors is not None:
            Path(errors).write_bytes(self.http.get_presigned(where["errors_url"]))
        return dict(where["summary"])

    def batch_job(self, job_id: str) -> dict[str, Any]:
        return dict(self.get(f"/batch-jobs/{job_id}"))

    def wait_batch(self, job_id: str, *, poll: float = 1.0, progress: bool | None = None) -> dict[str, Any]:
        """Wait for a batch job to end; its document, or RunFailed."""
        shown = self.progress if progress is None else progress
        with self.console.status(f"batch job {job_id} running") if shown else _nothing():
            job = self.batch_job(job_id)
            while job["status"] not in TERMINAL:
                self.sleep(poll)
                job = self.batch_job(job_id)
        if job["status"] != "SUCCEEDED":
            raise RunFailed(f"batch job {job_id} {job['status']}: {job.get('error')}: {job.get('cause')}", job)
        return job


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
