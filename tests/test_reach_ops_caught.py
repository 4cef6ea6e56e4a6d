"""Wrong derivatives of the reach ops, each wrong only at its op's special point (as the
real bugs were: sinc at 0, xlogy at x = 0, hardswish at +-3, logaddexp at a tie), are
caught by ``check_engine`` at its defaults, at that point.

Each override is a ``torch.autograd.Function`` whose forward is torch's own kernel and
whose backward is torch's own derivative (``torch.func.vjp``, so Hessians stay right)
except at the special point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from harness.check import check_engine
from harness.engines.torch_ad import TorchEngine
from harness.ops import OPS
from harness.schema import point_items


def wrong_at(op: str, special: Callable[..., torch.Tensor], arg: int, value: float) -> type:
    """A Function computing ``op`` whose partial in argument ``arg`` is ``value`` where
    ``special(*args)`` holds, and torch's own everywhere else."""
    kernel = OPS[op].torch_fn

    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(*args: Any) -> torch.Tensor:  # type: ignore[override]
            return kernel(*args)

        @staticmethod
        def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def,override]
            ctx.tensor_at = [i for i, a in enumerate(inputs) if isinstance(a, torch.Tensor)]
            ctx.constants = inputs
            ctx.save_for_backward(*(inputs[i] for i in ctx.tensor_at))

        @staticmethod
        def backward(ctx, grad):  # type: ignore[no-untyped-def,override]
            saved = ctx.saved_tensors
            args = list(ctx.constants)
            for i, t in zip(ctx.tensor_at, saved, strict=True):
                args[i] = t

            def of_tensors(*ts: torch.Tensor) -> torch.Tensor:
                full = list(args)
                for i, t in zip(ctx.tensor_at, ts, strict=True):
                    full[i] = t
                return kernel(*full)

            _, vjp = torch.func.vjp(of_tensors, *saved)
            grads = list(vjp(grad))
            k = ctx.tensor_at.index(arg)
            mask = special(*args)
            grads[k] = torch.where(mask, torch.full_like(grads[k], value) * grad, grads[k])
            out: list[torch.Tensor | None] = [None] * len(args)
            for i, g in zip(ctx.tensor_at, grads, strict=True):
                out[i] = g
            return tuple(out)

    Wrong.__name__ = f"{op}_wrong"
    return Wrong


CASES: list[tuple[str, Callable[..., torch.Tensor], int, float, Callable[..., bool]]] = [
    # op, where it is wrong, which partial, the wrong value, check on the failing point
    ("sinc", lambda x: x == 0, 0, math.nan, lambda x: x == 0),
    ("hardswish", lambda x: x.abs() == 3, 0, 2.0, lambda x: abs(x) == 3),
    ("xlogy", lambda a, b: a == 0, 1, math.nan, lambda a, b: a == 0),
    ("logaddexp", lambda a, b: a == b, 0, 1.0, lambda a, b: a == b),
    ("elu", lambda x, alpha: x == 0, 0, 0.0, lambda x: x == 0),
    ("xlog1py", lambda a, b: a == 0, 1, math.nan, lambda a, b: a == 0),
    # (not atan2: torch's own atan2 backward is wrong at tiny arguments, where x*x + y*y
    # underflows, so an override built on it is caught there first; see the README)
    ("i0", lambda x: x == 0, 0, 1.0, lambda x: x == 0),
    ("lgamma", lambda x: x == 1, 0, 0.0, lambda x: x == 1),
    ("erfinv", lambda x: x == 0, 0, 1.0, lambda x: x == 0),
    ("logit", lambda x: x == 0.5, 0, 0.0, lambda x: x == 0.5),
    ("leaky_relu", lambda x, s: x == 0, 0, 2.0, lambda x: x == 0),
    ("asinh", lambda x: x == 0, 0, 0.0, lambda x: x == 0),
    # fmod is smooth through a = 0 (trunc(a/b) is 0 on both sides): d/da = 1 there
    ("fmod", lambda a, b: a == 0, 0, 0.0, lambda a, b: a == 0),
    # remainder(0, b) = 0 for every b: d/db = -floor(0) = 0, although a = 0 is a jump along a
    ("remainder", lambda a, b: a == 0, 1, math.nan, lambda a, b: a == 0),
    # TensorFlow's xdivy gradient convention: d/da = 0 at a = 0 (exact 1/b)
    ("xdivy", lambda a, b: a == 0, 0, 0.0, lambda a, b: a == 0),
]


@pytest.mark.slow
@pytest.mark.parametrize(("op", "special", "arg", "value", "at"), CASES, ids=[c[0] for c in CASES])
def test_a_rule_wrong_only_at_the_ops_special_point_is_caught_there(
    op: str, special: Callable[..., torch.Tensor], arg: int, value: float, at: Callable[..., bool]
) -> None:
    engine = TorchEngine("reverse", overrides={op: wrong_at(op, special, arg, value).apply})
    result = check_engine(engine, ops=(op,), seed=17)
    assert not result.ok
    first = result.failures[0]
    assert first.dtype == "float64" and first.order == 1
    assert first.verdict in ("mismatch", "nan-mismatch", "kink-violation")
    point = point_items(first.point)
    assert at(*point.values()), (op, first.point)


def test_the_overrides_are_right_away_from_the_special_point() -> None:
    x = torch.tensor([0.25, 1.5, -2.5], dtype=torch.float64, requires_grad=True)
    wrong = wrong_at("sinc", lambda t: t == 0, 0, math.nan)
    (got,) = torch.autograd.grad(wrong.apply(x).sum(), x)
    (want,) = torch.autograd.grad(torch.sinc(x).sum(), x)
    assert torch.equal(got, want)
