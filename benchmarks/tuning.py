"""Tuning jobs (issue #16): the tuned model's quality against a tuned scikit-learn suite, a 32-trial job's wall time
against one training run, and its cost beside SageMaker Automatic Model Tuning's. Prints figures and whether each of
the issue's bounds is met; asserts nothing.

    python -m benchmarks.tuning            # the four data sets and the 32-trial job (about 10 minutes)
    python -m benchmarks.tuning --quick    # small jobs: checks the code runs

Everything runs through the local stack (``LocalCloud``: moto S3 and Step Functions in this process, the real
handlers, statemachines/tuning.asl.json and training.asl.json), ``TuningWaitSeconds`` 1.

1. Quality: diabetes, breast cancer, wine and Friedman #1 with noise (``make_friedman1``, 5,000 rows, noise sd 1),
   each ingested as a CSV and tuned by ``POST /tuning-jobs`` with ``dataset``, ``target`` and ``model_name`` only
   (the default search space: sync trials, as every one of them is below ``ASYNC_DEFAULT_MIN_ROWS`` training rows,
   and a best trial chosen by cross-validation): the registered model's test metric
   (R² or accuracy, from its evaluation) against the best of a tuned scikit-learn suite on the same rows (RidgeCV or
   LogisticRegressionCV, and MLPRegressor or MLPClassifier over a grid of hidden sizes and alpha chosen on the
   validation rows). The rows are the product's own split (``product_split``: the preparation's
   ``build_matrices`` with the job's problem decisions, seed and fractions), checked against the test block the job
   stored. Bounds: within 0.005 of the suite's best on the test rows, and above the trivial baseline (mean or
   majority class). Also printed: the suite member a tuner would pick by the validation rows, as the job picks.
2. Speed: a 32-trial job with 8 trials at a time, on diabetes (whose best configuration is a one-round exact solve)
   and on Friedman #1 (whose best is a network trained for many rounds), against one training run
   (``POST /training-runs``) of the best trial's configuration to the last rung's epochs, measured one after the
   other in the same process; the share of trials stopped early; the job's ``worker_seconds`` against all 32
   trials trained to the last rung, extrapolated from each trial's measured usage (``complete_seconds``). Bound: at
   most 3x. Also printed: the ratio if each slot had its own core and time followed epochs (``epochs_ratio``), what
   Lambda's parallelism would give.
3. Cost of each: the job's ``estimated_cost_usd`` (at submission) and ``cost_usd`` (measured usage) beside the same 32
   trials billed by SageMaker Automatic Model Tuning (``mlcore.math.cost.sagemaker_tuning_cost``), each trial a
   training job as long as its measured worker time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .harness import Figure

SECTION = "tuning"
REPEAT = 1  # runs per `make bench` (benchmarks.bench): the jobs are seeded, and one run takes about 10 minutes here
SEED = 0
FRIEDMAN_ROWS = 5_000
FRIEDMAN_NOISE = 1.0
BOUNDS = {"gap": 0.005, "wall_ratio": 3.0}
SPEED_TRIALS = 32
SPEED_PARALLEL = 8
SPEED_SETS = ("diabetes", "friedman")
# the scikit-learn suite: the linear model with its own cross-validation, and an MLP grid chosen on the validation rows
MLP_HIDDEN = [(16,), (64,), (64, 64)]
MLP_ALPHA = [1e-4, 1e-2, 1.0]
RIDGE_ALPHAS = np.logspace(-4, 3, 15)


@dataclass(frozen=True)
class Dataset:
    name: str
    key: str  # the data set's name in the product
    csv: bytes
    target: str = "target"


def _csv(X: np.ndarray, y: np.ndarray, integer_target: bool) -> bytes:
    import pandas as pd

    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["target"] = y.astype(np.int64) if integer_target else y
    return frame.to_csv(index=False, float_format="%.6g").encode()


def datasets(friedman_rows: int = FRIEDMAN_ROWS, names: list[str] | None = None) -> list[Dataset]:
    """The four data sets as CSVs (features x0.., the target ``target``: whole class labels for the classifiers)."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine, make_friedman1

    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {name: loader(return_X_y=True) for name, loader in
              (("diabetes", load_diabetes), ("breast cancer", load_breast_cancer), ("wine", load_wine))}  # fmt: skip
    X, y = make_friedman1(n_samples=friedman_rows, n_features=10, noise=FRIEDMAN_NOISE, random_state=SEED)
    out = [
        Dataset("diabetes", "diabetes", _csv(*loaded["diabetes"], integer_target=False)),
        Dataset("breast cancer", "breast-cancer", _csv(*loaded["breast cancer"], integer_target=True)),
        Dataset("wine", "wine", _csv(*loaded["wine"], integer_target=True)),
        Dataset(f"Friedman #1 {friedman_rows:,} rows", "friedman", _csv(X, y, integer_target=False)),
    ]
    return [d for d in out if names is None or d.key in names]


