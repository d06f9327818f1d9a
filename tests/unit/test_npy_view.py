"""storage.npy_view: a .npy payload read as a view over the received bytes, equal to np.load's array,
read-only, sharing the bytes' memory, and refusing pickled (object) arrays and truncated files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from numpy.lib import format as npformat

from mlcore.infra.storage import npy_sample_rows, npy_view

RNG = np.random.default_rng(3)


def npy(array: np.ndarray, version: tuple[int, int] | None = None, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    npformat.write_array(buf, array, version=version, allow_pickle=allow_pickle)
    return buf.getvalue()


def root(array: np.ndarray):
    while isinstance(array, np.ndarray):
        array = array.base
    return array


ARRAYS = {
    "shard float32": RNG.standard_normal((50, 29)).astype(np.float32),
    "float64 vector": RNG.standard_normal(7),
    "scalar int64": np.array(42, dtype=np.int64),
    "bool": RNG.random((3, 4)) > 0.5,
    "big-endian float64": RNG.standard_normal((4, 2)).astype(">f8"),
    "complex128": RNG.standard_normal(5) + 1j * RNG.standard_normal(5),
    "unicode": np.array(["a", "bcd", ""]),
    "structured": np.array([(1, 2.5), (3, -1.0)], dtype=[("n", "<i4"), ("x", "<f8")]),
    "fortran 2-d": np.asfortranarray(RNG.standard_normal((6, 3)).astype(np.float32)),
    "fortran 3-d": np.asfortranarray(np.arange(24, dtype=np.int16).reshape(2, 3, 4)),
    "zero rows": np.zeros((0, 29), dtype=np.float32),
    "zero rows fortran": np.asfortranarray(np.zeros((0, 5))),
    "empty vector": np.array([], dtype=np.float64),
}


@pytest.mark.parametrize("name", list(ARRAYS))
@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_round_trip_equals_np_load(name, version):
    array = ARRAYS[name]
    body = npy(array, version)
    view = npy_view(body)
    loaded = np.load(io.BytesIO(body), allow_pickle=False)
    assert view.dtype == loaded.dtype == array.dtype
    assert view.shape == loaded.shape == array.shape
    np.testing.assert_array_equal(view, array)
    if array.ndim > 1 and array.size:
        assert view.flags.f_contiguous == loaded.flags.f_contiguous == array.flags.f_contiguous
        assert view.flags.c_contiguous == loaded.flags.c_contiguous


@pytest.mark.parametrize("name", ["shard float32", "fortran 2-d", "zero rows"])
def test_the_array_is_a_read_only_view_of_the_bytes(name):
    body = npy(ARRAYS[name])
    view = npy_view(body)
    assert not view.flags.writeable
    assert root(view) is body  # no copy of the payload: the array's memory is the received bytes'
    if view.size:
        assert np.shares_memory(view, np.frombuffer(body, dtype=np.uint8))
        with pytest.raises(ValueError, match="read-only"):
            view[(0,) * view.ndim] = 1


@pytest.mark.parametrize(
    "array",
    [
        np.array([{"a": 1}, None], dtype=object),
        np.array([(1, "x")], dtype=[("n", "<i4"), ("o", "O")]),
    ],
)
def test_pickled_object_arrays_are_refused(array):
    body = npy(array, allow_pickle=True)
    with pytest.raises(ValueError, match="object arrays are stored pickled"):
        npy_view(body)


def test_truncated_arrays_are_refused():
    body = npy(ARRAYS["shard float32"])
    with pytest.raises(ValueError, match="truncated .npy array"):
        npy_view(body[:-4])
    with pytest.raises(ValueError, match="not a readable .npy array"):
        npy_view(body[:5])


def test_foreign_bytes_are_refused():
    with pytest.raises(ValueError, match="not a readable .npy array"):
        npy_view(b"PK\x03\x04 a zip, not an array")


def test_format_version_3_is_refused():
    v3 = npy(np.array([(1,)], dtype=[("é", "<i4")]), version=(3, 0))
    with pytest.raises(ValueError, match=r"version 3\.0 is not supported"):
        npy_view(v3)


# -- npy_sample_rows: bounded reads of a large block -----------------------------------------------------------


class _RangeCounter:
    """A store over one .npy object that counts its whole and ranged reads."""

    def __init__(self, array: np.ndarray):
        self.body = npy(array)
        self.ranges: list[tuple[int, int]] = []
        self.whole = 0

    def get_range(self, key: str, start: int, end: int) -> bytes:
        self.ranges.append((start, end))
        return self.body[start:end]

    def get_array(self, key: str) -> np.ndarray:
        self.whole += 1
        return npy_view(self.body)


def test_a_block_no_larger_than_the_sample_is_read_whole():
    block = RNG.standard_normal((30, 3)).astype(np.float32)
    store = _RangeCounter(block)
    rows, total = npy_sample_rows(store, "k", 30)  # type: ignore[arg-type]
    assert total == 30 and store.whole == 1 and len(store.ranges) == 1  # the header, then one GET
    np.testing.assert_array_equal(rows, block)


@pytest.mark.parametrize(("n_rows", "max_rows", "windows"), [(1000, 100, 8), (1001, 1000, 64), (101, 100, 64)])
def test_a_larger_block_is_sampled_as_runs_spread_from_end_to_end(n_rows, max_rows, windows):
    block = np.column_stack([np.arange(n_rows), np.arange(n_rows) * 2.0]).astype(np.float64)  # row i holds i
    store = _RangeCounter(block)
    rows, total = npy_sample_rows(store, "k", max_rows, windows)  # type: ignore[arg-type]
    index = rows[:, 0].astype(np.int64)
    assert total == n_rows and store.whole == 0
    assert rows.shape == (max_rows, 2) and len(store.ranges) == 1 + min(windows, max_rows)
    assert len(set(index)) == max_rows and np.all(np.diff(index) > 0)  # distinct rows, in the block's order
    np.testing.assert_array_equal(rows[:, 1], index * 2.0)  # whole rows, not torn
    assert index[0] == 0 and index.max() >= n_rows * (windows - 1) // windows  # the first and the last segment
    read = sum(end - start for start, end in store.ranges[1:])
    assert read == max_rows * 2 * 8  # only the sampled rows are transferred


def test_sampling_refuses_what_is_not_a_2d_block():
    store = _RangeCounter(np.zeros(10))
    with pytest.raises(ValueError, match=r"k is not a 2-D C-ordered array \(shape \(10,\)\)"):
        npy_sample_rows(store, "k", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need max_rows >= 1 and windows >= 1, got 0 and 64"):
        npy_sample_rows(store, "k", 0)  # type: ignore[arg-type]
