"""Training report for one run, and the search of a tuning job: PNG figures (matplotlib) and one self-contained
HTML page each.

Built on the client from what the API returns (the run with its per-round curve, and the
registered model's artifact when the server has the models routes; a tuning job's leaderboard and its trials'
curves): nothing runs in Lambda.
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

from .sdk import TRIAL_COLUMNS, reference_warnings, trial_row, tuning_outcome


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
    of its coefficients over the classes. A model without coefficients (an MLP) has the permutation importance the
    server computed at evaluation (``metrics.permutation_importance``): per input column, the mean drop in the test
    metric when the column is shuffled, largest first; else none."""
    model = (artifact or {}).get("model") or {}
    names = (artifact or {}).get("feature_names") or []
    coefficients = model.get("coefficients")
    if not isinstance(coefficients, list) or len(coefficients) != len(names) or not names:
        return permutation_importance(artifact)
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


PERMUTATION_METRICS = {"r2": "R²", "accuracy": "accuracy"}


def permutation_importance(artifact: dict[str, Any] | None) -> tuple[str, list[tuple[str, float]]]:
    """(what it is, [(input column, mean drop in the test metric)] largest first) from the artifact's
    ``metrics.permutation_importance``; ("", []) without it."""
    found = ((artifact or {}).get("metrics") or {}).get("permutation_importance")
    if not isinstance(found, dict) or not found.get("columns"):
        return "", []
    metric = str(found.get("metric"))
    kind = f"permutation importance (drop in test {PERMUTATION_METRICS.get(metric, metric)})"
    pairs = [(str(c["column"]), float(c["mean"])) for c in found["columns"]]
    return kind, sorted(pairs, key=lambda p: p[1], reverse=True)


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


# -- a tuning job's search ----------------------------------------------------------
def search_points(job: dict[str, Any]) -> dict[str, list[tuple[float, float, int]]]:
    """Per model family: (learning rate, validation metric, trial) of every trial that has both."""
    families: dict[str, list[tuple[float, float, int]]] = {}
    for entry in job.get("leaderboard") or []:
        hp = entry.get("hyperparameters") or {}
        lr, value = hp.get("learning_rate"), entry.get("validation_metric")
        if isinstance(lr, int | float) and lr > 0 and _finite(value):
            families.setdefault(str(hp.get("model")), []).append((float(lr), float(value), int(entry["trial"])))
    return families


def solver_points(job: dict[str, Any]) -> dict[str, list[tuple[str, float, int]]]:
    """Per model family: (solver, validation metric, trial) of every trial with a metric and no learning rate (its
    solver, exact, newton or lbfgs, takes its own steps)."""
    families: dict[str, list[tuple[str, float, int]]] = {}
    for entry in job.get("leaderboard") or []:
        hp = entry.get("hyperparameters") or {}
        value = entry.get("validation_metric")
        if not hp.get("learning_rate") and _finite(value):
            point = (str(hp.get("solver") or "auto"), float(value), int(entry["trial"]))
            families.setdefault(str(hp.get("model")), []).append(point)
    return families


