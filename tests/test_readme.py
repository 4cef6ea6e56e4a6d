"""The README's promises that run as code: the DualEngine example and custom torch ops.

The example is read from README.md itself (our own file, not user text) and executed, so
the README cannot drift from what the package does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import harness
from harness.check import EngineMismatch
from harness.expr import Call, walk
from harness.parser import parse

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_block(marker: str) -> str:
    """The one ```python block of the README that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one python block with {marker!r}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def dual_example() -> dict[str, Any]:
    """The namespace after running the README's DualEngine example, asserts included."""
    namespace: dict[str, Any] = {"__name__": "readme_dual_example"}
    code = compile(readme_python_block("class DualEngine"), str(README), "exec")
    exec(code, namespace)  # our own README, not user text
    return namespace


def test_the_readme_example_runs_and_its_engine_is_ok(dual_example: dict[str, Any]) -> None:
    result = dual_example["result"]
    assert result.ok
    assert result.failures == [] and len(result.frame) > 0
    # order 2 is refused by the engine, so it is reported as skipped, not as checked
    assert set(result.skipped) == {"float64/order2", "float32/order2"}


def test_check_engine_draws_only_the_ops_the_engine_supports(dual_example: dict[str, Any]) -> None:
    used = {
        node.op
        for text in dual_example["result"].frame["expr"].unique()
        for node in walk(parse(text))
        if isinstance(node, Call)
    }
    assert used and used <= set(dual_example["RULES"])


def test_the_readme_engine_with_a_wrong_sine_rule_is_not_ok(dual_example: dict[str, Any]) -> None:
    rules = dict(dual_example["RULES"])
    try:
        dual_example["RULES"]["sin"] = lambda a: (np.sin(a), (-np.cos(a),))  # wrong sign
        result = harness.check_engine(
            dual_example["DualEngine"](), n_examples=10, seed=1, dtypes=("float64",), orders=(1,)
        )
    finally:
        dual_example["RULES"].clear()
        dual_example["RULES"].update(rules)
    assert not result.ok
    failure = result.failures[0]
    assert failure.verdict == "mismatch" and "sin" in failure.expr
    assert "mismatch: d/d(x) of " in result.report()


class _WrongSin(torch.autograd.Function):
    """sin with the derivative of cos: what a sign slip in a custom backward looks like."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return -grad * torch.sin(x)


def test_assert_engine_catches_a_wrong_custom_autograd_function() -> None:
    engine = harness.TorchEngine("reverse", overrides={"sin": _WrongSin.apply})
    with pytest.raises(EngineMismatch, match=r"mismatch: d/d\(x\) of .*sin"):
        harness.assert_engine(
            engine, n_examples=5, seed=1, dtypes=("float64",), orders=(1,), ops=("sin", "mul")
        )
