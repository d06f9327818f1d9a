"""Logistic and softmax regression: gradients vs finite differences, fits vs scikit-learn, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

from mlcore.math import linear, optimizers
from mlcore.math.metrics import classification_metrics

from .helpers import central_differences


@pytest.mark.parametrize(("model", "k"), [("logistic_regression", 1), ("softmax_regression", 3)])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_gradient_matches_finite_differences(model, k, l2):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(50, 4))
    y = rng.integers(0, 2 if k == 1 else k, size=50).astype(np.float64)
    theta = rng.normal(scale=0.5, size=5 * k)

    def objective(t):
        loss_sum, grad_sum = linear.loss_grad_sums(model, t, X, y)
        return linear.regularized_objective(loss_sum, grad_sum, 50, t, l2, k)

    _, grad = objective(theta)
    np.testing.assert_allclose(grad, central_differences(lambda t: objective(t)[0], theta), rtol=1e-6, atol=1e-8)


def test_losses_are_the_log_likelihoods():
    X = np.array([[0.0], [1.0]])
    y = np.array([1.0, 0.0])
    theta = np.array([2.0, -1.0])  # z = [-1, 1]
    loss, _ = linear.loss_grad_sums("logistic_regression", theta, X, y)
    assert loss == pytest.approx(np.log1p(np.exp(1.0)) * 2)
    theta3 = np.array([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]).ravel()
    loss, _ = linear.loss_grad_sums("softmax_regression", theta3, np.array([[1.0]]), np.array([2.0]))
    assert loss == pytest.approx(np.log(np.exp(1) + 1 + np.exp(-1)) + 1.0)


def test_softmax_is_stable_for_large_scores():
    theta = np.array([[1000.0, -1000.0], [0.0, 0.0]]).ravel()
    loss, grad = linear.loss_grad_sums("softmax_regression", theta, np.array([[1.0]]), np.array([1.0]))
    assert loss == pytest.approx(2000.0) and np.isfinite(grad).all()
    np.testing.assert_allclose(linear.predict_proba("softmax_regression", theta, np.array([[1.0]])), [[1.0, 0.0]])


def test_n_outputs_validates_the_class_count():
    assert linear.n_outputs("softmax_regression", 3) == 3
    assert linear.n_outputs("logistic_regression", 2) == 1
    with pytest.raises(ValueError, match="logistic_regression needs exactly 2 classes, got 3"):
        linear.n_outputs("logistic_regression", 3)
    with pytest.raises(ValueError, match="softmax_regression needs at least 2 classes, got 1"):
        linear.n_outputs("softmax_regression", 1)


def _fit(model, X, y, k, l2, rounds=3000, lr=0.5):
    theta = np.zeros((X.shape[1] + 1) * k)
    state = optimizers.init_state("momentum", theta.size)
    for t in range(1, rounds + 1):
        loss_sum, grad_sum = linear.loss_grad_sums(model, theta, X, y)
        _, grad = linear.regularized_objective(loss_sum, grad_sum, len(y), theta, l2, k)
        theta, state = optimizers.step("momentum", theta, grad, state, learning_rate=lr, t=t)
    return theta


def test_logistic_matches_scikit_learn_with_the_equivalent_c():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    C = 1.0
    theta = _fit("logistic_regression", X, y.astype(float), 1, l2=1.0 / (C * len(y)))
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(theta[:-1], ref.coef_[0], rtol=2e-3, atol=2e-3)
    assert theta[-1] == pytest.approx(ref.intercept_[0], abs=2e-3)
    np.testing.assert_allclose(linear.predict_proba("logistic_regression", theta, X), ref.predict_proba(X), atol=1e-4)


def test_softmax_matches_scikit_learn_multinomial():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    theta = _fit("softmax_regression", X, y.astype(float), 3, l2=1.0 / len(y))
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, y)
    W = theta.reshape(-1, 3)
    # the multinomial parameterization is unique only up to a shift per feature: compare probabilities
    np.testing.assert_allclose(linear.predict_proba("softmax_regression", theta, X), ref.predict_proba(X), atol=1e-4)
    np.testing.assert_array_equal(linear.predict("softmax_regression", theta, X), ref.predict(X))
    assert W.shape == (14, 3)


def test_classification_metrics_equal_scikit_learn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=200)
    proba = rng.dirichlet([1, 1, 1], size=200)
    m = classification_metrics(y, proba)
    pred = proba.argmax(axis=1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["log_loss"] == pytest.approx(log_loss(y, proba))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert "roc_auc" not in m

    yb = rng.integers(0, 2, size=300)
    score = np.round(rng.random(300), 2)  # ties on purpose
    mb = classification_metrics(yb, np.column_stack([1 - score, score]))
    assert mb["roc_auc"] == pytest.approx(roc_auc_score(yb, score), rel=1e-12)
    assert mb["log_loss"] == pytest.approx(log_loss(yb, np.column_stack([1 - score, score])))
    with pytest.raises(ValueError, match="non-empty"):
        classification_metrics(np.array([]), np.zeros((0, 2)))
