"""ONNX export: a registered model version, preprocessing included, as one standard ONNX graph.

The graph replays exactly what Predict computes (``serving.online``): the saved preprocessing of every column
(imputation, clipping, log1p / sqrt / square / abs, standardization, one-hot) and then the model (linear or
multilayer perceptron). Inside, the graph computes in float64, as Predict does; its inputs and outputs are:

- inputs: one per raw feature column, in the model's column order, shape ``[N, 1]``: a numeric column is
  ``float32`` (NaN: missing, imputed with the saved value), a categorical column is ``string`` ("" : missing,
  imputed with the saved category; a category unseen in training encodes as all zeros, as in Predict).
- outputs: regression ``prediction`` (``float32 [N]``); classifiers ``label`` (``string [N]``, the class labels
  as Predict returns them) and ``probabilities`` (``float32 [N, C]``, columns in the order of ``classes``).

Where Predict refuses an instance (a missing value in a column whose training dropped such rows, a log1p or sqrt
outside its domain) the graph cannot raise: its outputs for that row are NaN (``probabilities``) or not finite.

A transform that ONNX's standard operators cannot express makes the export refuse (``NotExportable``, HTTP 422)
before anything is written: ``encoding: hash`` (BLAKE2b feature hashing of arbitrary strings).

``onnx`` is imported lazily, by ``build`` only: the Export function installs it; Predict never loads this module.
The graph is written once per version (``layout.onnx_key``, create-only) and downloaded by presigned URL.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from mlcore.infra import layout
from mlcore.infra.errors import Unprocessable
from mlcore.infra.storage import AlreadyExists, ObjectStore
from mlcore.math.preprocessing import CategoricalColumn, HashedColumn, NumericColumn
from mlcore.serving import registry
from mlcore.serving.registry import ModelArtifact, NetworkWeights

OPSET: Final = 19  # Equal on strings (the one-hot) is standard from opset 19
IR_VERSION: Final = 9  # what onnxruntime >= 1.15 reads
PRODUCER: Final = "serverless-ml"
URL_SECONDS: Final = 3600
CONTENT_TYPE: Final = "application/octet-stream"
REGRESSION_OUTPUTS: Final = ("prediction",)
CLASSIFIER_OUTPUTS: Final = ("label", "probabilities")


class NotExportable(Unprocessable):
    """The version uses a transform the graph cannot express (HTTP 422, nothing written)."""


def check_exportable(artifact: ModelArtifact) -> None:
    """NotExportable naming the column and the transform the standard ONNX operators cannot express, or a
    feature column whose name is one of the graph's output names."""
    where = f"model {artifact.name!r} version {artifact.version} cannot be exported to ONNX"
    for col in artifact.preprocessor.columns:
        if isinstance(col, HashedColumn):
            raise NotExportable(
                f"{where}: column {col.name!r} uses encoding 'hash' (BLAKE2b feature hashing of arbitrary "
                "strings), which ONNX's standard operators cannot express; encode it one-hot (max_categories) "
                "or drop it in the preprocessing spec and train again"
            )
    outputs = output_names(artifact)
    clash = [c.name for c in artifact.preprocessor.columns if c.name in outputs]
    if clash:
        raise NotExportable(
            f"{where}: feature column {clash[0]!r} has the name of one of the graph's outputs "
            f"({', '.join(outputs)}); rename the column and train again"
        )


def output_names(artifact: ModelArtifact) -> tuple[str, ...]:
    return CLASSIFIER_OUTPUTS if artifact.is_classifier else REGRESSION_OUTPUTS


def describe(artifact: ModelArtifact) -> dict[str, Any]:
    """The graph's opset, inputs and outputs (name, type, shape: ``N`` is the number of rows)."""
    inputs = [
        {
            "name": col.name,
            "type": "float32" if isinstance(col, NumericColumn) else "string",
            "shape": ["N", 1],
            "missing": "NaN" if isinstance(col, NumericColumn) else '""',
        }
        for col in artifact.preprocessor.columns
    ]
    if artifact.is_classifier:
        classes = artifact.classes
        outputs = [
            {"name": "label", "type": "string", "shape": ["N"]},
            {"name": "probabilities", "type": "float32", "shape": ["N", len(classes)]},
        ]
        return {"opset": OPSET, "inputs": inputs, "outputs": outputs, "classes": classes}
    return {"opset": OPSET, "inputs": inputs, "outputs": [{"name": "prediction", "type": "float32", "shape": ["N"]}]}


