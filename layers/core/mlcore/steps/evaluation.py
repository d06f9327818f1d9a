"""Evaluate step: held-out metrics of the final parameters, and the model artifact's fields for the registry."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcore.infra.storage import ObjectStore, npy_sample_rows
from mlcore.math import importance, mlp, models
from mlcore.math.metrics import classification_metrics, holdout_losses, mean_and_se, regression_metrics
from mlcore.math.preprocessing import Preprocessor
from mlcore.steps.schemas import EvaluateTask
from mlcore.steps.training import network, read_params, training_curve

RESIDUAL_SAMPLE = 200
# Evaluate holds at most this many test rows (float64, 29 columns: 464 MB) and fits the scikit-learn reference on at
# most this many training rows, sampled as runs of rows spread over each block (storage.npy_sample_rows)
EVALUATED_MAX_ROWS = 2_000_000
REFERENCE_MAX_ROWS = 1_000_000
SAMPLE_WINDOWS = 64
# permutation importance (MLPs): shuffles per input column, and test rows scored; the rows are fewer for a large
# network or many columns, so that rows x parameters x scorings stays within PERMUTATION_BUDGET multiply-adds
PERMUTATION_REPEATS = 5
PERMUTATION_MAX_ROWS = 5_000
PERMUTATION_MIN_ROWS = 200
PERMUTATION_BUDGET = 10_000_000_000


def evaluate(store: ObjectStore, task: EvaluateTask) -> dict[str, Any]:
    """Test metrics (and a scikit-learn reference fit's on the same rows) of the run's final parameters, with
    everything a model version records: weights, schema, preprocessing, hyperparameters, curve, lineage."""
    manifest = store.get_json(task.data.manifest_key)
    theta, shapes, _ = read_params(store, task.train.params_key)
    hp = task.request.hyperparameters
    net = network(hp.model, shapes, hp)
    sample, test_rows = held_out_sample(store, manifest["test"], EVALUATED_MAX_ROWS)
    test = sample.astype("float64")
    X, y = test[:, :-1], test[:, -1]
    model = hp.model
    residual_sample = None
    test_metrics: dict[str, Any]
    if net.is_classifier:
        test_metrics = classification_metrics(y, net.predict_proba(theta, X))
    else:
        predicted = net.predict(theta, X)
        test_metrics = regression_metrics(y, predicted)
        # (true, predicted) pairs of up to RESIDUAL_SAMPLE test rows, for residual plots in reports
        rows = np.linspace(0, len(y) - 1, num=min(RESIDUAL_SAMPLE, len(y)), dtype=np.int64)
        residual_sample = [[float(y[i]), float(predicted[i])] for i in rows]
    trivial = baseline(y, test_metrics, manifest["preprocessor"].get("classes"), net.is_classifier)
    metrics = {
        "test": test_metrics,
        "final_train_loss": task.train.loss,
        "stop_reason": task.train.reason,
        "rounds": task.train.round,
        "residual_sample": residual_sample,
        "reference": _reference(store, manifest, model, task.request.hyperparameters.l2, test, test_metrics),
        "baseline": trivial,
        "test_rows_evaluated": {"rows": int(test.shape[0]), "of": int(test_rows)},
    }
    preprocessor = Preprocessor.model_validate(manifest["preprocessor"])
    if models.is_mlp(model):
        metrics["permutation_importance"] = permutation_importance(net, theta, X, y, preprocessor, task.request.seed)
    return {
        "name": task.request.model_name,
        "model": model_weights(net, theta),
        "target": manifest["target"],
        "feature_names": manifest["feature_names"],
        "preprocessor": preprocessor,
        "hyperparameters": {
            **task.request.hyperparameters.model_dump(),
            "n_shards": task.request.n_shards,
            "test_fraction": task.request.test_fraction,
            "seed": task.request.seed,
        },
        "metrics": metrics,
        "warnings": baseline_warnings(trivial),
        "training_curve": training_curve(store, task.run_id),
        "lineage": {
            "run_id": task.run_id,
            "manifest_key": task.data.manifest_key,
            **manifest["dataset"],
            "train_rows": task.data.train_rows,
            "test_rows": task.data.test_rows,
            **({"tuning": task.tuning} if task.tuning is not None else {}),
        },
    }


def validate(store: ObjectStore, task: EvaluateTask) -> dict[str, Any]:
    """A tuning trial's result (its request has ``trial`` true): the loss and metric of the run's final
    parameters on the validation split, unregularized, so that trials of any model family compare: the mean squared
    error and R² (regression), the log loss and accuracy (classification). A loss that is not finite (a diverged
    trial) is reported as None; nothing is written."""
    if task.data.validation is None:
        raise ValueError(f"run {task.run_id} has no validation split to evaluate a trial on")
    theta, shapes, _ = read_params(store, task.train.params_key)
    hp = task.request.hyperparameters
    net = network(hp.model, shapes, hp)
    block = npy_sample_rows(store, task.data.validation.key, EVALUATED_MAX_ROWS)[0].astype("float64")
    X, y = block[:, :-1], block[:, -1]
    with np.errstate(all="ignore"):
        output = net.predict_proba(theta, X) if net.is_classifier else net.predict(theta, X)
        losses, metric = holdout_losses(y, output, net.is_classifier)
    loss, se = mean_and_se(losses)
    return {
        "run_id": task.run_id,
        "status": "validated",
        "validation_loss": loss if np.isfinite(loss) else None,
        "validation_loss_se": se if np.isfinite(loss) and np.isfinite(se) else None,  # the mean's standard error
        "validation_metric": metric if np.isfinite(metric) else None,
        "validation_rows": len(y),
        "rounds": task.train.round,
        "stop_reason": task.train.reason,
        "params_key": task.train.params_key,
    }


def model_weights(net: models.Net, theta: np.ndarray) -> dict[str, Any]:
    """The artifact's ``model``: a linear model's ``coefficients`` (n_features x k) and ``intercept`` (k); an MLP's
    ``activation``, ``layout`` and ``layers`` (per layer ``weights`` fan_in x fan_out and ``biases``)."""
    if not models.is_mlp(net.model):
        matrix = theta.reshape(net.layout[0])
        return {"type": net.model, "coefficients": matrix[:-1].tolist(), "intercept": matrix[-1].tolist()}
    return {
        "type": net.model,
        "activation": net.activation,
        "layout": [list(shape) for shape in net.layout],
        "layers": [{"weights": W.tolist(), "biases": b.tolist()} for W, b in mlp.layers(theta, net.layout)],
    }


def permutation_importance(
    net: models.Net, theta: np.ndarray, X: np.ndarray, y: np.ndarray, preprocessor: Preprocessor, seed: int
) -> dict[str, Any]:
    """The drop in test R² (regression) or accuracy (classifier) when one original input column is shuffled
    (``math.importance``: its one-hot or hashed features together), over ``PERMUTATION_REPEATS`` seeded shuffles, on
    at most ``PERMUTATION_MAX_ROWS`` sampled test rows (fewer for a large network, see ``PERMUTATION_BUDGET``).
    Records the metric, the rows scored and of how many, the repeats and the seed beside the figures."""
    columns = importance.column_slices([(c.name, len(c.output_names)) for c in preprocessor.columns])
    scorings = len(columns) * PERMUTATION_REPEATS + 1
    budget_rows = PERMUTATION_BUDGET // (net.n_params * scorings)
    max_rows = min(PERMUTATION_MAX_ROWS, max(PERMUTATION_MIN_ROWS, budget_rows))
    metric = "accuracy" if net.is_classifier else "r2"

    def score(rows: np.ndarray, target: np.ndarray) -> float:
        predicted = net.predict(theta, rows)
        if net.is_classifier:
            return float(np.mean(predicted == target))
        return regression_metrics(target, predicted)["r2"]

    result = importance.permutation_importance(
        score, X, y, columns, repeats=PERMUTATION_REPEATS, max_rows=max_rows, seed=seed
    )
    return {"metric": metric, **result, "of": len(X)}


def held_out_sample(store: ObjectStore, test: dict, max_rows: int) -> tuple[np.ndarray, int]:
    """Up to ``max_rows`` test rows and the test row count: of the one test block, or of the blocks of a distributed
    preparation's pieces (``{"rows", "blocks"}``), from each in proportion to its rows (all of them when they fit)."""
    if "blocks" not in test:
        return npy_sample_rows(store, test["key"], max_rows)
    blocks, total = test["blocks"], int(test["rows"])
    windows = max(1, SAMPLE_WINDOWS // len(blocks))
    quotas = [max(1, max_rows * int(b["rows"]) // total) for b in blocks]
    parts = [npy_sample_rows(store, b["key"], q, windows)[0] for b, q in zip(blocks, quotas, strict=True)]
    return np.concatenate(parts), total


def baseline(y, test_metrics: dict[str, Any], classes: list[str] | None, classifier: bool) -> dict[str, Any]:
    """The trivial baseline on the test rows, and whether the model beats it: a regression must have a test
    R² above 0 (what predicting the mean scores); a classifier an accuracy above the share of the test
    rows' most frequent class (what always predicting it scores)."""
    if classifier:
        counts = np.bincount(y.astype(np.int64))
        majority = int(np.argmax(counts))
        label = classes[majority] if classes and majority < len(classes) else str(majority)
        value = float(counts[majority] / len(y))
        model_value = float(test_metrics["accuracy"])
        rule = f"always predicting the majority class {label!r}"
        return {"metric": "accuracy", "value": value, "model": model_value, "rule": rule, "beaten": model_value > value}
    model_value = float(test_metrics["r2"])
    rule = "always predicting the mean"
    return {"metric": "r2", "value": 0.0, "model": model_value, "rule": rule, "beaten": model_value > 0.0}


def baseline_warnings(b: dict[str, Any]) -> list[str]:
    """The model version's warnings: one when it does not beat the trivial baseline (never promoted unless
    forced)."""
    if b["beaten"]:
        return []
    return [
        f"worse than the trivial baseline: test {b['metric']} {b['model']:.4g} <= {b['value']:.4g} of {b['rule']}; "
        "not promoted to production"
    ]


def _reference(store: ObjectStore, manifest: dict, model: str, l2: float, test, test_metrics: dict) -> dict:
    """The same metrics for a scikit-learn fit on the same training shards (see ``reference``)."""
    from mlcore.math.reference import differences, reference_metrics

    shards = manifest["shards"]
    total = sum(int(s["rows"]) for s in shards)
    quotas = [max(1, REFERENCE_MAX_ROWS * int(s["rows"]) // total) for s in shards]  # in proportion to rows
    windows = max(1, SAMPLE_WINDOWS // len(shards))
    parts = [npy_sample_rows(store, s["key"], q, windows)[0] for s, q in zip(shards, quotas, strict=True)]
    train = np.concatenate(parts).astype("float64")
    n_classes = len(manifest["preprocessor"].get("classes") or [])
    ref = reference_metrics(model, l2, train, test, n_classes)
    return {**ref, "train_rows_of": total, "difference": differences(test_metrics, ref["test"])}
