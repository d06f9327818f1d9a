"""template.yaml as AWS sees it: the function roles SAM's translator expands from the Policies, and the
concurrency ceilings the local stack resolves from the template's Parameters. Needs no `sam build`."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from mlcore.infra import layout
from mllocal.template import S3_POLICY_TEMPLATES, load_template, local_stack

OBJECT_WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
NEVER = ("s3:PutLifecycleConfiguration", "s3:PutObjectAcl", "s3:PutBucket", "s3:DeleteBucket")


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def roles() -> dict[str, list[dict[str, Any]]]:
    """Each function role's inline policy statements, as `sam deploy` would create them."""
    template = copy.deepcopy(load_template())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for uri in ("CodeUri", "ContentUri", "DefinitionUri"):
            if uri in props:
                props[uri] = "s3://bucket/key"  # what `sam package` puts there
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator reads the region of a boto3 session
        out = transform(template, {}, _NoManagedPolicies())
    functions = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]
    return {
        f: [
            statement
            for policy in out["Resources"][f"{f}Role"]["Properties"].get("Policies", [])
            for statement in policy["PolicyDocument"]["Statement"]
        ]
        for f in functions
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_local_grants_know_the_sam_policy_templates():
    """mllocal expands S3ReadPolicy & co. exactly as SAM does (actions and bucket/object resources)."""
    path = resources.files("samtranslator") / "policy_templates_data" / "policy_templates.json"
    sam = json.loads(path.read_text())["Templates"]
    for name, statements in S3_POLICY_TEMPLATES.items():
        expected = [
            (
                tuple(s["Action"]),
                tuple(r["Fn::Sub"][0].removeprefix("arn:${AWS::Partition}:s3:::${bucketName}") for r in s["Resource"]),
            )
            for s in sam[name]["Definition"]["Statement"]
        ]
        assert list(statements) == expected, name


def test_function_roles_have_no_bucket_wide_writes(roles):
    """No S3CrudPolicy: each role's S3 writes are object writes on the layout's prefixes, and nothing can change
    the bucket's lifecycle, ACLs or configuration."""
    prefixes = tuple(f"${{DataBucket.Arn}}/{p}" for p in layout.INTERNAL_PREFIXES)
    offending = []
    for function, statements in roles.items():
        for statement in statements:
            actions = [a for a in _list(statement["Action"]) if a.startswith("s3:")]
            if not actions:
                continue
            for action in actions:
                if "*" in action or action.startswith(NEVER):
                    offending.append((function, action))
            writes = [a for a in actions if not a.startswith(("s3:Get", "s3:List"))]
            if writes:
                assert set(writes) <= OBJECT_WRITES, (function, writes)
                resources_ = [r.get("Fn::Sub") for r in _list(statement["Resource"])]
                assert all(isinstance(r, str) and r.startswith(prefixes) for r in resources_), (function, resources_)
    assert offending == []


def test_ingest_role_may_not_delete_data_set_versions(roles):
    deletes = [
        r["Fn::Sub"]
        for s in roles["IngestFunction"]
        if "s3:DeleteObject" in _list(s["Action"])
        for r in _list(s["Resource"])
    ]
    assert deletes == ["${DataBucket.Arn}/uploads/*"]


def _map_concurrency(definition: str) -> dict[str, int]:
    """MaxConcurrency of every Map state, by state name (nested states included)."""
    found: dict[str, int] = {}

    def walk(states: dict[str, Any]) -> None:
        for name, state in states.items():
            if state.get("Type") == "Map":
                found[name] = state["MaxConcurrency"]
                walk((state.get("ItemProcessor") or state.get("Iterator"))["States"])

    walk(json.loads(definition)["States"])
    return found


def test_concurrency_ceilings_come_from_the_template_parameters():
    stack = local_stack()
    assert stack.functions["PredictFunction"].reserved_concurrency == 10
    assert {n: f.reserved_concurrency for n, f in stack.functions.items() if n != "PredictFunction"} == dict.fromkeys(
        [n for n in stack.functions if n != "PredictFunction"]
    )
    assert _map_concurrency(stack.state_machines["TrainingStateMachine"].definition) == {
        "PrepareStats": 40,
        "PrepareWrite": 40,
        "AsyncSteps": 40,
        "ComputeGradientsDistributed": 100,
    }
    assert _map_concurrency(stack.state_machines["TrainingRoundsStateMachine"].definition) == {"ComputeGradients": 40}
    assert _map_concurrency(stack.state_machines["BatchInferenceStateMachine"].definition) == {"PredictChunks": 100}

    changed = local_stack(
        overrides={
            "PredictReservedConcurrency": "25",
            "TrainingMapMaxConcurrency": "300",
            "TrainingInlineMapMaxConcurrency": "8",
            "BatchMapMaxConcurrency": "5",
            "PreprocessMapMaxConcurrency": "3",
        }
    )
    assert changed.functions["PredictFunction"].reserved_concurrency == 25
    assert _map_concurrency(changed.state_machines["TrainingStateMachine"].definition) == {
        "PrepareStats": 3,
        "PrepareWrite": 3,
        "AsyncSteps": 8,
        "ComputeGradientsDistributed": 300,
    }
    assert _map_concurrency(changed.state_machines["TrainingRoundsStateMachine"].definition) == {"ComputeGradients": 8}
    assert _map_concurrency(changed.state_machines["BatchInferenceStateMachine"].definition) == {"PredictChunks": 5}


def test_zero_reserves_nothing_rather_than_disabling_predict():
    """ReservedConcurrentExecutions 0 would throttle every prediction: 0 leaves the property out instead."""
    assert (
        local_stack(overrides={"PredictReservedConcurrency": "0"}).functions["PredictFunction"].reserved_concurrency
        is None
    )


def test_map_ceilings_cannot_be_zero():
    """MaxConcurrency 0 means unlimited to Step Functions: the parameters start at 1."""
    parameters = load_template()["Parameters"]
    names = ("TrainingMapMaxConcurrency", "TrainingInlineMapMaxConcurrency", "BatchMapMaxConcurrency")
    for name in (*names, "PreprocessMapMaxConcurrency"):
        assert parameters[name]["MinValue"] == 1, name
    assert parameters["TrainingInlineMapMaxConcurrency"]["MaxValue"] == 40  # an inline Map's own ceiling
    assert parameters["PreprocessMapMaxConcurrency"]["MaxValue"] == 40
