"""Tests for harness.csvtext: the CSV text of a frame, or of numpy columns, is pandas' own,
byte for byte, for the column kinds the campaign writes and for the kinds it hands back to
pandas."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.csvtext import columns_csv, frame_csv

FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 5e-324, 1e16, 1e-5, 0.1, 1 / 3, -math.inf, math.nan, 123456789.0]),
)
TEXTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["max(x, y)", 'say "hi"', "a\nb", "", " lead", "x=1.0,y=-0.5", "nan", "1e5"]),
)
OBJECTS = st.one_of(
    TEXTS, st.none(), FLOATS, st.integers(-(2**70), 2**70), st.booleans(),
    st.sampled_from([np.float32(0.1), np.float64(0.1), np.float32("nan"), np.int64(7), pd.NA]),
)


def pandas_csv(frame: pd.DataFrame, columns: list[str], header: bool) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, columns=columns, index=False, header=header, lineterminator="\n")
    return buf.getvalue()


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 6))
    data: dict[str, object] = {
        "f": np.array(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype=np.float64),
        "i": np.array(draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n)), dtype=np.int64),
        "t": draw(st.lists(st.sampled_from(["x=0.5", "x=1.0,y=-0.5", 'a "b"', "", "ok"]), min_size=n,
                           max_size=n)),
        "b": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
        "s": draw(st.lists(TEXTS, min_size=n, max_size=n)),
        "o": pd.Series(draw(st.lists(OBJECTS, min_size=n, max_size=n)), dtype=object),
    }
    if draw(st.booleans()):
        small = st.floats(allow_nan=True, allow_infinity=True, width=32)
        data["f32"] = np.array(draw(st.lists(small, min_size=n, max_size=n)), dtype=np.float32)
    return pd.DataFrame(data)


@settings(max_examples=300, deadline=None)
@given(frame=frames(), header=st.booleans(), data=st.data())
def test_the_text_is_pandas_to_csv_byte_for_byte(
    frame: pd.DataFrame, header: bool, data: st.DataObject
) -> None:
    columns = data.draw(st.permutations(list(frame.columns)))
    assert frame_csv(frame, columns, header) == pandas_csv(frame, list(columns), header)


@settings(max_examples=100, deadline=None)
@given(
    few=st.lists(FLOATS, min_size=1, max_size=4),
    many=st.lists(FLOATS, min_size=0, max_size=8),
    repeats=st.integers(1, 40),
    header=st.booleans(),
    data=st.data(),
)
def test_columns_of_a_few_repeated_values_are_written_as_pandas_writes_them(
    few: list[float], many: list[float], repeats: int, header: bool, data: st.DataObject
) -> None:
    # a finite-difference table repeats each point's truth for every scheme and step
    n = len(few) * repeats
    columns = {
        "truth": np.resize(np.array(few, dtype=np.float64), n),
        "value": np.resize(np.array(many or [0.5], dtype=np.float64), n),
        "point": np.resize(np.array(["x=1.0,y=-0.5", "x=0.0", 'say "hi"', ""], dtype=object), n),
        "order": np.resize(np.arange(3), n),
    }
    names = data.draw(st.permutations(list(columns)))
    expected = pandas_csv(pd.DataFrame(columns), list(names), header)
    assert columns_csv(columns, names, header) == expected
    assert frame_csv(pd.DataFrame(columns), names, header) == expected


def test_signed_zeros_among_repeated_values_keep_their_sign() -> None:
    column = np.resize(np.array([0.0, -0.0, math.nan]), 90)
    text = columns_csv({"a": column, "b": np.zeros(90)}, ["a", "b"], False)
    assert text.splitlines()[:3] == ["0.0,0.0", "-0.0,0.0", ",0.0"]


def test_a_one_column_frame_with_an_empty_text_is_written_as_pandas_writes_it() -> None:
    frame = pd.DataFrame({"s": ["", "a", ""]})
    assert frame_csv(frame, ["s"], True) == pandas_csv(frame, ["s"], True)
    assert frame_csv(frame, ["s"], True) != "s\n\na\n\n"  # the csv module quotes a lone ""


def test_a_campaign_case_part_is_written_as_pandas_writes_it() -> None:
    from harness.campaign import CampaignConfig, build_tasks, run_case
    from harness.schema import CSV_COLUMNS

    config = CampaignConfig(n_cases=3, seed=5, corpus=(), schemes=("central", "complex-step"))
    tasks, _ = build_tasks(config)
    for task in tasks:
        _, rows, _, _ = run_case(task, config)
        frame = rows.frame()
        assert len(frame) > 0
        expected = pandas_csv(frame, list(CSV_COLUMNS), False)
        assert rows.csv(CSV_COLUMNS) == expected
        assert frame_csv(frame, CSV_COLUMNS, False) == expected
