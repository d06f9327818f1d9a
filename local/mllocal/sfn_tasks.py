"""Make moto's ``arn:aws:states:::states:startExecution`` integration behave as on AWS.

moto 5.x's interpreter passes the state's parameters (``StateMachineArn``, ``Name``,
``Input``: the API's PascalCase member names, as AWS documents them) straight to
boto3's ``start_execution``, which expects ``stateMachineArn``/``name``/``input``,
and returns boto3's response (``executionArn``, a ``datetime`` ``startDate``) where
AWS returns ``ExecutionArn``/``StartDate``. ``start_execution_integration`` maps both
for the duration of the context. The same for ``startExecution.sync:2``: moto returns
DescribeExecution's boto3 names (``output``, ``error``, ``cause``), AWS ``Output``, ``Error``,
``Cause``, in the task's result and in the cause of a failed child. And an execution stopped while a state runs
(a Map's iterations, a task) ends ABORTED, as on AWS: moto lets the error that the stop causes in the running state
(``States.Runtime``, a Map's failure) replace the stop and fails the execution. Pinned to moto 5.x.

Also: a definition that moto's parser accepted once is not parsed again at ``create_state_machine`` (a validation
whose result moto discards; the four definitions took 0.8 s of every local cloud's start). Executions still parse
their definition, as moto does.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from unittest import mock

from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_sfn as sfn_task
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

Task = sfn_task.StateTaskServiceSfn


_VALIDATED: set[str] = set()  # definitions moto's parser accepted in this process


@contextlib.contextmanager
def start_execution_integration() -> Iterator[None]:
    normalise, evaluate = Task._normalise_parameters, Task._eval_service_task
    normalise_response = Task._normalise_response

    def pascal_case_described(self, response, boto_service_name=None, service_action_name=None):
        normalise_response(self, response, boto_service_name, service_action_name)
        if service_action_name == "describe_execution":  # the sync resolvers' result, before a failure's cause
            for key in list(response):
                value = response.pop(key)
                response[key[0].upper() + key[1:]] = (
                    value.isoformat() if isinstance(value, datetime.datetime) else value
                )

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        normalise(self, parameters, boto_service_name, service_action_name)
        for key in list(parameters):
            parameters[key[0].lower() + key[1:]] = parameters.pop(key)

    def eval_service_task(self, env, *args, **kwargs):
        evaluate(self, env, *args, **kwargs)
        response = env.stack.pop()
        env.stack.append(
            {
                key[0].upper() + key[1:]: value.isoformat() if isinstance(value, datetime.datetime) else value
                for key, value in response.items()
            }
        )

    validate = StepFunctionsParserBackend._validate_definition

    def validate_once(definition: str) -> None:
        if definition not in _VALIDATED:
            validate(definition)  # raises InvalidDefinition, and nothing is remembered
            _VALIDATED.add(definition)

    set_error = Environment.set_error

    def error_unless_stopped(self, error):
        if not isinstance(self._program_state, ProgramStopped):  # a stopped execution stays ABORTED
            set_error(self, error)

    with (
        mock.patch.object(StepFunctionsParserBackend, "_validate_definition", staticmethod(validate_once)),
        mock.patch.object(Environment, "set_error", error_unless_stopped),
        mock.patch.object(Task, "_normalise_parameters", normalise_parameters),
        mock.patch.object(Task, "_eval_service_task", eval_service_task),
        mock.patch.object(Task, "_normalise_response", pascal_case_described),
    ):
        yield
