"""Cost of a training run from what it actually did, and what-if estimates. Pure functions, no I/O.

Prices are list prices in USD (x86, no free tier), per region; pass ``prices=`` to use your own.
Lambda bills GB-seconds of billed duration (1 ms granularity) plus requests; Step Functions
Standard bills state transitions; S3 bills requests (storage is not included: runs are short).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlcore.math.tuning import rung_caps


@dataclass(frozen=True)
class PriceTable:
    region: str
    lambda_gb_second: float = 0.0000166667
    lambda_request: float = 0.20 / 1e6
    state_transition: float = 0.025 / 1000
    s3_put: float = 0.005 / 1000  # PUT, COPY, POST, LIST
    s3_get: float = 0.0004 / 1000  # GET, HEAD
    express_request: float = 1.00 / 1e6  # Step Functions Express: per execution started
    express_gb_second: float = 0.00001667  # Express duration, billed in 100 ms x 64 MB steps


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
    "GradientWorker": {"get": 2, "put": 0},  # parameters, shard (its result travels inline, else see ResultViaS3)
    "Aggregator": {"get": 4, "put": 2},  # summary check, parameters, round 0, previous; parameters, summary
    "ResultViaS3": {"get": 1, "put": 1},  # per shard and round whose result is over its inline share: PUT, GET
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
    result_values: int = 0  # float64 values in one worker result (29: 28 features); 0: unknown, counted via S3
    express_executions: int = 0  # Express child executions started (each a billed request)
    express_gb_seconds: float = 0.0  # their billed duration x memory (EXPRESS_* steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Usage:
        """The inverse of ``to_dict`` (a stored usage)."""
        functions = {name: FunctionUsage(**fn) for name, fn in doc.get("functions", {}).items()}
        return cls(**{**doc, "functions": functions})


def price_table(region: str) -> PriceTable:
    return PRICES.get(region, PriceTable(region))


def cost(usage: Usage, prices: PriceTable) -> dict[str, Any]:
    """Dollar cost per item and in total."""
    breakdown: dict[str, float] = {}
    for name, fn in sorted(usage.functions.items()):
        breakdown[f"Lambda {name}"] = fn.gb_seconds * prices.lambda_gb_second + fn.invocations * prices.lambda_request
    breakdown["Step Functions state transitions"] = usage.state_transitions * prices.state_transition
    if usage.express_executions:
        breakdown["Step Functions Express"] = (
            usage.express_executions * prices.express_request + usage.express_gb_seconds * prices.express_gb_second
        )
    breakdown["S3 requests"] = usage.s3_get * prices.s3_get + usage.s3_put * prices.s3_put
    return {"region": prices.region, "total": sum(breakdown.values()), "breakdown": breakdown, "usage": usage.to_dict()}


def step_of(function_name: str) -> str:
    """'stack-GradientWorkerFunction-AbC12' -> 'GradientWorker' (the template's logical id, less 'Function')."""
    for step in ("GradientWorker", "Aggregator", "Preprocess", "Evaluate"):
        if step in function_name:
            return step
    return function_name.rsplit(":", 1)[-1]


# A worker's result travels in the Map's result when its base64 text fits the shard's share of the round's budget
# (steps.schemas.INLINE_RESULTS_BYTES // shards; a test checks both agree), else through S3 (ResultViaS3).
INLINE_RESULTS_BYTES = 128 * 1024
REFERENCE_RESULT_VALUES = 29  # the reference run's result: the gradient of 28 features and the intercept


def results_inline(result_values: int, shards: int) -> bool:
    """Whether a worker result of ``result_values`` float64 values travels inline in a run of ``shards`` shards
    (base64: 4 characters per 3 bytes, padded); a result of unknown size (0) is counted as through S3."""
    return result_values > 0 and 4 * ((8 * result_values + 2) // 3) <= INLINE_RESULTS_BYTES // max(shards, 1)


def round_s3_requests(shards: int, result_values: int) -> dict[str, int]:
    """S3 requests of one sync round: each worker's GETs, the Aggregator's, and per shard a PUT and a GET of its
    result when it does not travel inline."""
    w, a, via = S3_REQUESTS["GradientWorker"], S3_REQUESTS["Aggregator"], S3_REQUESTS["ResultViaS3"]
    results = 0 if results_inline(result_values, shards) else shards
    return {
        "get": shards * w["get"] + a["get"] + results * via["get"],
        "put": shards * w["put"] + a["put"] + results * via["put"],
    }


def estimate_s3(usage: Usage) -> None:
    """Fill the S3 request counts from the invocations and the access pattern above (the results through S3
    unless ``usage.result_values`` says they fit inline)."""
    get = put = 0
    for step, fn in usage.functions.items():
        pattern = S3_REQUESTS.get(step, {"get": 1, "put": 1})
        get += pattern["get"] * fn.invocations
        put += pattern["put"] * fn.invocations
    if not results_inline(usage.result_values, usage.shards):
        get += S3_REQUESTS["ResultViaS3"]["get"] * usage.shards * usage.rounds
        put += S3_REQUESTS["ResultViaS3"]["put"] * usage.shards * usage.rounds
    put += usage.shards  # the shards written by Preprocess
    usage.s3_get, usage.s3_put = get, put


# Step Functions state transitions, counted from statemachines/training.asl.json (Standard workflow: every state
# entered is one transition; an Inline Map's iterations are not charged as such, the states inside them are; a
# Distributed Map is charged one transition per child workflow execution it starts, and each child, a Standard
# execution, is charged for the states it enters). Retries and the ShardFailed catch paths are not counted.
# Since sync rounds on the inline Map run in Express children (statemachines/training_rounds.asl.json), their
# transitions are not billed as such: see PARENT_TRANSITIONS_PER_CALL and express_round_orchestration below.
# Continued? (Choice), Preprocess, Prepared? (Choice), InitParameters, Mode? (Choice), EvaluateAndRegister; a data set
# prepared a piece per function adds PrepareStats, PrepareMerge, PrepareWrite, PrepareFinish and 1 per piece per Map.
FIXED_TRANSITIONS = 6
# A sync round on the inline Map: MapKind? (Choice) + ComputeGradients (Map) + 1 GradientWorker per shard
# + Aggregate + Converged? (Choice) = 4 + shards.
SYNC_ROUND_TRANSITIONS = 4
# A sync round on the Distributed Map (n_shards > inline_map_max_shards): MapKind? + ComputeGradientsDistributed
# + Aggregate + Converged? = 4 in the parent, and per shard 1 for starting its child execution + 1 for the child's
# DistributedGradientWorker = 4 + 2 x shards.
DISTRIBUTED_TRANSITIONS_PER_SHARD = 2
# An async pass (always the inline Map): AsyncSteps (Map) + 1 AsyncWorker per shard + AsyncProgress + AsyncDone?
# (Choice) = 3 + shards.
ASYNC_PASS_TRANSITIONS = 3
INLINE_MAP_MAX_SHARDS = 40  # schemas.MAX_INLINE_SHARDS, the default of inline_map_max_shards (a test checks)

# Billed time = a fixed part per invocation + a part per row. The per-row parts (the rest of a measured invocation is
# its fixed part: start-up, S3 round trips, orchestration inside the handler):
# - GradientWorker: 0.107 ms per 1,000 rows of its shard per round. docs/benchmarks.md (scaling, 16 shards, 28
#   features): a round costs 594.5, 597.4 and 606.5 µUSD at 100,000, 1,000,000 and 4,000,000 rows; only the
#   workers' GB-seconds change, at 1769 MB = 28.79 µUSD per second: (606.5 - 594.5) / 28.79 = 0.417 s for 3.9M rows.
# - Preprocess: 4.4 µs per row, all of it (benchmarks/preprocess.py, streaming: 225,000 rows/s at 2,000,000 rows,
#   252,000 rows/s at 200,000: no measurable fixed part).
# - Aggregator and Evaluate: fixed per invocation (the Aggregator's work is per shard and per feature, not per row;
#   Evaluate's grows with the test split, which is not scaled).
WORKER_MS_PER_ROW = 0.107 / 1000
PREPROCESS_MS_PER_ROW = 4.4 / 1000


def round_transitions(shards: int, mode: str = "sync", inline_max_shards: int = INLINE_MAP_MAX_SHARDS) -> int:
    """State transitions of one round (sync) or pass (async) over ``shards`` shards (see the counts above)."""
    if mode == "async":
        return ASYNC_PASS_TRANSITIONS + shards
    if shards > inline_max_shards:
        return SYNC_ROUND_TRANSITIONS + DISTRIBUTED_TRANSITIONS_PER_SHARD * shards
    return SYNC_ROUND_TRANSITIONS + shards


def _scaled_ms(fn: FunctionUsage, ms_per_row: float, measured_rows: float, rows: float, invocations: int) -> int:
    """``invocations`` x (the measured invocation's fixed part + ``ms_per_row`` x ``rows``), billed milliseconds."""
    per_call = fn.billed_ms / max(fn.invocations, 1)
    fixed = max(per_call - ms_per_row * measured_rows, 0.0)
    return math.ceil(round((fixed + ms_per_row * rows) * invocations, 6))


def what_if(
    measured: Usage,
    rows: int,
    shards: int,
    rounds: int,
    mode: str = "sync",
    inline_max_shards: int = INLINE_MAP_MAX_SHARDS,
) -> Usage:
    """Scale a measured run to another size. Each function's billed time is its measured fixed part per invocation
    plus its per-row part (``WORKER_MS_PER_ROW`` x rows per shard for a worker, ``PREPROCESS_MS_PER_ROW`` x rows for
    Preprocess); only the per-row part scales with rows. Invocations scale with shards and rounds, state transitions
    as ``round_transitions`` (a Distributed Map above ``inline_max_shards``). The measured run is taken as run in the
    same mode and on the same kind of Map."""
    if min(rows, shards, rounds) < 1:
        raise ValueError("rows, shards and rounds must be at least 1")
    m_rounds, m_shards = max(measured.rounds, 1), max(measured.shards, 1)
    out = Usage(rounds=rounds, shards=shards, train_rows=rows, result_values=measured.result_values)
    worker = measured.functions.get("GradientWorker", FunctionUsage())
    out.functions["GradientWorker"] = FunctionUsage(
        shards * rounds,
        _scaled_ms(worker, WORKER_MS_PER_ROW, measured.train_rows / m_shards, rows / shards, shards * rounds),
        worker.memory_mb,
    )
    agg = measured.functions.get("Aggregator", FunctionUsage())
    out.functions["Aggregator"] = FunctionUsage(rounds + 1, _scaled_ms(agg, 0.0, 0, 0, rounds + 1), agg.memory_mb)
    if "Preprocess" in measured.functions:
        fn = measured.functions["Preprocess"]
        billed = _scaled_ms(fn, PREPROCESS_MS_PER_ROW, measured.train_rows, rows, fn.invocations)
        out.functions["Preprocess"] = FunctionUsage(fn.invocations, billed, fn.memory_mb)
    if "Evaluate" in measured.functions:
        fn = measured.functions["Evaluate"]
        out.functions["Evaluate"] = FunctionUsage(fn.invocations, fn.billed_ms, fn.memory_mb)
    if measured.express_executions and mode == "sync" and shards <= inline_max_shards:
        # rounds in Express children, rounds_per_call() a call: the parent's transitions per call, the children's
        # requests, and their duration per round as measured
        calls = math.ceil(rounds / rounds_per_call())
        fixed = measured.state_transitions - measured.express_executions * PARENT_TRANSITIONS_PER_CALL
        out.state_transitions = max(fixed, 0) + calls * PARENT_TRANSITIONS_PER_CALL
        out.express_executions = calls
        out.express_gb_seconds = measured.express_gb_seconds / m_rounds * rounds
    else:
        fixed = measured.state_transitions - m_rounds * round_transitions(m_shards, mode, inline_max_shards)
        out.state_transitions = max(fixed, 0) + rounds * round_transitions(shards, mode, inline_max_shards)
    estimate_s3(out)
    return out


# A reference run to scale from before a run exists (the up-front check of POST /training-runs): 1,000,000 training
# rows, 16 shards, 100 sync rounds on the inline Map, at the template's memory sizes, built from the figures of the
# scaling benchmark in docs/benchmarks.md (1,000,000 rows / 16 shards: 597.4 µUSD a round) and benchmarks/preprocess.py.
# - GradientWorker, 1600 invocations at 1769 MB: 12 ms fixed + 0.107 ms per 1,000 rows x 62,500 rows = 18.6875 ms
#   each, 29,900 ms in all. The 12 ms: the shards axis (4, 16, 64 shards at 1,000,000 rows: 216.9, 597.4, 2121 µUSD
#   a round) less transitions, S3 requests and Lambda requests leaves 4.5, 8.2 and 24.6 µUSD of GB-seconds, of which
#   3.1 are the per-row part (0.107 s); the rest grows by 0.335 µUSD a shard = 11.6 ms at 1769 MB, billed as 12.
# - Aggregator, 101 invocations (init + one a round) at 1024 MB: 5 ms each (that fit's intercept, 1.42 - 4 x 0.335
#   = 0.08 µUSD = 4.8 ms at 1024 MB).
# - Preprocess, 1 invocation at 3008 MB: 4.4 µs a row x 1,000,000 rows = 4,400 ms.
# - Evaluate, 1 invocation at 2048 MB: 2,000 ms, assumed (no benchmark measures it).
# - State transitions: FIXED_TRANSITIONS + 100 x (4 + 16), counted from the ASL as above.
REFERENCE_RUN = Usage(
    functions={
        "GradientWorker": FunctionUsage(invocations=1600, billed_ms=29_900, memory_mb=1769),
        "Aggregator": FunctionUsage(invocations=101, billed_ms=505, memory_mb=1024),
        "Preprocess": FunctionUsage(invocations=1, billed_ms=4_400, memory_mb=3008),
        "Evaluate": FunctionUsage(invocations=1, billed_ms=2_000, memory_mb=2048),
    },
    state_transitions=FIXED_TRANSITIONS + 100 * (SYNC_ROUND_TRANSITIONS + 16),
    rounds=100,
    shards=16,
    train_rows=1_000_000,
    result_values=REFERENCE_RESULT_VALUES,
)


def estimate(
    rows: int, shards: int, rounds: int, mode: str = "sync", inline_max_shards: int = INLINE_MAP_MAX_SHARDS
) -> Usage:
    """The usage of a run of ``rows`` training rows over ``shards`` shards for ``rounds`` rounds (passes in async
    mode), before it runs: ``REFERENCE_RUN`` (a sync run on the inline Map) scaled by ``what_if``. Sync rounds on
    the inline Map run in Express children, ``rounds_per_call()`` a call of ``ROUND_SECONDS`` a round: the parent
    enters ``FIXED_TRANSITIONS`` + MapKind? + 2 states a call."""
    usage = what_if(REFERENCE_RUN, rows, shards, rounds, inline_max_shards=inline_max_shards)
    if mode == "async":  # the reference's rounds were sync: count the passes' own transitions
        usage.state_transitions = FIXED_TRANSITIONS + rounds * round_transitions(shards, "async")
    elif shards <= inline_max_shards:  # sync rounds on the inline Map run in Express children, per_call a call
        per_call = rounds_per_call()
        full, rest = divmod(rounds, per_call)
        usage.express_executions = full + (rest > 0)
        usage.state_transitions = FIXED_TRANSITIONS + 1 + usage.express_executions * PARENT_TRANSITIONS_PER_CALL
        usage.express_gb_seconds = full * express_gb_seconds(per_call * ROUND_SECONDS) + (
            express_gb_seconds(rest * ROUND_SECONDS) if rest else 0.0
        )
    return usage


# -- Standard loop or Express child: what a sync round's orchestration costs (docs/performance.md) -------------------
# An Express execution is billed per request and per GB-second of its duration, the duration rounded up to 100 ms and
# the memory it uses to 64 MB (64 MB is the least: a round's state is a few kilobytes); it runs at most 5 minutes.
EXPRESS_DURATION_STEP_MS = 100
EXPRESS_MEMORY_STEP_MB = 64
EXPRESS_MAX_SECONDS = 300
# The Standard parent's transitions per Express call: RunRounds (the startExecution.sync:2 Task) + RoundsDone? (Choice).
PARENT_TRANSITIONS_PER_CALL = 2
# What one sync round takes end to end on AWS, assumed for the estimates: the Map's Lambda invocations (the slowest
# worker, 19 ms of compute on a 62,500-row shard, plus invoke and S3 latency), the Aggregator and the transitions
# between them. Measured rounds on moto take 0.1-0.3 s (docs/benchmarks.md, Orchestration); 1 s leaves room.
ROUND_SECONDS = 1.0
# The slowest round a call is sized for: every worker retried once after a cold start and Lambda's backoff.
SLOW_ROUND_SECONDS = 6.0
# Share of Express's 5 minutes a call is sized to use at SLOW_ROUND_SECONDS a round.
EXPRESS_MARGIN = 0.5
# Billed time of a worker and of an aggregation, per invocation, where no history records it (in an Express child,
# or a Distributed Map's child read from its map run's counts): REFERENCE_RUN's figures below.
WORKER_FIXED_MS = 12
AGGREGATOR_MS = 5


def worker_ms(rows_per_shard: float) -> int:
    """Billed ms of one GradientWorker invocation on a shard of ``rows_per_shard`` rows (REFERENCE_RUN's model)."""
    return math.ceil(round(WORKER_FIXED_MS + WORKER_MS_PER_ROW * rows_per_shard, 6))


def express_gb_seconds(seconds: float, memory_mb: int = EXPRESS_MEMORY_STEP_MB) -> float:
    """Billed GB-seconds of one Express execution of ``seconds``: 100 ms and 64 MB steps, rounded up."""
    steps = max(1, math.ceil(round(seconds * 1000 / EXPRESS_DURATION_STEP_MS, 6)))
    memory = max(1, math.ceil(memory_mb / EXPRESS_MEMORY_STEP_MB)) * EXPRESS_MEMORY_STEP_MB
    return steps * EXPRESS_DURATION_STEP_MS / 1000 * memory / 1024


def rounds_per_call(
    round_seconds: float = SLOW_ROUND_SECONDS, limit_seconds: int = EXPRESS_MAX_SECONDS, margin: float = EXPRESS_MARGIN
) -> int:
    """Rounds an Express call runs so that it lasts ``margin`` x ``limit_seconds`` at most at ``round_seconds`` a
    round: the default, 0.5 x 300 s / 6 s = 25."""
    if round_seconds <= 0 or not 0 < margin <= 1:
        raise ValueError("round_seconds must be positive and margin in (0, 1]")
    return max(1, math.floor(round(limit_seconds * margin / round_seconds, 6)))


def standard_round_orchestration(shards: int, prices: PriceTable) -> float:
    """USD of one sync round's orchestration in the Standard loop (inline Map): ``4 + shards`` transitions."""
    return round_transitions(shards) * prices.state_transition


def express_round_orchestration(
    rounds: int, prices: PriceTable, round_seconds: float = ROUND_SECONDS, memory_mb: int = EXPRESS_MEMORY_STEP_MB
) -> float:
    """USD per round of an Express child running ``rounds`` sync rounds per call (its loop body: Map -> Aggregate
    -> Choice, whatever the shards: Express does not bill transitions), started by the Standard parent: the parent's
    ``PARENT_TRANSITIONS_PER_CALL`` transitions, one Express request and the call's duration (``rounds`` x
    ``round_seconds``), shared by its rounds."""
    if rounds < 1 or rounds * round_seconds > EXPRESS_MAX_SECONDS:
        raise ValueError(
            f"{rounds} rounds of {round_seconds} s do not fit in one Express execution ({EXPRESS_MAX_SECONDS} s)"
        )
    call = (
        PARENT_TRANSITIONS_PER_CALL * prices.state_transition
        + prices.express_request
        + express_gb_seconds(rounds * round_seconds, memory_mb) * prices.express_gb_second
    )
    return call / rounds


def round_compute(shards: int, rows_per_shard: int, prices: PriceTable) -> dict[str, float]:
    """USD of one sync round's Lambda invocations and S3 requests, the same for either orchestration: the workers
    (``REFERENCE_RUN``'s 12 ms fixed + ``WORKER_MS_PER_ROW`` a row at 1769 MB, billed in whole ms) and the Aggregator
    (5 ms at 1024 MB), and their S3 requests (``S3_REQUESTS``)."""
    lam = shards * (worker_ms(rows_per_shard) / 1000 * 1769 / 1024 * prices.lambda_gb_second + prices.lambda_request)
    lam += AGGREGATOR_MS / 1000 * 1024 / 1024 * prices.lambda_gb_second + prices.lambda_request
    s3 = round_s3_requests(shards, REFERENCE_RESULT_VALUES)  # the reference's gradients: inline
    return {"lambda": lam, "s3": s3["get"] * prices.s3_get + s3["put"] * prices.s3_put}


def round_comparison(
    shards: int = 8,
    rows: int = 1_000_000,
    prices: PriceTable | None = None,
    rounds: int | None = None,
    round_seconds: float = ROUND_SECONDS,
) -> dict[str, Any]:
    """One sync round over ``shards`` shards of ``rows`` training rows, in USD: the Standard loop against Express
    children of ``rounds`` rounds a call (``rounds_per_call()`` by default)."""
    prices = prices or price_table("us-east-1")
    k = rounds or rounds_per_call()
    compute = round_compute(shards, rows // shards, prices)
    standard = standard_round_orchestration(shards, prices)
    express = express_round_orchestration(k, prices, round_seconds)
    before = standard + compute["lambda"] + compute["s3"]
    after = express + compute["lambda"] + compute["s3"]
    return {
        "shards": shards,
        "rounds_per_call": k,
        "round_seconds": round_seconds,
        "lambda": compute["lambda"],
        "s3": compute["s3"],
        "standard_orchestration": standard,
        "express_orchestration": express,
        "standard_round": before,
        "express_round": after,
        "ratio": before / after,
    }


def round_comparison_text(shards: int = 8, rows: int = 1_000_000) -> str:
    """The comparison above as the lines docs/performance.md quotes (``python -m mlcore.math.cost``)."""
    c = round_comparison(shards, rows)
    usd = "{:.7f}".format
    return "\n".join(
        [
            f"sync round, {shards} shards of {rows // shards:,} rows, us-east-1:",
            f"  Lambda {usd(c['lambda'])}  S3 {usd(c['s3'])}",
            f"  Standard loop:  orchestration {usd(c['standard_orchestration'])}  round {usd(c['standard_round'])}",
            f"  Express x{c['rounds_per_call']}:    orchestration {usd(c['express_orchestration'])}  "
            f"round {usd(c['express_round'])}",
            f"  {c['ratio']:.1f}x cheaper a round; orchestration "
            f"{c['standard_orchestration'] / c['express_orchestration']:.0f}x",
        ]
    )


# -- tuning jobs (mlcore.math.tuning): ASHA's worst case, and the same search as SageMaker would bill it -------------
# The tuning state machine's own work per (trial, rung) job (statemachines/tuning.asl.json), assumed (its Lambda
# functions are not benchmarked): a slot's loop enters NextJob, Action?, RunTrial and RecordResult, plus two waits for
# results (NextJob, Action?, WaitForResults each): 10 transitions; four Lambda invocations (NextJob three times,
# RecordResult) of 200 ms at 1024 MB; three S3 GETs and two PUTs (the claims read and written, the result written
# create-only).
TUNING_TRANSITIONS_PER_JOB = 10
TUNING_LAMBDA_CALLS_PER_JOB = 4
TUNING_LAMBDA_MS_PER_JOB = TUNING_LAMBDA_CALLS_PER_JOB * 200
TUNING_LAMBDA_MB = 1024
TUNING_S3_PER_JOB = {"get": 3, "put": 2}


def trial_cost(
    rows: int,
    shards: int,
    epochs: int,
    prices: PriceTable,
    mode: str = "sync",
    inline_max_shards: int = INLINE_MAP_MAX_SHARDS,
) -> float:
    """USD of one tuning trial of ``epochs`` rounds (passes in async mode) over ``shards`` shards of ``rows``
    training rows: ``estimate``'s run without its Preprocess (a tuning job prepares its data once for all trials)."""
    usage = estimate(rows, shards, epochs, mode=mode, inline_max_shards=inline_max_shards)
    usage.functions.pop("Preprocess", None)
    estimate_s3(usage)
    usage.s3_put -= usage.shards  # the shards are written once, by the job's preparation
    return float(cost(usage, prices)["total"])


def preprocessing_cost(rows: int, shards: int, prices: PriceTable) -> float:
    """USD of preparing ``rows`` training rows into ``shards`` shards once (``REFERENCE_RUN``'s Preprocess scaled
    by rows, its S3 requests and one PUT per shard)."""
    usage = estimate(rows, shards, 1)
    fn = usage.functions["Preprocess"]
    lam = fn.gb_seconds * prices.lambda_gb_second + fn.invocations * prices.lambda_request
    s3 = S3_REQUESTS["Preprocess"]
    return lam + s3["get"] * prices.s3_get + (s3["put"] + shards) * prices.s3_put


def estimated_tuning_cost(
    rows: int,
    shards: int,
    rung_epochs: list[int],
    n_trials: int,
    eta: int,
    prices: PriceTable,
    modes: tuple[str, ...] = ("sync",),
    inline_max_shards: int = INLINE_MAP_MAX_SHARDS,
) -> dict[str, Any]:
    """The most a tuning job of ``n_trials`` trials costs in USD under ASHA with reduction factor ``eta`` over rungs
    of ``rung_epochs`` epochs: at rung k at most ``ceil(n_trials / eta**k)`` jobs (``mlcore.math.tuning.rung_caps``,
    which ``next_job`` never exceeds), each priced as a trial trained from scratch for the rung's epochs in the
    dearest of ``modes`` (``trial_cost``: every epoch a full round, no early convergence; a promoted trial that
    continues from its checkpoint costs less), plus the data preparation once and the tuning state machine's own
    work per job (``TUNING_*``). ``one_trial`` is the data preparation and one trial to the last rung: a budget below
    it cannot run the search."""
    if min(rows, shards, n_trials) < 1 or not rung_epochs or min(rung_epochs) < 1 or eta < 2:
        raise ValueError("rows, shards, n_trials and every rung's epochs must be at least 1, and eta at least 2")
    jobs = rung_caps(n_trials, len(rung_epochs), eta)

    def dearest(epochs: int) -> float:
        return max(trial_cost(rows, shards, epochs, prices, m, inline_max_shards) for m in dict.fromkeys(modes))

    per_job = (
        TUNING_TRANSITIONS_PER_JOB * prices.state_transition
        + TUNING_LAMBDA_CALLS_PER_JOB * prices.lambda_request
        + TUNING_LAMBDA_MS_PER_JOB / 1000 * TUNING_LAMBDA_MB / 1024 * prices.lambda_gb_second
        + TUNING_S3_PER_JOB["get"] * prices.s3_get
        + TUNING_S3_PER_JOB["put"] * prices.s3_put
    )
    preparation = preprocessing_cost(rows, shards, prices)
    trials = sum(n * dearest(e) for n, e in zip(jobs, rung_epochs, strict=True))
    orchestration = sum(jobs) * per_job
    return {
        "region": prices.region,
        "total": preparation + trials + orchestration,
        "preprocessing": preparation,
        "trials": trials,
        "orchestration": orchestration,
        "jobs_per_rung": jobs,
        "epochs": sum(n * e for n, e in zip(jobs, rung_epochs, strict=True)),
        "one_trial": preparation + dearest(rung_epochs[-1]) + per_job,
    }


# SageMaker Automatic Model Tuning bills the training jobs it starts (the tuning itself is free): instance time per
# second. Assumed: ml.m5.large (2 vCPU, 8 GiB: enough for these tabular data sets), on-demand training price in
# us-east-1 of $0.115 an hour (the SageMaker AI pricing page's list price as read in November 2026), one instance per
# job, and a billed minimum of 60 s per job; instance start-up (typically minutes) is not counted, which favours
# SageMaker.
SAGEMAKER_INSTANCE = "ml.m5.large"
SAGEMAKER_USD_PER_HOUR = 0.115
SAGEMAKER_MIN_BILLED_SECONDS = 60


def sagemaker_tuning_cost(
    job_seconds: list[float],
    usd_per_hour: float = SAGEMAKER_USD_PER_HOUR,
    min_billed_seconds: int = SAGEMAKER_MIN_BILLED_SECONDS,
    instance_type: str = SAGEMAKER_INSTANCE,
) -> dict[str, Any]:
    """What SageMaker Automatic Model Tuning would bill for a search whose training jobs take ``job_seconds`` each
    (e.g. one per trial, as measured locally): each job billed per whole second, at least ``min_billed_seconds``,
    at ``usd_per_hour`` for one ``instance_type`` instance (see the assumptions above)."""
    if any(s < 0 for s in job_seconds) or usd_per_hour < 0 or min_billed_seconds < 0:
        raise ValueError("job seconds, the hourly price and the billed minimum must not be negative")
    billed = [max(min_billed_seconds, math.ceil(round(s, 6))) for s in job_seconds]
    return {
        "instance_type": instance_type,
        "usd_per_hour": usd_per_hour,
        "jobs": len(billed),
        "billed_seconds": sum(billed),
        "total": sum(billed) * usd_per_hour / 3600,
    }


if __name__ == "__main__":
    print(round_comparison_text())
