"""Asynchronous mode against moto S3 with real threads: compare-and-swap on the parameter version
applies every accepted submission exactly once; a last-writer-wins baseline loses updates."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.storage import Conflict, S3Store
from mlcore.math import optimizers
from mlcore.steps import asynchronous
from mlcore.steps.schemas import AsyncProgressTask, AsyncWorkerResult, Hyperparameters, InitTask
from tests.helpers import load_event

WORKERS = 8
SUBMISSIONS = 5
N_PARAMS = 6
LR = 0.01


def _race(cloud, *, compare_and_swap: bool, max_staleness: int = 8):
    """8 threads x 5 submissions of known gradients; every thread's first gradient is computed at the
    same version (a barrier), so they all collide on their first write."""
    store = S3Store(cloud.stack.bucket)
    hp = Hyperparameters(optimizer="sgd", learning_rate=LR, max_staleness=max_staleness)
    init = InitTask(action="init", run_id="run-race", n_features=N_PARAMS - 1, hyperparameters=hp, mode="async")
    asynchronous.init_async_run(store, init)
    key = layout.async_head_key("run-race")
    barrier = threading.Barrier(WORKERS)
    applied: list[list[asynchronous.Applied]] = [[] for _ in range(WORKERS)]
    used: list[list[np.ndarray]] = [[] for _ in range(WORKERS)]
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for s in range(SUBMISSIONS):
                calls = {"n": 0, "last": None}

                def gradient(theta, w=w, s=s, calls=calls):
                    if s == 0 and calls["n"] == 0:
                        barrier.wait(timeout=30)
                    calls["n"] += 1
                    # a distinct gradient per (worker, submission, recomputation), independent of theta
                    grad = np.random.default_rng([w, s, calls["n"]]).normal(size=N_PARAMS)
                    calls["last"] = grad
                    return float(np.dot(grad, grad)), grad

                applied[w].append(asynchronous.submit(store, key, gradient, hp, compare_and_swap=compare_and_swap))
                used[w].append(calls["last"])
        except BaseException as err:  # surfaced by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    head = asynchronous.read_head(store, key)
    flat = [a for per_worker in applied for a in per_worker]
    pairs = [(a.version, g) for w in range(WORKERS) for a, g in zip(applied[w], used[w], strict=True)]
    by_version = sorted(pairs, key=lambda pair: pair[0])
    return head, flat, sum(g for per_worker in used for g in per_worker), by_version


def test_conditional_writes_apply_every_accepted_submission_exactly_once(cloud):
    """Compare-and-swap on the head's ETag."""
    head, applied, grad_sum, _ = _race(cloud, compare_and_swap=True)
    accepted = WORKERS * SUBMISSIONS
    assert len(applied) == accepted
    # one version per accepted submission: no update lost, none applied twice
    assert head.version == accepted
    assert sorted(a.version for a in applied) == list(range(1, accepted + 1))
    # SGD from zero: the final parameters are exactly -lr times the sum of the applied gradients
    np.testing.assert_allclose(head.theta.ravel(), -LR * grad_sum, rtol=1e-10, atol=1e-12)
    # the first wave collided: 7 of 8 writes lost a compare-and-swap and were retried on newer parameters
    assert sum(a.conflicts for a in applied) >= WORKERS - 1
    assert max(a.staleness for a in applied) >= 1


