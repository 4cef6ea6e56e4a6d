"""Time to detection: how long diffharness and torch's own checkers take to catch a wrong rule.

Each :class:`WrongRule` is a ``torch.autograd.Function`` whose derivative is wrong in one
way real bugs are: a wrong constant, a wrong sign for negative inputs, a relative error of
1e-6, wrong only in a tail, only at 0, only in the second derivative, only in float32. One
correct rule must pass everything. Each contestant gets the same wall-clock budget:

* ``diffharness``: :func:`harness.check.check_engine` on ``TorchEngine(overrides=...)``,
  breadth first (float64 and float32, orders 1 and 2, with 10, then 50, then the default
  200 random cases after the edge and unit phases), stopping at the first failure;
* ``gradcheck`` and ``gradcheck-fast``: ``torch.autograd.gradcheck`` (default and
  ``fast_mode=True``) in a loop over random inputs of the op, 8 at a time, in float64
  (what gradcheck requires);
* ``gradgradcheck``: the same loop with ``torch.autograd.gradgradcheck``.

A contestant catches the rule when it reports a failure within the budget; the seconds
until then are reported. Random inputs are ``N(0, 2)`` moved into the op's domain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CONTESTANTS", "RULES", "WrongRule", "detect", "format_detect", "unary_function"]


def unary_function(name: str, forward: Callable[[Any], Any], derivative: Callable[[Any], Any]) -> type:
    """A ``torch.autograd.Function`` named ``name`` whose forward is ``forward`` and whose
    derivative is ``derivative(x)``, itself built from torch ops (so it has a derivative
    of its own), in every mode: the way to write a wrong rule for an override."""

    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    def backward(ctx: Any, grad: Any) -> Any:
        (x,) = ctx.saved_tensors
        return grad * derivative(x)

    def jvp(ctx: Any, tangent: Any) -> Any:
        (x,) = ctx.saved_tensors
        return tangent * derivative(x)

    return type(name, (torch.autograd.Function,), {
        "generate_vmap_rule": True,
        "forward": staticmethod(lambda x: forward(x)),
        "setup_context": staticmethod(setup_context),
        "backward": staticmethod(backward),
        "jvp": staticmethod(jvp),
    })


class _CosWrongDerivative(torch.autograd.Function):
    """cos(x) whose own derivative is wrong (-1.5 sin x): sin' is right, sin'' is not."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Any) -> Any:  # type: ignore[override]
        return torch.cos(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:  # type: ignore[override]
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (-1.5 * torch.sin(x))

    @staticmethod
    def jvp(ctx: Any, tangent: Any) -> Any:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return tangent * (-1.5 * torch.sin(x))


@dataclass(frozen=True)
class WrongRule:
    """One rule under test: the op it replaces, its Function, how inputs reach its domain,
    and whether it is right (a right rule must pass every contestant)."""

    name: str
    op: str
    function: type
    domain: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
    correct: bool = False


def _in_float32(x: torch.Tensor, wrong: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    return wrong if x.dtype == torch.float32 else right


RULES: tuple[WrongRule, ...] = (
    WrongRule("correct", "sin", unary_function("RightSin", torch.sin, torch.cos), correct=True),
    WrongRule("wrong constant", "sin", unary_function(
        "SinTimes101", torch.sin, lambda x: 1.01 * torch.cos(x))),
    WrongRule("sign for x < 0", "tanh", unary_function(
        "TanhSign", torch.tanh, lambda x: torch.where(x < 0, -1.0, 1.0) * (1 - torch.tanh(x) ** 2))),
    WrongRule("relative 1e-6", "exp", unary_function(
        "ExpOff", torch.exp, lambda x: torch.exp(x) * (1 + 1e-6))),
    WrongRule("tail only (x < -30)", "exp", unary_function(
        "ExpCut", torch.exp, lambda x: torch.where(x < -30, torch.zeros_like(x), torch.exp(x)))),
    WrongRule("only at 0", "sin", unary_function(
        "SinAtZero", torch.sin, lambda x: torch.where(x == 0, torch.zeros_like(x), torch.cos(x)))),
    WrongRule("second derivative only", "sin", unary_function(
        "SinSecond", torch.sin, _CosWrongDerivative.apply)),
    WrongRule("float32 only", "log", unary_function(
        "LogF32", torch.log, lambda x: _in_float32(x, 1.001 / x, 1 / x)), domain=lambda x: x.abs() + 0.25),
)
"""The rules of the benchmark; the first is right."""


def _diffharness(rule: WrongRule, budget: float) -> float | None:
    from harness.check import check_engine
    from harness.engines.torch_ad import TorchEngine

    engine = TorchEngine("reverse", overrides={rule.op: rule.function.apply})  # type: ignore[attr-defined]
    start = time.perf_counter()
    # breadth first, as a user's budget would be spent: every dtype and order with a few
    # random cases (after the edge and unit phases), then more, up to the defaults
    for n_examples in (10, 50, 200):
        for dtype in ("float64", "float32"):
            for order in (1, 2):
                if time.perf_counter() - start > budget:
                    return None
                result = check_engine(engine, seed=n_examples, dtypes=(dtype,), orders=(order,),
                                      n_examples=n_examples)
                if not result.ok:
                    seconds = time.perf_counter() - start
                    return seconds if seconds <= budget else None
    return None


def _torch_loop(rule: WrongRule, budget: float, check: Callable[..., bool]) -> float | None:
    fn = rule.function.apply  # type: ignore[attr-defined]
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    while time.perf_counter() - start < budget:
        x = rule.domain(2 * torch.randn(8, dtype=torch.float64, generator=generator)).requires_grad_(True)
        try:
            ok = check(fn, (x,))
        except Exception:  # noqa: BLE001 - a checker that raises has found something
            ok = False
        if not ok:
            return time.perf_counter() - start
    return None


def _gradcheck(fast: bool) -> Callable[[WrongRule, float], float | None]:
    def run(rule: WrongRule, budget: float) -> float | None:
        def check(fn: Any, inputs: Any) -> bool:
            return bool(torch.autograd.gradcheck(fn, inputs, fast_mode=fast, raise_exception=False))

        return _torch_loop(rule, budget, check)

    return run


def _gradgradcheck(rule: WrongRule, budget: float) -> float | None:
    def check(fn: Any, inputs: Any) -> bool:
        return bool(torch.autograd.gradgradcheck(fn, inputs, raise_exception=False))

    return _torch_loop(rule, budget, check)


CONTESTANTS: dict[str, Callable[[WrongRule, float], float | None]] = {
    "diffharness": _diffharness,
    "gradcheck": _gradcheck(fast=False),
    "gradcheck-fast": _gradcheck(fast=True),
    "gradgradcheck": _gradgradcheck,
}
"""Each contestant: (rule, budget in seconds) -> seconds until it caught the rule, or None."""


def detect(budget: float = 10.0, rules: tuple[WrongRule, ...] = RULES) -> list[dict[str, Any]]:
    """One row per rule: for each contestant the seconds to detection (NaN: not caught in
    ``budget`` seconds) and whether that is the right outcome (a right rule passes)."""
    rows = []
    for rule in rules:
        row: dict[str, Any] = {"rule": rule.name, "op": rule.op, "correct": rule.correct}
        for name, contestant in CONTESTANTS.items():
            seconds = contestant(rule, budget)
            row[name] = math.nan if seconds is None else round(seconds, 2)
        rows.append(row)
    return rows


def format_detect(rows: list[dict[str, Any]], budget: float) -> str:
    """A table: seconds to detection per rule and contestant, '-' where not caught."""
    names = list(CONTESTANTS)
    head = f"{'rule':<26}" + "".join(f"{n:>16}" for n in names)
    lines = [f"time to detection, budget {budget:g} s per contestant (- : not caught)", head]
    for row in rows:
        cells = "".join(f"{('-' if math.isnan(row[n]) else f'{row[n]:.2f} s'):>16}" for n in names)
        lines.append(f"{row['rule']:<26}{cells}")
    return "\n".join(lines)
