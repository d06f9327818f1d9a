"""Training report for one run: PNG figures (matplotlib) and one self-contained HTML page.

Built on the client from what the API returns (the run with its per-round curve, and the
registered model's artifact when the server has the models routes): nothing runs in Lambda.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_figure(curve: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    rounds = [r["round"] for r in curve]
    ax.plot(rounds, [r["loss"] for r in curve], label="train loss")
    if any(r.get("validation_loss") is not None for r in curve):
        # a round without a validation loss is a gap in the line (matplotlib draws None as NaN)
        validation = [math.nan if r.get("validation_loss") is None else r["validation_loss"] for r in curve]
        ax.plot(rounds, validation, label="validation loss")
    ax.set_xlabel("round")
    ax.set_ylabel("objective")
    if all(r["loss"] > 0 for r in curve):
        ax.set_yscale("log")
    ax.set_title("Training curve")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def timing_figure(curve: list[dict[str, Any]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar([r["round"] for r in curve], [1000 * r.get("seconds", 0.0) for r in curve], width=1.0)
    ax.set_xlabel("round")
    ax.set_ylabel("aggregation time (ms)")
    ax.set_title("Per-round timing")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def confusion_figure(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    fig.colorbar(image, ax=ax)
    return _save(fig, path)


def residual_figure(pairs: list[list[float]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    y_true = [p[0] for p in pairs]
    y_pred = [p[1] for p in pairs]
    ax.scatter(y_pred, [t - p for t, p in zip(y_true, y_pred, strict=True)], s=8, alpha=0.6)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("residual (true - prediction)")
    ax.set_title("Residuals (test set)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _metric_rows(metrics: dict[str, Any], reference: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    rows = []
    for name, value in metrics.items():
        if isinstance(value, int | float):
            ref = reference.get(name) if reference else None
            rows.append((name, f"{value:.6g}", f"{ref:.6g}" if isinstance(ref, int | float) else ""))
    return rows


def build_report(
    run: dict[str, Any], artifact: dict[str, Any] | None, out: Path, cost: dict[str, Any] | None = None
) -> list[Path]:
    """Write the figures and ``report.html`` into ``out``; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    curve = run.get("curve") or []
    figures: list[tuple[str, Path]] = []
    if curve:
        figures.append(("Training curve", loss_figure(curve, out / "loss.png")))
        figures.append(("Per-round timing", timing_figure(curve, out / "timing.png")))
    metrics = (artifact or {}).get("metrics", {}).get("test") or run.get("model", {}).get("metrics", {})
    reference = (artifact or {}).get("metrics", {}).get("reference")
    if isinstance(reference, dict) and "test" in reference:
        reference = reference["test"]
    classes = ((artifact or {}).get("preprocessor") or {}).get("classes")
    if metrics.get("confusion_matrix") and classes:
        figures.append(
            ("Confusion matrix", confusion_figure(metrics["confusion_matrix"], classes, out / "confusion.png"))
        )
    residuals = (artifact or {}).get("metrics", {}).get("residual_sample")
    if residuals:
        figures.append(("Residuals", residual_figure(residuals, out / "residuals.png")))

    model = run.get("model", {})
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{v}</td><td>{r}</td></tr>" for n, v, r in _metric_rows(metrics, reference)
    )
    images = "".join(
        f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'>"
        for title, path in figures
    )
    cost_html = ""
    if cost:
        cost_rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>${v:.6f}</td></tr>" for k, v in cost.get("breakdown", {}).items()
        )
        cost_html = (
            f"<h2>Cost estimate</h2><p>Total ${cost['total']:.6f} ({html.escape(cost.get('basis', ''))})"
            f"</p><table><tr><th>item</th><th>USD</th></tr>{cost_rows}</table>"
        )
    request = json.dumps(run.get("request", {}), indent=2)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Run {html.escape(run["run_id"])}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>Training run {html.escape(run["run_id"])}</h1>
<p>Status {html.escape(run["status"])}; model {html.escape(str(model.get("model_name")))} version
{html.escape(str(model.get("version")))}; {len(curve)} rounds; started {html.escape(run.get("started_at", ""))},
stopped {html.escape(run.get("stopped_at", ""))}.</p>
<h2>Test metrics</h2><table><tr><th>metric</th><th>this model</th><th>scikit-learn reference</th></tr>{rows}</table>
{images}{cost_html}<h2>Request</h2><pre>{html.escape(request)}</pre></body></html>"""
    page_path = out / "report.html"
    page_path.write_text(page)
    return [path for _, path in figures] + [page_path]
