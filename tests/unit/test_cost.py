"""Cost model: prices per item and the what-if scaling."""

from __future__ import annotations

import pytest

from mlcore.math import cost
from mlcore.steps import schemas


def _measured() -> cost.Usage:
    # 5 transitions outside the rounds (Continued?, Preprocess, InitParameters, Mode?, EvaluateAndRegister),
    # 4 + 4 a round (MapKind?, ComputeGradients, 4 x GradientWorker, Aggregate, Converged?)
    usage = cost.Usage(rounds=10, shards=4, train_rows=40_000, state_transitions=5 + 10 * (4 + 4))
    usage.functions["GradientWorker"] = cost.FunctionUsage(40, 4_000, 1769)
    usage.functions["Aggregator"] = cost.FunctionUsage(11, 550, 1024)
    usage.functions["Preprocess"] = cost.FunctionUsage(1, 2_000, 3008)
    usage.functions["Evaluate"] = cost.FunctionUsage(1, 100, 1024)
    cost.estimate_s3(usage)
    return usage


def test_cost_prices_each_item_of_the_breakdown():
    usage = _measured()
    prices = cost.price_table("us-east-1")
    doc = cost.cost(usage, prices)
    # a function: GB-seconds and requests
    worker = 4.0 * 1769 / 1024 * prices.lambda_gb_second + 40 * prices.lambda_request
    assert doc["breakdown"]["Lambda GradientWorker"] == pytest.approx(worker)
    assert doc["breakdown"]["Step Functions state transitions"] == pytest.approx(85 * 0.025 / 1000)
    assert doc["breakdown"]["S3 requests"] == pytest.approx(usage.s3_get * 0.0004 / 1000 + usage.s3_put * 0.005 / 1000)


def test_cost_total_is_the_sum_of_the_breakdown():
    doc = cost.cost(_measured(), cost.price_table("us-east-1"))
    assert doc["total"] == pytest.approx(sum(doc["breakdown"].values()))


def test_s3_requests_are_estimated_from_the_access_pattern():
    usage = _measured()
    # S3 access pattern: per worker 2 GET + 1 PUT, per aggregation 4 GET + 2 PUT + 1 GET per shard, ...
    assert usage.s3_get == 40 * 2 + 11 * 4 + 3 + 5 + 4 * 10
    assert usage.s3_put == 40 * 1 + 11 * 2 + 2 + 3 + 4


def test_what_if_at_the_measured_size_changes_nothing():
    measured = _measured()
    same = cost.what_if(measured, 40_000, 4, 10)
    assert same.functions["GradientWorker"].billed_ms == 4_000
    assert same.state_transitions == measured.state_transitions


def test_what_if_scales_only_the_per_row_part_of_a_worker_with_rows_per_shard():
    assert cost.WORKER_MS_PER_ROW == 0.107 / 1000 and cost.PREPROCESS_MS_PER_ROW == 4.4 / 1000
    bigger = cost.what_if(_measured(), 400_000, 8, 20)
    # measured: 100 ms a call on 10,000 rows a shard = 100 - 0.107 x 10 = 98.93 ms fixed + 1.07 ms of rows;
    # 400,000 rows over 8 shards = 50,000 rows a shard: 98.93 + 0.107 x 50 = 104.28 ms x 160 calls = 16,684.8 ms
    assert bigger.functions["GradientWorker"].invocations == 160
    assert bigger.functions["GradientWorker"].billed_ms == 16_685
    # Preprocess: 2,000 ms on 40,000 rows = 2000 - 4.4 x 40 = 1,824 ms fixed; + 4.4 x 400 = 3,584 ms
    assert bigger.functions["Preprocess"].billed_ms == 3_584
    # the Aggregator's calls are fixed: 50 ms each (550 ms / 11), 21 calls; Evaluate as measured
    assert bigger.functions["Aggregator"].billed_ms == 21 * 50
    assert bigger.functions["Evaluate"].billed_ms == 100


