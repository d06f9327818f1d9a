"""The data bucket's key layout (mlcore.infra.layout): every key under the prefix the template grants."""

import pytest

from mlcore.infra import layout


def test_round_keys_are_zero_padded_so_listing_order_is_round_order():
    assert layout.params_key("r1", 7) == "runs/r1/params/round-00007.npz"
    assert layout.round_key("r1", 12) == "runs/r1/rounds/round-00012.json"
    assert layout.round_key("r1", 12).startswith(layout.rounds_prefix("r1"))
    assert layout.gradient_key("r1", 3, 2) == "scratch/r1/gradients/round-00003/shard-00002.npy"
    assert layout.local_update_key("r1", 3, 2) == "scratch/r1/updates/round-00003/shard-00002.npy"


def test_every_key_lies_under_an_internal_prefix():
    keys = [
        layout.upload_key("d", "u1", "csv"),
        layout.dataset_data_key("d", "v1", "jsonl"),
        layout.dataset_meta_key("d", "v1"),
        layout.dataset_latest_key("d"),
        layout.dataset_status_key("d"),
        layout.shard_key("r", 0),
        layout.shard_list_key("r"),
        layout.held_out_key("r", "test"),
        layout.manifest_key("r"),
        layout.params_key("r", 0),
        layout.context_key("r"),
        layout.async_head_key("r"),
        layout.run_model_key("r"),
        layout.gradient_key("r", 0, 0),
        layout.version_key("m", 1),
        layout.alias_key("m", "production"),
        layout.job_key("batch-1"),
        layout.job_part_key("batch-1", "stats", 0),
        layout.job_output_key("batch-1", "predictions.jsonl"),
        layout.tuning_selection_key("tune-1"),
        layout.in_process_validation_key("r", "abc"),
    ]
    assert all(layout.is_internal(k) for k in keys), [k for k in keys if not layout.is_internal(k)]


@pytest.mark.parametrize("key", ["batch/batch-0123456789ab/job.json", "uploads/d/x.csv", "scratch/r/g.npy"])
def test_the_working_prefixes_are_internal(key):
    """batch/, uploads/ and scratch/."""
    assert layout.is_internal(key)


@pytest.mark.parametrize("key", ["landing/data.csv", "rawdata/x.csv", "my-models/x.csv"])
def test_a_users_key_is_not_internal(key):
    assert not layout.is_internal(key)


def test_upload_keys_name_their_data_set():
    assert layout.upload_dataset(layout.upload_key("housing", "abc", "csv")) == "housing"
    assert layout.upload_dataset("uploads/housing.csv") is None
    assert layout.upload_dataset("raw/housing/x.csv") is None


def test_registry_keys_parse_back():
    assert layout.version_of_key(layout.version_key("houses", 12)) == 12
    assert layout.version_key("houses", 12) == "models/houses/versions/000012/model.json"
    assert layout.model_of_alias_key(layout.alias_key("houses", "latest"), "latest") == "houses"
    assert layout.model_of_alias_key(layout.alias_key("houses", "production"), "latest") is None
    assert layout.model_of_alias_key(layout.version_key("houses", 1), "latest") is None


def test_batch_part_keys_sort_in_row_order():
    keys = [layout.job_part_key("j", "parts", row) for row in (10_000, 0, 2_000)]
    assert sorted(keys) == [layout.job_part_key("j", "parts", row) for row in (0, 2_000, 10_000)]
    assert layout.job_part_key("j", "stats", 5).endswith(".json")


@pytest.mark.parametrize("name", ["housing", "a", "A.b_c-1", "x" * 64])
def test_valid_names(name):
    assert layout.NAME.match(name)


@pytest.mark.parametrize("name", ["", "-x", "a/b", "x" * 65, "../x", "a b", "é"])
def test_names_that_would_not_be_one_key_segment_are_refused(name):
    assert not layout.NAME.match(name)
