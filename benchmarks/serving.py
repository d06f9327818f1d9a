"""Serving figures: warm Predict latency in process (a linear model and a (64, 64) MLP), cold import of the built
Predict, built size.

``make bench-serving`` (after ``make build`` for the last two). Prints figures; asserts nothing.
Budgets: warm p50 < 2 ms for 1 instance and < 20 ms for 1,000; cold import < 500 ms; Predict +
layers < 100 MB.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".aws-sam" / "build"
RUNTIME = ROOT / ".aws-sam" / "lambda-runtime"  # boto3 & co., as the packaging tests stage them


MLP_HIDDEN = (64, 64)


def _register_housing_model(cloud, model: str = "linear") -> list[dict]:
    """A model on data/housing.csv's features (no training workflow needed), registered on moto: ``linear``, fit in
    closed form; ``mlp``, a (64, 64) relu network with its seeded initial weights (Predict's work does not depend on
    the weights' values)."""
    from mlcore.infra.storage import S3Store
    from mlcore.math import models
    from mlcore.serving import registry
    from mlcore.steps.evaluation import model_weights
    from mlcore.steps.preparation.in_memory import build_matrices
    from mlcore.steps.tabular import column_kinds, read_csv, to_columns

    frame = read_csv((ROOT / "data" / "housing.csv").read_bytes())
    prep, train, _, _, _ = build_matrices(to_columns(frame), column_kinds(frame), "price_k", 0.2, 0)
    if model == "mlp":
        shapes = models.make_layout("mlp_regression", train.shape[1] - 1, 1, list(MLP_HIDDEN))
        net = models.Net("mlp_regression", shapes)
        weights = model_weights(net, net.init(0))
    else:
        X = np.column_stack([train[:, :-1], np.ones(len(train))]).astype(np.float64)
        theta, *_ = np.linalg.lstsq(X, train[:, -1].astype(np.float64), rcond=None)
        weights = {"type": "linear_regression", "coefficients": theta[:-1, None].tolist(), "intercept": [theta[-1]]}
    registry.register(
        S3Store(cloud.stack.bucket),
        "bench",
        {
            "name": "housing",
            "model": weights,
            "target": "price_k",
            "feature_names": prep.feature_names,
            "preprocessor": prep,
            "hyperparameters": {},
            "metrics": {"test": {"r2": 0.9}},
            "training_curve": [],
            "lineage": {},
        },
    )
    rows = frame.drop(columns="price_k").to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows]


def _percentiles(samples: list[float], upper: float = 99) -> tuple[float, float]:
    ms = np.asarray(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, upper))


def warm_latency(
    repeats_1: int = 2000, repeats_1000: int = 200, model: str = "linear", upper: float = 99
) -> dict[str, tuple[float, float]]:
    """Milliseconds of a warm Predict call (the handler in process, on moto) for 1 and 1,000 rows of
    data/housing.csv: ``(p50, p<upper>)`` per row count, for a ``linear`` model or a (64, 64) ``mlp``."""
    import threadpoolctl

    from mllocal import apigw
    from mllocal.cloud import LocalCloud
    from mllocal.lambdas import LambdaContext, load_handler
    from mllocal.template import local_stack

    out = {}
    with contextlib.ExitStack() as stack:
        cloud = stack.enter_context(LocalCloud(local_stack(overrides={"LogLevel": "WARNING"})))
        rows = _register_housing_model(cloud, model)
        spec = cloud.stack.functions["PredictFunction"]
        handler = load_handler(spec)
        os.environ.update(spec.environment)
        context = LambdaContext(spec.name, spec.memory_mb, spec.arn, spec.timeout)
        # numpy is loaded before the function's environment is: its BLAS threads as the template sets them
        threads = spec.environment.get("OPENBLAS_NUM_THREADS")
        stack.enter_context(threadpoolctl.threadpool_limits(int(threads) if threads else None))

        for n, repeats in ((1, repeats_1), (1000, repeats_1000)):
            event = apigw.proxy_event(
                "POST",
                "/models/housing/predict",
                "/models/{name}/predict",
                {"name": "housing"},
                body={"instances": rows[:n]},
            )
            with contextlib.redirect_stdout(io.StringIO()):  # Powertools' metric flushes (EMF lines)
                first = handler(event, context)
                assert first["statusCode"] == 200, first
                samples = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    handler(event, context)
                    samples.append(time.perf_counter() - started)
            out[f"{n} instance(s)"] = _percentiles(samples, upper)
    return out


COLD = r"""
import sys, time
started = time.perf_counter()
import app
print((time.perf_counter() - started) * 1000)
"""

