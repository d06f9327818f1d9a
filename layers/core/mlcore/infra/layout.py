"""The data bucket's layout: every key and prefix the product reads or writes is built here, and only here.

| prefix       | holds                                                         | written by (template.yaml Policies) |
| ------------ | ------------------------------------------------------------- | ----------------------------------- |
| `landing/`   | the user's own files, e.g. the parts of a data set (`s3_prefix`) | the user (read by Ingest)        |
| `uploads/`   | files waiting to be registered (presigned PUT, URL ingestion) | the uploader, Ingest                |
|              | queued URL ingestions (`<id>.request.json`)                   | Ingest                              |
|              | queued prefix ingestions (`<id>.<step>.prefix.json`)          | Ingest                              |
| `raw/`       | data set versions (data or `parts/`, `dataset.json`), `latest.json` | Ingest                        |
| `datasets/`  | the state of a data set's latest asynchronous ingestion       | Ingest                              |
| `processed/` | a run's shards, held-out blocks, shard list and manifest      | Preprocess                          |
| `runs/`      | a run's parameters per round, round summaries, context        | Aggregator                          |
|              | the async head (`runs/<run>/async/head.npz`)                  | Aggregator, GradientWorker          |
|              | the run's registered model (`runs/<run>/model.json`)          | Evaluate                            |
|              | a finished run's summary for the run list (`summary.json`)    | Runs                                |
| `scratch/`   | per-round gradients and local updates over the inline budget  | GradientWorker                      |
|              | a distributed preparation's plan, statistics, validation pieces | Preprocess                        |
| `models/`    | model versions and the `latest` alias                         | Evaluate                            |
|              | a version's ONNX graph (`versions/<v>/model.onnx`)            | Export                              |
|              | the `production` alias (promote, rollback)                    | Evaluate, Models                    |
| `batch/`     | batch jobs: request, chunk plan, parts, outputs, summary      | BatchJobs, BatchPredict             |
| `tuning/`    | tuning jobs: record, data, claims, per (trial, rung) results, summary | Tuning                      |

Names of data sets and models become one key segment each, so they may not contain ``/`` (``NAME``).
"""

from __future__ import annotations

import re

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # data set and model names
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

UPLOADS = "uploads/"
LANDING = "landing/"  # where the user's files to register by s3_prefix lie (not managed: not INTERNAL_PREFIXES)
RAW = "raw/"
DATASETS = "datasets/"
PROCESSED = "processed/"
RUNS = "runs/"
SCRATCH = "scratch/"
MODELS = "models/"
BATCH = "batch/"
TUNING = "tuning/"
INTERNAL_PREFIXES = (RAW, DATASETS, PROCESSED, RUNS, SCRATCH, MODELS, BATCH, TUNING, UPLOADS)


def is_internal(key: str) -> bool:
    """Whether ``key`` lies under a prefix the product manages (never a user's input file)."""
    return key.startswith(INTERNAL_PREFIXES)


# -- data sets: uploads/, raw/, datasets/ -------------------------------------------------------------------
def upload_key(name: str, upload_id: str, fmt: str) -> str:
    return f"{UPLOADS}{name}/{upload_id}.{fmt}"


URL_REQUEST_SUFFIX = ".request.json"


def url_request_key(name: str, upload_id: str) -> str:
    """A queued URL ingestion (``POST /datasets/{name} {"url": ...}``): its notification makes Ingest fetch the URL
    into ``upload_key(name, upload_id, fmt)``. Never a data file (``is_url_request``)."""
    return f"{UPLOADS}{name}/{upload_id}{URL_REQUEST_SUFFIX}"


def is_url_request(key: str) -> bool:
    return key.startswith(UPLOADS) and key.endswith(URL_REQUEST_SUFFIX)


PREFIX_REQUEST_SUFFIX = ".prefix.json"


def prefix_request_key(name: str, upload_id: str, step: int) -> str:
    """A queued (or continued) ingestion of many files (``POST /datasets/{name} {"s3_prefix": ...}``): its
    notification makes Ingest scan the next parts; ``step`` counts the invocations it took so far."""
    return f"{UPLOADS}{name}/{upload_id}.{step:05d}{PREFIX_REQUEST_SUFFIX}"


def is_prefix_request(key: str) -> bool:
    return key.startswith(UPLOADS) and key.endswith(PREFIX_REQUEST_SUFFIX)


def upload_dataset(key: str) -> str | None:
    """The data set an upload key belongs to (``uploads/<dataset>/<file>``), or None for any other key."""
    parts = key.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] + "/" == UPLOADS else None


