"""ONNX export: for every model family and every preprocessing transform, onnxruntime's answers on raw rows equal
Predict's (serving.online) within 1e-5 relative, missing values and unseen categories included; what cannot be
expressed is refused by name with nothing written; the graph is stored once per version."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore.infra import layout
from mlcore.infra.errors import NotFoundError, Unprocessable
from mlcore.math import models, preprocessing
from mlcore.math.preprocessing import CategoricalColumn, HashedColumn, NumericColumn, Preprocessor
from mlcore.serving import online, onnx_export
from mlcore.serving.registry import Layer, LinearWeights, ModelArtifact, NetworkWeights

from .fakes import FakeStore
from .helpers import make_artifact

ort = pytest.importorskip("onnxruntime")

RTOL = 1e-5
# Every transform of the preprocessing spec, on columns fitted from data (not hand-written statistics).
SPEC = preprocessing.PreprocessingSpec(
    columns={
        "a": preprocessing.ColumnSpec(clip=(0.0, 6.0), transform="log1p"),  # median fill, clip both, log1p
        "b": preprocessing.ColumnSpec(clip=(0.0, None), transform="sqrt", impute="mean"),
        "c": preprocessing.ColumnSpec(clip=(None, 3.0), transform="square", impute="constant", fill_value=-1.5),
        "d": preprocessing.ColumnSpec(transform="abs", standardize=False),
        "e": preprocessing.ColumnSpec(),  # median fill, standardized
        "city": preprocessing.ColumnSpec(),  # most frequent fill, one-hot
        "color": preprocessing.ColumnSpec(impute="constant", fill_value="red"),
        "size": preprocessing.ColumnSpec(max_categories=2),  # the rarest category encodes as zeros
        "raw": preprocessing.ColumnSpec(standardize=False),
        "code": preprocessing.ColumnSpec(kind="categorical"),  # numbers read as categories ("1", "2", "3")
    }
)
KINDS = {n: "numeric" for n in ("a", "b", "c", "d", "e", "raw", "code")} | {
    "city": "categorical",
    "color": "categorical",
    "size": "categorical",
    "y": "numeric",
}


def f32(x) -> np.ndarray:
    """Values as float32 holds them: the graph's numeric inputs are float32, Predict's JSON numbers float64."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def fitted_preprocessor(classes: list[str] | None = None) -> Preprocessor:
    rng = np.random.default_rng(0)
    n = 200
    columns = {
        "a": f32(rng.normal(2.0, 2.0, n)),
        "b": f32(rng.gamma(2.0, 2.0, n)),
        "c": f32(rng.normal(0.0, 2.0, n)),
        "d": f32(rng.normal(-1.0, 3.0, n)),
        "e": f32(rng.normal(100.0, 15.0, n)),
        "raw": f32(rng.uniform(-1, 1, n)),
        "code": rng.integers(1, 4, n).astype(np.float64),
        "city": np.array(rng.choice(["harbor", "hills", "center"], n), dtype=object),
        "color": np.array(rng.choice(["red", "blue", "green"], n), dtype=object),
        "size": np.array(rng.choice(["S", "M", "L"], n, p=[0.5, 0.4, 0.1]), dtype=object),
        "y": rng.normal(size=n),
    }
    for name in ("a", "b", "c", "e"):
        columns[name][::17] = np.nan
    columns["city"][::13] = None
    prep = preprocessing.fit(columns, KINDS, "y", spec=SPEC)
    return prep.model_copy(update={"classes": classes})


def test_the_fitted_preprocessor_covers_every_transform():
    prep = fitted_preprocessor()
    numeric = [c for c in prep.columns if isinstance(c, NumericColumn)]
    assert {c.transform for c in numeric} == {"none", "log1p", "sqrt", "square", "abs"}
    assert {c.impute for c in numeric} == {"median", "mean", "constant"}
    assert any(c.clip == (0.0, 6.0) for c in numeric) and any(c.clip == (None, 3.0) for c in numeric)
    assert any(c.scale == 1.0 and c.mean == 0.0 for c in numeric) and any(c.scale != 1.0 for c in numeric)
    size = next(c for c in prep.columns if c.name == "size")
    assert isinstance(size, CategoricalColumn) and size.categories == ["M", "S"]


