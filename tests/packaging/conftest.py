"""Run the functions built by `sam build` the way Lambda's python3.12 runtime runs them, without Docker.

Each invocation is a fresh ``python3.12 -S`` process (the venv's base interpreter, no
site-packages, no .pyc writes) whose ``sys.path`` holds only what a Lambda container
has: the function's build folder (``/var/task``), its layers' ``python`` folders
(``/opt/python``) and a folder with what the runtime itself ships (boto3 and its
dependencies, copied once from the venv into ``.aws-sam/lambda-runtime``). Handler,
environment, memory, timeout and layers are read from ``.aws-sam/build/template.yaml``,
so a wrong CodeUri, Handler or Layers entry fails here as it would in ``sam local invoke``.
All functions share one moto server, so a chain of invocations sees the same bucket.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import yaml
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
SAM_DIR = ROOT / ".aws-sam"
BUILD_DIR = SAM_DIR / "build"
BUILT_TEMPLATE = BUILD_DIR / "template.yaml"
RUNTIME_DIR = SAM_DIR / "lambda-runtime"
EVENTS_DIR = ROOT / "events"

SAM_BUILD = "SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 .venv/bin/sam build  # with python3.12 on PATH"
RUNTIME = "python3.12"
REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "serverless-ml-packaging"
BUCKET = "serverless-ml-data"  # the bucket named in events/ingest_s3_upload.json
# What the python3.12 Lambda runtime provides besides the standard library.
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
RESULT_MARKER = "@@packaging-result@@ "

# One Lambda container: import the handler module (init, the cold start), then call the
# handler with each event and a context object, JSON-serializing what it returns.
DRIVER = r"""
import importlib, json, sys, time, traceback, uuid

spec = json.loads(sys.argv[1])
events = json.load(sys.stdin)


class LambdaContext:
    function_name = spec["function_name"]
    function_version = "$LATEST"
    invoked_function_arn = spec["function_arn"]
    memory_limit_in_mb = spec["memory_mb"]
    log_group_name = "/aws/lambda/" + spec["function_name"]
    log_stream_name = "packaging"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + spec["timeout_s"]

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def failure(error_type, err):
    return {"errorType": error_type, "errorMessage": str(err), "stackTrace": traceback.format_exception(err)}


def loaded():
    return {name: name in sys.modules for name in ("pandas", "sklearn", "aws_xray_sdk", "boto3", "onnx")}


report = {"init_error": None, "invocations": []}
module_name, _, function_name = spec["handler"].rpartition(".")
started = time.perf_counter()
try:
    handler = getattr(importlib.import_module(module_name), function_name)
except Exception as err:
    handler = None
    report["init_error"] = failure("Runtime.ImportModuleError", err)
report["init_ms"] = (time.perf_counter() - started) * 1000
report["init_loaded"] = loaded()
for event in events if handler is not None else []:
    outcome = {"error": None, "result": None}
    started = time.perf_counter()
    try:
        result = handler(event, LambdaContext())
        json.dumps(result)  # what Lambda does with the return value
        outcome["result"] = result
    except TypeError as err:
        outcome.update(error="Runtime.MarshalError", result=failure("Runtime.MarshalError", err))
    except Exception as err:
        outcome.update(error="Unhandled", result=failure(type(err).__name__, err))
    outcome["ms"] = (time.perf_counter() - started) * 1000
    outcome["loaded"] = loaded()
    report["invocations"].append(outcome)
try:
    import aws_xray_sdk  # the Tracer's dependency must ship with the layer
    report["aws_xray_sdk"] = aws_xray_sdk.__file__
except ImportError as err:
    report["aws_xray_sdk"] = None
    report["aws_xray_sdk_error"] = str(err)
