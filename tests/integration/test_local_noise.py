"""What the local runtime prints: moto's Step Functions interpreter logs every error a state machine meets by design
(a missing optional path, a task failure it retries or catches) at ERROR with the whole state; a LocalCloud drops
those lines at their source, that one logger, and nothing else."""

from __future__ import annotations

import logging

from moto.stepfunctions.parser.asl.component import eval_component

from mllocal.cloud import INTERPRETER_LOGGER, LocalCloud

DUMP = "Exception=NoSuchJsonPathError, Details=None-Available at '%s'"


def test_the_interpreters_error_lines_are_dropped_while_a_local_cloud_runs(caplog):
    assert eval_component.LOG.name == INTERPRETER_LOGGER  # the logger moto really uses
    caplog.set_level(logging.INFO)
    with LocalCloud():
        eval_component.LOG.error(DUMP, "x" * 5000)
        eval_component.LOG.warning("kept: below ERROR")
        logging.getLogger("mllocal.elsewhere").error("kept: another logger")
    kept = [r.getMessage() for r in caplog.records if r.message.startswith(("kept", "Exception="))]
    assert kept == ["kept: below ERROR", "kept: another logger"]
    eval_component.LOG.error(DUMP, "after")  # outside a LocalCloud nothing is filtered
    assert caplog.records[-1].getMessage() == DUMP % "after"


def test_the_lines_are_kept_when_the_interpreter_is_debugged(caplog):
    caplog.set_level(logging.DEBUG, logger=INTERPRETER_LOGGER)
    with LocalCloud():
        eval_component.LOG.error(DUMP, "state")
    assert [r.getMessage() for r in caplog.records if r.name == INTERPRETER_LOGGER] == [DUMP % "state"]


def test_api_requests_to_one_function_are_answered_one_at_a_time(monkeypatch):
    """The local server answers requests in threads; a handler's resolver keeps the current event in module state,
    so the local cloud runs one API request at a time per function, as one Lambda environment does."""
    import threading
    import time

    from mllocal import lambdas

    active: dict[str, int] = {}
    most: dict[str, int] = {}
    guard = threading.Lock()

    def slow(spec, event):
        with guard:
            active[spec.logical_id] = active.get(spec.logical_id, 0) + 1
            most[spec.logical_id] = max(most.get(spec.logical_id, 0), active[spec.logical_id])
        time.sleep(0.05)
        with guard:
            active[spec.logical_id] -= 1
        return {"statusCode": 200, "body": event["path"]}, None

    with LocalCloud() as cloud:
        monkeypatch.setattr(lambdas, "invoke", slow)
        paths = ["/models", "/models/a", "/models/b", "/models/c", "/training-runs", "/training-runs/x"]
        answers: dict[str, str] = {}
        threads = [
            threading.Thread(target=lambda p=p: answers.__setitem__(p, cloud.request("GET", p)["body"])) for p in paths
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert answers == {p: p for p in paths}
    assert most == {"ModelsFunction": 1, "RunsFunction": 1}
