"""Feature preprocessing fitted on the training split and replayed verbatim at serving time.

Pure numpy: ``fit`` learns imputation values, means, scales and category lists
from column arrays; ``Preprocessor.transform`` turns columns into the model's
design matrix. Training shards and the Predict function both call
``transform`` on the saved statistics, so there is one implementation and no
training/serving skew.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlcore.infra.errors import InvalidInput

MAX_CATEGORIES = 50
MAX_HASH_BUCKETS = 1024
NumericTransform = Literal["none", "log1p", "square", "sqrt", "abs"]


class ColumnSpec(BaseModel):
    """How one column is treated. Unset fields take the spec's defaults (or the inferred kind)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    drop: bool = Field(False, description="leave the column out (identifiers, personal data)")
    kind: Literal["numeric", "categorical"] | None = Field(None, description="override the inferred kind")
    impute: Literal["mean", "median", "most_frequent", "constant", "drop_rows"] | None = None
    fill_value: float | str | None = Field(None, description="the value for impute=constant")
    clip: tuple[float | None, float | None] | None = Field(None, description="[low, high] (either may be null)")
    transform: NumericTransform = "none"
    standardize: bool | None = None
    encoding: Literal["onehot", "hash"] = "onehot"
    max_categories: int | None = Field(
        None, ge=1, le=1000, description="one-hot: keep the most frequent N categories, others encode as zeros"
    )
    hash_buckets: int | None = Field(None, ge=2, le=MAX_HASH_BUCKETS, description="encoding=hash: bucket count")

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.impute == "constant" and self.fill_value is None:
            raise ValueError("impute='constant' needs a fill_value")
        if self.impute != "constant" and self.fill_value is not None:
            raise ValueError("fill_value is only used with impute='constant'")
        low, high = self.clip or (None, None)
        if low is not None and high is not None and low > high:
            raise ValueError(f"clip low {low} is above high {high}")
        if self.encoding == "hash" and self.hash_buckets is None:
            raise ValueError("encoding='hash' needs hash_buckets")
        if self.encoding != "hash" and self.hash_buckets is not None:
            raise ValueError("hash_buckets is only used with encoding='hash'")
        return self


