"""Training report for one run: PNG figures (matplotlib) and one self-contained HTML page.

Built on the client from what the API returns (the run with its per-round curve, and the
registered model's artifact when the server has the models routes): nothing runs in Lambda.
"""

from __future__ import annotations

import base64
import html
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .sdk import reference_warnings


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


def round_times(curve: list[dict[str, Any]], started_at: str | None = None) -> list[tuple[int, float, float]]:
    """Per round: (round, seconds aggregating, seconds before the aggregation: the workers and the orchestration).
    A round's wall time is from the previous round's end (``finished_at``; the run's start for the first round) to
    its own end; without ``finished_at`` (older servers) only the aggregation is known."""
    previous = _timestamp(started_at)
    rows = []
    for r in curve:
        aggregating = float(r.get("seconds") or 0.0)
        end = r.get("finished_at")
        rest = max(float(end) - previous - aggregating, 0.0) if end is not None and previous is not None else 0.0
        rows.append((int(r["round"]), aggregating, rest))
        previous = float(end) if end is not None else None
    return rows


def _timestamp(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def timing_figure(curve: list[dict[str, Any]], path: Path, started_at: str | None = None) -> Path:
    times = round_times(curve, started_at)
    fig, ax = plt.subplots(figsize=(7, 3))
    rounds = [t[0] for t in times]
    ax.bar(rounds, [t[2] for t in times], width=1.0, label="workers and orchestration")
    ax.bar(rounds, [t[1] for t in times], width=1.0, bottom=[t[2] for t in times], label="aggregation")
    ax.set_xlabel("round")
    ax.set_ylabel("seconds")
    ax.set_title("Per-round timing (wall time)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def feature_importance(artifact: dict[str, Any] | None) -> tuple[str, list[tuple[str, float]]]:
    """(what it is, [(feature, value)] by decreasing magnitude). A linear model's coefficients are on the features
    as the preprocessing left them (numeric columns standardized, categories one-hot), so they are standardized
    coefficients: comparable with one another. A multi-class model's weight of a feature is the root mean square
    of its coefficients over the classes. A model without coefficients has none here."""
    model = (artifact or {}).get("model") or {}
    names = (artifact or {}).get("feature_names") or []
    coefficients = model.get("coefficients")
    if not isinstance(coefficients, list) or len(coefficients) != len(names) or not names:
        return "", []
    values: list[float] = []
    per_class = False
    for c in coefficients:
        if isinstance(c, list) and len(c) > 1:  # one coefficient per class
            values.append(math.sqrt(sum(float(x) ** 2 for x in c) / len(c)))
            per_class = True
        else:
            values.append(float(c[0] if isinstance(c, list) else c))
    kind = "standardized coefficient" + (" (RMS over classes)" if per_class else "")
    pairs = sorted(zip(names, values, strict=True), key=lambda p: abs(p[1]), reverse=True)
    return kind, pairs


def importance_figure(kind: str, pairs: list[tuple[str, float]], path: Path, top: int = 20) -> Path:
    shown = pairs[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(shown) + 1.2))
    ax.barh([p[0] for p in shown], [p[1] for p in shown])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(kind)
    ax.set_title("Feature importance" + (f" (top {top})" if len(pairs) > top else ""))
    ax.grid(alpha=0.3, axis="x")
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


TOP_FEATURES = 30


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


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
        figures.append(("Per-round timing", timing_figure(curve, out / "timing.png", run.get("started_at"))))
    kind, importance = feature_importance(artifact)
    if importance:
        figures.append(("Feature importance", importance_figure(kind, importance, out / "importance.png")))
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
        cost_rows += f"<tr><th>total</th><th>${cost['total']:.6f}</th></tr>"
        cost_html = (
            f"<h2>Cost estimate</h2><p>Total ${cost['total']:.6f} ({html.escape(cost.get('basis', ''))})"
            f"</p><table><tr><th>item</th><th>USD</th></tr>{cost_rows}</table>"
        )
    request = json.dumps(run.get("request", {}), indent=2)
    warnings = reference_warnings(metrics, reference)
    warning_html = "".join(
        f"<p class='warning'>Warning: {html.escape(w)}: check the hyperparameters (learning rate, rounds) or the "
        "preprocessing.</p>"
        for w in warnings
    )
    stop_reason = run.get("stop_reason") or (artifact or {}).get("metrics", {}).get("stop_reason")
    importance_rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{v:.6g}</td></tr>" for n, v in importance[:TOP_FEATURES]
    )
    importance_html = (
        f"<h2>Feature importance</h2><table><tr><th>feature</th><th>{html.escape(kind)}</th></tr>{importance_rows}"
        "</table>"
        if importance
        else ""
    )
    timing = round_times(curve, run.get("started_at"))
    timing_html = (
        f"<p>Per round (median): {_median([t[1] + t[2] for t in timing]):.3f} s wall time, of which "
        f"{_median([t[1] for t in timing]):.3f} s aggregating; the rest is the workers and the orchestration.</p>"
        if timing
        else ""
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Run {html.escape(run["run_id"])}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}
.warning{{background:#fdecea;border:1px solid #e0a0a0;padding:8px;color:#8a1f11}}</style></head><body>
<h1>Training run {html.escape(run["run_id"])}</h1>
<p>Status {html.escape(run["status"])}; model {html.escape(str(model.get("model_name")))} version
{html.escape(str(model.get("version")))}; {len(curve)} rounds; stopped by {html.escape(str(stop_reason or "unknown"))};
started {html.escape(run.get("started_at", ""))}, stopped {html.escape(run.get("stopped_at", ""))}.</p>
{warning_html}
<h2>Test metrics</h2><table><tr><th>metric</th><th>this model</th><th>scikit-learn reference</th></tr>{rows}</table>
{importance_html}{timing_html}{images}{cost_html}<h2>Request</h2><pre>{html.escape(request)}</pre></body></html>"""
    page_path = out / "report.html"
    page_path.write_text(page)
    return [path for _, path in figures] + [page_path]
