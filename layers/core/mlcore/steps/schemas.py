"""Contracts between the workflow's steps (pydantic). Payloads carry S3 keys, small numbers and small vectors only."""

from __future__ import annotations

import base64
import binascii
import itertools
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlcore.infra import layout
from mlcore.math.linear import EXACT_MAX_FEATURES
from mlcore.math.mlp import Activation
from mlcore.math.models import MLP_MAX_LAYERS, MLP_MAX_PARAMS, MLP_MAX_WIDTH, MLP_MODELS, ModelType
from mlcore.math.optimizers import LrSchedule, Optimizer
from mlcore.math.preprocessing import PreprocessingSpec
from mlcore.math.second_order import NEWTON_MAX_PARAMS

Solver = Literal["sgd", "exact", "newton", "lbfgs", "auto"]
ResolvedSolver = Literal["sgd", "exact", "newton", "lbfgs"]
ROUND_SOLVERS = ("exact", "newton", "lbfgs")  # sync, worker_mode gradient: the aggregator's own rounds
MAX_INLINE_SHARDS = 40  # inline Map concurrency limit
MAX_SHARDS = 1000  # beyond inline_map_max_shards: a Distributed Map reading the shard list from S3
EVENTS_PER_DISTRIBUTED_MAP = 12  # the parent's events of a Distributed Map (its children have their own)
HISTORY_EVENTS_LIMIT = 25_000  # Standard Workflows execution history
EVENTS_PER_SHARD_PER_ROUND = 7
EVENTS_PER_ROUND = 12
EVENTS_FIXED = 40
# A sync run on the inline Map runs its rounds in Express child executions (statemachines/training_rounds.asl.json),
# rounds_per_call at a time; the parent's history holds per call: RunRounds' TaskStateEntered, TaskScheduled,
# TaskStarted, TaskSubmitted, TaskSucceeded, TaskStateExited and RoundsDone?'s ChoiceStateEntered/Exited.
EVENTS_PER_CHILD_CALL = 8
ROUNDS_PER_CALL = 25  # mlcore.math.cost.rounds_per_call(): half of Express's 5 minutes at 6 s a round
MAX_ROUNDS_PER_CALL = 50  # 6 s a round at most for a call to end within Express's 5 minutes
# a training run's and a search's batch size: more rows than a shard holds is the whole shard
MAX_BATCH_SIZE = 1_000_000
MAX_SEED = 2**32 - 1  # a training run's and a tuning job's seed (numpy's seeds go further; a request need not)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserInput(Strict):
    """What a user sends: besides unknown fields, infinite and NaN numbers are refused (JSON's ``Infinity``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Hyperparameters(UserInput):
    model: ModelType = Field(
        "linear_regression",
        description="the model family; omitted or null: the inferred task's linear model (linear_regression, "
        "logistic_regression or softmax_regression, see mlcore.steps.problem), chosen when the run starts",
    )

    @model_validator(mode="before")
    @classmethod
    def _model_unset_when_null(cls, data: object) -> object:
        """``"model": null`` is the same as leaving it out: the run infers it (``model_fields_set`` lacks it)."""
        if isinstance(data, dict) and "model" in data and data["model"] is None:
            return {k: v for k, v in data.items() if k != "model"}
        return data

    optimizer: Optimizer = "momentum"
    learning_rate: float = Field(0.1, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    l2: float = Field(0.0, ge=0)
    max_epochs: int = Field(300, ge=1, le=2000)
    tolerance: float = Field(
        1e-4, ge=0, lt=1, description="stop when the gradient norm falls below this fraction of its round-0 value"
    )
    lr_schedule: LrSchedule = "constant"
    lr_decay_rate: float = Field(
        0.5, gt=0, description="step/exponential: factor per lr_decay_steps (at most 1); inverse_time: rate"
    )
    lr_decay_steps: int = Field(100, ge=1, description="updates per decay period")
    batch_size: int = Field(
        0, ge=0, le=MAX_BATCH_SIZE, description="async: rows per minibatch gradient (0: the whole shard)"
    )
    steps_per_invocation: int = Field(10, ge=1, le=1000, description="async: updates a worker submits per call")
    max_staleness: int = Field(
        8, ge=0, description="async: a gradient computed more than this many versions ago is recomputed"
    )
    averaging: bool = Field(
        True,
        description="async: the model (snapshotted, evaluated, registered) is the running average of the "
        "parameters after each update, kept in the head and updated by the same compare-and-swap write "
        "(Polyak-Ruppert averaging); false: the last parameters",
    )
    averaging_burn_in: int = Field(
        0, ge=0, description="async: updates before the average starts (until then it is the parameters themselves)"
    )
    averaging_power: float = Field(
        3.0,
        ge=0,
        le=100,
        description="async: the n-th update after the burn-in weighs about n^power in the average "
        "(polynomial-decay averaging), so early parameters fade without knowing the run's length; 0: the plain mean",
    )
    patience: int | None = Field(
        None,
        ge=1,
        description="sync, with a validation split: stop when the validation loss has not improved "
        "for this many rounds, keeping the best parameters",
    )
    worker_mode: Literal["gradient", "local_steps"] = Field(
        "gradient",
        description="sync: workers return their shard's gradient, or run steps_per_invocation local minibatch "
        "SGD steps and return the parameter change, averaged by rows",
    )
    tolerated_failure_percentage: float = Field(
        0.0, ge=0, lt=100, description="share of shards per round that may fail (after retries) without failing the run"
    )
    solver: Solver = Field(
        "auto",
        description="sgd: the optimizer's rounds; exact (linear_regression, at most "
        f"{EXACT_MAX_FEATURES} features): workers return their shard's sufficient statistics and one aggregation "
        "solves the normal equations; newton (at most "
        f"{NEWTON_MAX_PARAMS} parameters): workers return gradient and Hessian sums, the aggregator takes Newton "
        "steps with a line search spread over rounds; lbfgs: the same with L-BFGS directions from gradients only; "
        "auto: exact for linear_regression, newton for classifiers, lbfgs beyond their size limits and for "
        "mlp_regression and mlp_classifier (exact and newton fit linear models only). exact, newton and lbfgs run "
        "in sync mode with worker_mode gradient; auto is sgd otherwise",
    )

    hidden_layers: list[int] | None = Field(
        None,
        description=f"mlp_regression and mlp_classifier: units per hidden layer, e.g. [64, 64] (1 to {MLP_MAX_LAYERS} "
        f"layers of 1 to {MLP_MAX_WIDTH} units, at most {MLP_MAX_PARAMS} parameters in all); [64] when omitted",
    )
    activation: Activation = Field("relu", description="mlp_regression and mlp_classifier: the hidden layers' one")

    @model_validator(mode="after")
    def _network_fits(self) -> Hyperparameters:
        mlp = self.model in MLP_MODELS or "model" not in self.model_fields_set  # unset: an MLP is inferred
        if self.hidden_layers is not None and not mlp:
            raise ValueError(f"hidden_layers applies to {' and '.join(MLP_MODELS)} only, not {self.model}")
        if self.activation != "relu" and not mlp:
            raise ValueError(f"activation applies to {' and '.join(MLP_MODELS)} only, not {self.model}")
        sizes = self.hidden_layers
        if sizes is None:
            return self
        if not 1 <= len(sizes) <= MLP_MAX_LAYERS:
            raise ValueError(f"hidden_layers must list 1 to {MLP_MAX_LAYERS} layer sizes, got {len(sizes)}")
        bad = [s for s in sizes if not 1 <= s <= MLP_MAX_WIDTH]
        if bad:
            raise ValueError(f"hidden_layers sizes must be 1 to {MLP_MAX_WIDTH} units, got {bad[0]}")
        between = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
        if between > MLP_MAX_PARAMS:
            raise ValueError(
                f"hidden_layers {sizes} have {between} parameters between them, over the limit of {MLP_MAX_PARAMS}"
            )
        return self

    @model_validator(mode="after")
    def _decay_shrinks(self) -> Hyperparameters:
        if self.lr_schedule in ("step", "exponential") and self.lr_decay_rate > 1:
            raise ValueError(
                f"lr_decay_rate={self.lr_decay_rate} would grow the learning rate; "
                f"the {self.lr_schedule} schedule expects a rate in (0, 1]"
            )
        return self

    @model_validator(mode="after")
    def _solver_applies(self) -> Hyperparameters:
        if self.solver in ("exact", "newton") and self.model in MLP_MODELS:
            raise ValueError(
                f"solver '{self.solver}' fits linear models only, not {self.model}; use solver 'lbfgs', 'sgd' or 'auto'"
            )
        if self.solver == "exact" and self.model != "linear_regression":
            raise ValueError(
                f"solver 'exact' solves linear_regression only, not {self.model}; use solver 'newton' or 'auto'"
            )
        if self.solver in ROUND_SOLVERS and self.worker_mode == "local_steps":
            raise ValueError(
                f"solver '{self.solver}' does not combine with worker_mode 'local_steps'; use worker_mode 'gradient'"
            )
        return self

    def resolved_solver(self, n_features: int, n_outputs: int = 1, mode: str = "sync") -> ResolvedSolver:
        """The solver a run with ``n_features`` features and ``n_outputs`` weight columns in ``mode`` uses:
        ``auto`` (sync mode, worker_mode gradient) is exact for linear regression up to EXACT_MAX_FEATURES
        features, newton for linear classifiers up to NEWTON_MAX_PARAMS parameters, else lbfgs (always for an MLP:
        full-batch L-BFGS fits a small network well); sgd in other modes."""
        if self.solver != "auto":
            return self.solver
        if mode != "sync" or self.worker_mode != "gradient":
            return "sgd"
        if self.model in MLP_MODELS:
            return "lbfgs"
        if self.model == "linear_regression":
            return "exact" if n_features <= EXACT_MAX_FEATURES else "lbfgs"
        return "newton" if (n_features + 1) * n_outputs <= NEWTON_MAX_PARAMS else "lbfgs"


class TrainingRequest(UserInput):
    """Input of the training workflow (the execution input)."""

    dataset: str
    version: str | None = Field(None, description="data set version; the latest when omitted")
    target: str
    model_name: str = Field(pattern=layout.NAME.pattern)
    n_shards: int = Field(4, ge=1, le=MAX_SHARDS)
    test_fraction: float = Field(0.2, gt=0, lt=0.9)
    validation_fraction: float = Field(
        0.0, ge=0, lt=0.5, description="share of the training rows held out as a validation set"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    preprocessing: PreprocessingSpec | None = Field(
        None, description="declarative preprocessing spec; the defaults (median/most frequent, standardize) if omitted"
    )

    mode: Literal["sync", "async"] = Field(
        "sync", description="sync: one averaged step per round; async: workers apply updates by compare-and-swap"
    )

    rounds_per_execution: int | None = Field(
        None,
        ge=1,
        description="rounds per workflow execution before it continues in a new one (Standard Workflows keep "
        "at most 25,000 history events); the most that fit when omitted",
    )

    inline_map_max_shards: int = Field(
        MAX_INLINE_SHARDS,
        ge=1,
        le=MAX_INLINE_SHARDS,
        description="more shards than this run in a Distributed Map (sync mode) reading the shard list from S3",
    )

    rounds_per_call: int = Field(
        ROUNDS_PER_CALL,
        ge=1,
        le=MAX_ROUNDS_PER_CALL,
        description="sync mode on the inline Map: rounds each Express child execution runs (an execution lasts at "
        "most 5 minutes)",
    )

    trial: bool = Field(
        False,
        description="a tuning job's trial: the run is evaluated on its validation split only (its loss and metric are "
        "the result) and registers no model version",
    )

    @model_validator(mode="after")
    def _target_matches_spec(self) -> TrainingRequest:
        if self.preprocessing and self.preprocessing.target not in (None, self.target):
            raise ValueError(f"preprocessing.target {self.preprocessing.target!r} differs from target {self.target!r}")
        return self

    @model_validator(mode="after")
    def _average_starts(self) -> TrainingRequest:
        hp = self.hyperparameters
        updates = hp.max_epochs * self.n_shards * hp.steps_per_invocation
        if self.mode == "async" and hp.averaging and hp.averaging_burn_in >= updates:
            raise ValueError(
                f"averaging_burn_in={hp.averaging_burn_in} is not below the run's at most {updates} updates "
                f"(max_epochs x n_shards x steps_per_invocation): the average would never start"
            )
        return self

    @model_validator(mode="after")
    def _solver_is_sync(self) -> TrainingRequest:
        solver = self.hyperparameters.solver
        if self.mode == "async" and solver in ROUND_SOLVERS:
            raise ValueError(f"solver '{solver}' runs in sync mode only, not mode 'async'; use solver 'sgd'")
        return self

    @model_validator(mode="after")
    def _fits_in_one_execution(self) -> TrainingRequest:
        distributed = self.n_shards > self.inline_map_max_shards
        if distributed and self.mode == "async":
            raise ValueError(
                f"async mode runs at most inline_map_max_shards={self.inline_map_max_shards} shards, "
                f"got n_shards={self.n_shards}"
            )
        if self.mode == "sync" and not distributed:  # the parent counts child calls of rounds_per_call rounds
            fit = (HISTORY_EVENTS_LIMIT - EVENTS_FIXED) // EVENTS_PER_CHILD_CALL * self.rounds_per_call
            calls = -(-(self.rounds_per_execution or 0) // self.rounds_per_call)
            events = EVENTS_FIXED + calls * EVENTS_PER_CHILD_CALL
        else:
            per_shard = EVENTS_PER_DISTRIBUTED_MAP if distributed else EVENTS_PER_SHARD_PER_ROUND * self.n_shards
            per_round = EVENTS_PER_ROUND + per_shard
            fit = (HISTORY_EVENTS_LIMIT - EVENTS_FIXED) // per_round
            events = EVENTS_FIXED + (self.rounds_per_execution or 0) * per_round
        if self.rounds_per_execution is None:
            self.rounds_per_execution = fit
        elif self.rounds_per_execution > fit:
            raise ValueError(
                f"rounds_per_execution={self.rounds_per_execution} with n_shards={self.n_shards} needs about "
                f"{events} execution history events, over Step Functions' limit of {HISTORY_EVENTS_LIMIT}; "
                f"at most {fit} rounds fit in one execution"
            )
        return self


class Shard(Strict):
    index: int
    key: str
    rows: int
    n_shards: int | None = Field(
        None,
        ge=1,
        description="the run's shard count: its workers share the round's inline result budget "
        "(INLINE_RESULTS_BYTES); absent, the shard's results go through S3",
    )


# -- worker results in the Map's result -----------------------------------------------------------------------
INLINE_RESULTS_BYTES = 128 * 1024
"""The round's worker results that travel inline (their base64 text, all shards together) take at most this many
bytes: half of Step Functions' 256 KiB payload limit, leaving the other half for the results' other fields and the
execution's state. A shard's share is ``inline_result_bytes``; a result larger than its share goes through S3."""


def inline_result_bytes(n_shards: int | None) -> int:
    """One shard's share of INLINE_RESULTS_BYTES in a run of ``n_shards`` shards (0 when the count is unknown)."""
    return INLINE_RESULTS_BYTES // n_shards if n_shards else 0