class PreprocessingSpec(BaseModel):
    """Declarative preprocessing (JSON): per-column rules plus defaults for the columns not named.

    Without a spec (or with ``{}``) numeric columns are median-imputed and standardized and
    categorical columns are most-frequent-imputed and one-hot encoded (at most 50 categories)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    target: str | None = Field(None, description="the target column; must equal the request's target if given")
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    numeric_impute: Literal["mean", "median"] = "median"
    categorical_impute: Literal["most_frequent"] = "most_frequent"
    standardize: bool = True
    max_categories: int = Field(MAX_CATEGORIES, ge=1, le=1000, description="one-hot limit when a column sets none")

    def rules(self, name: str) -> ColumnSpec:
        return self.columns.get(name) or ColumnSpec()


class NumericColumn(BaseModel):
    """impute -> clip -> transform -> standardize, all with training statistics."""

    name: str
    kind: Literal["numeric"] = "numeric"
    fill: float | None = Field(description="imputation value (training median by default); null: the value is required")
    impute: str = "median"
    clip: tuple[float | None, float | None] | None = None
    transform: NumericTransform = "none"
    mean: float = Field(description="training mean after imputation, clipping and transform (0 when not standardized)")
    scale: float = Field(gt=0, description="training standard deviation, 1.0 for a constant column or no scaling")

    def apply(self, values: np.ndarray) -> np.ndarray:
        x = as_numeric(self.name, values)
        missing = np.isnan(x)
        if missing.any():
            if self.fill is None:
                raise InvalidInput(f"column {self.name!r} is required (training dropped rows without it)")
            x = np.where(missing, self.fill, x)
        return (clip_and_transform(self.name, x, self.clip, self.transform) - self.mean) / self.scale

    @property
    def output_names(self) -> list[str]:
        return [self.name]


class CategoricalColumn(BaseModel):
    name: str
    kind: Literal["categorical"] = "categorical"
    fill: str | None = Field(
        description="imputation value (most frequent training category); null: the value is required"
    )
    categories: list[str]

    @property
    def output_names(self) -> list[str]:
        return [f"{self.name}={c}" for c in self.categories]

    def apply(self, values: np.ndarray) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.categories)}
        onehot = np.zeros((len(values), len(self.categories)))
        for row, v in enumerate(as_categories(values)):
            j = index.get(_filled(self.name, v, self.fill))
            if j is not None:
                onehot[row, j] = 1.0
        return onehot


class HashedColumn(BaseModel):
    """Feature hashing: one indicator per bucket, bucket = BLAKE2b(name, value) mod buckets (stable
    across processes and Python versions, unlike ``hash()``); the raw values are never stored."""

    name: str
    kind: Literal["hashed"] = "hashed"
    fill: str | None = Field(description="imputation value; null: the value is required")
    buckets: int = Field(ge=2, le=MAX_HASH_BUCKETS)

    @property
    def output_names(self) -> list[str]:
        return [f"{self.name}#{b}" for b in range(self.buckets)]

    def apply(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros((len(values), self.buckets))
        for row, v in enumerate(as_categories(values)):
            out[row, hash_bucket(self.name, _filled(self.name, v, self.fill), self.buckets)] = 1.0
        return out


Column = Annotated[NumericColumn | CategoricalColumn | HashedColumn, Field(discriminator="kind")]


def hash_bucket(name: str, value: str, buckets: int) -> int:
    digest = hashlib.blake2b(f"{name}\x00{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def _filled(name: str, value: str | None, fill: str | None) -> str:
    if value is not None:
        return value
    if fill is None:
        raise InvalidInput(f"column {name!r} is required (training dropped rows without it)")
    return fill


def clip_and_transform(
    name: str, x: np.ndarray, clip: tuple[float | None, float | None] | None, transform: str
) -> np.ndarray:
    """Clip then apply the pointwise transform (no missing values left)."""
    if clip is not None:
        x = np.clip(x, -np.inf if clip[0] is None else clip[0], np.inf if clip[1] is None else clip[1])
    if transform == "log1p":
        if (x <= -1).any():
            raise InvalidInput(f"column {name!r}: log1p needs values above -1, got {float(x.min())} (clip it)")
        return np.log1p(x)
    if transform == "sqrt":
        if (x < 0).any():
            raise InvalidInput(f"column {name!r}: sqrt needs values >= 0, got {float(x.min())} (clip it)")
        return np.sqrt(x)
    if transform == "square":
        return np.square(x)
    if transform == "abs":
        return np.abs(x)
    return x


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value == ""


def as_numeric(name: str, values: np.ndarray) -> np.ndarray:
    try:
        out = (
            np.asarray([np.nan if _is_missing(v) else v for v in values], dtype=np.float64)
            if values.dtype == object
            else values.astype(np.float64, copy=False)
        )
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"column {name!r} must be numeric: {err}") from None
    if np.isinf(out).any():
        raise InvalidInput(f"column {name!r} contains infinite values")
    return out


def _text(value: Any) -> str:
    """Category text: 3.0 (as numeric columns give it) and 3 (as JSON gives it) both read "3"."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def as_categories(values: np.ndarray) -> list[str | None]:
    return [None if _is_missing(v) else _text(v) for v in values]


class Preprocessor(BaseModel):
    """Saved statistics of the feature transform (stored in the manifest and the model)."""

    target: str
    columns: list[Column]
    classes: list[str] | None = Field(None, description="class labels (index = encoded target) for classifiers")
    spec: PreprocessingSpec | None = Field(None, description="the declarative spec these statistics were fitted for")
    dropped_columns: list[str] = Field(default_factory=list, description="columns the spec left out")

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def feature_names(self) -> list[str]:
        return [n for c in self.columns for n in c.output_names]

    def transform(self, columns: Mapping[str, Sequence[Any] | np.ndarray], dtype=np.float64) -> np.ndarray:
        """Design matrix for the given raw columns: per column, missing values imputed, then numerics
        clipped, transformed and standardized, categoricals one-hot (an unseen category encodes as all
        zeros) or hashed into buckets. Training shards and Predict both come through here."""
        missing = [c.name for c in self.columns if c.name not in columns]
        if missing:
            raise InvalidInput(f"missing feature column(s): {', '.join(missing)}")
        n_rows = len(next(iter(columns.values()))) if columns else 0
        blocks: list[np.ndarray] = []
        for col in self.columns:
            given = columns[col.name]
            values = given if isinstance(given, np.ndarray) else np.asarray(given, dtype=object)
            if len(values) != n_rows:
                raise InvalidInput(f"column {col.name!r} has {len(values)} values, expected {n_rows}")
            block = col.apply(values)
            blocks.append(block[:, None] if block.ndim == 1 else block)
        if not blocks:
            return np.zeros((n_rows, 0), dtype=dtype)
        return np.hstack(blocks).astype(dtype, copy=False)