@dataclass(frozen=True)
class Split:
    """The product's split of a data set: float32 features as the shards hold them, the target (class indices)."""

    task: str  # regression, binary, multiclass
    X_train: np.ndarray
    y_train: np.ndarray
    X_validation: np.ndarray
    y_validation: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def classifier(self) -> bool:
        return self.task != "regression"


def product_split(
    csv: bytes, target: str, test_fraction: float = 0.2, validation_fraction: float = 0.2, seed: int = SEED
) -> Split:
    """The rows a tuning job trains, validates and tests on, as its preparation makes them: the problem inferred
    from the data's profile (task, column decisions) as ``POST /tuning-jobs`` does, then the in-memory preparation's
    ``build_matrices`` with the problem's linear model (a classifier's labels become class indices), the same
    fractions and seed."""
    from mlcore.steps import problem, tabular
    from mlcore.steps.preparation.in_memory import build_matrices

    found = tabular.scan(lambda: iter([csv]))
    meta = {"rows": found.rows, "columns": found.columns}
    setup = problem.infer_problem(meta, target)
    frame = tabular.read_csv(csv)
    prepared = build_matrices(
        tabular.to_columns(frame),
        tabular.column_kinds(frame),
        target,
        test_fraction,
        seed,
        model=setup.linear_model,
        validation_fraction=validation_fraction,
        spec=problem.with_decisions(None, setup),
    )
    if prepared.validation is None:
        raise ValueError("the split has no validation rows")
    blocks = [prepared.train, prepared.validation, prepared.test]
    parts = [part for b in blocks for part in (b[:, :-1], b[:, -1])]
    return Split(setup.task, *parts)


@dataclass(frozen=True)
class Suite:
    """The scikit-learn suite's test metrics: ``members`` name -> (validation, test) metric; the trivial baseline."""

    members: dict[str, tuple[float, float]]
    baseline: float

    @property
    def best(self) -> tuple[str, float]:
        """The member with the highest test metric: the bound's reference (every member tuned without the test
        rows; taking the best on test is the strictest reading of "the best of the suite")."""
        name = max(self.members, key=lambda n: self.members[n][1])
        return name, self.members[name][1]

    @property
    def by_validation(self) -> tuple[str, float]:
        """The member a tuner would pick without the test rows, as the tuning job picks its best trial: the highest
        validation metric (the first, the linear model, on a tie), with its test metric."""
        name = max(self.members, key=lambda n: self.members[n][0])
        return name, self.members[name][1]


def baseline(split: Split) -> float:
    """The trivial model's test metric: R² of the training mean (slightly below 0), or the accuracy of the
    training rows' majority class."""
    if split.classifier:
        values, counts = np.unique(split.y_train, return_counts=True)
        return float(np.mean(split.y_test == values[np.argmax(counts)]))
    y = split.y_test.astype(np.float64)
    return float(1 - np.sum((y - split.y_train.mean()) ** 2) / np.sum((y - y.mean()) ** 2))


