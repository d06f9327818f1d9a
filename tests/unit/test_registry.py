"""Aliases: automatic promotion on a better test metric, forced promotion, rollback history (fake store)."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.errors import ConflictError, InvalidInput, NotFoundError
from mlcore.serving import online, registry
from mlcore.steps import evaluation

from .fakes import CrashAt, FakeClock, FakeStore
from .helpers import make_artifact


def fields(r2: float | None = None, log_loss: float | None = None, classifier: bool = False) -> dict:
    art = make_artifact()
    doc = art.model_dump(mode="json")
    for k in ("version", "created_at", "library_versions", "format_version"):
        doc.pop(k)
    test = {"r2": r2} if r2 is not None else {}
    if classifier:
        doc["model"] = {"type": "logistic_regression", "coefficients": [[0.1]] * 4, "intercept": [0.0]}
        doc["preprocessor"]["classes"] = ["no", "yes"]
        test = {"log_loss": log_loss, "accuracy": 0.5}
    doc["metrics"] = {"test": test}
    return doc


def production(store: FakeStore, name: str = "houses") -> int:
    return store.documents[layout.alias_key(name, "production")]["version"]


def registered(*r2s: float) -> FakeStore:
    """A store with one version per test r2, registered by run-1, run-2, ... in that order."""
    store = FakeStore()
    for i, r2 in enumerate(r2s, start=1):
        registry.register(store, f"run-{i}", fields(r2=r2))
    return store


def test_the_first_version_is_production():
    store = FakeStore()
    assert registry.register(store, "run-1", fields(r2=0.80)).version == 1
    assert production(store) == 1


def test_a_better_r2_is_promoted():
    assert production(registered(0.80, 0.85)) == 2


def test_a_tie_or_a_worse_r2_is_not_promoted():
    store = registered(0.80, 0.85)
    registry.register(store, "run-3", fields(r2=0.85))  # a tie does not beat production
    registry.register(store, "run-4", fields(r2=0.10))
    assert production(store) == 2


def test_latest_is_the_last_registered_version():
    store = registered(0.80, 0.85, 0.85, 0.10)
    assert store.documents[layout.alias_key("houses", "latest")]["version"] == 4
    assert registry.list_versions(store, "houses") == [1, 2, 3, 4]
    assert registry.list_models(store) == [{"name": "houses", "latest": 4, "production": 2}]


def test_registering_the_same_run_again_is_idempotent():
    store = registered(0.80, 0.85, 0.85, 0.10)
    # registering the same run again is idempotent and moves nothing
    assert registry.register(store, "run-2", fields(r2=0.99)).version == 2
    assert registry.list_versions(store, "houses") == [1, 2, 3, 4]


def test_classifiers_are_compared_on_log_loss_lower_is_better():
    store = FakeStore()
    registry.register(store, "run-1", fields(log_loss=0.5, classifier=True))
    registry.register(store, "run-2", fields(log_loss=0.6, classifier=True))
    assert production(store) == 1
    registry.register(store, "run-3", fields(log_loss=0.4, classifier=True))
    assert production(store) == 3


def test_promoting_a_version_that_is_not_better_needs_force():
    store = registered(0.5, 0.7, 0.6)
    assert production(store) == 2
    with pytest.raises(ConflictError, match=r"version 3 \(test r2 0.6\) does not beat production version 2"):
        registry.promote(store, "houses", 3)
    assert production(store) == 2
    doc = registry.promote(store, "houses", 3, force=True)
    assert (doc["version"], doc["reason"]) == (3, "forced")
    assert [h["version"] for h in doc["history"]] == [1, 2]


def test_rollback_walks_back_the_history():
    store = registered(0.5, 0.7, 0.6)
    registry.promote(store, "houses", 3, force=True)
    writes = sum(store.writes.values())
    assert registry.rollback(store, "houses")["version"] == 2
    assert sum(store.writes.values()) == writes + 1  # one PUT of the alias document: atomic
    assert registry.rollback(store, "houses")["version"] == 1
    with pytest.raises(ConflictError, match="no earlier production version"):
        registry.rollback(store, "houses")
    assert production(store) == 1
    # every version is still there
    assert registry.load_version(store, "houses", 3).version == 3


def test_promote_errors():
    store = FakeStore()
    with pytest.raises(NotFoundError, match="has no version 1"):
        registry.promote(store, "houses", 1)
    with pytest.raises(NotFoundError, match="has no 'production' version"):
        registry.rollback(store, "houses")
    with pytest.raises(NotFoundError, match="is not registered"):
        registry.describe_model(store, "houses")
    with pytest.raises(InvalidInput, match="invalid model name"):
        registry.describe_model(store, "../x")
    registry.register(store, "run-1", fields(r2=0.5))
    assert registry.promote(store, "houses", 1)["version"] == 1  # already production: no-op
    described = registry.describe_model(store, "houses")
    assert described["versions"] == [1] and set(described["aliases"]) == {"latest", "production"}


def test_a_promotion_is_served_within_the_ttl():
    store = registered(0.5, 0.4)
    clock = FakeClock()
    cache = online.ModelCache(ttl=online.ALIAS_TTL_SECONDS, clock=clock)
    assert cache.get(store, "houses", "production").version == 1
    registry.promote(store, "houses", 2, force=True)
    clock.advance(online.ALIAS_TTL_SECONDS)
    assert cache.get(store, "houses", "production").version == 1  # cached alias, at most the TTL old
    clock.advance(0.001)
    assert cache.get(store, "houses", "production").version == 2


def test_a_rollback_is_served_within_the_ttl():
    store = registered(0.5, 0.4)
    registry.promote(store, "houses", 2, force=True)
    clock = FakeClock()
    cache = online.ModelCache(ttl=online.ALIAS_TTL_SECONDS, clock=clock)
    assert cache.get(store, "houses", "production").version == 2
    registry.rollback(store, "houses")
    clock.advance(online.ALIAS_TTL_SECONDS + 0.001)
    assert cache.get(store, "houses", "production").version == 1


class RacingStore(FakeStore):
    """Another writer moves ``production`` to ``rival`` between our read of the alias and our write."""

    def __init__(self, rival: int):
        super().__init__()
        self.rival = rival
        self.raced = False

    def put_json(self, key, doc, *, if_absent=False, if_match=None):
        if key == layout.alias_key("houses", "production") and if_match is not None and not self.raced:
            self.raced = True
            current = self.documents[key]
            super().put_json(key, {**current, "version": self.rival, "history": [*current["history"], {"version": 1}]})
        return super().put_json(key, doc, if_absent=if_absent, if_match=if_match)


def test_a_promotion_that_loses_a_race_compares_again_with_the_winner():
    store = RacingStore(rival=3)
    store.raced = True  # no race while registering
    for i, r2 in enumerate((0.5, 0.7, 0.9), start=1):
        registry.register(store, f"run-{i}", fields(r2=r2))
    registry.rollback(store, "houses")
    registry.rollback(store, "houses")
    assert production(store) == 1
    store.raced = False
    # v2 beats v1, but v3 is promoted concurrently: the conditional write fails, the retry compares v2
    # with v3 and refuses, instead of overwriting a better production version
    with pytest.raises(ConflictError, match=r"version 2 \(test r2 0.7\) does not beat production version 3"):
        registry.promote(store, "houses", 2)
    assert store.raced and production(store) == 3


def test_latest_only_moves_forward():
    store = FakeStore()
    registry.register(store, "run-1", fields(r2=0.5))
    registry.register(store, "run-2", fields(r2=0.5))
    registry._advance_latest(store, "houses", 1, "late registration")
    assert store.documents[layout.alias_key("houses", "latest")]["version"] == 2


# -- registration survives a crash at any write -------------------------------------------------------------


REGISTRATION_WRITES = 4  # the run's claim, the version file, the latest alias, the production alias


def test_a_first_registration_makes_four_writes():
    counting = CrashAt(FakeStore(), k=0)
    registry.register(counting, "run-1", fields(r2=0.8))
    assert counting.writes == REGISTRATION_WRITES


@pytest.mark.parametrize("k", range(1, REGISTRATION_WRITES + 1))
@pytest.mark.parametrize("earlier", [0, 1])
def test_a_registration_that_crashed_at_any_write_completes_on_retry(k, earlier):
    store = registered(*[0.5] * earlier)  # with and without an earlier version of the model
    with pytest.raises(ConnectionError):
        registry.register(CrashAt(store, k), "run-x", fields(r2=0.9))
    artifact = registry.register(store, "run-x", fields(r2=0.9))
    assert artifact.version == earlier + 1
    assert registry.list_versions(store, "houses") == list(range(1, earlier + 2))  # exactly one version for run-x
    assert registry.list_models(store) == [{"name": "houses", "latest": earlier + 1, "production": earlier + 1}]
    assert registry.register(store, "run-x", fields(r2=0.9)).version == earlier + 1  # and again: the same
    assert online.predict(online.ModelCache().get(store, "houses", "production"), [[160.0, "a"]])["version"] == (
        earlier + 1
    )


def test_a_run_whose_claimed_number_was_taken_meanwhile_gets_the_next():
    store = FakeStore()
    with pytest.raises(ConnectionError):
        registry.register(CrashAt(store, 2), "run-x", fields(r2=0.9))  # claimed version 1, then died
    registry.register(store, "run-y", fields(r2=0.8))  # another run takes version 1
    assert registry.register(store, "run-x", fields(r2=0.9)).version == 2
    assert registry.list_versions(store, "houses") == [1, 2]
    assert store.documents[layout.run_model_key("run-x")] == {"name": "houses", "version": 2}


# -- the trivial baseline ---------------------------------------------------------------------------------------


def worse(r2: float = -0.25) -> dict:
    doc = fields(r2=r2)
    doc["metrics"]["baseline"] = evaluation.baseline(None, {"r2": r2}, None, classifier=False)
    doc["warnings"] = evaluation.baseline_warnings(doc["metrics"]["baseline"])
    return doc


def test_a_model_worse_than_the_baseline_is_registered_with_a_warning_and_never_production():
    store = FakeStore()
    artifact = registry.register(store, "run-1", worse())
    assert artifact.warnings == [
        "worse than the trivial baseline: test r2 -0.25 <= 0 of always predicting the mean; not promoted to production"
    ]
    assert registry.registered(artifact, rounds=3).warnings == artifact.warnings
    assert registry.list_models(store) == [{"name": "houses", "latest": 1, "production": None}]
    with pytest.raises(ConflictError) as info:
        registry.promote(store, "houses", 1)
    assert str(info.value) == (
        "version 1 does not beat the trivial baseline (test r2 -0.25 <= 0 of always predicting the mean); "
        "use force to promote anyway"
    )
    assert registry.promote(store, "houses", 1, force=True)["version"] == 1
    assert production(store) == 1


def test_a_model_worse_than_the_baseline_does_not_replace_production_even_if_its_metric_is_better():
    store = registered(-0.5)
    store.documents.pop(layout.alias_key("houses", "production"))
    registry.register(store, "run-2", worse(r2=-0.1))
    assert layout.alias_key("houses", "production") not in store.documents


@pytest.mark.parametrize(
    ("y", "metrics", "classes", "classifier", "beaten", "rule"),
    [
        (None, {"r2": 0.0}, None, False, False, "always predicting the mean"),
        (None, {"r2": 0.01}, None, False, True, "always predicting the mean"),
        ([0, 1, 1, 1], {"accuracy": 0.75}, ["no", "yes"], True, False, "always predicting the majority class 'yes'"),
        ([0, 1, 1, 1], {"accuracy": 1.0}, ["no", "yes"], True, True, "always predicting the majority class 'yes'"),
    ],
)
def test_the_trivial_baseline(y, metrics, classes, classifier, beaten, rule):
    b = evaluation.baseline(None if y is None else np.array(y, dtype=float), metrics, classes, classifier)
    assert (b["beaten"], b["rule"]) == (beaten, rule)
    warning = f"worse than the trivial baseline: test {b['metric']} {b['model']:.4g} <= {b['value']:.4g} of {rule}"
    assert evaluation.baseline_warnings(b) == ([] if beaten else [f"{warning}; not promoted to production"])
    if classifier and not beaten:
        assert warning == "worse than the trivial baseline: test accuracy 0.75 <= 0.75 of " + rule
