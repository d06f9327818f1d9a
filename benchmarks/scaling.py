"""Scaling study: time and cost per training round as rows grow and as shards grow.

A round on AWS runs its workers in parallel, so its wall time is the orchestration overhead (measured
on the real state machine in moto's interpreter: round wall time minus the slowest worker) plus the
slowest worker (the real GradientWorker handler, timed in process on a shard of that size, S3 load
included) plus the aggregation (the real Aggregator handler over that many gradients). Cost per round
prices those invocations at the template's memory sizes (mlcore.math.cost).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from mlcore.infra import layout
from mlcore.math import cost
from mllocal.cloud import LocalCloud
from mllocal.template import local_stack

from .harness import Figure

FEATURES = 28


def orchestration_overhead(shards: int, rounds: int = 4) -> float:
    """Median over rounds of (round wall time - slowest worker), seconds, from the execution history."""
    rows = ["x,y"] + [f"{i % 17},{(i * 7) % 13}" for i in range(40 * shards)]
    with LocalCloud(local_stack(overrides={"LogLevel": "ERROR"})) as cloud:
        cloud.request("POST", "/datasets/tiny", ("\n".join(rows) + "\n").encode(), headers={"Content-Type": "text/csv"})
        arn = cloud.start(
            "TrainingStateMachine",
            {
                "dataset": "tiny",
                "target": "y",
                "model_name": "tiny",
                "n_shards": shards,
                "hyperparameters": {"max_epochs": rounds, "solver": "sgd"},  # rounds of SGD, not one solve
            },
        )
        assert cloud.wait(arn)["status"] == "SUCCEEDED"
        # up to the inline Map's shards the rounds run in Express child executions of the rounds state machine
        # (moto keeps their history); above them, in the parent's Distributed Map
        histories = [
            [
                e
                for page in cloud.sfn.get_paginator("get_execution_history").paginate(executionArn=x["executionArn"])
                for e in page["events"]
            ]
            for machine in ("TrainingRoundsStateMachine", "TrainingStateMachine")
            for x in cloud.sfn.list_executions(stateMachineArn=cloud.state_machine_arns[machine])["executions"]
        ]
    overheads = []
    for events in histories:
        by_id = {e["id"]: e for e in events}
        starts = [e["timestamp"] for e in events if e["type"] == "MapStateEntered"]
        ends = [
            e["timestamp"]
            for e in events
            if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "Aggregate"
        ]
        for start, end in zip(starts, ends, strict=False):
            workers = [
                (e["timestamp"] - by_id[e["previousEventId"]]["timestamp"]).total_seconds()
                for e in events
                if e["type"] == "TaskSucceeded"
                and start <= e["timestamp"] <= end
                and '"loss_sum"' in e["taskSucceededEventDetails"]["output"]  # a GradientWorker's result
            ]
            overheads.append((end - start).total_seconds() - max(workers, default=0.0))
    return float(np.median(overheads))


def round_compute(rows: int, shards: int) -> dict[str, float]:
    """Slowest worker and the aggregation, seconds, with the real handlers on moto S3."""
    rng = np.random.default_rng(1)
    with LocalCloud(local_stack(overrides={"LogLevel": "ERROR"})) as cloud:
        bucket = cloud.stack.bucket
        for index, part in enumerate(np.array_split(np.arange(rows), shards)):
            block = rng.standard_normal((len(part), FEATURES + 1), dtype=np.float32)
            buf = __import__("io").BytesIO()
            np.save(buf, block, allow_pickle=False)
            cloud.s3.put_object(Bucket=bucket, Key=layout.shard_key("bench", index), Body=buf.getvalue())
        hp = {"optimizer": "momentum", "solver": "sgd"}
        state, _ = cloud.invoke(
            "AggregatorFunction", {"action": "init", "run_id": "bench", "n_features": FEATURES, "hyperparameters": hp}
        )
        results, worker_seconds = [], []
        for index, part in enumerate(np.array_split(np.arange(rows), shards)):
            event = {
                "action": "gradient",
                "run_id": "bench",
                "round": 0,
                "params_key": state["params_key"],
                "shard": {"index": index, "key": layout.shard_key("bench", index), "rows": len(part)},
            }
            started = time.perf_counter()
            result, error = cloud.invoke("GradientWorkerFunction", event)
            worker_seconds.append(time.perf_counter() - started)
            assert error is None, result
            results.append(result)
        started = time.perf_counter()
        _, error = cloud.invoke(
            "AggregatorFunction",
            {
                "action": "aggregate",
                "run_id": "bench",
                "round": 0,
                "params_key": state["params_key"],
                "hyperparameters": hp,
                "results": results,
            },
        )
        assert error is None
        return {
            "worker": max(worker_seconds),
            "worker_total": sum(worker_seconds),
            "aggregator": time.perf_counter() - started,
        }


def round_cost(shards: int, compute: dict[str, float], seconds: float) -> float:
    """USD of one sync round as the workflow runs it: the measured Lambda time, the round's S3 requests with the
    results inline (``cost.round_s3_requests``), and its orchestration: an Express child's share per round
    (``rounds_per_call`` rounds of ``seconds`` each) up to the inline Map's shards, the Standard parent's
    Distributed Map transitions above them."""
    stack = local_stack()
    prices = cost.price_table("us-east-1")
    worker_mb = stack.functions["GradientWorkerFunction"].memory_mb
    agg_mb = stack.functions["AggregatorFunction"].memory_mb
    inline_map = shards <= cost.INLINE_MAP_MAX_SHARDS
    usage = cost.Usage(rounds=1, shards=shards, state_transitions=0 if inline_map else cost.round_transitions(shards))
    usage.functions["GradientWorker"] = cost.FunctionUsage(
        shards, int(compute["worker_total"] * 1000) + shards, worker_mb
    )
    usage.functions["Aggregator"] = cost.FunctionUsage(1, int(compute["aggregator"] * 1000) + 1, agg_mb)
    requests = cost.round_s3_requests(shards, FEATURES + 1)
    usage.s3_get, usage.s3_put = requests["get"], requests["put"]
    total = cost.cost(usage, prices)["total"]
    if inline_map:
        total += cost.express_round_orchestration(cost.rounds_per_call(), prices, seconds)
    return total


def collect(quick: bool, plot_dir: Path | None = None) -> list[Figure]:
    row_sizes = [20_000, 100_000] if quick else [100_000, 1_000_000, 4_000_000]
    shard_counts = [2, 4] if quick else [4, 16, 64]
    fixed_shards = shard_counts[len(shard_counts) // 2]
    fixed_rows = row_sizes[len(row_sizes) // 2]
    overhead = {s: orchestration_overhead(s) for s in sorted({*shard_counts, fixed_shards})}
    figures: list[Figure] = []
    series: dict[str, list[tuple[int, float, float]]] = {"rows": [], "shards": []}
    for axis, points in (
        ("rows", [(r, fixed_shards) for r in row_sizes]),
        ("shards", [(fixed_rows, s) for s in shard_counts]),
    ):
        for rows, shards in points:
            compute = round_compute(rows, shards)
            seconds = overhead[shards] + compute["worker"] + compute["aggregator"]
            usd = round_cost(shards, compute, seconds)
            series[axis].append((rows if axis == "rows" else shards, seconds, usd))
            figures.append(
                Figure(
                    "scaling",
                    f"round time, {rows:,} rows / {shards} shards",
                    seconds * 1000,
                    "ms",
                    "of which orchestration overhead",
                    overhead[shards] * 1000,
                )
            )
            figures.append(Figure("scaling", f"round cost, {rows:,} rows / {shards} shards", usd * 1e6, "µUSD"))
    for shards, seconds in overhead.items():
        figures.append(
            Figure("orchestration", f"overhead per round, {shards} shards (local interpreter)", seconds * 1000, "ms")
        )
    global LAST_SERIES
    LAST_SERIES = (series, overhead)
    if plot_dir is not None:
        plot(series, plot_dir / "scaling.png", fixed_rows, fixed_shards)
        (plot_dir / "scaling.json").write_text(json.dumps(series, indent=1))
    return figures


LAST_SERIES: tuple[dict, dict] | None = None


def _slope(points: list[tuple[int, float, float]], column: int) -> float:
    """Exponent b of y ~ x^b between the first and last point (log-log)."""
    (x0, *a), (x1, *b) = points[0], points[-1]
    y0, y1 = a[column - 1], b[column - 1]
    return float(np.log(y1 / y0) / np.log(x1 / x0)) if y0 > 0 and y1 > 0 and x1 != x0 else float("nan")


def analysis() -> str:
    """How time and cost per round grow, and where the knee is, from the last run's numbers."""
    if LAST_SERIES is None:
        return ""
    series, overhead = LAST_SERIES
    rows, shards = series["rows"], series["shards"]
    lines = [
        f"- Rows: time per round grows as rows^{_slope(rows, 1):.2f} and cost as rows^{_slope(rows, 2):.2f} "
        f"between {rows[0][0]:,} and {rows[-1][0]:,} rows (linear would be 1.00).",
        f"- Shards: time per round grows as shards^{_slope(shards, 1):.2f} and cost as shards^{_slope(shards, 2):.2f} "
        f"between {shards[0][0]} and {shards[-1][0]} shards.",
    ]
    knee = next(((r, s) for r, s, _ in rows if s > 2 * overhead[min(overhead, key=lambda k: abs(k - 16))]), None)
    lines.append(
        "- Knee: below it a round is orchestration (Step Functions transitions, Lambda invocations, S3 round trips, "
        f"about {min(overhead.values()) * 1000:.0f}-{max(overhead.values()) * 1000:.0f} ms per round here) and "
        "adding rows is almost free; above it a round is worker compute and grows linearly with rows per shard"
        + (f" — here from about {knee[0]:,} rows." if knee else " — not reached at these sizes.")
    )
    lines.append(
        "- Cost per round is dominated by Step Functions state transitions (4 + shards per sync round on the inline "
        "Map, 4 + 2 x shards on the Distributed Map, at $25 per million) until workers run for seconds; more shards "
        "cut time only while the slowest worker dominates."
    )
    return "\n".join(lines)


def plot(series, path: Path, fixed_rows: int, fixed_shards: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, axis, label in (
        (axes[0], "rows", f"rows ({fixed_shards} shards)"),
        (axes[1], "shards", f"shards ({fixed_rows:,} rows)"),
    ):
        xs = [p[0] for p in series[axis]]
        ax.plot(xs, [p[1] * 1000 for p in series[axis]], "o-", label="time per round (ms)")
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:,}" for x in xs])
        ax.minorticks_off()
        ax.set_xlabel(label)
        ax.set_ylabel("ms per round")
        ax2 = ax.twinx()
        ax2.plot(xs, [p[2] * 1e6 for p in series[axis]], "s--", color="tab:orange", label="cost per round (µUSD)")
        ax2.set_ylabel("µUSD per round")
        ax.grid(alpha=0.3)
        ax.set_title(f"per round vs {axis}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