# What is on sys.path in each measurement. The core layer ships checked-hash bytecode (layers/core/Makefile);
# whether the runtime's own boto3 has bytecode could not be checked here, so both cases are measured.
COLD_CASES = {
    "as deployed (layer bytecode), runtime boto3 compiled": ("shipped", "compiled"),
    "as deployed (layer bytecode), runtime boto3 from source": ("shipped", "source"),
    "no bytecode anywhere (every module compiled at import)": ("source", "source"),
}


def _stage(tmp: Path) -> dict[str, tuple[Path, ...]]:
    """Copies of the build: with its bytecode, without any, and the runtime's packages with and without."""
    import compileall
    import shutil

    no_pyc = shutil.ignore_patterns("__pycache__")
    code, layer = BUILD / "PredictFunction", BUILD / "CoreLayer" / "python"
    shutil.copytree(code, tmp / "src" / "code", ignore=no_pyc)
    shutil.copytree(layer, tmp / "src" / "layer", ignore=no_pyc)
    shutil.copytree(RUNTIME, tmp / "runtime", ignore=no_pyc)
    shutil.copytree(RUNTIME, tmp / "runtime-pyc", ignore=no_pyc)
    checked_hash = compileall.py_compile.PycInvalidationMode.CHECKED_HASH
    compileall.compile_dir(tmp / "runtime-pyc", quiet=2, workers=0, invalidation_mode=checked_hash)
    return {
        "shipped": (code, layer),
        "source": (tmp / "src" / "code", tmp / "src" / "layer"),
        "compiled": (tmp / "runtime-pyc",),
        "runtime-source": (tmp / "runtime",),
    }


def cold_import(repeats: int = 7) -> dict[str, list[float]] | str:
    """Milliseconds to import the built Predict handler in a fresh ``python3.12 -S -B`` per run."""
    import tempfile

    if not (BUILD / "PredictFunction").is_dir() or not RUNTIME.is_dir():
        return "not built: run `make build` and the packaging tests (they stage .aws-sam/lambda-runtime)"
    if not any((BUILD / "CoreLayer" / "python" / "numpy").rglob("*.pyc")):
        return "the core layer has no bytecode: run `make build` (layers/core/Makefile compiles it)"
    env = {
        "PYTHONDONTWRITEBYTECODE": "1",
        "DATA_BUCKET": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "serverless-ml",
        "POWERTOOLS_METRICS_NAMESPACE": "ServerlessML",
    }
    python = Path(sys.base_prefix) / "bin" / "python3.12"
    out: dict[str, list[float]] = {label: [] for label in COLD_CASES}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = _stage(Path(tmp))
        for _ in range(repeats):  # interleaved, so load on the machine hits every case alike
            for label, (build, runtime) in COLD_CASES.items():
                path = (*dirs[build], *dirs["compiled" if runtime == "compiled" else "runtime-source"])
                proc = subprocess.run(
                    [str(python), "-S", "-B", "-c", COLD],
                    env={**env, "PYTHONPATH": os.pathsep.join(map(str, path))},
                    capture_output=True,
                    text=True,
                    cwd=path[0],
                )
                if proc.returncode:
                    return proc.stderr[-2000:]
                out[label].append(float(proc.stdout.strip().splitlines()[-1]))
    return out


def built_size() -> dict[str, int] | str:
    parts = {"PredictFunction": BUILD / "PredictFunction", "CoreLayer": BUILD / "CoreLayer"}
    if not all(p.is_dir() for p in parts.values()):
        return "not built: run `make build`"
    return {
        name: sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
        for name, path in parts.items()
    }


def main() -> int:
    print("Predict handler, warm, in process (p50 / p99 ms; budgets p50 < 2 ms for 1, < 20 ms for 1,000):")
    for model in ("linear", "mlp"):
        for label, (p50, p99) in warm_latency(model=model).items():
            print(f"  {model + ' (64, 64)' if model == 'mlp' else model:>13}, {label:>16}: {p50:7.3f} / {p99:7.3f}")
    cold = cold_import()
    if isinstance(cold, str):
        print(f"cold import of the built Predict: {cold}")
    else:
        print("cold import of the built Predict, clean python3.12 -S -B (budget 500 ms):")
        for label, ms in cold.items():
            print(f"  {label:>56}: median {statistics.median(ms):5.0f} ms, min {min(ms):5.0f} ms over {len(ms)} runs")
    size = built_size()
    if isinstance(size, str):
        print(f"built size: {size}")
    else:
        total = sum(size.values())
        print(f"built size, Predict + layers (budget 100 MB): {total / 1e6:.1f} MB {json.dumps(size)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