def dataset_data_key(name: str, version: str, fmt: str) -> str:
    return f"{RAW}{name}/{version}/data.{fmt}"


def dataset_parts_prefix(name: str, version: str) -> str:
    """The files of a version made of many (``s3_prefix``): ``part-00000.csv``, ... in the order of their keys."""
    return f"{RAW}{name}/{version}/parts/"


def dataset_part_key(name: str, version: str, index: int, fmt: str) -> str:
    return f"{dataset_parts_prefix(name, version)}part-{index:05d}.{fmt}"


def dataset_meta_key(name: str, version: str) -> str:
    return f"{RAW}{name}/{version}/dataset.json"


def dataset_latest_key(name: str) -> str:
    return f"{RAW}{name}/latest.json"


def dataset_of_latest_key(key: str) -> str | None:
    """'raw/<name>/latest.json' -> '<name>'; None for any other key."""
    parts = key.split("/")
    if len(parts) == 3 and key.startswith(RAW) and parts[2] == "latest.json":
        return parts[1]
    return None


def dataset_status_key(name: str) -> str:
    return f"{DATASETS}{name}/status.json"


# -- a training run's prepared data: processed/ -------------------------------------------------------------
def shard_key(run_id: str, index: int) -> str:
    return f"{PROCESSED}{run_id}/shards/shard-{index:05d}.npy"


def shard_list_key(run_id: str) -> str:
    """The run's shards as one JSON array: the items of the Distributed Map (its ItemReader)."""
    return f"{PROCESSED}{run_id}/shards.json"


def held_out_key(run_id: str, split: str) -> str:
    """A block of rows held out of training: ``split`` is ``test`` or ``validation``."""
    return f"{PROCESSED}{run_id}/{split}.npy"


def manifest_key(run_id: str) -> str:
    return f"{PROCESSED}{run_id}/manifest.json"


def processed_prefix(run_id: str) -> str:
    """Everything a run's preparation keeps: deleted together when a distributed preparation fails."""
    return f"{PROCESSED}{run_id}/"


def held_out_piece_key(run_id: str, piece: int) -> str:
    """The test rows of one piece of a distributed preparation (the manifest lists them)."""
    return f"{PROCESSED}{run_id}/test/piece-{piece:05d}.npy"


# -- a distributed preparation's working files: scratch/ ----------------------------------------------------
def preparation_prefix(run_id: str) -> str:
    return f"{SCRATCH}{run_id}/preparation/"


def preparation_plan_key(run_id: str) -> str:
    """The pieces to read and the request: written first, read by every other step."""
    return f"{preparation_prefix(run_id)}plan.json"


def preparation_fit_key(run_id: str) -> str:
    """The fitted preprocessor and each piece's share of the shards and held-out rows."""
    return f"{preparation_prefix(run_id)}fit.json"


def piece_stats_key(run_id: str, piece: int, ext: str) -> str:
    """One piece's statistics: ``json`` (counts, moments, categories) and ``npz`` (reservoir samples)."""
    return f"{preparation_prefix(run_id)}stats/piece-{piece:05d}.{ext}"


def validation_piece_key(run_id: str, piece: int) -> str:
    """One piece's validation rows, joined into ``held_out_key(run_id, "validation")`` at the end."""
    return f"{preparation_prefix(run_id)}validation/piece-{piece:05d}.npy"


# -- a training run's state: runs/, scratch/ ----------------------------------------------------------------
def params_key(run_id: str, round_: int) -> str:
    return f"{RUNS}{run_id}/params/round-{round_:05d}.npz"


def rounds_prefix(run_id: str) -> str:
    return f"{RUNS}{run_id}/rounds/"


def round_key(run_id: str, round_: int) -> str:
    return f"{rounds_prefix(run_id)}round-{round_:05d}.json"


def context_key(run_id: str) -> str:
    return f"{RUNS}{run_id}/context.json"


def run_usage_key(run_id: str) -> str:
    """What a finished run used (Lambda time, transitions, S3 requests), computed once when its cost is first asked."""
    return f"{RUNS}{run_id}/usage.json"


def run_summary_key(run_id: str) -> str:
    """A finished run's line in the run list (hyperparameters, test metric, stop reason), written once when the list
    first shows it ended, so a list reads one small object per run; rewritten after a resume ends."""
    return f"{RUNS}{run_id}/summary.json"


def async_head_key(run_id: str) -> str:
    return f"{RUNS}{run_id}/async/head.npz"