def search_figure(job: dict[str, Any], path: Path) -> Path:
    """The validation metric against the learning rate (log scale), a color per model family, the best trial
    starred; trials whose solver needs no learning rate beside it, by solver."""
    by_lr, by_solver = search_points(job), solver_points(job)
    panels: list[dict[str, Any]] = [p for p in (by_lr, by_solver) if p]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(8, 4), squeeze=False, sharey=True, width_ratios=[3, 1][: len(panels)]
    )
    best = (job.get("best") or {}).get("trial")
    families = sorted({*by_lr, *by_solver})
    colors = {f: f"C{i}" for i, f in enumerate(families)}
    solvers = sorted({p[0] for points in by_solver.values() for p in points})
    for ax, points_by_family in zip(axes[0], panels, strict=True):
        lr_panel = points_by_family is by_lr
        for family, points in sorted(points_by_family.items()):
            xs = [p[0] if lr_panel else solvers.index(str(p[0])) for p in points]
            ax.scatter(xs, [p[1] for p in points], label=family, color=colors[family], alpha=0.8)
            for x, point in zip(xs, points, strict=True):
                if point[2] == best:
                    ax.scatter([x], [point[1]], marker="*", s=250, color="gold", edgecolor="black", zorder=3)
        if lr_panel:
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
        else:
            ax.set_xticks(range(len(solvers)), solvers)
            ax.set_xlim(-0.5, len(solvers) - 0.5)
            ax.set_xlabel("solver (no learning rate)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"validation {job.get('metric') or 'metric'}")
    handles = {label: h for ax in axes[0] for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    axes[0][0].legend(handles.values(), handles.keys(), title="model family")
    fig.suptitle("Search: validation metric against learning rate (star: best trial)")
    return _save(fig, path)


def rung_curves(
    job: dict[str, Any], curves: dict[int, list[dict[str, Any]]] | None = None
) -> dict[int, list[tuple[float, float]]]:
    """Per trial: (epochs, validation loss) points. The entry's ``history`` (one point per rung reached) when the
    API gives it, else its run's curve (validation loss per round) from ``curves``, else its last rung's point."""
    found: dict[int, list[tuple[float, float]]] = {}
    for entry in job.get("leaderboard") or []:
        trial = int(entry["trial"])
        history = entry.get("history") or []
        points = [
            (float(h["epochs"]), float(h["validation_loss"])) for h in history if _finite(h.get("validation_loss"))
        ]
        if not points:
            curve = (curves or {}).get(trial) or []
            points = [
                (float(r["round"]), float(r["validation_loss"])) for r in curve if _finite(r.get("validation_loss"))
            ]
        if not points and _finite(entry.get("validation_loss")) and entry.get("epochs") is not None:
            points = [(float(entry["epochs"]), float(entry["validation_loss"]))]
        if points:
            found[trial] = points
    return found


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def rung_figure(job: dict[str, Any], curves: dict[int, list[tuple[float, float]]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    best = (job.get("best") or {}).get("trial")
    for trial, points in sorted(curves.items()):
        style: dict[str, Any] = {"linewidth": 2.5, "color": "black", "label": f"best (trial {trial})"}
        marker = "." if len(points) < 20 else None
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], marker=marker, alpha=0.7, **(style if trial == best else {})
        )
    for epochs in job.get("rungs") or []:
        ax.axvline(float(epochs), color="grey", linestyle="--", linewidth=0.8)
    if curves and all(p[1] > 0 for points in curves.values() for p in points):
        ax.set_yscale("log")
    ax.set_xlabel("epochs (dashed: the rungs)")
    ax.set_ylabel("validation loss")
    ax.set_title("Rung curves: each trial's validation loss until it stopped")
    if best in curves:
        ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def build_tuning_report(
    job: dict[str, Any], out: Path, curves: dict[int, list[dict[str, Any]]] | None = None
) -> list[Path]:
    """Write a tuning job's search figures and ``tuning.html`` into ``out``; return the paths written. ``curves``:
    the per-round curve of each trial's run, by trial (used when the leaderboard has no rung history)."""
    out.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Path]] = []
    if search_points(job) or solver_points(job):
        figures.append(("Search", search_figure(job, out / "search.png")))
    points = rung_curves(job, curves)
    if points:
        figures.append(("Rung curves", rung_figure(job, points, out / "rungs.png")))
    metric = job.get("metric") or "metric"
    head = "".join(
        f"<th>{html.escape(f'validation {metric}' if c == 'validation metric' else c)}</th>" for c in TRIAL_COLUMNS
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(trial_row(e)[c]))}</td>" for c in TRIAL_COLUMNS) + "</tr>"
        for e in job.get("leaderboard") or []
    )
    images = "".join(
        f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'>"
        for title, path in figures
    )
    cost = job.get("cost_usd")
    estimate = job.get("estimated_cost_usd")
    cost_text = (f"cost ${cost:.6f}" if isinstance(cost, int | float) else "cost not known yet") + (
        f" (estimated ${estimate:.6f} at submission)" if isinstance(estimate, int | float) else ""
    )
    share = job.get("early_stopped_share")
    early = f"; {share:.0%} of the trials stopped early" if isinstance(share, int | float) else ""
    request = json.dumps(job.get("request") or {}, indent=2)
    job_id = html.escape(str(job.get("job_id")))
    facts = f"Task {job.get('task')}; rungs (epochs) {job.get('rungs')}; {cost_text}{early}."
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Tuning job {job_id}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>Tuning job {job_id}</h1>
<p>{html.escape(tuning_outcome(job))}.</p>
<p>{html.escape(facts)}</p>
<h2>Leaderboard (best first)</h2><table><tr>{head}</tr>{body}</table>
{images}<h2>Request</h2><pre>{html.escape(request)}</pre></body></html>"""
    page_path = out / "tuning.html"
    page_path.write_text(page)
    return [path for _, path in figures] + [page_path]


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