def sklearn_suite(split: Split, quick: bool = False) -> Suite:
    """RidgeCV (regression) or LogisticRegressionCV, fitted on the training rows with their own cross-validation,
    and the MLP of the grid (``MLP_HIDDEN`` x ``MLP_ALPHA``; max_iter 500, scikit-learn's defaults otherwise) with
    the best validation metric; each scored on the test rows."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    X, Xv, Xt = (a.astype(np.float64) for a in (split.X_train, split.X_validation, split.X_test))
    y, yv, yt = (a.astype(np.int64 if split.classifier else np.float64) for a in (split.y_train, split.y_validation,
                                                                                   split.y_test))  # fmt: skip
    members: dict[str, tuple[float, float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        if split.classifier:
            linear: Any = LogisticRegressionCV(Cs=10, max_iter=5000).fit(X, y)
            members["LogisticRegressionCV"] = (linear.score(Xv, yv), linear.score(Xt, yt))
        else:
            linear = RidgeCV(alphas=RIDGE_ALPHAS).fit(X, y)
            members["RidgeCV"] = (linear.score(Xv, yv), linear.score(Xt, yt))
        kind = MLPClassifier if split.classifier else MLPRegressor
        grid = [(h, a) for h in MLP_HIDDEN for a in MLP_ALPHA]
        if quick:
            grid = grid[:2]
        scored = []
        for hidden, alpha in grid:
            est = kind(hidden_layer_sizes=hidden, alpha=alpha, max_iter=50 if quick else 500, random_state=SEED)
            est.fit(X, y)
            scored.append((est.score(Xv, yv), est.score(Xt, yt), hidden, alpha))
        v, t, hidden, alpha = max(scored, key=lambda s: s[0])
        members[f"{kind.__name__}{hidden} alpha {alpha:g}"] = (v, t)
    return Suite({k: (float(a), float(b)) for k, (a, b) in members.items()}, baseline(split))


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def complete_seconds(board: list[dict[str, Any]], seconds: dict[str, float], last_epochs: int) -> float:
    """Worker-seconds of training every trial of ``board`` to the last rung (``last_epochs``), extrapolated from
    each trial's measured ``seconds`` (by run id): a trial that ended on its own (its run's stop reason, not a rung's
    budget or successive halving) or failed would not run longer; any other is scaled by ``last_epochs`` / its
    epochs (its time per epoch kept: a promoted trial continues its run)."""
    total = 0.0
    for entry in board:
        measured = seconds.get(entry.get("run_id") or "", 0.0)
        epochs = int(entry.get("epochs") or 0)
        reason = str(entry.get("stop_reason") or "")
        stopped_by_budget = entry["status"] == "stopped_early" or reason == "max_epochs"
        if entry["status"] == "failed" or not stopped_by_budget or epochs == 0 or epochs >= last_epochs:
            total += measured
        else:
            total += measured * last_epochs / epochs
    return total


def epochs_ratio(board: list[dict[str, Any]], parallel: int, single_epochs: int) -> float:
    """The job's wall time in single runs if each slot had its own core and a trial's time were its epochs: the
    epochs every trial ran (a promoted trial continues its run, so its epochs are its total), spread evenly over
    ``parallel`` slots, over the ``single_epochs`` of one run. Fixed costs per execution are left out."""
    return sum(int(e.get("epochs") or 0) for e in board) / parallel / max(single_epochs, 1)


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table: columns padded to their widest cell, the first left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded)

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# -- the local stack -------------------------------------------------------------------------------------------------


def _body(resp: dict) -> dict:
    return json.loads(resp["body"])


def _wait_run(cloud, run_id: str) -> dict:
    while True:
        state = _body(cloud.request("GET", f"/training-runs/{run_id}"))
        if state["status"] != "RUNNING":
            return state
        time.sleep(0.2)


@dataclass(frozen=True)
class Job:
    submitted: dict
    described: dict
    seconds: float
    model: dict | None  # the registered version (GET /models/{name}/versions/{v})
    run_seconds: dict[str, float]  # each trial run's billed Lambda seconds (its stored usage)
    test_rows: np.ndarray  # the test block the job's preparation stored


def tune(cloud, dataset: Dataset, **request: Any) -> Job:
    """One tuning job through the API: submit, wait for its execution, describe it, read its model and usage."""
    from mlcore.infra import layout
    from mlcore.math.cost import Usage

    body = {"dataset": dataset.key, "target": dataset.target, "model_name": f"{dataset.key}-tuned", **request}
    started = time.perf_counter()
    resp = cloud.request("POST", "/tuning-jobs", body)
    if resp["statusCode"] != 202:
        raise RuntimeError(f"tuning {dataset.name} refused: {resp['statusCode']} {resp['body']}")
    submitted = _body(resp)
    arn = cloud.state_machine_arns["TuningStateMachine"].replace(":stateMachine:", ":execution:")
    cloud.wait(f"{arn}:{submitted['job_id']}", timeout=7200, poll=0.5)
    seconds = time.perf_counter() - started
    described = _body(cloud.request("GET", f"/tuning-jobs/{submitted['job_id']}"))
    model = None
    if described.get("model") and described["model"].get("version"):
        m = described["model"]
        model = _body(cloud.request("GET", f"/models/{m['model_name']}/versions/{m['version']}"))
    bucket = cloud.stack.bucket
    run_seconds = {}
    for entry in described["leaderboard"]:
        if entry.get("run_id"):
            raw = cloud.s3.get_object(Bucket=bucket, Key=layout.run_usage_key(entry["run_id"]))["Body"].read()
            usage = Usage.from_dict(json.loads(raw))
            run_seconds[entry["run_id"]] = sum(fn.billed_ms for fn in usage.functions.values()) / 1000
    import io

    raw = cloud.s3.get_object(Bucket=bucket, Key=layout.held_out_key(submitted["job_id"], "test"))["Body"].read()
    return Job(submitted, described, seconds, model, run_seconds, np.load(io.BytesIO(raw)))


def single_run(cloud, dataset: Dataset, best: dict, epochs: int) -> tuple[float, dict]:
    """One training run (``POST /training-runs``) of ``best``'s mode and hyperparameters to ``epochs``, the tuning
    request's split: (seconds from the request to the finished run, the run)."""
    hp = {**best["hyperparameters"], "max_epochs": epochs}
    body = {"dataset": dataset.key, "target": dataset.target, "model_name": f"{dataset.key}-single",
            "mode": best["mode"], "hyperparameters": hp, "validation_fraction": 0.2}  # fmt: skip
    started = time.perf_counter()
    resp = cloud.request("POST", "/training-runs", body)
    if resp["statusCode"] != 202:
        raise RuntimeError(f"training run refused: {resp['statusCode']} {resp['body']}")
    state = _wait_run(cloud, _body(resp)["run_id"])
    return time.perf_counter() - started, state


