"""Tests for harness.rows: result rows as columns give the frame, CSV text and timings
that pandas gives for the same rows."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.rows import ResultRows
from harness.schema import CSV_COLUMNS, RESULT_COLUMNS, TIMING_COLUMNS

TEXT = {"case_id", "source", "expr", "variables", "point", "var", "engine", "mode", "dtype",
        "scheme", "truth_status", "verdict", "vs_eager"}
INTS = {"point_index", "order"}


@st.composite
def result_rows(draw: st.DrawFn) -> ResultRows:
    """Rows of a few requests: keys drawn from small pools (so that requests repeat),
    seconds NaN for some."""
    n = draw(st.integers(1, 12))
    values: dict[str, object] = {}
    for c in RESULT_COLUMNS:
        if c in TEXT:
            values[c] = np.array(draw(st.lists(st.sampled_from(["a", "b", "x=1.0,y=2.0", ""]),
                                               min_size=n, max_size=n)), dtype=object)
        elif c in INTS:
            values[c] = np.array(draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n)))
        else:
            values[c] = np.array(draw(st.lists(st.sampled_from([0.5, 1e-300, -0.0, math.nan, 3.0]),
                                               min_size=n, max_size=n)))
    return ResultRows.of(n, values)


@settings(max_examples=150, deadline=None)
@given(rows=result_rows())
def test_timings_are_pandas_groupby_max_in_order_of_first_appearance(rows: ResultRows) -> None:
    frame = rows.frame()
    expected = (
        frame.groupby(list(TIMING_COLUMNS[:-1]), dropna=False, sort=False)["seconds"].max().reset_index()
    )
    got = rows.timings()
    keys = expected[list(TIMING_COLUMNS[:-1])].itertuples(index=False)
    assert [r[:-1] for r in got] == [tuple(r) for r in keys]
    assert np.array_equal([r[-1] for r in got], expected["seconds"].to_numpy(), equal_nan=True)


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(result_rows(), min_size=1, max_size=3))
def test_joined_rows_write_the_csv_pandas_writes_for_the_concatenated_frames(parts: list[ResultRows]) -> None:
    joined = ResultRows.join(parts)
    frame = pd.concat([p.frame() for p in parts], ignore_index=True)
    buf = io.StringIO()
    frame.to_csv(buf, columns=list(CSV_COLUMNS), index=False, header=False, lineterminator="\n")
    assert len(joined) == sum(len(p) for p in parts)
    assert joined.csv(CSV_COLUMNS) == buf.getvalue()


def test_one_value_stands_for_every_row_and_keeps_its_kind() -> None:
    values: dict[str, object] = {c: "t" for c in RESULT_COLUMNS}
    values.update(point_index=np.arange(3), order=2, h=np.nan, value=[1.0, 2.0, 3.0])
    frame = ResultRows.of(3, values, message="why").frame()
    assert frame["order"].tolist() == [2, 2, 2] and frame["order"].dtype == np.int64
    assert frame["case_id"].tolist() == ["t", "t", "t"]
    assert np.isnan(frame["h"]).all() and frame["value"].tolist() == [1.0, 2.0, 3.0]
    assert frame.attrs["message"] == "why"


def test_a_column_of_the_wrong_length_or_a_missing_column_is_refused_by_name() -> None:
    values: dict[str, object] = {c: "t" for c in RESULT_COLUMNS}
    values["value"] = [1.0, 2.0]
    with pytest.raises(ValueError, match=r"column value: shape \(2,\), expected \(3,\)"):
        ResultRows.of(3, values)
    del values["value"]
    with pytest.raises(ValueError, match=r"no values for columns \['value'\]"):
        ResultRows.of(3, values)


def test_with_column_replaces_one_column_and_keeps_the_message() -> None:
    values: dict[str, object] = {c: "t" for c in RESULT_COLUMNS}
    rows = ResultRows.of(2, values, message="m").with_column("seconds", 0.25)
    assert rows.columns["seconds"].tolist() == [0.25, 0.25] and rows.message == "m"
