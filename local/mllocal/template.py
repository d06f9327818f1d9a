"""Read template.yaml (the single source of truth) and resolve what a local run needs from it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form intrinsic tags."""


def _intrinsic(tag: str) -> Callable[[_CfnLoader, yaml.Node], dict[str, Any]]:
    name = "Ref" if tag == "Ref" else f"Fn::{tag}"

    def construct(loader: _CfnLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:
            raise yaml.constructor.ConstructorError(
                problem=f"unexpected {type(node).__name__}", problem_mark=node.start_mark
            )
        return {name: value}

    return construct


for _tag in (
    "Ref",
    "GetAtt",
    "Sub",
    "Join",
    "If",
    "Equals",
    "Not",
    "Select",
    "Split",
    "FindInMap",
    "ImportValue",
    "GetAZs",
    "Base64",
    "And",
    "Or",
    "Condition",
):
    _CfnLoader.add_constructor(f"!{_tag}", _intrinsic(_tag))


# What SAM's S3 policy templates grant, as SAM expands them (samtranslator's policy_templates.json; a test
# keeps this table equal to it): (actions, resources) with "" for the bucket's ARN and "/*" for its objects.
type PolicyStatements = tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
_BUCKET_AND_OBJECTS = ("", "/*")
S3_POLICY_TEMPLATES: dict[str, PolicyStatements] = {
    "S3ReadPolicy": (
        (
            (
                "s3:GetObject",
                "s3:ListBucket",
                "s3:GetBucketLocation",
                "s3:GetObjectVersion",
                "s3:GetLifecycleConfiguration",
            ),
            _BUCKET_AND_OBJECTS,
        ),
    ),
    "S3WritePolicy": ((("s3:PutObject", "s3:PutObjectAcl", "s3:PutLifecycleConfiguration"), _BUCKET_AND_OBJECTS),),
    "S3CrudPolicy": (
        (
            (
                "s3:GetObject",
                "s3:ListBucket",
                "s3:GetBucketLocation",
                "s3:GetObjectVersion",
                "s3:PutObject",
                "s3:PutObjectAcl",
                "s3:GetLifecycleConfiguration",
                "s3:PutLifecycleConfiguration",
                "s3:DeleteObject",
            ),
            _BUCKET_AND_OBJECTS,
        ),
    ),
    "S3FullAccessPolicy": (
        (
            (
                "s3:GetObject",
                "s3:GetObjectAcl",
                "s3:GetObjectVersion",
                "s3:PutObject",
                "s3:PutObjectAcl",
                "s3:DeleteObject",
                "s3:DeleteObjectTagging",
                "s3:DeleteObjectVersionTagging",
                "s3:GetObjectTagging",
                "s3:GetObjectVersionTagging",
                "s3:PutObjectTagging",
                "s3:PutObjectVersionTagging",
            ),
            ("/*",),
        ),
        (
            ("s3:ListBucket", "s3:GetBucketLocation", "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"),
            ("",),
        ),
    ),
}


def s3_grants(policies: list[Any], resolve: Callable[[Any], Any]) -> tuple[tuple[str, str], ...]:
    """(action pattern, ARN pattern) pairs a function's ``Policies`` allow on S3: the bucket's ARN for bucket
    actions (``s3:ListBucket``), an object ARN pattern for object actions."""
    grants: list[tuple[str, str]] = []
    for policy in policies:
        if not isinstance(policy, dict):
            continue  # a managed policy by name: none of ours grants S3
        for name, body in policy.items():
            if name in S3_POLICY_TEMPLATES:
                bucket = resolve(body["BucketName"])
                for granted, suffixes in S3_POLICY_TEMPLATES[name]:
                    grants += [(a, f"arn:aws:s3:::{bucket}{s}") for a in granted for s in suffixes]
            elif name == "Statement":
                for statement in body if isinstance(body, list) else [body]:
                    actions = [a for a in _as_list(statement.get("Action")) if a.startswith("s3:")]
                    if statement.get("Effect") != "Allow" or not actions:
                        continue  # only S3 statements are resolved: others may name resources run locally without ARNs
                    resources = _as_list(resolve(statement.get("Resource")))
                    grants += [(a, r) for a in actions for r in resources if r.startswith("arn:aws:s3:::")]
    return tuple(grants)


def _optional_int(value: Any) -> int | None:
    return None if value is NO_VALUE else int(value)


def _as_list(value: Any) -> list[str]:
    return [] if value is None else [str(v) for v in (value if isinstance(value, list) else [value])]


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    code_uri: Path
    handler: str
    environment: dict[str, str]
    memory_mb: int
    timeout: int
    api_routes: list[tuple[str, str]] = field(default_factory=list)  # (METHOD, /path/{param})
    s3_created_prefixes: list[str] = field(default_factory=list)  # EventBridge "Object Created" key prefixes
    s3_grants: tuple[tuple[str, str], ...] = ()  # (action pattern, ARN pattern) from its Policies
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions, None when unreserved

    def allowed(self, action: str, bucket: str, key: str) -> bool:
        """Whether the template's policies let this function do ``action`` (e.g. ``s3:PutObject``) on the object."""
        arn = f"arn:aws:s3:::{bucket}/{key}"
        return any(fnmatchcase(action, a) and fnmatchcase(arn, r) for a, r in self.s3_grants)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.name}"


@dataclass
class StateMachineSpec:
    logical_id: str
    name: str
    definition: str
    type: Literal["STANDARD", "EXPRESS"] = "STANDARD"


@dataclass
class LocalStack:
    """The template resolved for a local run: bucket, functions, state machines."""

    stack_name: str
    bucket: str
    bucket_versioning: bool
    api_key_required: bool
    functions: dict[str, FunctionSpec]
    state_machines: dict[str, StateMachineSpec]
    parameters: dict[str, str]


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