def test_the_heads_average_folds_in_every_applied_update_exactly_once(cloud):
    head, _, _, by_version = _race(cloud, compare_and_swap=True)
    assert [v for v, _ in by_version] == list(range(1, WORKERS * SUBMISSIONS + 1))
    # SGD from zero: the parameters after version v are -lr times the gradients of versions 1..v
    iterates = -LR * np.cumsum([g for _, g in by_version], axis=0)
    expected = None
    for version, theta in enumerate(iterates, start=1):
        expected = optimizers.iterate_average(expected, theta, version, power=Hyperparameters().averaging_power)
    np.testing.assert_allclose(head.average.ravel(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(head.theta.ravel(), iterates[-1], rtol=1e-10, atol=1e-12)


def test_last_writer_wins_loses_updates(cloud):
    head, applied, grad_sum, _ = _race(cloud, compare_and_swap=False)
    accepted = WORKERS * SUBMISSIONS
    assert len(applied) == accepted
    # the 8 writes of the first wave all built on version 0: 7 updates were overwritten
    assert head.version <= accepted - (WORKERS - 1)
    assert not np.allclose(head.theta.ravel(), -LR * grad_sum)


def test_too_stale_gradients_are_recomputed_not_dropped(cloud):
    head, applied, grad_sum, _ = _race(cloud, compare_and_swap=True, max_staleness=2)
    accepted = WORKERS * SUBMISSIONS
    assert head.version == accepted
    assert max(a.staleness for a in applied) <= 2
    assert sum(a.recomputed for a in applied) > 0  # 8 writers on one version: some were more than 2 behind
    np.testing.assert_allclose(head.theta.ravel(), -LR * grad_sum, rtol=1e-10, atol=1e-12)


def test_a_write_conditioned_on_an_old_etag_is_a_conflict(cloud):
    store = S3Store(cloud.stack.bucket)
    first = store.put_bytes("scratch/cas", b"a")
    second = store.put_bytes("scratch/cas", b"b", if_match=first)
    with pytest.raises(Conflict):
        store.put_bytes("scratch/cas", b"c", if_match=first)
    assert store.get_bytes_with_etag("scratch/cas") == (b"b", second)


def _ok(cloud, function, event):
    payload, error = cloud.invoke(function, event)
    assert error is None, payload
    return payload


def _async_round_zero(cloud) -> tuple[dict, list[dict]]:
    """The sample data set preprocessed, an async run initialized, each shard's worker run once."""
    _ok(cloud, "IngestFunction", load_event("ingest_api"))
    prepared = _ok(cloud, "PreprocessFunction", load_event("preprocess"))
    hp = {"optimizer": "sgd", "learning_rate": 0.05, "batch_size": 5, "steps_per_invocation": 3, "max_epochs": 5}
    init = {**load_event("aggregator_init"), "mode": "async", "hyperparameters": hp}
    _ok(cloud, "AggregatorFunction", init)
    results = [
        _ok(
            cloud,
            "GradientWorkerFunction",
            {"action": "async_steps", "run_id": "run-example", "round": 0, "shard": shard, "hyperparameters": hp},
        )
        for shard in prepared["data"]["shards"]
    ]
    event = {"action": "async_progress", "run_id": "run-example", "round": 0, "hyperparameters": hp}
    return event, results


def _progress_with_a_late_result(cloud) -> tuple[dict, list[dict], dict, dict]:
    """Round 0's progress from both workers, a late result of round 4 and a duplicate; the stored summary."""
    event, results = _async_round_zero(cloud)
    late = AsyncWorkerResult.model_validate({**results[0], "shard": 7, "round": 4}).model_dump()
    state = _ok(cloud, "AggregatorFunction", {**event, "results": [*results, late, results[1]]})
    summary = S3Store(cloud.stack.bucket).get_json("runs/run-example/rounds/round-00000.json")
    return event, results, state, summary


def test_async_workers_submit_their_steps_to_the_head(cloud):
    _, results = _async_round_zero(cloud)
    assert [r["submitted"] for r in results] == [3, 3]
    assert sorted(v for r in results for v in r["versions"]) == list(range(1, 7))


def test_async_progress_records_the_round(cloud):
    _, _, state, summary = _progress_with_a_late_result(cloud)
    assert state["round"] == 1 and state["done"] is False
    assert state["params_key"] == "runs/run-example/params/round-00001.npz"
    assert summary["staleness_max"] == 0 and summary["mode"] == "async"


def test_async_progress_ignores_late_results(cloud):
    _, _, _, summary = _progress_with_a_late_result(cloud)
    assert (summary["version"], summary["updates"], summary["ignored_shards"]) == (6, 6, [7])


def test_a_replayed_async_progress_returns_the_stored_state(cloud):
    event, results, state, _ = _progress_with_a_late_result(cloud)
    # a replay of the same round returns the stored state
    assert _ok(cloud, "AggregatorFunction", {**event, "results": results}) == state
    AsyncProgressTask.model_validate({**event, "results": results})