report["sys_path"] = list(sys.path)
report["no_site"] = bool(sys.flags.no_site)
report["dont_write_bytecode"] = sys.dont_write_bytecode
report["module_files"] = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
sys.stdout.flush()
print(spec["marker"] + json.dumps(report))
"""


# -- the build -----------------------------------------------------------------
@dataclass(frozen=True)
class BuiltFunction:
    """One function of the built template, resolved the way SAM resolves it (Globals merged in)."""

    logical_id: str
    code_dir: Path
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    layer_dirs: tuple[Path, ...]  # each layer's ContentUri folder (holding python/)
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{STACK}-{self.logical_id}"

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.name}"

    @property
    def path(self) -> list[Path]:
        """sys.path of the function in Lambda: /var/task, then /opt/python (layers in order)."""
        return [self.code_dir, *(d / "python" for d in self.layer_dirs)]


def _physical(logical_id: str, resources: dict[str, Any]) -> dict[str, str]:
    """Stand-in names and ARNs for the stack's resources (what Ref and GetAtt return once deployed)."""
    kind = resources[logical_id]["Type"]
    name = BUCKET if kind == "AWS::S3::Bucket" else f"{STACK}-{logical_id}"
    arn = {
        "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
        "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        "AWS::Serverless::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
    }.get(kind, f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:{logical_id}/{name}")
    ref = arn if kind == "AWS::Serverless::StateMachine" else name
    return {"Ref": ref, "Arn": arn, "Name": name}


def _resolve(value: Any, resources: dict[str, Any], parameters: dict[str, Any]) -> Any:
    """Ref, GetAtt and Sub, resolved as a deployed stack would resolve them (with stand-in names)."""
    pseudo = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": STACK,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }

    def ref(name: str) -> str:
        if name in pseudo:
            return pseudo[name]
        if name in parameters:
            return str(parameters[name].get("Default"))
        if name in resources:
            return _physical(name, resources)["Ref"]
        raise ValueError(f"cannot resolve Ref {name!r} in the built template")

    def get_att(logical_id: str, attribute: str) -> str:
        if logical_id in resources and attribute in ("Arn", "Name"):
            return _physical(logical_id, resources)[attribute]
        raise ValueError(f"cannot resolve Fn::GetAtt {logical_id}.{attribute} in the built template")

    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return ref(arg)
        if key == "Fn::GetAtt":
            return get_att(*(arg.split(".", 1) if isinstance(arg, str) else arg))
        if key == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: get_att(*m[1].split(".", 1)) if "." in m[1] else ref(m[1]), arg)
        raise ValueError(f"cannot resolve {value!r} in the built template")
    return value


def load_built_functions() -> dict[str, BuiltFunction]:
    template = yaml.safe_load(BUILT_TEMPLATE.read_text())  # `sam build` writes intrinsics in long form
    resources = template["Resources"]
    parameters = template.get("Parameters", {})
    glob = template.get("Globals", {}).get("Function", {})
    functions: dict[str, BuiltFunction] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        layers = []
        for layer in [*glob.get("Layers", []), *props.get("Layers", [])]:  # SAM appends function layers
            if not (isinstance(layer, dict) and layer.get("Ref") in resources):
                raise ValueError(f"{logical_id}: only layers of this template can be emulated, got {layer!r}")
            layers.append(BUILD_DIR / resources[layer["Ref"]]["Properties"]["ContentUri"])
        env = {**glob.get("Environment", {}).get("Variables", {}), **props.get("Environment", {}).get("Variables", {})}
        functions[logical_id] = BuiltFunction(
            logical_id=logical_id,
            code_dir=BUILD_DIR / props["CodeUri"],
            handler=props.get("Handler", glob.get("Handler")),
            runtime=props.get("Runtime", glob.get("Runtime")),
            memory_mb=int(props.get("MemorySize", glob.get("MemorySize", 128))),
            timeout_s=int(props.get("Timeout", glob.get("Timeout", 3))),
            layer_dirs=tuple(layers),
            environment={k: str(_resolve(v, resources, parameters)) for k, v in env.items()},
        )
    return functions


@pytest.fixture(scope="session")
def built_functions() -> dict[str, BuiltFunction]:
    if not BUILT_TEMPLATE.is_file():
        pytest.fail(
            f"{BUILT_TEMPLATE} is missing: run `sam build` first, e.g.\n  cd {ROOT} && {SAM_BUILD}", pytrace=False
        )
    return load_built_functions()


