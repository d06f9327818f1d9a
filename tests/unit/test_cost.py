"""Cost model: prices per item and the what-if scaling."""

from __future__ import annotations

import pytest

from mlcore.math import cost
from mlcore.steps import schemas
from tests.helpers import ROOT


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
    # AsyncSteps, 8 x AsyncWorker, AsyncProgress, AsyncDone?; 6 outside the passes
    assert cost.estimate(100_000, 8, 50, mode="async").state_transitions == 6 + 50 * 11 == 556


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
    assert cost.estimate(1_000_000, 64, 100).state_transitions == 6 + 100 * 132 == 13_206
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
    assert ref.state_transitions == 6 + 100 * (4 + 16)
    # estimated at its own size, the reference changes nothing but its orchestration: 4 Express calls of 25 rounds
    same = cost.estimate(1_000_000, 16, 100)
    assert same.functions == ref.functions and same.state_transitions == 6 + 1 + 4 * 2


def test_what_if_needs_at_least_one_row():
    measured = _measured()
    with pytest.raises(ValueError, match="at least 1"):
        cost.what_if(measured, 0, 4, 10)


def test_unknown_regions_use_the_default_prices():
    assert cost.price_table("xx-nowhere-1").lambda_gb_second == cost.price_table("us-east-1").lambda_gb_second
    assert cost.step_of("arn:aws:lambda:us-east-1:1:function:stack-GradientWorkerFunction-AB12") == "GradientWorker"


# -- Standard loop against Express children (docs/performance.md) --------------------------------------------------
def test_express_duration_is_billed_in_100_ms_and_64_mb_steps():
    assert cost.express_gb_seconds(0.01) == 0.1 * 64 / 1024  # the least: one step of each
    assert cost.express_gb_seconds(0.1) == 0.1 * 64 / 1024
    assert cost.express_gb_seconds(0.101) == 0.2 * 64 / 1024
    assert cost.express_gb_seconds(25.0) == 250 * 0.1 * 64 / 1024 == 1.5625
    assert cost.express_gb_seconds(1.0, memory_mb=65) == 1.0 * 128 / 1024


def test_rounds_per_call_keeps_a_call_to_half_of_express_five_minutes():
    assert cost.rounds_per_call() == 25 == 0.5 * 300 / 6  # the default at 6 s a round
    assert cost.rounds_per_call(1.0) == 150
    assert cost.rounds_per_call(7.0) == 21  # 150 / 7 = 21.4
    assert cost.rounds_per_call(400.0) == 1
    assert schemas.TrainingRequest.model_fields["rounds_per_call"].default == cost.rounds_per_call()
    with pytest.raises(ValueError, match="round_seconds must be positive"):
        cost.rounds_per_call(0)


def test_standard_round_orchestration_is_its_transitions():
    prices = cost.price_table("us-east-1")
    assert cost.standard_round_orchestration(8, prices) == pytest.approx(12 * 0.025 / 1000) == 0.0003


def test_express_round_orchestration_shares_a_call_among_its_rounds():
    prices = cost.price_table("us-east-1")
    # a call of 25 rounds of 1 s: 2 parent transitions (5e-5) + 1 request (1e-6) + 25 s x 64 MB = 1.5625 GB-s x
    # 0.00001667 = 2.6047e-5; 7.7047e-5 / 25 rounds = 3.0819e-6 a round
    assert cost.express_round_orchestration(25, prices) == pytest.approx(7.70469e-5 / 25, rel=1e-5)
    # one round a call: 5e-5 + 1e-6 + 1 s (0.0625 GB-s = 1.0419e-6) = 5.2042e-5, still 5.8x under Standard's 3e-4
    assert cost.express_round_orchestration(1, prices) == pytest.approx(5.20419e-5, rel=1e-5)
    with pytest.raises(ValueError, match="do not fit in one Express execution"):
        cost.express_round_orchestration(301, prices)


def test_an_8_shard_round_costs_at_least_3x_less_with_express_children():
    c = cost.round_comparison(8, 1_000_000)
    # Lambda: 8 workers x 26 ms (12 + 0.107 x 125) at 1769 MB + the Aggregator's 5 ms at 1024 MB, 9 requests
    lam = 8 * (0.026 * 1769 / 1024 * 0.0000166667 + 2e-7) + 0.005 * 0.0000166667 + 2e-7
    assert c["lambda"] == pytest.approx(lam)
    # S3: each worker GETs the parameters and its shard, the Aggregator 4 GET + 2 PUT; the gradients travel inline
    assert c["s3"] == pytest.approx((8 * 2 + 4) * 0.0004 / 1000 + 2 * 0.005 / 1000)
    assert c["standard_round"] == pytest.approx(0.0003 + lam + c["s3"]) == pytest.approx(0.000326, abs=1e-6)
    assert c["express_round"] == pytest.approx(7.70469e-5 / 25 + lam + c["s3"]) == pytest.approx(2.9e-5, abs=1e-6)
    assert c["ratio"] >= 3 and round(c["ratio"], 1) == 11.3


def test_the_comparison_prints_the_figures_docs_performance_quotes():
    text = cost.round_comparison_text()
    assert text.splitlines() == [
        "sync round, 8 shards of 125,000 rows, us-east-1:",
        "  Lambda 0.0000079  S3 0.0000180",
        "  Standard loop:  orchestration 0.0003000  round 0.0003259",
        "  Express x25:    orchestration 0.0000031  round 0.0000290",
        "  11.3x cheaper a round; orchestration 97x",
    ]


def test_express_executions_are_priced_in_the_breakdown():
    usage = _measured()
    assert "Step Functions Express" not in cost.cost(usage, cost.price_table("us-east-1"))["breakdown"]
    usage.express_executions, usage.express_gb_seconds = 4, 1.5625
    doc = cost.cost(usage, cost.price_table("us-east-1"))
    assert doc["breakdown"]["Step Functions Express"] == pytest.approx(4 * 1e-6 + 1.5625 * 0.00001667)


def test_estimate_runs_sync_rounds_on_the_inline_map_in_express_children():
    usage = cost.estimate(1_000_000, 8, 60)
    # 60 rounds = 25 + 25 + 10: 3 calls; the parent enters 6 + MapKind? + 2 a call
    assert (usage.express_executions, usage.state_transitions) == (3, 6 + 1 + 3 * 2)
    assert usage.express_gb_seconds == pytest.approx(2 * 25 * 64 / 1024 + 10 * 64 / 1024)  # 1 s a round
    assert usage.functions["GradientWorker"].invocations == 8 * 60
    distributed = cost.estimate(1_000_000, 41, 60)  # the Distributed Map stays in the Standard parent
    assert (distributed.express_executions, distributed.state_transitions) == (0, 6 + 60 * (4 + 2 * 41))


def test_what_if_scales_a_measured_run_with_express_children_by_its_calls():
    measured = _measured()  # 10 rounds over 4 shards, in 1 call of 2 parent transitions (6 + MapKind? + 2)
    measured.state_transitions, measured.express_executions, measured.express_gb_seconds = 8, 1, 0.625
    bigger = cost.what_if(measured, 40_000, 4, 60)  # rounds_per_call() = 25 rounds a call: 3 calls
    assert (bigger.express_executions, bigger.state_transitions) == (3, 6 + 3 * 2)
    assert bigger.express_gb_seconds == pytest.approx(0.625 / 10 * 60)


def test_docs_performance_quotes_the_printed_comparison():
    page = (ROOT / "docs" / "performance.md").read_text()
    quoted = "\n".join("    " + line for line in cost.round_comparison_text().splitlines())
    assert quoted in page