def export(store: ObjectStore, name: str, version: int, expires_in: int = URL_SECONDS) -> dict[str, Any]:
    """Where to download the version's ONNX graph: a presigned GET URL (valid ``expires_in`` seconds), its key,
    size and description. The graph is built on the first request and stored create-only next to the version;
    later requests reuse it. NotFoundError for an unknown model or version, NotExportable before any write."""
    artifact = registry.load_version(store, registry.check_name(name), version)
    check_exportable(artifact)
    key = layout.onnx_key(name, version)
    head = store.head(key)
    built = False
    if head is None:
        body = build(artifact)
        try:
            store.put_bytes(key, body, content_type=CONTENT_TYPE, if_absent=True)
            size, built = len(body), True
        except AlreadyExists:  # a concurrent first request stored the same graph
            head = store.head(key)
    if head is not None:
        size = int(head["ContentLength"])
    return {
        "name": name,
        "version": version,
        "key": key,
        "download_url": store.presign_get(key, expires_in),
        "expires_in": expires_in,
        "size": size,
        "built": built,
        **describe(artifact),
    }


def build(artifact: ModelArtifact) -> bytes:
    """The serialized ONNX model of the version (checked by ``onnx.checker``). NotExportable if it cannot be."""
    import onnx
    from onnx import TensorProto, helper

    check_exportable(artifact)
    g = _Graph(helper, TensorProto, {*artifact.preprocessor.input_names, *output_names(artifact)})
    blocks = [g.column(i, col) for i, col in enumerate(artifact.preprocessor.columns)]
    x = g.node("Concat", blocks, axis=1) if len(blocks) > 1 else blocks[0]
    scores = g.network(artifact, x)
    if artifact.is_classifier:
        g.classifier(artifact, scores)
    else:
        g.node("Cast", [g.node("Reshape", [scores, g.const(np.array([-1], dtype=np.int64))])], "prediction", to=g.F32)
        g.outputs.append(helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["N"]))
    graph = helper.make_graph(
        g.nodes, f"{artifact.name}-v{artifact.version}", g.inputs, g.outputs, initializer=g.initializers
    )
    model = helper.make_model(
        graph,
        producer_name=PRODUCER,
        model_version=artifact.version,
        doc_string=f"model {artifact.name!r} version {artifact.version} ({artifact.model.type}), target "
        f"{artifact.target!r}: its saved preprocessing and the model, as Predict computes them",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model,
        {
            "name": artifact.name,
            "version": str(artifact.version),
            "model_type": artifact.model.type,
            "target": artifact.target,
            **({"classes": ",".join(artifact.classes)} if artifact.is_classifier else {}),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


class _Graph:
    """Nodes, constants and value infos of the graph being built; intermediate names are unique (``t<n>``) and
    never collide with the inputs (the column names) or the outputs (checked by ``check_exportable``)."""

    def __init__(self, helper: Any, tensor_proto: Any, reserved: set[str]):
        self.helper = helper
        self.reserved = reserved
        self.tp = tensor_proto
        self.F32 = tensor_proto.FLOAT
        self.F64 = tensor_proto.DOUBLE
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self) -> str:
        while True:
            self._count += 1
            name = f"t{self._count}"
            if name not in self.reserved:
                return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        out = output or self.name()
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=f"{op}{len(self.nodes)}", **attrs))
        return out

    def const(self, value: np.ndarray) -> str:
        """An initializer holding ``value`` (float64, int64 or strings)."""
        name = self.name()
        if value.dtype.kind in "UO":
            data = [str(v).encode() for v in value.ravel()]
            tensor = self.helper.make_tensor(name, self.tp.STRING, list(value.shape), data)
        else:
            from onnx import numpy_helper

            tensor = numpy_helper.from_array(value, name)
        self.initializers.append(tensor)
        return name

    def scalar(self, value: float) -> str:
        return self.const(np.array(value, dtype=np.float64))

    def column(self, index: int, col: NumericColumn | CategoricalColumn | HashedColumn) -> str:
        """The column's block of the design matrix, float64 ``[N, width]``."""
        if isinstance(col, NumericColumn):
            self.inputs.append(self.helper.make_tensor_value_info(col.name, self.F32, ["N", 1]))
            return self._numeric(col)
        if isinstance(col, CategoricalColumn):
            self.inputs.append(self.helper.make_tensor_value_info(col.name, self.tp.STRING, ["N", 1]))
            return self._categorical(col)
        raise NotExportable(f"column {col.name!r}: encoding 'hash' cannot be expressed with standard ONNX operators")

    def _numeric(self, col: NumericColumn) -> str:
        x = self.node("Cast", [col.name], to=self.F64)
        missing = self.node("IsNaN", [x])
        if col.fill is not None:
            x = self.node("Where", [missing, self.scalar(col.fill), x])
        if col.clip is not None:
            low, high = col.clip
            if low is not None:
                x = self.node("Max", [x, self.scalar(low)])
            if high is not None:
                x = self.node("Min", [x, self.scalar(high)])
        if col.transform == "log1p":
            x = self.node("Log", [self.node("Add", [x, self.scalar(1.0)])])
        elif col.transform == "sqrt":
            x = self.node("Sqrt", [x])
        elif col.transform == "square":
            x = self.node("Mul", [x, x])
        elif col.transform == "abs":
            x = self.node("Abs", [x])
        x = self.node("Div", [self.node("Sub", [x, self.scalar(col.mean)]), self.scalar(col.scale)])
        if col.fill is None:  # Predict refuses the row: no number comes out (Max/Min may have dropped the NaN)
            x = self.node("Where", [missing, self.scalar(np.nan), x])
        return x

    def _categorical(self, col: CategoricalColumn) -> str:
        x = col.name
        missing = self.node("Equal", [x, self.const(np.array("", dtype=object))])
        if col.fill is not None:
            x = self.node("Where", [missing, self.const(np.array(col.fill, dtype=object)), x])
        categories = self.const(np.array([col.categories], dtype=object))  # [1, C]: broadcast against [N, 1]
        onehot = self.node("Cast", [self.node("Equal", [x, categories])], to=self.F64)
        if col.fill is None:
            onehot = self.node("Where", [missing, self.scalar(np.nan), onehot])
        return onehot

    def network(self, artifact: ModelArtifact, x: str) -> str:
        """The model's output scores ``[N, k]`` (float64): a linear layer, or the MLP's layers."""
        theta = artifact.theta
        shapes = artifact.net.layout
        activation = artifact.model.activation if isinstance(artifact.model, NetworkWeights) else None
        start = 0
        for i, (rows, cols) in enumerate(shapes):
            block = theta[start : start + rows * cols].reshape(rows, cols)
            start += rows * cols
            product = self.node("MatMul", [x, self.const(block[:-1].copy())])
            x = self.node("Add", [product, self.const(block[-1].copy())])
            if i < len(shapes) - 1:
                x = self.node({"relu": "Relu", "tanh": "Tanh"}[str(activation)], [x])
        return x

    def classifier(self, artifact: ModelArtifact, scores: str) -> None:
        """``label`` and ``probabilities`` from the scores, as ``models.Net.predict`` / ``predict_proba``."""
        classes = self.const(np.array(artifact.classes, dtype=object))
        if artifact.model.type == "logistic_regression":  # one score: class 1 when it is above 0
            p = self.node("Sigmoid", [scores])
            proba = self.node("Concat", [self.node("Sub", [self.scalar(1.0), p]), p], axis=1)
            index = self.node("Cast", [self.node("Greater", [scores, self.scalar(0.0)])], to=self.tp.INT64)
            index = self.node("Reshape", [index, self.const(np.array([-1], dtype=np.int64))])
        else:  # softmax over the class scores; the first of equal scores wins, as numpy's argmax
            proba = self.node("Softmax", [scores], axis=1)
            index = self.node("ArgMax", [scores], axis=1, keepdims=0)
        self.node("Gather", [classes, index], "label", axis=0)
        self.node("Cast", [proba], "probabilities", to=self.F32)
        self.outputs += [
            self.helper.make_tensor_value_info("label", self.tp.STRING, ["N"]),
            self.helper.make_tensor_value_info("probabilities", self.F32, ["N", len(artifact.classes)]),
        ]