def source_functions() -> list[str]:
    """Logical ids of the functions declared in the source template.yaml."""

    class IgnoreTags(yaml.SafeLoader):
        pass

    IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)
    resources = yaml.load((ROOT / "template.yaml").read_text(), Loader=IgnoreTags)["Resources"]
    return sorted(k for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function")


def pytest_generate_tests(metafunc):
    """A ``function_id`` argument runs the test once per function of template.yaml."""
    if "function_id" in metafunc.fixturenames:
        metafunc.parametrize("function_id", source_functions())


# -- the runtime's own packages ------------------------------------------------------
def _build_runtime_dir() -> Path:
    """Copy boto3 and its dependencies (exactly the files their RECORDs list) out of the venv."""
    dists = {name: importlib.metadata.distribution(name) for name in RUNTIME_DISTRIBUTIONS}
    stamp = {name: dist.version for name, dist in dists.items()}
    stamp_file = RUNTIME_DIR / "versions.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return RUNTIME_DIR
    staging = RUNTIME_DIR.with_name(RUNTIME_DIR.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    for dist in dists.values():
        for file in dist.files or ():
            if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue  # scripts outside site-packages, and bytecode Lambda would not have
            target = staging / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dist.locate_file(file), target)
    (staging / "versions.json").write_text(json.dumps(stamp, indent=1, sort_keys=True))
    shutil.rmtree(RUNTIME_DIR, ignore_errors=True)
    staging.rename(RUNTIME_DIR)
    return RUNTIME_DIR


@pytest.fixture(scope="session")
def runtime_dir(built_functions) -> Path:
    return _build_runtime_dir()


def _base_python() -> tuple[Path, Path]:
    """The venv's base python3.12 (not the venv's), and its standard library folder."""
    candidates = [getattr(sys, "_base_executable", None), shutil.which("python3.12")]
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "which", "python3.12"], capture_output=True, text=True)
        candidates.append(found.stdout.strip() if found.returncode == 0 else None)
    probe = (
        "import json, sys, sysconfig; print(json.dumps([sys.version_info[:2], sys.prefix == sys.base_prefix, "
        "sysconfig.get_path('stdlib')]))"
    )
    for candidate in filter(None, candidates):
        proc = subprocess.run([candidate, "-S", "-c", probe], capture_output=True, text=True, env={})
        if proc.returncode == 0:
            version, not_a_venv, stdlib = json.loads(proc.stdout)
            if version == [3, 12] and not_a_venv:
                return Path(candidate), Path(stdlib)
    pytest.fail(f"no base python3.12 interpreter found (tried {candidates})", pytrace=False)


@pytest.fixture(scope="session")
def base_python() -> tuple[Path, Path]:
    return _base_python()


# -- moto --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_endpoint() -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per S3 call otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Bucket:
    """The data bucket on the moto server, seen from the test process."""

    def __init__(self, endpoint: str, name: str = BUCKET):
        self.name = name
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
        )

    def create(self) -> Bucket:
        self.client.create_bucket(Bucket=self.name)
        self.client.put_bucket_versioning(Bucket=self.name, VersioningConfiguration={"Status": "Enabled"})
        return self

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as err:
            if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def json(self, key: str) -> Any:
        return json.loads(self.bytes(key))

    def array(self, key: str) -> np.ndarray:
        return np.load(io.BytesIO(self.bytes(key)), allow_pickle=False)

    def arrays(self, key: str) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(self.bytes(key)), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}


@pytest.fixture(scope="session")
def bucket(moto_endpoint) -> Bucket:
    """The template's DataBucket (versioned, as in template.yaml), created once on the session's moto server."""
    return Bucket(moto_endpoint).create()


# -- invoking ----------------------------------------------------------------------
@dataclass
class Invocation:
    """One invocation (or, with no event, the init alone) in a container whose whole ``process`` report it shares."""

    function: BuiltFunction
    outcome: dict[str, Any]
    process: dict[str, Any]
    logs: str

    @property
    def error(self) -> str | None:
        return self.outcome["error"]

    @property
    def result(self) -> Any:
        return self.outcome["result"]

    @property
    def loaded(self) -> dict[str, bool]:
        """Whether pandas / sklearn were in sys.modules after this invocation."""
        return self.outcome["loaded"]

    def api(self) -> tuple[int, Any]:
        """Status code and decoded JSON body of an API Gateway proxy response."""
        res = self.ok()
        assert isinstance(res, dict) and {"statusCode", "body"} <= set(res), f"not a proxy response: {res!r}"
        return res["statusCode"], json.loads(res["body"]) if res["body"] else None

    def ok(self) -> Any:
        """The handler's return value, or a failure showing the error and the function's logs."""
        if self.error:
            res = self.result
            pytest.fail(
                f"{self.function.logical_id} failed ({self.error}) {res['errorType']}: {res['errorMessage']}\n"
                + "".join(res["stackTrace"][-6:])
                + f"\n--- function output ---\n{self.logs[-4000:]}",
                pytrace=False,
            )
        return self.result


