"""Instance validation, prediction and the per-container model cache (fake store and clock)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcore.infra import layout
from mlcore.infra.errors import InvalidInput, NotFoundError
from mlcore.serving import online
from mlcore.serving.registry import ModelArtifact
from mllocal.template import local_stack

from .fakes import FakeClock, FakeStore
from .helpers import make_artifact

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifact() -> ModelArtifact:
    return make_artifact()


# --- instances_to_columns -------------------------------------------------------------------------


def test_objects_and_lists_give_the_same_columns(artifact):
    objects = [{"sqft": 160, "city": "a"}, {"city": None, "sqft": None}, {"sqft": 80.5, "city": "zzz"}]
    lists = [[160, "a"], [None, None], [80.5, "zzz"]]
    expected = {"sqft": [160, None, 80.5], "city": ["a", None, "zzz"]}
    assert online.instances_to_columns(artifact, objects) == expected
    assert online.instances_to_columns(artifact, lists) == expected
    assert online.instances_to_columns(artifact, [objects[0], lists[1]]) == {"sqft": [160, None], "city": ["a", None]}


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([], "instances must be a non-empty list"),
        ([{"sqft": 1.0, "city": "a"}, {"sqft": 1.0}], "instances[1] is missing feature(s): city"),
        ([{}], "instances[0] is missing feature(s): sqft, city"),
        ([[1.0]], "instances[0] has 1 values, expected 2 in this order: sqft, city"),
        ([[1.0, "a"], [1.0, "a", 3]], "instances[1] has 3 values, expected 2 in this order: sqft, city"),
        ([{"sqft": "12", "city": "a"}], "instances[0].sqft must be a number or null, got '12'"),
        ([{"sqft": True, "city": "a"}], "instances[0].sqft must be a number or null, got True"),
        ([[1.0, "a"], [math.nan, "a"]], "instances[1].sqft must be finite, got nan"),
        ([[math.inf, "a"]], "instances[0].sqft must be finite, got inf"),
        ([[-math.inf, "a"]], "instances[0].sqft must be finite, got -inf"),
        ([[1.0, ["a"]]], "instances[0].city must be a string or null, got ['a']"),
        ([[1.0, {"x": 1}]], "instances[0].city must be a string or null, got {'x': 1}"),
    ],
    ids=[
        "empty",
        "missing",
        "missing-all",
        "short-list",
        "long-list",
        "string-for-number",
        "bool",
        "nan",
        "inf",
        "-inf",
        "list-for-category",
        "object-for-category",
    ],
)
def test_invalid_instances_name_the_field(artifact, instances, message):
    with pytest.raises(InvalidInput) as info:
        online.instances_to_columns(artifact, instances)
    assert str(info.value) == message


def test_columns_that_are_not_features_are_ignored_and_named(artifact):
    instances = [{"id": 7, "sqft": 1.0, "city": "a", "price": 3}, [2.0, "b"], {"sqft": 3.0, "city": None, "id": 8}]
    assert online.instances_to_columns(artifact, instances) == {"sqft": [1.0, 2.0, 3.0], "city": ["a", "b", None]}
    assert online.extra_columns(artifact, instances) == ["id", "price"]
    assert online.extra_columns(artifact, [[2.0, "b"], {"sqft": 1.0, "city": "a"}]) == []
    assert online.ignored_warning(["id", "price"]) == "ignored column(s) that are not features of the model: id, price"


def test_strict_refuses_columns_that_are_not_features(artifact):
    instances = [{"sqft": 1.0, "city": "a"}, {"sqft": 1.0, "city": "a", "rooms": 3, "colour": "red"}]
    with pytest.raises(InvalidInput) as info:
        online.extra_columns(artifact, instances, strict=True)
    assert str(info.value) == "instances[1] has unknown feature(s): colour, rooms"


def test_instance_limit(artifact):
    at_limit = [[1.0, "a"]] * online.MAX_INSTANCES
    assert len(online.instances_to_columns(artifact, at_limit)["sqft"]) == online.MAX_INSTANCES
    with pytest.raises(InvalidInput) as info:
        online.instances_to_columns(artifact, [*at_limit, [1.0, "a"]])
    assert str(info.value) == f"at most {online.MAX_INSTANCES} instances per request, got {online.MAX_INSTANCES + 1}"


def test_huge_integer_is_invalid_input(artifact):
    with pytest.raises(InvalidInput, match=r"instances\[0\]\.sqft"):
        online.instances_to_columns(artifact, [[10**400, "a"]])


NOT_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, 10**400])  # 10**400: no float holds it
NUMBER = st.none() | st.floats(allow_nan=False) | st.integers() | NOT_FINITE
CATEGORY = st.none() | st.text(max_size=2) | st.floats() | st.integers() | st.booleans()
WRONG = st.booleans() | st.text(max_size=2) | st.lists(st.integers(), max_size=1) | st.just({"x": 1})


def _mostly(right, wrong=WRONG):
    return st.integers(0, 9).flatmap(lambda k: wrong if k == 0 else right)


ANY = NUMBER | CATEGORY | WRONG
OBJECT = _mostly(
    st.fixed_dictionaries({"sqft": _mostly(NUMBER), "city": _mostly(CATEGORY)}, optional={"id": ANY}),
    st.dictionaries(st.sampled_from(["sqft", "city", "id"]), ANY),
)
LIST = _mostly(st.tuples(_mostly(NUMBER), _mostly(CATEGORY)).map(list), st.lists(ANY, max_size=3))
OBJECTS = st.lists(OBJECT, min_size=1, max_size=5)
LISTS = st.lists(LIST, min_size=1, max_size=5)


def _outcome(artifact, instances) -> object:
    try:
        columns = online.instances_to_columns(artifact, instances)
    except InvalidInput as err:
        return str(err)
    return {n: [(type(v), repr(v)) for v in column] for n, column in columns.items()}


@settings(max_examples=300)
@given(st.one_of(OBJECTS.map(lambda xs: (xs, [1.0, "a"])), LISTS.map(lambda xs: (xs, {"sqft": 1.0, "city": "a"}))))
def test_a_column_at_a_time_answers_as_one_instance_at_a_time(case):
    """Instances of one shape are validated a column at a time; a mix of objects and lists one instance at a time.
    Adding a valid instance of the other shape at the end must change nothing but that row: the same columns
    (values and types) or the same first problem."""
    instances, other = case
    artifact = make_artifact()
    alone, mixed = _outcome(artifact, instances), _outcome(artifact, [*instances, other])
    if isinstance(alone, str):
        assert mixed == alone
    else:
        assert isinstance(mixed, dict)
        assert {n: column[:-1] for n, column in mixed.items()} == alone


def test_the_request_model_stands_for_its_instances_by_their_count():
    """Powertools formats the route's arguments into a debug message on every request: the body's repr must not
    be the caller's data (nor cost a walk over it)."""
    spec = importlib.util.spec_from_file_location("predict_app", ROOT / "functions" / "predict" / "app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    request = app.PredictRequest(instances=[{"sqft": 123456.5, "city": "secret"}, [1.0, "b"]])
    assert repr(request) == "PredictRequest(<2 instances>)"
    assert f"{ {'body': request} }" == "{'body': PredictRequest(<2 instances>)}"


def test_predict_runs_blas_on_one_thread():
    """Predict's 1,769 MB is one vCPU though Lambda shows two CPUs: a second OpenBLAS thread would only contend."""
    assert local_stack().functions["PredictFunction"].environment["OPENBLAS_NUM_THREADS"] == "1"


def test_predict_applies_the_saved_transform(artifact):
    result = online.predict(artifact, [{"sqft": 160, "city": "c"}, [None, None], [120.0, "unknown"]])
    assert result["model"] == "houses"
    assert result["version"] == 1
    assert result["target"] == "price"
    # row 1: (160-120)/40 = 1 -> 2*1 + 30 (city=c) + 7
    # row 2: sqft imputed 100 -> -0.5 -> -1; city imputed "b" -> 20; + 7
    # row 3: sqft 0; unseen city -> no one-hot; + 7
    assert result["predictions"] == pytest.approx([39.0, 26.0, 7.0], rel=1e-15)
    assert all(type(p) is float for p in result["predictions"])


# --- ModelCache -----------------------------------------------------------------------------------


def publish(store: FakeStore, artifact: ModelArtifact, *, alias: bool = True) -> None:
    store.documents[layout.version_key(artifact.name, artifact.version)] = artifact.model_dump(mode="json")
    if alias:
        store.documents[layout.alias_key(artifact.name, "latest")] = {
            "name": artifact.name,
            "alias": "latest",
            "version": artifact.version,
        }


@pytest.fixture
def store() -> FakeStore:
    s = FakeStore()
    publish(s, make_artifact(1, intercept=1.0))
    return s


ALIAS = layout.alias_key("houses", "latest")
V1 = layout.version_key("houses", 1)
V2 = layout.version_key("houses", 2)


def test_alias_is_reread_only_after_the_ttl(store):
    clock = FakeClock()
    cache = online.ModelCache(ttl=30.0, clock=clock)
    assert cache.get(store, "houses").version == 1
    assert store.reads == {ALIAS: 1, V1: 1}

    publish(store, make_artifact(2, intercept=2.0))  # a new version is registered
    clock.advance(10.0)
    assert cache.get(store, "houses").version == 1
    clock.advance(20.0)  # exactly the TTL: still fresh
    assert cache.get(store, "houses").version == 1
    assert store.reads == {ALIAS: 1, V1: 1}

    clock.advance(0.001)  # past the TTL: the alias is read again
    served = cache.get(store, "houses")
    assert (served.version, served.model.intercept) == (2, [2.0])
    assert store.reads == {ALIAS: 2, V1: 1, V2: 1}

    clock.advance(5.0)
    assert cache.get(store, "houses").version == 2
    assert store.reads == {ALIAS: 2, V1: 1, V2: 1}


def test_artifacts_are_cached_per_version(store):
    clock = FakeClock()
    cache = online.ModelCache(ttl=30.0, clock=clock)
    first = cache.get(store, "houses")
    publish(store, make_artifact(2))
    clock.advance(31.0)
    assert cache.get(store, "houses").version == 2
    # Roll the alias back to 1: the alias is re-read, the version-1 artifact is not.
    store.documents[ALIAS] = {"name": "houses", "alias": "latest", "version": 1}
    clock.advance(31.0)
    again = cache.get(store, "houses")
    assert again is first
    assert store.reads == {ALIAS: 3, V1: 1, V2: 1}


def test_models_are_cached_separately(store):
    publish(store, make_artifact(1, name="flats", intercept=5.0))
    cache = online.ModelCache(clock=FakeClock())
    assert cache.get(store, "houses").model.intercept == [1.0]
    assert cache.get(store, "flats").model.intercept == [5.0]
    assert cache.get(store, "houses").name == "houses"


def test_a_missing_model_is_not_found(store):
    cache = online.ModelCache(clock=FakeClock())
    with pytest.raises(NotFoundError, match="^model 'nope' has no 'latest' version$"):
        cache.get(store, "nope")


def test_a_bad_name_is_refused_before_anything_is_read(store):
    cache = online.ModelCache(clock=FakeClock())
    with pytest.raises(InvalidInput, match=r"^invalid model name '\.\./etc': use 1-64 letters"):
        cache.get(store, "../etc")
    assert not any("etc" in key for key in store.reads)


def test_a_failed_lookup_is_not_cached(store):
    cache = online.ModelCache(clock=FakeClock())
    with pytest.raises(NotFoundError):
        cache.get(store, "nope")
    # a failed lookup is not cached: once the model exists it is served
    publish(store, make_artifact(1, name="nope"))
    assert cache.get(store, "nope").name == "nope"


def test_alias_pointing_at_a_missing_version(store):
    store.documents[ALIAS] = {"name": "houses", "alias": "latest", "version": 9}
    with pytest.raises(NotFoundError, match="^model 'houses' has no version 9$"):
        online.ModelCache(clock=FakeClock()).get(store, "houses")


def test_artifact_json_round_trip_predicts_the_same(artifact):
    restored = ModelArtifact.model_validate(artifact.model_dump(mode="json"))
    columns = {"sqft": [50.0, None, 300], "city": ["a", "b", None]}
    np.testing.assert_array_equal(restored.predict(columns), artifact.predict(columns))
    np.testing.assert_array_equal(restored.theta, [2.0, 10.0, 20.0, 30.0, 7.0])


def test_vectorized_predict_equals_the_object_path(artifact):
    """online.predict (float arrays, one transform) gives exactly what the artifact gives from raw lists."""
    rng = np.random.default_rng(0)
    instances = [
        [None if rng.random() < 0.2 else float(rng.normal(120, 40)), rng.choice(["a", "b", "c", "zz", None])]
        for _ in range(300)
    ]
    columns = online.instances_to_columns(artifact, instances)
    assert online.predict(artifact, instances)["predictions"] == artifact.predict(columns)


def _narrow_artifact():
    """make_artifact with sqft's scale 1e-3: a sqft near the float64 limit overflows once standardized."""
    artifact = make_artifact()
    sqft, city = artifact.preprocessor.columns
    prep = artifact.preprocessor.model_copy(update={"columns": [sqft.model_copy(update={"scale": 1e-3}), city]})
    return artifact.model_copy(update={"preprocessor": prep})


def test_an_instance_without_a_finite_prediction_is_refused_by_name():
    instances = [{"sqft": 100.0, "city": "a"}, {"sqft": 1e308, "city": "b"}]
    with pytest.raises(InvalidInput, match=r"^instances\[1\]: no finite prediction: a value is too far outside"):
        online.predict(_narrow_artifact(), instances)


def test_predictions_report_which_instances_overflow():
    result, nonfinite = online.predictions(
        _narrow_artifact(), [{"sqft": 1e308, "city": "a"}, {"sqft": 0.1, "city": "c"}]
    )
    assert nonfinite == [0]
    assert result["predictions"][1] == pytest.approx(2 * (0.1 - 120.0) / 1e-3 + 30 + 7)
