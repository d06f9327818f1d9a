"""The core package's layers, read from the source (AST), so the tree keeps showing the architecture.

mlcore.infra (0) < mlcore.math (1) < mlcore.steps (2) < mlcore.serving (3): a module imports from its own
layer and lower ones only; the math layer is pure numpy (no storage, no AWS SDK, no pandas); no module
imports another module's private names; there are no import cycles; the subpackages' ``__init__`` files
are empty (importing one module never loads its siblings: Predict stays lean); handlers read configuration
through ``Settings`` only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "core" / "mlcore"
LAYERS = {"mlcore": 0, "mlcore.infra": 0, "mlcore.math": 1, "mlcore.steps": 2, "mlcore.serving": 3}
MATH_MAY_IMPORT = ("mlcore.math", "mlcore.infra.errors")
MATH_MUST_NOT_IMPORT = ("boto3", "botocore", "pandas", "mlcore.infra.storage")


def package_sources() -> dict[str, str]:
    """Module name -> source of every module of mlcore."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path.read_text()
    return out


def layer(module: str) -> int:
    return max(rank for prefix, rank in LAYERS.items() if module == prefix or module.startswith(prefix + "."))


def imports(source: str, modules: set[str]) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in ``source``, lazy ones included;
    ``from pkg import sub`` of a submodule counts as an import of ``pkg.sub``. Relative imports come back as
    ``("." * level, None, line)``: the package imports absolutely, so the layers can be read from each line."""
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append(("." * node.level, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append(
                    (sub, None, node.lineno) if sub in modules else (str(node.module), alias.name, node.lineno)
                )
    return found


def private_attribute_uses(source: str, module_aliases: dict[str, str]) -> list[tuple[str, str, int]]:
    """``alias._name`` where ``alias`` is an imported mlcore module: (module, name, line)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            out.append((module_aliases[node.value.id], node.attr, node.lineno))
    return out


def violations(sources: dict[str, str]) -> list[str]:
    modules = set(sources)
    problems: list[str] = []
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, source in sources.items():
        aliases: dict[str, str] = {}
        for target, name, line in imports(source, modules):
            where = f"{module}:{line}"
            if target.startswith("."):
                problems.append(f"{where} imports relatively")
                continue
            if target in modules and target != module:
                graph[module].add(target)
                aliases[target.rsplit(".", 1)[-1]] = target
            if target.startswith("mlcore") and target != module:
                if layer(target) > layer(module):
                    problems.append(f"{where} imports {target} from a higher layer")
                if name is not None and name.startswith("_") and not name.startswith("__"):
                    problems.append(f"{where} imports the private name {target}.{name}")
            if layer(module) == LAYERS["mlcore.math"] and module.startswith("mlcore.math"):
                if target.split(".")[0] in MATH_MUST_NOT_IMPORT or target in MATH_MUST_NOT_IMPORT:
                    problems.append(f"{where}: the math layer imports {target}")
                elif target.startswith("mlcore") and not target.startswith(MATH_MAY_IMPORT):
                    problems.append(f"{where}: the math layer imports {target} (only math and infra.errors)")
        problems += [
            f"{module}:{line} uses the private name {m}.{n}" for m, n, line in private_attribute_uses(source, aliases)
        ]
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_core_package_keeps_its_layers():
    assert violations(package_sources()) == []


def test_every_module_is_in_a_layer_folder():
    loose = [
        m
        for m in package_sources()
        if m.count(".") == 1 and m.split(".")[1] not in ("infra", "math", "steps", "serving")
    ]
    assert loose == []


def test_subpackage_init_files_are_empty():
    inits = [p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert inits, "the layer folders are packages"
    assert [str(p.relative_to(ROOT)) for p in inits if p.read_text().strip()] == []


@pytest.mark.parametrize("handler", sorted((ROOT / "functions").glob("*/app.py")), ids=lambda p: p.parent.name)
def test_handlers_read_configuration_through_settings_only(handler):
    tree = ast.parse(handler.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "os" not in names and "os" not in modules
    assert "boto3" not in names, "clients come from mlcore.infra.aws"
    assert "mlcore.infra.settings" in modules


# -- the checker itself catches what it is for ----------------------------------------------------------------
BAD = {
    "mlcore": "",
    "mlcore.infra": "",
    "mlcore.infra.storage": "import botocore\n",
    "mlcore.infra.errors": "",
    "mlcore.math": "",
    "mlcore.math.linear": "import pandas\nfrom mlcore.infra import storage\nfrom mlcore.steps.training import fit\n",
    "mlcore.steps": "",
    "mlcore.steps.training": "from mlcore.steps import runs\nfrom mlcore.math.linear import _private\n",
    "mlcore.steps.runs": "from mlcore.steps import training\n\ndef f():\n    return training._hidden\n",
    "mlcore.serving": "",
    "mlcore.serving.batch": "from . import online\n",
}


def test_the_checker_reports_each_kind_of_violation():
    found = "\n".join(violations(BAD))
    assert "mlcore.math.linear:1: the math layer imports pandas" in found
    assert "mlcore.math.linear:2: the math layer imports mlcore.infra.storage" in found
    assert "mlcore.math.linear:3 imports mlcore.steps.training from a higher layer" in found
    assert "mlcore.steps.training:2 imports the private name mlcore.math.linear._private" in found
    assert "mlcore.steps.runs:4 uses the private name mlcore.steps.training._hidden" in found
    assert "import cycle: mlcore.math.linear -> mlcore.steps.runs -> mlcore.steps.training" in found
    assert "mlcore.serving.batch:1 imports relatively" in found


def test_the_checker_accepts_a_clean_package():
    clean = {
        "mlcore": "",
        "mlcore.infra": "",
        "mlcore.infra.errors": "",
        "mlcore.math": "",
        "mlcore.math.linear": "import numpy\nfrom mlcore.infra.errors import InvalidInput\n",
        "mlcore.serving": "",
        "mlcore.serving.online": "from mlcore.math import linear\n\ndef f():\n    return linear.predict\n",
    }
    assert violations(clean) == []