def ingest(cloud, dataset: Dataset) -> None:
    resp = cloud.request("POST", f"/datasets/{dataset.key}", dataset.csv, headers={"Content-Type": "text/csv"})
    if resp["statusCode"] not in (200, 201):
        raise RuntimeError(f"ingest of {dataset.name} failed: {resp['statusCode']} {resp['body']}")


# -- the measurements ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QualityResult:
    dataset: Dataset
    job: Job
    split: Split
    suite: Suite
    metric: str  # r2 or accuracy
    test: float  # the tuned model's test metric
    same_rows: bool  # the reproduced test rows are the ones the job stored

    @property
    def gap(self) -> float:
        return self.suite.best[1] - self.test


@dataclass(frozen=True)
class SpeedResult:
    dataset: Dataset
    job: Job
    single_seconds: float
    single: dict
    complete_seconds: float
    sagemaker: dict

    @property
    def ratio(self) -> float:
        return self.job.seconds / self.single_seconds

    @property
    def single_epochs(self) -> int:
        """The single run's rounds (epochs), as its registered model reports them; the last rung's if unknown."""
        model = self.single.get("model") or {}
        return int(model.get("rounds") or self.job.submitted["rungs"][-1])


def _request(quick: bool) -> dict[str, Any]:
    return {"max_trials": 4, "max_parallel_trials": 2, "min_epochs": 3, "max_epochs": 9} if quick else {}


def quality(cloud, dataset: Dataset, quick: bool) -> QualityResult:
    job = tune(cloud, dataset, **_request(quick))
    split = product_split(dataset.csv, dataset.target)
    suite = sklearn_suite(split, quick)
    metric = job.submitted["metric"]
    test = float(job.model["metrics"]["test"][metric]) if job.model else float("nan")
    same = job.test_rows.shape[0] == len(split.y_test) and np.array_equal(job.test_rows[:, -1], split.y_test) and (
        np.allclose(job.test_rows[:, :-1], split.X_test))  # fmt: skip
    return QualityResult(dataset, job, split, suite, metric, test, bool(same))