class Invoker:
    """Runs built functions against the moto server: ``invoke(logical_id, event)`` is a cold start then the
    event; ``invoke.container(logical_id, events)`` a cold start then warm invocations; ``history`` keeps all."""

    def __init__(
        self,
        functions: dict[str, BuiltFunction],
        runtime_dir: Path,
        python: Path,
        stdlib: Path,
        endpoint: str,
        home: Path,
    ):
        self.functions = functions
        self.runtime_dir = runtime_dir
        self.python = python
        self.stdlib = stdlib
        self.endpoint = endpoint
        self.home = home
        self.history: list[Invocation] = []

    def environment(self, fn: BuiltFunction) -> dict[str, str]:
        """Only what Lambda sets plus the template's variables: nothing leaks in from this process."""
        return {
            **fn.environment,
            "PYTHONPATH": os.pathsep.join(str(p) for p in [*fn.path, self.runtime_dir]),
            "PYTHONDONTWRITEBYTECODE": "1",  # /var/task and /opt are read-only
            "PYTHONNOUSERSITE": "1",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "HOME": str(self.home),
            "LAMBDA_TASK_ROOT": str(fn.code_dir),
            "LAMBDA_RUNTIME_DIR": str(self.runtime_dir),
            "_HANDLER": fn.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.name}",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_CONFIG_FILE": str(self.home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.endpoint,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }

    def __call__(self, logical_id: str, event: Any) -> Invocation:
        """A cold start, then the event."""
        return self.container(logical_id, [event])[0]

    def cold_start(self, logical_id: str) -> Invocation:
        """The init alone: the handler module is imported, not called."""
        return self.container(logical_id, [])[0]

    def container(self, logical_id: str, events: list[Any]) -> list[Invocation]:
        """One container: a cold start, then the events one after the other (warm invocations)."""
        if logical_id not in self.functions:
            pytest.fail(f"{logical_id} is not in {BUILT_TEMPLATE}: run `sam build` again", pytrace=False)
        fn = self.functions[logical_id]
        assert fn.runtime == RUNTIME, f"{logical_id} runs on {fn.runtime}, this emulates {RUNTIME}"
        spec = {
            "handler": fn.handler,
            "function_name": fn.name,
            "function_arn": fn.arn,
            "memory_mb": fn.memory_mb,
            "timeout_s": fn.timeout_s,
            "marker": RESULT_MARKER,
        }
        cmd = [str(self.python), "-S", "-P", "-c", DRIVER, json.dumps(spec)]
        timeout = fn.timeout_s * max(1, len(events))
        try:
            proc = subprocess.run(
                cmd,
                input=json.dumps(events),
                capture_output=True,
                text=True,
                cwd=fn.code_dir,
                env=self.environment(fn),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as err:
            pytest.fail(f"{logical_id} ran over its {fn.timeout_s}s timeout\n{err.stdout}\n{err.stderr}", pytrace=False)
        out = proc.stdout.splitlines()
        reports = [line[len(RESULT_MARKER) :] for line in out if line.startswith(RESULT_MARKER)]
        logs = "\n".join(line for line in out if not line.startswith(RESULT_MARKER)) + proc.stderr
        if proc.returncode != 0 or len(reports) != 1:
            pytest.fail(
                f"{logical_id}: the runtime process exited with {proc.returncode}\n{logs[-6000:]}", pytrace=False
            )
        report = json.loads(reports[0])
        if report["init_error"]:  # Lambda answers every invocation of a container that failed its init so
            outcomes = [
                {"error": "Runtime.ImportModuleError", "result": report["init_error"], "loaded": report["init_loaded"]}
            ] * max(1, len(events))
        elif not events:
            outcomes = [{"error": None, "result": None, "loaded": report["init_loaded"]}]
        else:
            outcomes = report["invocations"]
        invocations = [Invocation(fn, outcome, report, logs) for outcome in outcomes]
        self.check_isolation(invocations[0])
        self.history.extend(invocations)
        return invocations

    def check_isolation(self, inv: Invocation) -> None:
        """The process saw the Lambda layout and nothing else (no venv, no site-packages)."""
        report, fn = inv.process, inv.function
        allowed = [*fn.path, self.runtime_dir]
        assert report["no_site"] and report["dont_write_bytecode"], "the runtime process must run with -S and no .pyc"
        stdlib_zip = self.stdlib.parent / f"python{sys.version_info[0]}{sys.version_info[1]}.zip"
        extra = [
            p
            for p in report["sys_path"]
            if Path(p) not in (*allowed, stdlib_zip) and not Path(p).is_relative_to(self.stdlib)
        ]
        assert report["sys_path"][: len(allowed)] == [str(p) for p in allowed], report["sys_path"]
        assert not extra, f"{fn.logical_id}: unexpected sys.path entries {extra}"
        site_packages = self.stdlib / "site-packages"
        leaked = [
            f
            for f in report["module_files"]
            if not any(Path(f).is_relative_to(root) for root in allowed)
            and (not Path(f).is_relative_to(self.stdlib) or Path(f).is_relative_to(site_packages))
        ]
        assert not leaked, f"{fn.logical_id} imported modules from outside the Lambda layout: {leaked[:10]}"


@pytest.fixture(scope="session")
def invoke(built_functions, runtime_dir, base_python, moto_endpoint, bucket, tmp_path_factory) -> Invoker:
    python, stdlib = base_python
    return Invoker(built_functions, runtime_dir, python, stdlib, moto_endpoint, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="session")
def load_event():
    """``load_event("predict.json")``: a committed event from events/."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((EVENTS_DIR / name).read_text())

    return load
