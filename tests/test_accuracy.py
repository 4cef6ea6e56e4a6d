"""The exhaustive half-precision sweep (harness/accuracy.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from harness.accuracy import inputs, main, run_accuracy, summarise, sweep, sweeps, write_accuracy
from harness.detection import unary_function
from harness.engines.torch_ad import TorchEngine


def test_float16_inputs_are_every_finite_half_where_the_op_is_defined() -> None:
    # 65,536 bit patterns; 2,048 are inf or NaN; +0 and -0 are one number
    assert len(inputs("sin", "float16")) == 65536 - 2048 - 1
    # log: the positive finite halves, 0x0001 .. 0x7bff
    logs = inputs("log", "float16")
    assert len(logs) == 0x7BFF and logs.min() == 2.0**-24 and logs.max() == 65504.0
    assert len(inputs("sin", "bfloat16")) == 65536 - 2 * 128 - 1  # 128 inf/NaN patterns a side


def test_the_dense_sweep_spans_the_whole_range_of_float32() -> None:
    xs = inputs("atan", "float32", n_dense=1000)
    assert 1000 <= len(xs) <= 1000 + 200  # plus the edges
    assert xs.min() == -np.finfo(np.float32).max and xs.max() == np.finfo(np.float32).max
    assert 2.0**-149 in xs and 0.0 in xs


SinQuarterTooBig = unary_function("SinQuarterTooBig", torch.sin, lambda x: 1.25 * torch.cos(x))


def test_a_sweep_measures_ulp_errors_and_finds_a_wrong_rule() -> None:
    right = sweep(TorchEngine("reverse"), "sin", "float16", 1)
    wrong = sweep(TorchEngine("reverse", overrides={"sin": SinQuarterTooBig.apply}), "sin", "float16", 1)
    table = summarise([right, wrong])
    assert table.loc[0, "failing"] == 0 and table.loc[0, "max_ulp_error"] <= 1.0
    assert table.loc[1, "failing"] > 10000 and table.loc[1, "max_ulp_error"] >= 256
    worst = table.loc[1, "x_at_max"]
    assert math.isfinite(worst) and table.loc[1, "points"] == len(right.x)


def test_the_page_and_table_are_written(tmp_path: Path) -> None:
    digests, skipped = run_accuracy(["torch:forward"], dtypes=("bfloat16",), orders=(1, 2), ops=("exp",),
                                    workers=2)
    table = write_accuracy(tmp_path, digests, skipped)
    assert pd.read_csv(tmp_path / "accuracy.csv").shape == table.shape == (2, table.shape[1])
    assert table["order"].tolist() == [1, 2] and (table["points"] > 45000).all()  # exp overflows past 88
    page = (tmp_path / "accuracy.html").read_text()
    assert "<svg" in page and "exp: bfloat16, order 1" in page and "exp: bfloat16, order 2" in page


def test_bad_arguments_get_one_line_and_exit_2(capsys: object) -> None:
    assert main(["--ops", "add"]) == 2
    assert main(["--dtypes", "float8"]) == 2
    assert main(["--orders", "3"]) == 2


def test_both_orders_in_one_pass_give_what_each_order_alone_gives() -> None:
    both = sweeps(TorchEngine("reverse"), "tanh", "bfloat16", (1, 2))
    for order in (1, 2):
        alone = sweep(TorchEngine("reverse"), "tanh", "bfloat16", order)
        joint = both[order]
        assert not isinstance(joint, str)
        assert np.array_equal(joint.truth, alone.truth, equal_nan=True)
        assert np.array_equal(joint.verdict, alone.verdict)


def test_an_order_the_engine_cannot_do_is_skipped_with_its_reason_and_the_other_still_runs() -> None:
    # torch has no double backward for i0 (its i1 backward is not implemented in half precision)
    outcome = sweeps(TorchEngine("reverse"), "i0", "float16", (1, 2))
    assert not isinstance(outcome[1], str) and len(outcome[1].x) > 30000
    assert isinstance(outcome[2], str) and "i1" in outcome[2]