def speed(cloud, dataset: Dataset, quick: bool) -> SpeedResult:
    from mlcore.math.cost import sagemaker_tuning_cost

    request = _request(quick)
    trials, parallel = (4, 2) if quick else (SPEED_TRIALS, SPEED_PARALLEL)
    request.update(max_trials=trials, max_parallel_trials=parallel, model_name=f"{dataset.key}-speed")
    job = tune(cloud, dataset, **request)
    last = int(job.submitted["rungs"][-1])
    single_seconds, single = single_run(cloud, dataset, job.described["best"], last)
    board = job.described["leaderboard"]
    per_trial = [job.run_seconds.get(e.get("run_id") or "", 0.0) for e in board]
    return SpeedResult(dataset, job, single_seconds, single, complete_seconds(board, job.run_seconds, last),
                       sagemaker_tuning_cost(per_trial))  # fmt: skip


def run_all(quick: bool, names: list[str] | None = None) -> tuple[list[QualityResult], list[SpeedResult]]:
    from mllocal.cloud import LocalCloud
    from mllocal.template import local_stack

    chosen = datasets(1_000 if quick else FRIEDMAN_ROWS, names)
    if quick and names is None:  # checks the code runs: a regression and a classification are enough
        chosen = chosen[:2]
    overrides = {"LogLevel": "ERROR", "TuningWaitSeconds": "1"}
    with LocalCloud(local_stack(overrides=overrides)) as cloud:
        for d in chosen:
            ingest(cloud, d)
        results = []
        for d in chosen:
            print(f"tuning {d.name} ...", file=sys.stderr, flush=True)
            results.append(quality(cloud, d, quick))
        # diabetes, whose best configuration is a one-round exact solve, and Friedman #1, whose best is a network
        # trained for many rounds: the ratio's two ends
        speed_sets = [d for d in chosen if d.key in SPEED_SETS] or chosen[:1]
        speeds = []
        for d in speed_sets[:1] if quick else speed_sets:
            print(f"speed: {SPEED_TRIALS if not quick else 4} trials on {d.name} ...", file=sys.stderr, flush=True)
            speeds.append(speed(cloud, d, quick))
        return results, speeds


# -- the page's figures and the printed report ----------------------------------------------------------------------


SPACE = "the default search space"


def figures(results: list[QualityResult], speeds: list[SpeedResult]) -> list[Figure]:
    first = results[0].job.submitted
    plan = f"{first['max_trials']} trials, {first['max_parallel_trials']} at a time, rungs {first['rungs']}"
    note_quality = (
        "tuning quality: a tuning job through the local stack with dataset, target and model_name only"
        f" ({SPACE}: sync trials below 20,000 training rows; {plan}); the registered model's "
        "test metric against the best test metric of a scikit-learn suite on the product's own split (RidgeCV or "
        "LogisticRegressionCV; MLPRegressor/MLPClassifier of hidden sizes (16), (64), (64, 64) x alpha 1e-4, 1e-2, "
        "1 chosen on the validation rows); issue #16's bound: within 0.005, and above the trivial baseline; one run "
        "per `make bench` (seeded: min = median = max)"
    )
    out = []
    for q in results:
        name, best = q.suite.best
        out += [
            Figure(SECTION, f"{q.dataset.name}: tuned model's test {q.metric}", q.test, q.metric,
                   f"best of the sklearn suite ({name})", best, better="higher", note=note_quality),
            Figure(SECTION, f"{q.dataset.name}: sklearn suite's best - tuned", q.gap, q.metric,
                   "issue #16's bound", BOUNDS["gap"]),
            Figure(SECTION, f"{q.dataset.name}: sklearn suite's pick by validation - tuned",
                   q.suite.by_validation[1] - q.test, q.metric),
        ]  # fmt: skip
    note_speed = (
        f"tuning speed: {SPACE}; the job's wall time from POST /tuning-jobs to its end against one training "
        "run (POST /training-runs) of the best trial's configuration to the last rung, measured one after the other "
        "in the same process; worker-seconds to completion extrapolated from each trial's measured usage (a trial "
        "stopped by a rung's budget scaled to the last rung's epochs); SageMaker: each trial one ml.m5.large training "
        "job as long as its measured worker time, billed at least 60 s, $0.115 an hour, start-up not counted"
    )
    for s in speeds:
        out += speed_figures(s, note_speed)
    return out