def resolve_kinds(
    kinds: Mapping[str, str], target: str, spec: PreprocessingSpec | None
) -> tuple[dict[str, str], list[str]]:
    """Feature kinds after the spec (``hashed`` for hashed columns) and the dropped columns, target excluded.

    Raises InvalidInput when the spec names a column the data does not have, or drops the target."""
    spec = spec or PreprocessingSpec()
    unknown = sorted(set(spec.columns) - set(kinds))
    if unknown:
        raise InvalidInput(f"the preprocessing spec names column(s) not in the data set: {', '.join(unknown)}")
    if spec.target is not None and spec.target != target:
        raise InvalidInput(f"the preprocessing spec's target {spec.target!r} is not the request's target {target!r}")
    if spec.rules(target).drop:
        raise InvalidInput(f"the preprocessing spec drops the target column {target!r}")
    resolved: dict[str, str] = {}
    dropped: list[str] = []
    for name, kind in kinds.items():
        if name == target:
            continue
        rules = spec.rules(name)
        if rules.drop:
            dropped.append(name)
        elif rules.encoding == "hash":
            resolved[name] = "hashed"
        else:
            resolved[name] = rules.kind or kind
    return resolved, dropped


def rows_to_drop(
    columns: Mapping[str, np.ndarray], kinds: Mapping[str, str], spec: PreprocessingSpec | None
) -> np.ndarray:
    """Mask of rows missing a value in a column whose spec says ``impute: drop_rows``."""
    n_rows = len(next(iter(columns.values()))) if columns else 0
    mask = np.zeros(n_rows, dtype=bool)
    for name, rules in (spec.columns if spec else {}).items():
        if rules.impute == "drop_rows" and not rules.drop:
            values = columns[name]
            if kinds.get(name) == "numeric" and values.dtype != object:
                mask |= np.isnan(values)
            else:
                mask |= np.array([_is_missing(v) for v in values], dtype=bool)
    return mask


def numeric_fill(
    name: str, rules: ColumnSpec, spec: PreprocessingSpec, mean: Callable[[], float], median: Callable[[], float]
) -> tuple[str, float | None]:
    """The imputation rule of a numeric column and its fill value (None: rows without a value are dropped).

    One rule for the in-memory and the streaming fit, which only differ in how they get a mean or a median."""
    impute = rules.impute or spec.numeric_impute
    if impute == "most_frequent":
        raise InvalidInput(f"column {name!r}: impute 'most_frequent' is for categorical columns")
    if impute == "constant":
        value = rules.fill_value
        if value is None or isinstance(value, str):
            raise InvalidInput(f"column {name!r}: a numeric fill_value is needed, got {value!r}")
        return impute, float(value)
    if impute == "drop_rows":
        return impute, None
    return impute, float(mean() if impute == "mean" else median())


class Moments:
    """Count, mean and standard deviation of finite values arriving in chunks (or all at once).

    Chan et al.'s pairwise update of (count, mean, sum of squared deviations), kept relative to the largest
    magnitude seen so far: neither sums nor squares overflow for any finite float64 input (a column of
    values near 1e200 standardizes correctly), and there is no E[x²] - E[x]² cancellation.
    """

    def __init__(self) -> None:
        self.n = 0
        self._c = 0.0  # the largest |x| seen: the mean and squared deviations below are in units of it
        self._mean = 0.0
        self._m2 = 0.0

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        moments = cls()
        moments.add(x)
        return moments

    def add(self, x: np.ndarray) -> None:
        if x.size:
            self._merge(x.size, float(np.abs(x).max()), lambda c: self._chunk(x / c))

    def add_constant(self, value: float, count: int) -> None:
        """``count`` copies of ``value`` (a fill for missing values) without materializing them."""
        if count:
            self._merge(count, abs(value), lambda c: (value / c, 0.0))

    def merge(self, other: Moments) -> None:
        """Add the values ``other`` has seen (another piece of the same column), as if they had been added here."""
        if other.n:
            scale = other._c
            self._merge(other.n, scale, lambda c: (other._mean * scale / c, other._m2 * (scale / c) ** 2))

    def state(self) -> list[float]:
        """``[n, c, mean, m2]``: everything ``from_state`` needs (JSON round-trips floats exactly)."""
        return [float(self.n), self._c, self._mean, self._m2]

    @classmethod
    def from_state(cls, state: Sequence[float]) -> Moments:
        moments = cls()
        moments.n = int(state[0])
        moments._c, moments._mean, moments._m2 = float(state[1]), float(state[2]), float(state[3])
        return moments

    @staticmethod
    def _chunk(y: np.ndarray) -> tuple[float, float]:
        mean = float(y.mean())
        return mean, float(np.square(y - mean).sum())

    def _merge(self, count: int, magnitude: float, stats: Callable[[float], tuple[float, float]]) -> None:
        c = max(self._c, magnitude)
        if c == 0.0:  # zeros so far: mean and deviations stay 0
            self.n += count
            return
        if self._c and c != self._c:
            ratio = self._c / c
            self._mean, self._m2 = self._mean * ratio, self._m2 * ratio * ratio
        self._c = c
        mean, m2 = stats(c)
        n = self.n + count
        delta = mean - self._mean
        self._mean += delta * count / n
        self._m2 += m2 + delta * delta * self.n * count / n
        self.n = n

    @property
    def mean(self) -> float:
        return self._mean * self._c

    @property
    def std(self) -> float:
        return self._c * float(np.sqrt(self._m2 / self.n)) if self.n else 0.0

    def standardization(self) -> tuple[float, float]:
        """(mean, scale) for standardizing: a constant column keeps scale 1 (no division by ~0)."""
        mean, std = self.mean, self.std
        return mean, (std if std > 1e-12 * max(1.0, abs(mean)) else 1.0)