def run_model_key(run_id: str) -> str:
    return f"{RUNS}{run_id}/model.json"


def in_process_validation_key(run_id: str, digest: str) -> str:
    """The validation block of a run trained in one process (``steps.crossval.run_in_process``, in a
    ``MemoryStore``), named by the digest of its rows: training reads validation blocks through a per-container
    cache that trusts a key to name one content."""
    return f"{SCRATCH}{run_id}/validation-{digest}.npy"


def gradient_key(run_id: str, round_: int, shard: int) -> str:
    return f"{SCRATCH}{run_id}/gradients/round-{round_:05d}/shard-{shard:05d}.npy"


def local_update_key(run_id: str, round_: int, shard: int) -> str:
    return f"{SCRATCH}{run_id}/updates/round-{round_:05d}/shard-{shard:05d}.npy"


# -- the registry: models/ ----------------------------------------------------------------------------------
def versions_prefix(name: str) -> str:
    return f"{MODELS}{name}/versions/"


def version_key(name: str, version: int) -> str:
    return f"{versions_prefix(name)}{version:06d}/model.json"


def onnx_key(name: str, version: int) -> str:
    """The version's ONNX graph (its preprocessing and model), built on the first export request, create-only."""
    return f"{versions_prefix(name)}{version:06d}/model.onnx"


def version_of_key(key: str) -> int:
    """The version number in a key under ``versions_prefix``."""
    return int(key.split("/")[3])


def alias_key(name: str, alias: str) -> str:
    return f"{MODELS}{name}/aliases/{alias}.json"


def model_of_alias_key(key: str, alias: str) -> str | None:
    """The model whose ``alias`` document ``key`` is, or None for any other key."""
    parts = key.split("/")
    return parts[1] if len(parts) == 4 and key == alias_key(parts[1], alias) else None


# -- batch inference: batch/ --------------------------------------------------------------------------------
def job_key(job_id: str) -> str:
    return f"{BATCH}{job_id}/job.json"


def job_header_key(job_id: str) -> str:
    return f"{BATCH}{job_id}/header.json"


def job_chunks_key(job_id: str) -> str:
    """The chunk plan: the items of the batch workflow's Distributed Map."""
    return f"{BATCH}{job_id}/chunks.json"


def job_part_prefix(job_id: str, kind: str) -> str:
    """Per-chunk files of one ``kind`` (``parts``: predictions, ``errors``, ``stats``), listed in row order."""
    return f"{BATCH}{job_id}/{kind}/"


def job_part_key(job_id: str, kind: str, first_row: int) -> str:
    extension = "json" if kind == "stats" else "jsonl"
    return f"{job_part_prefix(job_id, kind)}{first_row:012d}.{extension}"


def job_output_key(job_id: str, name: str) -> str:
    return f"{BATCH}{job_id}/output/{name}"


def job_summary_key(job_id: str) -> str:
    return f"{BATCH}{job_id}/summary.json"


# -- tuning jobs: tuning/ ---------------------------------------------------------------------------------------
def tuning_prefix(job_id: str) -> str:
    return f"{TUNING}{job_id}/"


def tuning_job_key(job_id: str) -> str:
    """The job's record: its request, problem, trials, rungs and estimate (written once at submission)."""
    return f"{TUNING}{job_id}/job.json"


def tuning_data_key(job_id: str) -> str:
    """The data the job prepared once for all its trials (the Preprocess result)."""
    return f"{TUNING}{job_id}/data.json"


def tuning_claims_key(job_id: str) -> str:
    """Every (trial, rung) handed out to a slot, replaced by compare-and-swap only."""
    return f"{TUNING}{job_id}/claims.json"


def tuning_results_prefix(job_id: str) -> str:
    return f"{TUNING}{job_id}/results/"


def tuning_result_key(job_id: str, trial: int, rung: int) -> str:
    """One (trial, rung)'s result, written create-only: a duplicate or late delivery changes nothing."""
    return f"{tuning_results_prefix(job_id)}trial-{trial:05d}-rung-{rung:02d}.json"


def tuning_selection_key(job_id: str) -> str:
    """The trial ``finalize`` chose and why (with the finalists' cross-validation figures when it applied), written
    create-only: a retried finalize and ``finish`` use the same choice."""
    return f"{TUNING}{job_id}/selection.json"


def tuning_summary_key(job_id: str) -> str:
    """The finished job's leaderboard, best trial, registered model and cost."""
    return f"{TUNING}{job_id}/summary.json"
