"""The shared words: verdicts, point text and the rerun command (harness/schema.py)."""

from __future__ import annotations

import ast
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import schema
from harness.schema import (
    CSV_COLUMNS,
    DTYPE_NAMES,
    FAILING,
    JUDGED,
    RESULT_COLUMNS,
    RUN_FAILURES,
    VERDICTS,
    coordinate,
    format_point,
    parse_point,
    point_items,
    point_text_array,
    point_texts,
    repro_command,
)


def test_every_verdict_that_fails_a_check_is_a_known_verdict() -> None:
    assert FAILING <= set(VERDICTS)
    assert set(RUN_FAILURES) <= FAILING  # a case that could not be checked never passes
    assert "ok" not in FAILING and "kink-convention" not in FAILING
    assert VERDICTS == (*JUDGED, *RUN_FAILURES, "skipped") and "skipped" not in FAILING


def test_results_csv_holds_every_column_but_the_seconds() -> None:
    assert CSV_COLUMNS == tuple(c for c in RESULT_COLUMNS if c != "seconds")


def test_the_schema_imports_no_engine_library() -> None:
    # report, cases and the command line read results through it without loading torch
    tree = ast.parse(Path(schema.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "shlex", "collections.abc", "numpy", "harness.memo"}


def test_format_point_writes_shortest_exact_reprs() -> None:
    row = np.array([0.1, -2.5e-300, 3.0])
    text = format_point(["x", "y", "z"], row)
    assert text == "x=0.1,y=-2.5e-300,z=3.0"
    assert [float(item.split("=")[1]) for item in text.split(",")] == row.tolist()


def test_point_labels_of_a_batch_are_format_point_of_each_row() -> None:
    rng = np.random.default_rng(5)
    pts = rng.standard_normal((40, 2)) * 10.0 ** rng.integers(-300, 300, (40, 2))
    pts = np.vstack([pts, [[0.0, -0.0], [math.inf, -math.inf], [math.nan, 5e-324]]])
    expected = [format_point(["x", "y"], row) for row in pts]
    assert point_texts(["x", "y"], pts) == expected
    labels = point_text_array(["x", "y"], pts)
    assert labels.tolist() == expected
    with pytest.raises(ValueError):  # shared by every engine judged on the case
        labels[0] = "x=1.0"
    assert point_texts([], np.zeros((3, 0))) == ["", "", ""]
    assert point_texts(["x", "y"], np.array([[1, -2]])) == ["x=1.0,y=-2.0"]  # ints as floats


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=4))
def test_a_point_reads_back_bit_for_bit_from_its_text(values: list[float]) -> None:
    names = ["x", "y", "z", "w"][: len(values)]
    back = parse_point(format_point(names, np.array(values)), names)
    assert back.tolist() == [values]
    assert np.signbit(back[0]).tolist() == np.signbit(values).tolist()  # -0.0 stays -0.0


def test_a_point_may_list_its_variables_in_any_order_and_in_hex() -> None:
    assert parse_point("y=0x1.8p+0, x=-2", ["x", "y"]).tolist() == [[-2.0, 1.5]]
    assert point_items("x=0x1p-1074") == {"x": 5e-324}
    assert point_items("") == {}


@pytest.mark.parametrize(
    ("text", "names", "message"),
    [
        ("x=1", ["x", "y"], "missing ['y']"),
        ("x=1,z=2", ["x"], "not in the expression: ['z']"),
        ("x=1,x=2", ["x"], "x is given twice"),
        ("x", ["x"], "expected name=value pairs"),
        ("x=one", ["x"], "expected a float64 number"),
        ("x=0x1p99999", ["x"], "expected a float64 number"),
    ],
)
def test_a_bad_point_names_the_input_and_what_was_expected(text: str, names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match="--at") as info:
        parse_point(text, names, where="--at")
    assert message in str(info.value)


def test_a_coordinate_refuses_what_is_not_a_number() -> None:
    assert coordinate(3, "v") == 3.0 and coordinate("-0x1p-2", "v") == -0.25
    for bad in (True, None, [1.0], "1/10", 10**400):
        with pytest.raises(ValueError, match="v = "):
            coordinate(bad, "v")


@pytest.mark.parametrize(
    "expr_text",
    ["x * (y - 1)", "-x ** 2", "log(x) / y", "x**(1/2) + 'odd' $HOME",
     "x*y'; rm -rf ~ $(reboot) `id` \"q\" \\ \n<script>alert(1)</script>"],
)
def test_repro_command_round_trips_any_text_through_shlex(expr_text: str) -> None:
    command = repro_command("pkg.mod:Engine", expr_text, "x=0.5,y=-1.0", "float32", 2)
    assert shlex.split(command) == [
        "diffharness", "check", "--engine", "pkg.mod:Engine", "--expr", expr_text,
        "--at", "x=0.5,y=-1.0", "--dtype", "float32", "--order", "2",
    ]


def test_the_dtype_names_are_those_the_dtype_table_holds() -> None:
    from harness.dtypes import DTYPES

    assert tuple(DTYPES) == DTYPE_NAMES