def packed_size(n_values: int) -> int:
    """Characters of ``pack_vector``'s text for ``n_values`` float64 values (base64: 4 per 3 bytes, padded)."""
    return 4 * ((8 * n_values + 2) // 3)


def pack_vector(values: np.ndarray) -> str:
    """A float64 vector as the text a worker result carries: base64 of its little-endian bytes (exact, unlike
    decimal text)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def unpack_vector(text: str) -> np.ndarray:
    """The vector ``pack_vector`` made; refuses text that is not base64, not whole float64 values, or not finite."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("an inline result is not base64 text") from None
    if not raw or len(raw) % 8:
        raise ValueError(f"an inline result decodes to {len(raw)} bytes, not a whole number of float64 values")
    values = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("an inline result holds a value that is not finite")
    return values


def _packed(text: str) -> str:
    unpack_vector(text)
    return text


PackedVector = Annotated[str, AfterValidator(_packed)]


class Block(Strict):
    """A held-out block of rows (``[X | y]`` float32 .npy)."""

    key: str
    rows: int


class PreprocessResult(Strict):
    run_id: str
    manifest_key: str
    shards: list[Shard]
    shards_key: str = Field(description="the shard list as a JSON array: the items of a Distributed Map")
    n_features: int
    n_outputs: int = Field(description="columns of the parameter matrix: 1, or the number of classes for softmax")
    classes: list[str] | None = None
    train_rows: int
    test_rows: int
    validation: Block | None = None


class RoundState(Strict):
    """What the loop carries between rounds."""

    run_id: str
    round: int
    params_key: str
    done: bool = False
    reason: str | None = None
    loss: float | None = None
    grad_norm: float | None = None
    handover: bool = Field(False, description="continue in a new execution (history limit) from this round")


class WorkerTask(Strict):
    """One worker call in sync mode: the loss and gradient sums of its shard at the round's parameters."""

    action: Literal["gradient"] = "gradient"
    run_id: str
    model: ModelType = "linear_regression"
    round: int
    params_key: str
    shard: Shard
    hyperparameters: Hyperparameters | None = None


class WorkerResult(Strict):
    shard: int
    round: int
    rows: int
    loss_sum: float
    gradient: PackedVector | None = Field(
        None,
        description="the shard's result vector (its gradient sum, or what the run's solver needs) inline: "
        "base64 of little-endian float64 (pack_vector), when it fits the shard's share of INLINE_RESULTS_BYTES",
    )
    gradient_key: str | None = Field(None, description="the result vector in S3 (.npy) when it does not fit inline")
    update: PackedVector | None = Field(
        None, description="local_steps: the parameter change of the local steps, inline as ``gradient``"
    )
    update_key: str | None = Field(None, description="local_steps: the parameter change in S3 (.npy)")
    shard_cache_hit: bool | None = Field(None, description="the shard came from the container's cache (None: not read)")
    shard_bytes_downloaded: int = Field(0, ge=0, description="bytes of the shard this call downloaded (0 on a hit)")

    @model_validator(mode="after")
    def _delivered_once(self) -> WorkerResult:
        if (self.gradient is None) == (self.gradient_key is None):
            raise ValueError("a worker result carries its vector either inline (gradient) or in S3 (gradient_key)")
        if self.update is not None and self.update_key is not None:
            raise ValueError("a worker result carries its local update either inline (update) or in S3 (update_key)")
        return self


class FailedShard(Strict):
    """What the Map's Catch puts in place of a worker's result once its retries are exhausted."""

    failed: Literal[True]
    shard: int
    round: int
    rows: int
    error: str | None = None


class AggregateTask(Strict):
    action: Literal["aggregate"] = "aggregate"
    run_id: str
    round: int
    params_key: str
    hyperparameters: Hyperparameters
    results: list[WorkerResult | FailedShard]
    rounds_per_execution: int | None = None
    validation: Block | None = None


class InitTask(Strict):
    action: Literal["init"] = "init"
    run_id: str
    n_features: int
    n_outputs: int = 1
    seed: int = Field(0, ge=0, description="the request's seed: an MLP's initial weights")
    hyperparameters: Hyperparameters
    mode: Literal["sync", "async"] = "sync"
    context: dict | None = Field(None, description="the run's request and data, kept for a resume")


class PreprocessTask(Strict):
    """The training workflow's first task: prepare the requested data set for run ``run_id``."""

    action: Literal["prepare"] = "prepare"
    run_id: str
    request: TrainingRequest


class PreparationTask(Strict):
    """A step of a distributed preparation (``preparation.distributed``): the statistics or the writing of one
    piece, the merge and fit, the finish (shard list and manifest), or the abort that deletes what was written."""

    action: Literal["stats", "merge", "write", "finish", "abort"]
    run_id: str
    piece: int | None = Field(None, ge=0, description="the piece of the plan (stats and write)")


PreprocessEvent = PreprocessTask | PreparationTask


class EvaluateTask(Strict):
    run_id: str
    request: TrainingRequest
    data: PreprocessResult
    train: RoundState
    tuning: dict | None = Field(
        None, description="the tuning job that chose this run: its trial and search history, kept in the lineage"
    )


class RegisteredModel(Strict):
    model_name: str
    version: int
    artifact_key: str
    metrics: dict[str, float]
    rounds: int
    status: Literal["registered"] = "registered"
    warnings: list[str] = Field(default_factory=list, description="e.g. the model does not beat the baseline")


# -- asynchronous mode --------------------------------------------------------
class AsyncWorkerTask(Strict):
    """One worker call in async mode: ``steps_per_invocation`` compare-and-swap updates from its shard."""

    action: Literal["async_steps"] = "async_steps"
    run_id: str
    round: int = Field(description="the pass of the Map this call belongs to")
    shard: Shard
    hyperparameters: Hyperparameters


class AsyncWorkerResult(Strict):
    shard: int
    round: int
    rows: int = Field(description="rows of the shard")
    submitted: int = Field(description="updates accepted (each applied exactly once)")
    batch_loss_sum: float = Field(description="sum over the accepted updates of their minibatch loss")
    grad_norm: float = Field(description="gradient norm of the last accepted update")
    staleness_max: int
    staleness_sum: int
    recomputed: int = Field(description="gradients too stale to apply, recomputed at the latest parameters")
    conflicts: int = Field(description="compare-and-swap writes that lost and were retried")
    versions: list[int] = Field(description="the parameter versions this call's updates created")
    shard_cache_hit: bool | None = Field(None, description="the shard came from the container's cache (None: not read)")
    shard_bytes_downloaded: int = Field(0, ge=0, description="bytes of the shard this call downloaded (0 on a hit)")


class AsyncProgressTask(Strict):
    action: Literal["async_progress"] = "async_progress"
    run_id: str
    round: int
    hyperparameters: Hyperparameters
    results: list[AsyncWorkerResult | FailedShard]
    rounds_per_execution: int | None = None


# -- what each task function is sent: one model per task, told apart by ``action`` ---------------------------
GradientWorkerEvent = Annotated[WorkerTask | AsyncWorkerTask, Field(discriminator="action")]
AggregatorEvent = Annotated[InitTask | AggregateTask | AsyncProgressTask, Field(discriminator="action")]


# -- tuning jobs (mlcore.math.tuning, mlcore.steps.tuning_plan) ------------------------------------------------
MAX_TRIALS = 128
MAX_PARALLEL_TRIALS = 16  # the account-safe cap: each trial's sync rounds run n_shards workers at once
MAX_LEARNING_RATE = 10.0  # Hyperparameters.learning_rate's upper bound
MAX_L2 = 1e4  # a search's l2.high: far past the penalty that trains a constant model, short of overflowing the loss


class SearchRange(UserInput):
    """A log-scale range of a search space: ``low`` < ``high``."""

    low: float = Field(ge=0)
    high: float = Field(gt=0)


class SearchSpace(UserInput):
    """What a tuning job searches; a key left out keeps its default (``mlcore.math.tuning.default_space``)."""

    model: list[ModelType] | None = None
    optimizer: list[Optimizer] | None = Field(None, description="trials with solver sgd (all async trials)")
    learning_rate: SearchRange | None = Field(None, description="log-uniform; low > 0; trials with solver sgd")
    l2: SearchRange | None = Field(
        None, description="log-uniform; low 0: a quarter of the trials get l2 = 0, the rest 4 decades below high"
    )
    batch_size: list[Annotated[int, Field(ge=0, le=MAX_BATCH_SIZE)]] | None = Field(None, description="async trials")
    mode: list[Literal["sync", "async"]] | None = None
    hidden_layers: list[list[int]] | None = Field(None, description="mlp_regression and mlp_classifier trials")
    solver: list[Solver] | None = Field(None, description="sync trials (async trials run sgd)")
    activation: list[Activation] | None = Field(None, description="mlp_regression and mlp_classifier trials")

    @model_validator(mode="after")
    def _ranges_and_lists(self) -> SearchSpace:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, list) and not value:
                raise ValueError(f"search_space.{name} is empty; list at least one value or leave it out")
            if isinstance(value, SearchRange):
                if value.low >= value.high:
                    raise ValueError(
                        f"search_space.{name} is empty or inverted: low={value.low} is not below high={value.high}"
                    )
                if name == "learning_rate" and value.low <= 0:
                    raise ValueError("search_space.learning_rate.low must be above 0 (a log-scale range)")
                if name == "learning_rate" and value.high > MAX_LEARNING_RATE:
                    raise ValueError(
                        f"search_space.learning_rate.high must be at most {MAX_LEARNING_RATE}, got {value.high}"
                    )
                if name == "l2" and value.high > MAX_L2:
                    raise ValueError(f"search_space.l2.high must be at most {MAX_L2:g}, got {value.high:g}")
        for sizes in self.hidden_layers or []:
            try:
                Hyperparameters(model="mlp_regression", hidden_layers=sizes)
            except ValidationError as err:
                reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
                raise ValueError(f"search_space.hidden_layers {sizes}: {reason}") from None
        return self


