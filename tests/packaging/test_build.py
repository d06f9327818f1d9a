"""The build itself: current with the sources, and within Lambda's size limits."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
# Unzipped function + layers. Lambda's hard limit is 250 MB (262,144,000 bytes); we keep a margin,
# and a smaller one for the latency-sensitive Predict cold start.
SIZE_LIMIT = 200_000_000
SIZE_LIMITS = {"PredictFunction": 100_000_000}


class _IgnoreTags(yaml.SafeLoader):
    """Reads the source template.yaml, whose short-form intrinsics (!Ref ...) do not matter here."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


def _tree_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        total += sum(os.lstat(os.path.join(folder, f)).st_size for f in files)
    return total


def _source_files(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix == ".py"  # code, not build recipes
    )


def test_built_template_has_every_function(built_functions):
    source = yaml.load((ROOT / "template.yaml").read_text(), Loader=_IgnoreTags)
    declared = {k for k, r in source["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(built_functions) == declared, "the build does not match template.yaml: run `sam build` again"
    for fn in built_functions.values():
        assert (fn.code_dir / (fn.handler.rpartition(".")[0].replace(".", "/") + ".py")).is_file(), fn
        assert fn.layer_dirs, f"{fn.logical_id} has no layer"
        for layer in fn.layer_dirs:
            assert (layer / "python").is_dir(), f"{layer} has no python/ folder: Lambda would not find it"


def test_build_is_current(built_functions):
    """Every source file is in the build with the same bytes; otherwise these tests test old code."""
    source = yaml.load((ROOT / "template.yaml").read_text(), Loader=_IgnoreTags)["Resources"]
    pairs: list[tuple[Path, Path]] = []
    for logical_id, resource in source.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            pairs.append((ROOT / props["CodeUri"], ROOT / ".aws-sam" / "build" / logical_id))
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            pairs.append((ROOT / props["ContentUri"], ROOT / ".aws-sam" / "build" / logical_id / "python"))
    stale = [
        str(src / rel)
        for src, dst in pairs
        for rel in _source_files(src)
        if not (dst / rel).is_file() or not filecmp.cmp(src / rel, dst / rel, shallow=False)
    ]
    assert not stale, f"the build is older than these sources, run `sam build` again: {stale}"


def test_unzipped_size(function_id, built_functions, request):
    if function_id not in built_functions:
        pytest.fail(f"{function_id} is not in the build: run `sam build` again", pytrace=False)
    fn = built_functions[function_id]
    limit = SIZE_LIMITS.get(function_id, SIZE_LIMIT)
    parts = {fn.code_dir.name: _tree_bytes(fn.code_dir)} | {d.name: _tree_bytes(d) for d in fn.layer_dirs}
    total = sum(parts.values())
    request.node.user_properties.append(("unzipped_bytes", total))
    print(
        f"\n{function_id}: {total:,} bytes unzipped ({total / 1e6:.1f} MB) = "
        + " + ".join(f"{name} {size:,}" for name, size in parts.items())
    )
    assert total < limit, f"{function_id} is {total:,} bytes unzipped with its layers, over our limit of {limit:,}"


def test_layers_ship_current_bytecode(built_functions):
    """Every module of every layer has checked-hash python3.12 bytecode compiled from exactly its source.

    Lambda's file system is read-only: without shipped bytecode every cold start compiles numpy, pydantic
    and Powertools again. A stale or missing .pyc, or one for another Python, would silently be ignored.
    """
    import importlib.util
    import sys

    assert sys.implementation.cache_tag == "cpython-312", "run the packaging tests with python3.12"
    layers = {layer for fn in built_functions.values() for layer in fn.layer_dirs}
    problems, checked = [], 0
    for layer in sorted(layers):
        for py in sorted((layer / "python").rglob("*.py")):
            pyc = Path(importlib.util.cache_from_source(str(py)))
            if not pyc.is_file():
                problems.append(f"{py.relative_to(layer)}: no {pyc.name}")
                continue
            header = pyc.read_bytes()[:16]
            flags = int.from_bytes(header[4:8], "little")
            if header[:4] != importlib.util.MAGIC_NUMBER or flags != 0b11:
                problems.append(f"{py.relative_to(layer)}: not checked-hash bytecode of this Python (flags {flags})")
            elif header[8:16] != importlib.util.source_hash(py.read_bytes()):
                problems.append(f"{py.relative_to(layer)}: compiled from other source")
            checked += 1
    assert checked > 500, f"only {checked} modules in the layers"
    assert not problems, problems[:20]
