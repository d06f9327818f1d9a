"""Cost of a training run from what it actually did, and what-if estimates. Pure functions, no I/O.

Prices are list prices in USD (x86, no free tier), per region; pass ``prices=`` to use your own.
Lambda bills GB-seconds of billed duration (1 ms granularity) plus requests; Step Functions
Standard bills state transitions; S3 bills requests (storage is not included: runs are short).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class PriceTable:
    region: str
    lambda_gb_second: float = 0.0000166667
    lambda_request: float = 0.20 / 1e6
    state_transition: float = 0.025 / 1000
    s3_put: float = 0.005 / 1000  # PUT, COPY, POST, LIST
    s3_get: float = 0.0004 / 1000  # GET, HEAD


# Published on-demand prices (USD) as of 2026; where a region is missing, us-east-1's are used.
PRICES: dict[str, PriceTable] = {
    "us-east-1": PriceTable("us-east-1"),
    "us-west-2": PriceTable("us-west-2"),
    "eu-west-1": PriceTable("eu-west-1"),
    "eu-central-1": PriceTable(
        "eu-central-1", state_transition=0.025 / 1000, s3_put=0.0054 / 1000, s3_get=0.00043 / 1000
    ),
    "ap-southeast-2": PriceTable("ap-southeast-2", s3_put=0.0055 / 1000, s3_get=0.00044 / 1000),
}

# S3 requests per invocation, by step, from the code's access pattern (see steps/training.py, steps/preparation/).
S3_REQUESTS = {
    "GradientWorker": {"get": 2, "put": 1},  # parameters, shard; gradient
    "Aggregator": {"get": 4, "put": 2},  # summary check, parameters, round 0, previous; parameters, summary
    "AggregatorPerShard": {"get": 1, "put": 0},  # one gradient per shard
    "Preprocess": {"get": 3, "put": 2},  # metadata, latest, data; test, manifest (+1 PUT per shard)
    "Evaluate": {"get": 5, "put": 3},  # manifest, parameters, test, run pointer, list; model, pointer, alias
}


@dataclass
class FunctionUsage:
    invocations: int = 0
    billed_ms: int = 0
    memory_mb: int = 128

    @property
    def gb_seconds(self) -> float:
        return self.billed_ms / 1000.0 * self.memory_mb / 1024.0


@dataclass
class Usage:
    functions: dict[str, FunctionUsage] = field(default_factory=dict)
    state_transitions: int = 0
    s3_get: int = 0
    s3_put: int = 0
    rounds: int = 0
    shards: int = 0
    train_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def price_table(region: str) -> PriceTable:
    return PRICES.get(region, PriceTable(region))


def cost(usage: Usage, prices: PriceTable) -> dict[str, Any]:
    """Dollar cost per item and in total."""
    breakdown: dict[str, float] = {}
    for name, fn in sorted(usage.functions.items()):
        breakdown[f"Lambda {name}"] = fn.gb_seconds * prices.lambda_gb_second + fn.invocations * prices.lambda_request
    breakdown["Step Functions state transitions"] = usage.state_transitions * prices.state_transition
    breakdown["S3 requests"] = usage.s3_get * prices.s3_get + usage.s3_put * prices.s3_put
    return {"region": prices.region, "total": sum(breakdown.values()), "breakdown": breakdown, "usage": usage.to_dict()}


def step_of(function_name: str) -> str:
    """'stack-GradientWorkerFunction-AbC12' -> 'GradientWorker' (the template's logical id, less 'Function')."""
    for step in ("GradientWorker", "Aggregator", "Preprocess", "Evaluate"):
        if step in function_name:
            return step
    return function_name.rsplit(":", 1)[-1]


def estimate_s3(usage: Usage) -> None:
    """Fill the S3 request counts from the invocations and the access pattern above."""
    get = put = 0
    for step, fn in usage.functions.items():
        pattern = S3_REQUESTS.get(step, {"get": 1, "put": 1})
        get += pattern["get"] * fn.invocations
        put += pattern["put"] * fn.invocations
    get += S3_REQUESTS["AggregatorPerShard"]["get"] * usage.shards * usage.rounds
    put += usage.shards  # the shards written by Preprocess
    usage.s3_get, usage.s3_put = get, put


def what_if(measured: Usage, rows: int, shards: int, rounds: int) -> Usage:
    """Scale a measured run to another size: worker time grows with rows per shard, aggregation
    with the number of shards, state transitions with rounds x shards."""
    if min(rows, shards, rounds) < 1:
        raise ValueError("rows, shards and rounds must be at least 1")
    m_rounds, m_shards = max(measured.rounds, 1), max(measured.shards, 1)
    worker = measured.functions.get("GradientWorker", FunctionUsage())
    ms_per_row = worker.billed_ms / max(measured.train_rows * m_rounds, 1)
    per_worker_ms = max(1, math.ceil(ms_per_row * rows / shards))
    agg = measured.functions.get("Aggregator", FunctionUsage())
    agg_ms = agg.billed_ms / max(agg.invocations, 1) * (shards / m_shards)
    out = Usage(rounds=rounds, shards=shards, train_rows=rows)
    out.functions["GradientWorker"] = FunctionUsage(shards * rounds, per_worker_ms * shards * rounds, worker.memory_mb)
    out.functions["Aggregator"] = FunctionUsage(rounds + 1, math.ceil(agg_ms * (rounds + 1)), agg.memory_mb)
    for step in ("Preprocess", "Evaluate"):
        if step in measured.functions:
            fn = measured.functions[step]
            scale = rows / max(measured.train_rows, 1) if step == "Preprocess" else 1.0
            out.functions[step] = FunctionUsage(fn.invocations, math.ceil(fn.billed_ms * scale), fn.memory_mb)
    fixed = measured.state_transitions - m_rounds * (3 + m_shards)
    out.state_transitions = max(fixed, 0) + rounds * (3 + shards)
    estimate_s3(out)
    return out


# A reference run to scale from before a run exists (the up-front check of POST /training-runs): 100,000 training
# rows, 4 shards, 100 rounds, at the template's memory sizes. Worker time is 0.2 ms per 1,000 rows per round (the
# measured gradient of 1,000,000 x 28 float32 takes ~35 ms, docs/benchmarks.md; the rest is loading), an aggregation
# 50 ms, Preprocess 4 µs per row (~250,000 rows/s), Evaluate 2 s; 20 state transitions besides the rounds'.
REFERENCE_RUN = Usage(
    functions={
        "GradientWorker": FunctionUsage(invocations=400, billed_ms=2_000, memory_mb=1769),
        "Aggregator": FunctionUsage(invocations=101, billed_ms=5_050, memory_mb=1024),
        "Preprocess": FunctionUsage(invocations=1, billed_ms=400, memory_mb=3008),
        "Evaluate": FunctionUsage(invocations=1, billed_ms=2_000, memory_mb=2048),
    },
    state_transitions=20 + 100 * (3 + 4),
    rounds=100,
    shards=4,
    train_rows=100_000,
)


def estimate(rows: int, shards: int, rounds: int) -> Usage:
    """The usage of a run of ``rows`` training rows over ``shards`` shards for ``rounds`` rounds, before it runs:
    ``REFERENCE_RUN`` scaled by ``what_if``."""
    return what_if(REFERENCE_RUN, rows, shards, rounds)