class TuningRequest(UserInput):
    """Input of a tuning job (POST /tuning-jobs): ASHA over ``max_trials`` trials, each a training run."""

    dataset: str
    version: str | None = Field(None, description="data set version; the latest when omitted")
    target: str
    model_name: str = Field(pattern=layout.NAME.pattern)
    max_trials: int = Field(16, ge=1, le=MAX_TRIALS)
    max_parallel_trials: int = Field(
        4,
        ge=1,
        le=MAX_PARALLEL_TRIALS,
        description=f"trials running at once (at most {MAX_PARALLEL_TRIALS}); more than max_trials is lowered to it",
    )
    max_cost_usd: float | None = Field(
        None, gt=0, description="refuse the job when its estimated cost is above this (USD)"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    search_space: SearchSpace | None = None
    min_epochs: int = Field(
        15,
        ge=1,
        le=2000,
        description="the first rung's epoch budget (at 5, networks trained by L-BFGS still rank below linear models "
        "they beat at 15)",
    )
    max_epochs: int = Field(135, ge=1, le=2000, description="the last rung's epoch budget")
    reduction_factor: int = Field(3, ge=2, le=8, description="ASHA's eta: a rung promotes its top 1/eta")
    n_shards: int = Field(2, ge=1, le=MAX_INLINE_SHARDS)
    test_fraction: float = Field(0.2, gt=0, lt=0.9)
    validation_fraction: float = Field(
        0.2, gt=0, lt=0.5, description="share of the training rows held out: trials are ranked by validation loss"
    )
    preprocessing: PreprocessingSpec | None = None

    @model_validator(mode="after")
    def _budgets(self) -> TuningRequest:
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs={self.min_epochs} is above max_epochs={self.max_epochs}")
        if self.preprocessing and self.preprocessing.target not in (None, self.target):
            raise ValueError(f"preprocessing.target {self.preprocessing.target!r} differs from target {self.target!r}")
        self.max_parallel_trials = min(self.max_parallel_trials, self.max_trials)
        return self
