"""The report's feature importance for an MLP: the permutation importance Evaluate recorded in the artifact, drawn
and tabled like a linear model's coefficients, labelled with the metric whose drop it is."""

from __future__ import annotations

import pytest

report = pytest.importorskip("mlclient.report")

RUN = {"run_id": "run-1", "status": "SUCCEEDED", "curve": [], "model": {"model_name": "m", "version": 1}}


def _mlp_artifact(metric: str) -> dict:
    columns = [
        {"column": "x1", "features": 1, "mean": 0.05, "std": 0.01},
        {"column": "city", "features": 3, "mean": 0.4, "std": 0.02},
        {"column": "noise", "features": 1, "mean": -0.001, "std": 0.002},
    ]
    layers = [{"weights": [[0.1]] * 5, "biases": [0.0]}, {"weights": [[1.0]], "biases": [0.0]}]
    return {
        "model": {"type": "mlp_regression", "activation": "relu", "layout": [[6, 1], [2, 1]], "layers": layers},
        "feature_names": ["x1", "city=a", "city=b", "city=c", "noise"],
        "metrics": {
            "test": {metric: 0.9},
            "permutation_importance": {
                "metric": metric,
                "baseline": 0.9,
                "rows": 100,
                "of": 100,
                "repeats": 5,
                "seed": 0,
                "columns": columns,
            },
        },
    }


@pytest.mark.parametrize(("metric", "label"), [("r2", "R²"), ("accuracy", "accuracy")])
def test_an_mlp_s_importance_is_its_permutation_importance_largest_first(metric, label):
    assert report.feature_importance(_mlp_artifact(metric)) == (
        f"permutation importance (drop in test {label})",
        [("city", 0.4), ("x1", 0.05), ("noise", -0.001)],
    )


def test_the_report_renders_an_mlp_s_permutation_importance(tmp_path):
    paths = report.build_report(RUN, _mlp_artifact("r2"), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "importance.png" in {p.name for p in paths}
    assert "<h2>Feature importance</h2>" in page
    assert "<th>permutation importance (drop in test R²)</th>" in page
    assert page.index("<td>city</td><td>0.4</td>") < page.index("<td>x1</td><td>0.05</td>")


def test_an_mlp_artifact_without_the_figures_has_no_importance(tmp_path):
    artifact = _mlp_artifact("r2")
    del artifact["metrics"]["permutation_importance"]
    assert report.feature_importance(artifact) == ("", [])
    report.build_report(RUN, artifact, tmp_path)
    assert "Feature importance" not in (tmp_path / "report.html").read_text()
