"""One OpenAPI document for the whole API, generated from the code.

Every function with Api events in template.yaml serves some of the routes; each one's Powertools
resolver describes its own (``get_openapi_json_schema``), and the documents are merged here.
``python -m mllocal.openapi`` writes docs/openapi.json; ``--check`` fails when it is out of date.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from .template import ROOT, local_stack

OUTPUT = ROOT / "docs" / "openapi.json"
TITLE = "Serverless ML API"
API_KEY_SCHEME = {"apiKey": {"type": "apiKey", "name": "x-api-key", "in": "header"}}
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string", "title": "Message"}},
}
# Answers any route can give besides its own: from the handlers' one error mapping (mlcore.api) and from
# API Gateway itself (key, throttling).
COMMON_RESPONSES = {
    "400": "Invalid input: the message names the problem",
    "403": "Missing or invalid API key (API Gateway)",
    "404": "The data set, run, job or model does not exist",
    "409": "Conflicts with the current state (e.g. a promotion that does not beat production)",
    "413": "Request body too large",
    "415": "Unsupported Content-Type for the request body",
    "429": "Throttled by the usage plan (API Gateway), or a stack ceiling is reached (MaxConcurrentTrainingRuns)",
}


def _resolver(logical_id: str, code_dir: Path):
    name, file = f"_openapi_{logical_id}", code_dir / "app.py"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the handler module {file}", name=name, path=str(file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def build() -> dict[str, Any]:
    from mlcore import __version__

    doc: dict[str, Any] = {
        "openapi": "3.1.0",  # what Powertools generates (pydantic JSON Schema: tuples use prefixItems)
        "info": {"title": TITLE, "version": __version__},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": API_KEY_SCHEME},
        "security": [{"apiKey": []}],
    }
    for logical_id, fn in sorted(local_stack().functions.items()):
        if not fn.api_routes:
            continue
        part = json.loads(_resolver(logical_id, fn.code_uri).get_openapi_json_schema(title=TITLE))
        for path, operations in part.get("paths", {}).items():
            for method, operation in operations.items():
                if method in doc["paths"].get(path, {}):
                    raise ValueError(f"{method.upper()} {path} is served by two functions")
                operation["x-function"] = logical_id
                for code, description in COMMON_RESPONSES.items():
                    operation["responses"].setdefault(
                        code,
                        {
                            "description": description,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        },
                    )
                doc["paths"].setdefault(path, {})[method] = operation
        for name, schema in part.get("components", {}).get("schemas", {}).items():
            if doc["components"]["schemas"].setdefault(name, schema) != schema:
                raise ValueError(f"two functions define different schemas named {name!r}")
    doc["components"]["schemas"]["Error"] = ERROR_SCHEMA
    doc["paths"] = dict(sorted(doc["paths"].items()))
    doc["components"]["schemas"] = dict(sorted(doc["components"]["schemas"].items()))
    return doc


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/openapi.json is out of date")
    args = parser.parse_args(argv)
    doc = build()
    text = json.dumps(doc, indent=2) + "\n"
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(doc['paths'])} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
