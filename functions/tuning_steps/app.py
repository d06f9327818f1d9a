"""The tuning workflow's tasks (statemachines/tuning.asl.json), told apart by ``action``: start (keep the prepared
data), next (ASHA's next job for a slot), record (a trial's result, create-only), finalize (the best trial's
Evaluate task) and finish (leaderboard, promotion and cost)."""

from typing import Annotated

from pydantic import Field, TypeAdapter

from mlcore.infra import aws
from mlcore.infra.observability import logger, tracer
from mlcore.infra.settings import Settings
from mlcore.serving import registry
from mlcore.steps import tuning

TASKS: TypeAdapter[tuning.TuningTask] = TypeAdapter(Annotated[tuning.TuningTask, Field(discriminator="action")])


@logger.inject_lambda_context(correlation_id_path="job_id")
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context) -> dict:
    settings = Settings.from_env()
    store = settings.store()
    task = TASKS.validate_python(event)
    if isinstance(task, tuning.StartTask):
        return tuning.start(store, task)
    if isinstance(task, tuning.NextTask):
        return tuning.next_action(store, task)
    if isinstance(task, tuning.RecordTask):
        return tuning.record(store, task)
    if isinstance(task, tuning.FinalizeTask):
        return tuning.finalize(store, task, seconds_left=lambda: context.get_remaining_time_in_millis() / 1000)
    run_ids = tuning.trial_runs(store, task.job_id)
    usage = tuning.usage_of(
        store, aws.stepfunctions(), aws.lambda_service(), settings.training_state_machine_arn, run_ids, settings.region
    )
    production = registry.get_alias(store, str(task.registered["model_name"]), registry.PRODUCTION)
    return tuning.finish(store, task, production, usage)