def test_what_if_does_not_scale_the_per_call_overhead_with_rows():
    # a small run (32 training rows, 2 shards, 3 rounds, 100 ms a worker call, nearly all of it fixed) priced at
    # 800,000 rows: each call is (100 - 0.107 x 0.016) + 0.107 x 400 = 142.798288 ms, 6 calls = 856.79 ms
    small = cost.Usage(rounds=3, shards=2, train_rows=32, state_transitions=5 + 3 * (4 + 2))
    small.functions["GradientWorker"] = cost.FunctionUsage(6, 600, 1769)
    small.functions["Aggregator"] = cost.FunctionUsage(4, 200, 1024)
    bigger = cost.what_if(small, 800_000, 2, 3)
    assert bigger.functions["GradientWorker"].billed_ms == 857
    worker = 0.857 * 1769 / 1024 * 0.0000166667 + 6 * 0.2 / 1e6
    doc = cost.cost(bigger, cost.price_table("us-east-1"))
    assert doc["breakdown"]["Lambda GradientWorker"] == pytest.approx(worker)


def test_a_round_is_4_plus_shards_transitions():
    assert cost.round_transitions(8) == 4 + 8
    bigger = cost.what_if(_measured(), 400_000, 8, 20)
    # 85 measured - 10 rounds x (4 + 4) = 5 outside the rounds, + 20 rounds x (4 + 8)
    assert bigger.state_transitions == 5 + 20 * 12 == 245


def test_an_async_pass_is_3_plus_shards_transitions():
    assert cost.round_transitions(8, "async") == 3 + 8
    # AsyncSteps, 8 x AsyncWorker, AsyncProgress, AsyncDone?; 5 outside the passes
    assert cost.estimate(100_000, 8, 50, mode="async").state_transitions == 5 + 50 * 11 == 555


def test_rounds_above_the_inline_map_limit_count_the_distributed_map_children():
    assert cost.INLINE_MAP_MAX_SHARDS == schemas.MAX_INLINE_SHARDS == 40
    # 64 shards: MapKind?, ComputeGradientsDistributed, Aggregate, Converged? + per shard 1 child execution started
    # + its DistributedGradientWorker state
    assert cost.round_transitions(64) == 4 + 2 * 64 == 132
    assert cost.round_transitions(40) == 4 + 40  # still the inline Map
    assert cost.round_transitions(41) == 4 + 2 * 41
    assert cost.round_transitions(64, inline_max_shards=64) == 4 + 64
    bigger = cost.what_if(_measured(), 400_000, 64, 20)
    assert bigger.state_transitions == 5 + 20 * 132 == 2_645
    assert cost.estimate(1_000_000, 64, 100).state_transitions == 5 + 100 * 132 == 13_205
    prices = cost.price_table("us-east-1")
    sixteen = cost.cost(cost.estimate(1_000_000, 16, 100), prices)["total"]
    sixty_four = cost.cost(cost.estimate(1_000_000, 64, 100), prices)["total"]
    assert sixty_four > sixteen


def test_the_reference_run_is_the_benchmarked_one():
    ref = cost.REFERENCE_RUN
    assert (ref.train_rows, ref.shards, ref.rounds) == (1_000_000, 16, 100)
    # 1600 worker calls of 12 ms + 0.107 ms x 62.5 thousand rows = 18.6875 ms
    assert ref.functions["GradientWorker"].billed_ms == 1600 * 18.6875 == 29_900
    assert ref.functions["Aggregator"].billed_ms == 101 * 5
    assert ref.functions["Preprocess"].billed_ms == 1_000_000 * 0.0044
    assert ref.state_transitions == 5 + 100 * (4 + 16)
    # estimated at its own size, the reference changes nothing
    same = cost.estimate(1_000_000, 16, 100)
    assert same.functions == ref.functions and same.state_transitions == ref.state_transitions


def test_what_if_needs_at_least_one_row():
    measured = _measured()
    with pytest.raises(ValueError, match="at least 1"):
        cost.what_if(measured, 0, 4, 10)


def test_unknown_regions_use_the_default_prices():
    assert cost.price_table("xx-nowhere-1").lambda_gb_second == cost.price_table("us-east-1").lambda_gb_second
    assert cost.step_of("arn:aws:lambda:us-east-1:1:function:stack-GradientWorkerFunction-AB12") == "GradientWorker"
