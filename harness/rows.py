"""Rows of the long results table held as columns, without a DataFrame.

A campaign case makes about 2,000 rows in a dozen requests (one :func:`~harness.check.compare`
per engine, dtype and order, one finite-difference table per dtype). Building a pandas
DataFrame for each request, concatenating them and grouping them for the timings took
about a quarter of a worker's time, for rows that go straight to CSV. A
:class:`ResultRows` keeps each column of :data:`~harness.schema.RESULT_COLUMNS` as one
numpy array (numbers as float64 or int64, text as an object array), joins by
concatenating arrays, writes its CSV through :mod:`harness.csvtext` and becomes a
DataFrame only for a caller that wants one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.csvtext import columns_csv
from harness.schema import RESULT_COLUMNS, TIMING_COLUMNS

__all__ = ["ResultRows"]


@dataclass(frozen=True)
class ResultRows:
    """Rows of the results table: ``columns`` maps every name of
    :data:`~harness.schema.RESULT_COLUMNS` to an array of one length. ``message`` says why
    the engine of a request gave no values (its rows' verdict is ``skipped`` or
    ``error``; the engine's own words, which may be empty); None when it gave values.
    Build one with :meth:`of`."""

    columns: Mapping[str, np.ndarray]
    message: str | None = None

    def __post_init__(self) -> None:
        if tuple(self.columns) != RESULT_COLUMNS:
            raise ValueError(f"columns {list(self.columns)}: expected {list(RESULT_COLUMNS)} in that order")
        lengths = {len(a) for a in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of lengths {sorted(lengths)}: every column needs one length")

    @classmethod
    def of(cls, n_rows: int, values: Mapping[str, Any], message: str | None = None) -> ResultRows:
        """``n_rows`` rows from ``values``: per column an array-like of ``n_rows`` entries,
        or one value for every row (a str, int or float). Text becomes an object array,
        so that a DataFrame of the rows has the column types :func:`pd.DataFrame` gives
        lists of Python values."""
        missing = [c for c in RESULT_COLUMNS if c not in values]
        if missing:
            raise ValueError(f"no values for columns {missing}")
        return cls({c: _column(values[c], n_rows, c) for c in RESULT_COLUMNS}, message)

    def __len__(self) -> int:
        return len(self.columns[RESULT_COLUMNS[0]])

    def with_column(self, name: str, value: Any) -> ResultRows:
        """These rows with column ``name`` replaced by ``value`` (one value or one per row)."""
        columns = dict(self.columns)
        columns[name] = _column(value, len(self), name)
        return ResultRows(columns, self.message)

    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame in :data:`~harness.schema.RESULT_COLUMNS` order, with
        ``attrs["message"]`` set when :attr:`message` is not None."""
        frame = pd.DataFrame(dict(self.columns), columns=list(RESULT_COLUMNS))
        if self.message is not None:
            frame.attrs["message"] = self.message
        return frame

    def csv(self, columns: Sequence[str], header: bool = False) -> str:
        """Columns ``columns`` as CSV text, byte for byte what ``self.frame().to_csv(
        columns=columns, index=False, header=header, lineterminator="\\n")`` writes."""
        return columns_csv({c: self.columns[c] for c in columns}, columns, header)

    def timings(self) -> list[tuple[Any, ...]]:
        """One row of :data:`TIMING_COLUMNS` per request, in order of first appearance: its
        key columns and the largest ``seconds`` among its rows (NaN when they have none),
        as ``groupby(..., sort=False, dropna=False)["seconds"].max()`` gives them."""
        keys = [self.columns[c].tolist() for c in TIMING_COLUMNS[:-1]]
        seconds = self.columns["seconds"].tolist()
        slowest: dict[tuple[Any, ...], float] = {}
        for key, s in zip(zip(*keys, strict=True), seconds, strict=True):
            best = slowest.get(key)
            if best is None or math.isnan(best) or s > best:  # NaN: no time known (yet)
                slowest[key] = s
        return [(*key, s) for key, s in slowest.items()]

    @staticmethod
    def join(parts: Sequence[ResultRows]) -> ResultRows:
        """``parts``' rows one after another (no message: each part's rows say theirs)."""
        if not parts:
            raise ValueError("nothing to join: expected at least one ResultRows")
        if len(parts) == 1:
            return ResultRows(parts[0].columns)
        return ResultRows({c: np.concatenate([p.columns[c] for p in parts]) for c in RESULT_COLUMNS})


def _column(value: Any, n_rows: int, name: str) -> np.ndarray:
    if isinstance(value, str):
        return np.full(n_rows, value, dtype=object)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"column {name}: a bool; expected text or a number")
    if isinstance(value, (int, np.integer)):
        return np.full(n_rows, value, dtype=np.int64)
    if isinstance(value, (float, np.floating)):
        return np.full(n_rows, value, dtype=np.float64)
    array = np.asarray(value)
    if array.ndim != 1 or len(array) != n_rows:
        raise ValueError(f"column {name}: shape {array.shape}, expected ({n_rows},)")
    if array.dtype.kind in "USO":
        return array if array.dtype == object else array.astype(object)
    if array.dtype.kind in "iu":
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "f":
        return array  # float32 stays float32: pandas writes its own shortest repr
    raise TypeError(f"column {name}: dtype {array.dtype}; expected text, integers or floats")
