"""Cost model: prices per item and the what-if scaling."""

from __future__ import annotations

import pytest

from mlcore.math import cost


def _measured() -> cost.Usage:
    usage = cost.Usage(rounds=10, shards=4, train_rows=40_000, state_transitions=2 + 10 * (3 + 4) + 3)
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
    assert doc["breakdown"]["Step Functions state transitions"] == pytest.approx(75 * 0.025 / 1000)
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


def test_what_if_scales_workers_with_rows_per_shard():
    bigger = cost.what_if(_measured(), 400_000, 8, 20)
    # 10x rows over 2x shards: each worker runs 5x longer, 4x as many worker invocations
    assert bigger.functions["GradientWorker"].invocations == 160
    assert bigger.functions["GradientWorker"].billed_ms == 160 * 500
    assert bigger.functions["Preprocess"].billed_ms == 20_000


def test_what_if_scales_transitions_with_rounds():
    bigger = cost.what_if(_measured(), 400_000, 8, 20)
    assert bigger.state_transitions == 5 + 20 * (3 + 8)


def test_what_if_needs_at_least_one_row():
    measured = _measured()
    with pytest.raises(ValueError, match="at least 1"):
        cost.what_if(measured, 0, 4, 10)


def test_unknown_regions_use_the_default_prices():
    assert cost.price_table("xx-nowhere-1").lambda_gb_second == cost.price_table("us-east-1").lambda_gb_second
    assert cost.step_of("arn:aws:lambda:us-east-1:1:function:stack-GradientWorkerFunction-AB12") == "GradientWorker"