def speed_figures(s: SpeedResult, note: str) -> list[Figure]:
    trials = len(s.job.described["leaderboard"])
    parallel = s.job.submitted["max_parallel_trials"]
    label = f"{s.dataset.name}, {trials} trials, {parallel} at a time"
    w = s.job.described
    return [
        Figure(SECTION, f"{label}: wall time", s.job.seconds, "s", "one training run of the best configuration",
               s.single_seconds, note=note),
        Figure(SECTION, f"{label}: wall time / one training run's", s.ratio, "ratio", "issue #16's bound",
               BOUNDS["wall_ratio"]),
        Figure(SECTION, f"{label}: share of trials stopped early", float(w["early_stopped_share"]), "share"),
        Figure(SECTION, f"{label}: worker-seconds", float(w["worker_seconds"]), "s",
               "every trial to the last rung (extrapolated, at most)", s.complete_seconds),
        Figure(SECTION, f"{label}: estimated AWS cost", float(w["estimated_cost_usd"]), "USD",
               "SageMaker Automatic Model Tuning, same trials", s.sagemaker["total"]),
        Figure(SECTION, f"{label}: measured usage cost", float(w["cost_usd"]), "USD",
               "SageMaker Automatic Model Tuning, same trials", s.sagemaker["total"]),
    ]  # fmt: skip


_LAST: dict[str, str] = {}


def collect(quick: bool) -> list[Figure]:
    results, speeds = run_all(quick)
    _LAST["text"] = report_text(results, speeds)
    return figures(results, speeds)


def analysis() -> str:
    """The last run's printed report, for the page (``benchmarks.bench`` adds it as "Tuning analysis")."""
    text = _LAST.get("text", "")
    return f"```\n{text}\n```" if text else ""


def cross_validation(best: dict[str, Any]) -> str:
    """How the job chose its best trial: ``5-fold CV of 4, 2.7 s`` (the finalists' cross-validation and the time it
    took in Finalize), or ``validation split``."""
    figures = best.get("cross_validation")
    if not figures:
        return "validation split"
    return f"5-fold CV of {len(figures)}, {float(best.get('cross_validation_seconds') or 0):.1f} s"


def report_text(results: list[QualityResult], speeds: list[SpeedResult]) -> str:
    lines = [f"1. Quality: tuning jobs with dataset, target, model_name only ({SPACE}); "
             "test metric vs the best of a tuned scikit-learn suite on the same split"]  # fmt: skip
    rows = []
    for q in results:
        name, best = q.suite.best
        board = q.job.described["leaderboard"]
        chosen = q.job.described.get("best") or {}
        hp = chosen.get("hyperparameters", {})
        rows.append([
            q.dataset.name, q.metric, f"{q.test:.4f}", f"{best:.4f} ({name})", f"{q.gap:+.4f}",
            f"{q.suite.baseline:.4f}",
            f"{verdict(q.gap <= BOUNDS['gap'])} / {verdict(q.test > q.suite.baseline)}",
            f"{hp.get('model', '?')} {chosen.get('mode', '')} {hp.get('hidden_layers', '')}".strip(),
            cross_validation(chosen),
            f"{q.suite.by_validation[1]:.4f}", f"{q.suite.by_validation[1] - q.test:+.4f}",
            f"{len(board)} trials, {q.job.seconds:.0f} s", "yes" if q.same_rows else "NO",
        ])  # fmt: skip
    header = ["data set", "metric", "tuned", "sklearn best", "gap", "baseline", "within 0.005 / above baseline",
              "best trial", "chosen by", "sklearn by validation", "its gap", "job", "same test rows"]  # fmt: skip
    lines.append(format_table(rows, header))
    for q in results:
        members = ", ".join(f"{k} {v:.4f} (val {vv:.4f})" for k, (vv, v) in q.suite.members.items())
        lines.append(f"   {q.dataset.name} suite: {members}")
        if q.metric == "accuracy":  # the bound against what one test row is worth
            n = len(q.split.y_test)
            lines.append(f"      {q.dataset.name}: one of the {n} test rows is {1 / n:.4f} of accuracy")
    lines.append(
        "   sklearn best: the suite member with the best test metric (the bound's reference); sklearn by validation: "
        "the member with the best validation metric, picked as the job picks its best trial (by the validation rows)"
    )
    for number, s in enumerate(speeds, start=2):
        lines += ["", *speed_text(s, number)]
    return "\n".join(lines)


