"""docs/openapi.json is generated from the API functions' code and matches the template's routes."""

from __future__ import annotations

import json
import re

from mllocal import openapi
from mllocal.template import local_stack


def test_committed_openapi_is_current():
    assert openapi.OUTPUT.read_text() == openapi.render(), "docs/openapi.json is out of date: run `make openapi`"


def test_openapi_has_exactly_the_template_routes():
    doc = json.loads(openapi.OUTPUT.read_text())
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routed = {
        (method, re.sub(r"\{(\w+)\}", r"{\1}", path))
        for fn in local_stack().functions.values()
        for method, path in fn.api_routes
    }
    assert documented == routed


def test_openapi_requires_the_api_key():
    doc = json.loads(openapi.OUTPUT.read_text())
    assert doc["security"] == [{"apiKey": []}]
    assert doc["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