def artifact(
    model: str, *, classes: list[str] | None = None, hidden=(5, 4), activation="tanh", prep=None, seed: int = 7
):
    prep = prep or fitted_preprocessor(classes)
    n_features = len(prep.feature_names)
    k = models.n_outputs(model, len(classes or []))
    rng = np.random.default_rng(seed)
    weights: LinearWeights | NetworkWeights
    if models.is_mlp(model):
        shapes = models.make_layout(model, n_features, k, list(hidden))
        layers = [
            Layer(weights=rng.normal(0, 0.7, (r - 1, c)).tolist(), biases=rng.normal(0, 0.3, c).tolist())
            for r, c in shapes
        ]
        weights = NetworkWeights(type=model, activation=activation, layout=list(shapes), layers=layers)  # type: ignore[arg-type]
    else:
        weights = LinearWeights(
            type=model,  # type: ignore[arg-type]
            coefficients=rng.normal(0, 0.8, (n_features, k)).tolist(),
            intercept=rng.normal(0, 0.5, k).tolist(),
        )
    return ModelArtifact(
        name="m",
        version=3,
        created_at="2025-01-01T00:00:00+00:00",
        model=weights,
        target="y",
        feature_names=prep.feature_names,
        preprocessor=prep,
        hyperparameters={},
        metrics={},
        training_curve=[],
        lineage={},
        library_versions={},
    )


FAMILIES = [
    pytest.param("linear_regression", None, {}, id="linear_regression"),
    pytest.param("logistic_regression", ["no", "yes"], {}, id="logistic_regression"),
    pytest.param("softmax_regression", ["a", "b", "c"], {}, id="softmax_regression"),
    pytest.param("mlp_regression", None, {"activation": "relu"}, id="mlp_regression-relu"),
    pytest.param("mlp_regression", None, {"activation": "tanh", "hidden": (6,)}, id="mlp_regression-tanh"),
    pytest.param("mlp_classifier", ["0", "1"], {"activation": "relu", "seed": 11}, id="mlp_classifier-binary"),
    pytest.param("mlp_classifier", ["x", "y", "z", "w"], {"activation": "tanh"}, id="mlp_classifier-multiclass"),
]


def raw_rows(n: int = 300) -> list[dict]:
    """Raw instances as Predict takes them: in and out of the clip ranges, missing values (None) in every
    imputed column, unseen categories, numbers for the numeric-coded categorical column."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        rows.append(
            {
                "a": float(f32(rng.normal(2.0, 3.0))),
                "b": float(f32(rng.gamma(2.0, 2.0) - 0.5)),  # some below the clip's 0
                "c": float(f32(rng.normal(0.0, 3.0))),
                "d": float(f32(rng.normal(-1.0, 3.0))),
                "e": float(f32(rng.normal(100.0, 15.0))),
                "raw": float(f32(rng.uniform(-2, 2))),
                "code": int(rng.integers(1, 5)),  # 4 was never seen: all zeros
                "city": str(rng.choice(["harbor", "hills", "center", "lake"])),  # lake: unseen
                "color": str(rng.choice(["red", "blue", "green", "purple"])),
                "size": str(rng.choice(["S", "M", "L"])),  # L: beyond max_categories
            }
        )
        for j, name in enumerate(("a", "b", "c", "d", "e", "raw", "code", "city", "color", "size")):
            if (i + j) % 7 == 0:
                rows[-1][name] = None
    return rows


def onnx_inputs(art: ModelArtifact, rows: list[dict]) -> dict[str, np.ndarray]:
    """The graph's inputs for raw rows: float32 with NaN for numbers, category text with "" for strings."""
    feeds = {}
    for col in art.preprocessor.columns:
        values = [r[col.name] for r in rows]
        if isinstance(col, NumericColumn):
            feeds[col.name] = np.array([[math.nan if v is None else v] for v in values], dtype=np.float32)
        else:
            feeds[col.name] = np.array([["" if v is None else str(v)] for v in values], dtype=object)
    return feeds