def speed_text(s: SpeedResult, number: int) -> list[str]:
    from mlcore.math import cost

    w = s.job.described
    trials, parallel = len(w["leaderboard"]), s.job.submitted["max_parallel_trials"]
    return [
        f"{number}. Speed and cost: {trials}-trial job, {parallel} at a time, on {s.dataset.name} ({SPACE}), "
        f"rungs {s.job.submitted['rungs']}",
        f"   job wall time {s.job.seconds:.1f} s; one training run of the best configuration "
        f"({w['best']['hyperparameters'].get('model')} {w['best']['mode']}, {s.job.submitted['rungs'][-1]} epochs, "
        f"{s.single.get('status')}) {s.single_seconds:.1f} s: ratio {s.ratio:.2f}, at most {BOUNDS['wall_ratio']}x: "
        f"{verdict(s.ratio <= BOUNDS['wall_ratio'])}",
        f"   epochs run by all trials / ({parallel} slots x the single run's {s.single_epochs} epochs): "
        f"{epochs_ratio(w['leaderboard'], parallel, s.single_epochs):.2f} (the ratio if every slot had its own core, "
        "as Lambda gives it, and time followed epochs; locally the slots share the machine's cores)",
        f"   trials stopped early: {float(w['early_stopped_share']):.0%}; "
        f"worker-seconds {float(w['worker_seconds']):.1f} against {s.complete_seconds:.1f} for every trial to the "
        "last rung (extrapolated from each trial's measured usage, an upper estimate: a trial a rung stopped might "
        "have converged sooner: "
        f"{s.complete_seconds / max(float(w['worker_seconds']), 1e-9):.2f}x)",
        f"   cost: estimated at submission ${float(w['estimated_cost_usd']):.4f}; "
        f"measured usage ${float(w['cost_usd']):.4f}",
        f"   SageMaker Automatic Model Tuning, the same {s.sagemaker['jobs']} trials as training jobs: "
        f"${s.sagemaker['total']:.4f} ({s.sagemaker['billed_seconds']} billed s on {s.sagemaker['instance_type']} at "
        f"${s.sagemaker['usd_per_hour']}/h, at least {cost.SAGEMAKER_MIN_BILLED_SECONDS} s a job, start-up not "
        "counted: the instance and on-demand us-east-1 price assumed in mlcore.math.cost)",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small jobs (4 and 8 trials, rungs 3/9): checks the code")
    parser.add_argument("--datasets", nargs="+", choices=["diabetes", "breast-cancer", "wine", "friedman"])
    parser.add_argument("--repeat", type=int, default=1, help="repeat the whole benchmark, printing the spread")
    args = parser.parse_args(argv)
    gaps: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    for i in range(args.repeat):
        results, speeds = run_all(args.quick, args.datasets)
        print(report_text(results, speeds), flush=True)
        for q in results:
            gaps.setdefault(q.dataset.name, []).append(q.gap)
        for s in speeds:
            ratios.setdefault(f"{s.dataset.name} wall time ratio", []).append(s.ratio)
        if args.repeat > 1:
            print(f"(run {i + 1} of {args.repeat})\n", flush=True)
    if args.repeat > 1:
        for name, values in [*gaps.items(), *ratios.items()]:
            print(f"spread over {args.repeat} runs, {name}: min {min(values):+.4f}, median "
                  f"{statistics.median(values):+.4f}, max {max(values):+.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