NO_VALUE = object()  # AWS::NoValue: the property is left out


def _resolver(
    stack_name: str,
    physical: dict[str, str],
    arns: dict[str, str],
    parameters: dict[str, str],
    conditions: dict[str, Any] | None = None,
):
    pseudo = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": stack_name,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }

    def ref(name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        for table in (pseudo, parameters, physical):
            if name in table:
                return table[name]
        raise KeyError(f"cannot resolve Ref {name!r} locally")

    def get_att(logical: str, attribute: str) -> str:
        if attribute == "Arn" and logical in arns:
            return arns[logical]
        raise KeyError(f"cannot resolve Fn::GetAtt {logical}.{attribute} locally")

    def condition(name: str) -> bool:
        if name not in (conditions or {}):
            raise KeyError(f"cannot resolve Condition {name!r} locally")
        return truth((conditions or {})[name])

    def truth(value: Any) -> bool:
        ((key, arg),) = value.items()
        if key == "Condition":
            return condition(arg)
        if key == "Fn::Equals":
            left, right = (str(resolve(v)) for v in arg)
            return left == right
        if key == "Fn::Not":
            return not truth(arg[0])
        if key == "Fn::And":
            return all(truth(v) for v in arg)
        if key == "Fn::Or":
            return any(truth(v) for v in arg)
        raise KeyError(f"cannot resolve condition function {key} locally")

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return ref(arg)
            if key == "Fn::If":
                name, if_true, if_false = arg
                return resolve(if_true if condition(name) else if_false)
            if key == "Fn::GetAtt":
                return get_att(*arg)
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]

                def sub(m: re.Match) -> str:
                    token = m.group(1)
                    return get_att(*token.split(".", 1)) if "." in token and "::" not in token else ref(token)

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return resolve


def local_stack(stack_name: str = "serverless-ml-local", overrides: dict[str, str] | None = None) -> LocalStack:
    """Resolve template.yaml into names, ARNs, environments and state machine definitions."""
    template = load_template()
    resources = template["Resources"]
    parameters = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    parameters.update(overrides or {})
    buckets = [k for k, r in resources.items() if r["Type"] == "AWS::S3::Bucket"]
    if len(buckets) != 1:
        raise ValueError(f"expected exactly one bucket in the template, found {buckets}")
    bucket = f"{stack_name}-{buckets[0].lower()}"
    physical: dict[str, str] = {buckets[0]: bucket}
    arns: dict[str, str] = {buckets[0]: f"arn:aws:s3:::{bucket}"}
    for logical, res in resources.items():
        if res["Type"] == "AWS::Serverless::Function":
            physical[logical] = f"{stack_name}-{logical}"
            arns[logical] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical[logical]}"
        elif res["Type"] == "AWS::Serverless::StateMachine":
            physical[logical] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{stack_name}-{logical}"
            arns[logical] = physical[logical]
        elif res["Type"] not in ("AWS::S3::Bucket",):
            physical.setdefault(logical, f"{stack_name}-{logical}")
    resolve = _resolver(stack_name, physical, arns, parameters, template.get("Conditions", {}))
    globals_fn = template.get("Globals", {}).get("Function", {})
    functions: dict[str, FunctionSpec] = {}
    state_machines: dict[str, StateMachineSpec] = {}
    for logical, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            env = {
                **globals_fn.get("Environment", {}).get("Variables", {}),
                **props.get("Environment", {}).get("Variables", {}),
            }
            routes = [
                (ev["Properties"]["Method"].upper(), ev["Properties"]["Path"])
                for ev in props.get("Events", {}).values()
                if ev["Type"] == "Api"
            ]
            functions[logical] = FunctionSpec(
                logical_id=logical,
                name=physical[logical],
                code_uri=ROOT / props["CodeUri"],
                handler=props.get("Handler", globals_fn.get("Handler", "app.lambda_handler")),
                environment={k: str(v) for k, v in resolve(env).items()},
                memory_mb=int(props.get("MemorySize", globals_fn.get("MemorySize", 128))),
                timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
                api_routes=routes,
                s3_created_prefixes=[
                    rule["prefix"]
                    for ev in props.get("Events", {}).values()
                    if ev["Type"] == "EventBridgeRule"
                    and "Object Created" in ev["Properties"]["Pattern"].get("detail-type", [])
                    for rule in ev["Properties"]["Pattern"].get("detail", {}).get("object", {}).get("key", [])
                    if isinstance(rule, dict) and "prefix" in rule
                ],
                s3_grants=s3_grants(props.get("Policies", []), resolve),
                reserved_concurrency=_optional_int(resolve(props.get("ReservedConcurrentExecutions", NO_VALUE))),
            )
        elif res["Type"] == "AWS::Serverless::StateMachine":
            definition = (ROOT / props["DefinitionUri"]).read_text()
            for key, value in resolve(props.get("DefinitionSubstitutions", {})).items():
                definition = definition.replace("${" + key + "}", value)
            state_machines[logical] = StateMachineSpec(
                logical_id=logical,
                name=physical[logical].rsplit(":", 1)[1],
                definition=definition,
                type="EXPRESS" if props.get("Type") == "EXPRESS" else "STANDARD",
            )
    versioning = resources[buckets[0]].get("Properties", {}).get("VersioningConfiguration", {})
    apis = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Api"]
    api_key_required = any(a.get("Properties", {}).get("Auth", {}).get("ApiKeyRequired") for a in apis)
    return LocalStack(
        stack_name=stack_name,
        bucket=bucket,
        bucket_versioning=versioning.get("Status") == "Enabled",
        api_key_required=bool(api_key_required),
        functions=functions,
        state_machines=state_machines,
        parameters=parameters,
    )
