"""docs/api.md's route table names every route of the template, each once, with the function that serves it."""

from __future__ import annotations

import re

from mllocal.template import ROOT, local_stack

ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \| (\w+) \|", re.M)


def documented_routes() -> list[tuple[str, str, str]]:
    return ROW.findall((ROOT / "docs" / "api.md").read_text())


def test_the_route_table_has_exactly_the_template_routes_and_their_functions():
    rows = documented_routes()
    routed = {
        (method, path): name.removesuffix("Function")
        for name, fn in local_stack().functions.items()
        for method, path in fn.api_routes
    }
    assert len(rows) == len({(m, p) for m, p, _ in rows}), "a route is documented twice"
    assert {(m, p): f for m, p, f in rows} == routed


def test_the_route_pattern_reads_the_table():
    # the table's rows as docs/api.md writes them; a change of its layout must not make the test above vacuous
    assert ("GET", "/models/{name}/versions/{version}/onnx", "Export") in documented_routes()
    assert ("POST", "/tuning-jobs", "Tuning") in documented_routes()