def _fit_numeric(name: str, values: np.ndarray, rules: ColumnSpec, spec: PreprocessingSpec) -> NumericColumn:
    x = as_numeric(name, values)
    observed = x[~np.isnan(x)]
    if observed.size == 0:
        raise InvalidInput(f"column {name!r} has no values in the training split")
    impute, fill = numeric_fill(name, rules, spec, lambda: Moments.of(observed).mean, lambda: np.median(observed))
    shaped = clip_and_transform(
        name, np.where(np.isnan(x), fill if fill is not None else np.nan, x), rules.clip, rules.transform
    )
    standardize = spec.standardize if rules.standardize is None else rules.standardize
    mean, scale = 0.0, 1.0
    if standardize:
        mean, scale = Moments.of(shaped[~np.isnan(shaped)]).standardization()
    return NumericColumn(
        name=name, fill=fill, impute=impute, clip=rules.clip, transform=rules.transform, mean=mean, scale=scale
    )


def fit_text_counts(name: str, counts: Counter, rules: ColumnSpec, spec: PreprocessingSpec, kind: str):
    """A categorical or hashed column from its training value counts (shared with the streaming fit)."""
    if rules.clip is not None or rules.transform != "none" or rules.standardize:
        raise InvalidInput(f"column {name!r}: clip, transform and standardize apply to numeric columns only")
    if not counts:
        raise InvalidInput(f"column {name!r} has no values in the training split")
    impute = rules.impute or spec.categorical_impute
    if impute in ("mean", "median"):
        raise InvalidInput(f"column {name!r}: impute {impute!r} is for numeric columns")
    ranked = [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    fill = {"most_frequent": ranked[0], "drop_rows": None}.get(impute, _text(rules.fill_value))
    if kind == "hashed":
        return HashedColumn(name=name, fill=fill, buckets=rules.hash_buckets)
    if rules.max_categories is not None:  # an explicit cap keeps the most frequent categories
        return CategoricalColumn(name=name, fill=fill, categories=sorted(ranked[: rules.max_categories]))
    if len(counts) > spec.max_categories:
        raise InvalidInput(
            f"column {name!r} has {len(counts)} categories, more than the limit "
            f"of {spec.max_categories}; drop it, hash it or cap it (max_categories) in the preprocessing spec"
        )
    return CategoricalColumn(name=name, fill=fill, categories=sorted(counts))


def fit(
    columns: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    target: str,
    max_categories: int | None = None,
    spec: PreprocessingSpec | None = None,
) -> Preprocessor:
    """Learn the transform from training columns. ``kinds`` maps each column to numeric/categorical;
    ``spec`` (optional) says per column how to impute, clip, transform, encode, drop or hash."""
    spec = spec or PreprocessingSpec()
    if max_categories is not None:
        spec = spec.model_copy(update={"max_categories": max_categories})
    resolved, dropped = resolve_kinds(kinds, target, spec)
    fitted: list[NumericColumn | CategoricalColumn | HashedColumn] = []
    for name, kind in resolved.items():
        rules = spec.rules(name)
        if kind == "numeric":
            fitted.append(_fit_numeric(name, columns[name], rules, spec))
        elif kind in ("categorical", "hashed"):
            fitted.append(
                fit_text_counts(
                    name, Counter(v for v in as_categories(columns[name]) if v is not None), rules, spec, kind
                )
            )
        else:
            raise InvalidInput(f"column {name!r}: unknown kind {kind!r}")
    return assemble(target, fitted, spec, dropped)


def assemble(
    target: str,
    fitted: list[NumericColumn | CategoricalColumn | HashedColumn],
    spec: PreprocessingSpec,
    dropped: list[str],
    classes: list[str] | None = None,
) -> Preprocessor:
    """The fitted columns as one ``Preprocessor`` (the in-memory and the streaming fit both end here)."""
    if not fitted:
        raise InvalidInput("the data set has no feature columns besides the target")
    return Preprocessor(target=target, columns=fitted, classes=classes, spec=spec, dropped_columns=dropped)