def run(art: ModelArtifact, rows: list[dict]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(onnx_export.build(art), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, onnx_inputs(art, rows)), strict=True))


@pytest.mark.parametrize(("model", "classes", "options"), FAMILIES)
def test_onnxruntime_equals_predict_on_raw_rows(model, classes, options):
    art = artifact(model, classes=classes, **options)
    rows = raw_rows()
    expected = online.predict(art, rows)
    got = run(art, rows)
    if classes is None:
        assert set(got) == {"prediction"} and got["prediction"].dtype == np.float32
        assert got["prediction"].shape == (len(rows),)
        np.testing.assert_allclose(got["prediction"], expected["predictions"], rtol=RTOL, atol=0)
    else:
        assert set(got) == {"label", "probabilities"} and got["probabilities"].dtype == np.float32
        assert got["probabilities"].shape == (len(rows), len(classes))
        assert got["label"].tolist() == expected["predictions"]
        assert len(set(expected["predictions"])) > 1, "the rows should reach more than one class"
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=RTOL, atol=1e-7)


def test_every_preprocessing_transform_alone_matches_predict():
    """One column at a time (a linear model over it), so a wrong step of one transform cannot hide in a sum."""
    full = fitted_preprocessor()
    rows = raw_rows(120)
    for col in full.columns:
        prep = full.model_copy(update={"columns": [col]})
        art = artifact("linear_regression", prep=prep)
        subset = [{col.name: r[col.name]} for r in rows]
        np.testing.assert_allclose(
            run(art, subset)["prediction"],
            online.predict(art, subset)["predictions"],
            rtol=RTOL,
            atol=0,
            err_msg=col.name,
        )


def test_a_required_value_that_is_missing_gives_nan_where_predict_refuses():
    prep = Preprocessor(
        target="y",
        columns=[
            NumericColumn(name="x", fill=None, impute="drop_rows", clip=(0.0, 1.0), mean=0.5, scale=0.2),
            CategoricalColumn(name="k", fill=None, categories=["p", "q"]),
        ],
    )
    art = artifact("linear_regression", prep=prep)
    rows = [{"x": 0.25, "k": "p"}, {"x": None, "k": "q"}, {"x": 0.75, "k": None}]
    got = run(art, rows)["prediction"]
    assert np.isfinite(got[0]) and np.isnan(got[1]) and np.isnan(got[2])
    assert got[0] == pytest.approx(online.predict(art, rows[:1])["predictions"][0], rel=RTOL)
    with pytest.raises(Exception, match="column 'x' is required"):
        online.predict(art, rows[1:2])


