"""Feature preprocessing fitted on the training split and replayed verbatim at serving time.

Pure numpy: ``fit`` learns imputation values, means, scales and category lists
from column arrays; ``Preprocessor.transform`` turns columns into the model's
design matrix. Training shards and the Predict function both call
``transform`` on the saved statistics, so there is one implementation and no
training/serving skew.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from .errors import InvalidInput

MAX_CATEGORIES = 50


class NumericColumn(BaseModel):
    name: str
    kind: Literal["numeric"] = "numeric"
    fill: float = Field(description="imputation value (training median)")
    mean: float
    scale: float = Field(gt=0, description="training standard deviation, 1.0 for a constant column")

    @property
    def output_names(self) -> list[str]:
        return [self.name]


class CategoricalColumn(BaseModel):
    name: str
    kind: Literal["categorical"] = "categorical"
    fill: str = Field(description="imputation value (most frequent training category)")
    categories: list[str]

    @property
    def output_names(self) -> list[str]:
        return [f"{self.name}={c}" for c in self.categories]


Column = Annotated[NumericColumn | CategoricalColumn, Field(discriminator="kind")]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value == ""


def _numeric(name: str, values: np.ndarray) -> np.ndarray:
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


def _categorical(values: np.ndarray) -> list[str | None]:
    return [None if _is_missing(v) else str(v) for v in values]


class Preprocessor(BaseModel):
    """Saved statistics of the feature transform (stored in the manifest and the model)."""

    target: str
    columns: list[Column]
    classes: list[str] | None = Field(None, description="class labels (index = encoded target) for classifiers")

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def feature_names(self) -> list[str]:
        return [n for c in self.columns for n in c.output_names]

    def transform(self, columns: Mapping[str, Sequence[Any] | np.ndarray], dtype=np.float64) -> np.ndarray:
        """Design matrix for the given raw columns (missing values imputed, numerics standardized,
        categoricals one-hot; an unseen category encodes as all zeros)."""
        missing = [c.name for c in self.columns if c.name not in columns]
        if missing:
            raise InvalidInput(f"missing feature column(s): {', '.join(missing)}")
        n_rows = len(next(iter(columns.values()))) if columns else 0
        blocks: list[np.ndarray] = []
        for col in self.columns:
            values = (
                np.asarray(columns[col.name], dtype=object)
                if not isinstance(columns[col.name], np.ndarray)
                else columns[col.name]
            )
            if len(values) != n_rows:
                raise InvalidInput(f"column {col.name!r} has {len(values)} values, expected {n_rows}")
            if isinstance(col, NumericColumn):
                x = _numeric(col.name, values)
                x = np.where(np.isnan(x), col.fill, x)
                blocks.append(((x - col.mean) / col.scale)[:, None])
            else:
                index = {c: i for i, c in enumerate(col.categories)}
                onehot = np.zeros((n_rows, len(col.categories)))
                for row, v in enumerate(_categorical(values)):
                    j = index.get(col.fill if v is None else v)
                    if j is not None:
                        onehot[row, j] = 1.0
                blocks.append(onehot)
        if not blocks:
            return np.zeros((n_rows, 0), dtype=dtype)
        return np.hstack(blocks).astype(dtype, copy=False)


def fit(
    columns: Mapping[str, np.ndarray], kinds: Mapping[str, str], target: str, max_categories: int = MAX_CATEGORIES
) -> Preprocessor:
    """Learn the transform from training columns. ``kinds`` maps each feature to numeric/categorical."""
    fitted: list[NumericColumn | CategoricalColumn] = []
    for name, kind in kinds.items():
        if name == target:
            continue
        values = columns[name]
        if kind == "numeric":
            x = _numeric(name, values)
            observed = x[~np.isnan(x)]
            if observed.size == 0:
                raise InvalidInput(f"column {name!r} has no values in the training split")
            fill = float(np.median(observed))
            filled = np.where(np.isnan(x), fill, x)
            std = float(filled.std())
            fitted.append(
                NumericColumn(
                    name=name,
                    fill=fill,
                    mean=float(filled.mean()),
                    scale=std if std > 1e-12 * max(1.0, abs(float(filled.mean()))) else 1.0,
                )
            )
        elif kind == "categorical":
            counts = Counter(v for v in _categorical(values) if v is not None)
            if not counts:
                raise InvalidInput(f"column {name!r} has no values in the training split")
            if len(counts) > max_categories:
                raise InvalidInput(
                    f"column {name!r} has {len(counts)} categories, more than the limit "
                    f"of {max_categories}; drop it or bucket it first"
                )
            fill = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            fitted.append(CategoricalColumn(name=name, fill=fill, categories=sorted(counts)))
        else:
            raise InvalidInput(f"column {name!r}: unknown kind {kind!r}")
    if not fitted:
        raise InvalidInput("the data set has no feature columns besides the target")
    return Preprocessor(target=target, columns=fitted)