def test_the_description_names_inputs_outputs_and_classes():
    art = artifact("softmax_regression", classes=["a", "b", "c"])
    described = onnx_export.describe(art)
    assert described["opset"] == onnx_export.OPSET and described["classes"] == ["a", "b", "c"]
    assert described["inputs"][0] == {"name": "a", "type": "float32", "shape": ["N", 1], "missing": "NaN"}
    assert {"name": "city", "type": "string", "shape": ["N", 1], "missing": '""'} in described["inputs"]
    assert [i["name"] for i in described["inputs"]] == art.preprocessor.input_names
    assert described["outputs"] == [
        {"name": "label", "type": "string", "shape": ["N"]},
        {"name": "probabilities", "type": "float32", "shape": ["N", 3]},
    ]
    session = ort.InferenceSession(onnx_export.build(art), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == art.preprocessor.input_names
    regression = onnx_export.describe(artifact("linear_regression"))
    assert regression["outputs"] == [{"name": "prediction", "type": "float32", "shape": ["N"]}]
    assert "classes" not in regression


def hashed_artifact() -> ModelArtifact:
    prep = Preprocessor(
        target="y",
        columns=[
            NumericColumn(name="x", fill=0.0, mean=0.0, scale=1.0),
            HashedColumn(name="street", fill="main", buckets=4),
        ],
    )
    return artifact("linear_regression", prep=prep).model_copy(update={"name": "houses", "version": 1})


HASH_REFUSAL = (
    "model 'houses' version 1 cannot be exported to ONNX: column 'street' uses encoding 'hash' (BLAKE2b feature "
    "hashing of arbitrary strings), which ONNX's standard operators cannot express; encode it one-hot "
    "(max_categories) or drop it in the preprocessing spec and train again"
)


def publish(store: FakeStore, art: ModelArtifact) -> None:
    store.put_json(layout.version_key(art.name, art.version), art.model_dump(mode="json"))


def test_a_hashed_column_is_refused_by_name_and_nothing_is_written():
    store = FakeStore()
    publish(store, hashed_artifact())
    before = set(store.list_keys(""))
    with pytest.raises(onnx_export.NotExportable) as refused:
        onnx_export.export(store, "houses", 1)
    assert str(refused.value) == HASH_REFUSAL
    assert isinstance(refused.value, Unprocessable)
    assert set(store.list_keys("")) == before and not store.exists(layout.onnx_key("houses", 1))
    with pytest.raises(onnx_export.NotExportable, match="column 'street' uses encoding 'hash'"):
        onnx_export.build(hashed_artifact())


def test_a_feature_named_like_an_output_is_refused():
    prep = Preprocessor(target="y", columns=[NumericColumn(name="label", fill=0.0, mean=0.0, scale=1.0)])
    art = artifact("logistic_regression", classes=["n", "y"], prep=prep)
    with pytest.raises(onnx_export.NotExportable) as refused:
        onnx_export.build(art)
    assert str(refused.value) == (
        "model 'm' version 3 cannot be exported to ONNX: feature column 'label' has the name of one of the graph's "
        "outputs (label, probabilities); rename the column and train again"
    )


def test_export_builds_once_and_then_reuses_the_stored_graph(monkeypatch):
    store = FakeStore()
    art = make_artifact(version=2)
    publish(store, art)
    first = onnx_export.export(store, "houses", 2)
    key = "models/houses/versions/000002/model.onnx"
    assert key == layout.onnx_key("houses", 2)
    assert first["key"] == key and first["built"] is True and first["size"] == len(store.get_bytes(key))
    assert first["download_url"] == store.presign_get(key, onnx_export.URL_SECONDS)
    assert first["expires_in"] == 3600 and first["opset"] == onnx_export.OPSET
    assert [i["name"] for i in first["inputs"]] == ["sqft", "city"]
    stored = store.get_bytes(key)
    session = ort.InferenceSession(stored, providers=["CPUExecutionProvider"])
    out = session.run(None, {"sqft": np.array([[150.0]], np.float32), "city": np.array([["c"]], object)})[0]
    assert out.tolist() == pytest.approx(online.predict(art, [[150.0, "c"]])["predictions"])

    def no_second_build(_artifact):
        raise AssertionError("the stored graph should be reused")

    monkeypatch.setattr(onnx_export, "build", no_second_build)
    again = onnx_export.export(store, "houses", 2)
    assert again == {**first, "built": False} and store.get_bytes(key) == stored


def test_a_concurrent_first_export_keeps_the_graph_already_stored(monkeypatch):
    store = FakeStore()
    publish(store, make_artifact(version=1))
    key = layout.onnx_key("houses", 1)
    real_build = onnx_export.build

    def racing_build(artifact):
        body = real_build(artifact)
        store.put_bytes(key, b"the other request's graph")  # written between our head and our create-only put
        return body

    monkeypatch.setattr(onnx_export, "build", racing_build)
    answer = onnx_export.export(store, "houses", 1)
    assert answer["built"] is False and answer["size"] == len(b"the other request's graph")
    assert store.get_bytes(key) == b"the other request's graph"


def test_an_unknown_version_is_not_found_and_nothing_is_written():
    store = FakeStore()
    publish(store, make_artifact(version=1))
    with pytest.raises(NotFoundError, match="model 'houses' has no version 9"):
        onnx_export.export(store, "houses", 9)
    assert not store.exists(layout.onnx_key("houses", 9))


def test_the_stored_graph_does_not_count_as_a_version():
    from mlcore.serving import registry

    store = FakeStore()
    publish(store, make_artifact(version=1))
    onnx_export.export(store, "houses", 1)
    assert registry.list_versions(store, "houses") == [1]
