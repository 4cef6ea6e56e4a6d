"""The torch.func, autograd.functional and torch.compile modes against closed forms.

Expected values are hand-derived derivatives of sin(x)*exp(y) + x**3 evaluated with mpmath
at 60 digits, at points float32 holds exactly; each mode must land within a few ulp.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch

from harness.engines.base import EngineError
from harness.engines.torch_ad import EAGER_OF, MODES, TorchEngine
from harness.engines.torch_compile import CompileFailure, compiled_mode, tree_shape
from harness.engines.torch_transforms import CHUNK
from harness.expr import Call, Const, Var

x, y = Var("x"), Var("y")
EXPR = Call("add", (Call("mul", (Call("sin", (x,)), Call("exp", (y,)))),
                    Call("pow", (x, Const(Fraction(3))))))
POINTS = np.array([[0.75, 0.5], [1.5, -0.25], [-2.0, 1.25]])
ULPS = 8
TRANSFORM_MODES = ("jacrev", "jacfwd", "hessian", "autograd-functional")
CPU_COMPILE = ("compile-aot",)  # compile-inductor: tests marked inductor below

mpmath.mp.dps = 60


def exact(order: int, points: np.ndarray = POINTS) -> np.ndarray:
    out = []
    for a, b in points:
        a, b = mpmath.mpf(float(a)), mpmath.mpf(float(b))
        s, c, e = mpmath.sin(a), mpmath.cos(a), mpmath.exp(b)
        if order == 1:
            out.append([c * e + 3 * a**2, s * e])
        else:
            out.append([[-s * e + 6 * a, c * e], [c * e, s * e]])
    return np.array(out, dtype=np.float64)


def assert_close(got: np.ndarray, want: np.ndarray, dtype: str) -> None:
    eps = np.finfo(dtype).eps
    scale = np.max(np.abs(want), axis=tuple(range(1, want.ndim)), keepdims=True)
    bound = np.broadcast_to(ULPS * eps * scale, want.shape)
    np.testing.assert_array_less(np.abs(got - want), bound)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", [*TRANSFORM_MODES, *CPU_COMPILE])
def test_each_new_mode_gives_the_closed_form_hessian(mode: str, dtype: str) -> None:
    got = TorchEngine(mode).derivatives(EXPR, POINTS, dtype=dtype, order=2)
    assert_close(got, exact(2), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", [m for m in (*TRANSFORM_MODES, *CPU_COMPILE) if m != "hessian"])
def test_each_first_order_mode_gives_the_closed_form_gradient(mode: str, dtype: str) -> None:
    got = TorchEngine(mode).derivatives(EXPR, POINTS, dtype=dtype, order=1)
    assert_close(got, exact(1), dtype)


def test_hessian_mode_declines_first_derivatives_with_an_engine_error() -> None:
    with pytest.raises(EngineError, match="second derivatives only"):
        TorchEngine("hessian").derivatives(EXPR, POINTS, dtype="float64", order=1)


@pytest.mark.parametrize("mode", ["hessian", "autograd-functional"])
def test_batch_level_modes_are_right_beyond_one_chunk_of_points(mode: str) -> None:
    many = np.array([[0.25 * k - 4.0, 0.125 * k - 2.0] for k in range(CHUNK * 2 + 3)])
    got = TorchEngine(mode).derivatives(EXPR, many, dtype="float64", order=2)
    assert_close(got, exact(2, many), "float64")


def test_every_transformed_mode_names_an_eager_mode_on_the_same_device() -> None:
    assert set(EAGER_OF) == set(MODES) - {"reverse", "forward"}
    for mode, eager in EAGER_OF.items():
        ref = TorchEngine(mode).eager()
        assert ref is not None and ref.mode == eager and str(ref.device) == "cpu"
    assert TorchEngine("reverse").eager() is None


def test_compile_modes_search_a_smaller_budget_by_default() -> None:
    assert TorchEngine("compile-inductor").default_examples < TorchEngine("compile-aot").default_examples
    assert TorchEngine("reverse").default_examples is None


def test_trees_that_differ_only_in_variable_names_share_a_compiled_shape() -> None:
    assert tree_shape(Call("sin", (x,))) == tree_shape(Call("sin", (y,)))
    assert tree_shape(Call("sin", (x,))) != tree_shape(Call("cos", (x,)))
    assert tree_shape(Call("pow", (x, Const(2)))) != tree_shape(Call("pow", (x, Const(3))))


def test_a_compiler_crash_where_eager_works_is_a_compile_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.engines.torch_compile as tc

    def crash(*args: object) -> object:
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(tc, "_run", crash)
    run = compiled_mode("compile-aot", EXPR, (), lambda program, xs, order, reduction: xs[0])
    with pytest.raises(CompileFailure, match="inductor exploded"):
        run(lambda xs: xs[0], [torch.zeros(1, dtype=torch.float64)], 1, "sum")


def test_what_torch_compile_declines_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.engines.torch_compile as tc

    def declined(*args: object) -> object:
        raise RuntimeError("torch.compile with aot_autograd does not currently support double backward")

    monkeypatch.setattr(tc, "_run", declined)
    run = compiled_mode("compile-aot", EXPR, (), lambda program, xs, order, reduction: xs[0])
    with pytest.raises(EngineError, match="does not support"):
        run(lambda xs: xs[0], [torch.zeros(1, dtype=torch.float64)], 1, "sum")


@pytest.mark.slow
@pytest.mark.inductor
@pytest.mark.parametrize("order", [1, 2])
def test_inductor_gives_the_closed_form_and_reuses_its_code_for_a_renamed_tree(order: int) -> None:
    import harness.engines.torch_compile as tc

    got = TorchEngine("compile-inductor").derivatives(EXPR, POINTS, dtype="float64", order=order)
    assert_close(got, exact(order), "float64")
    cached = len(tc._CACHE)
    renamed = Call("add", (Call("mul", (Call("sin", (Var("a"),)), Call("exp", (Var("b"),)))),
                           Call("pow", (Var("a"), Const(Fraction(3))))))
    again = TorchEngine("compile-inductor").derivatives(renamed, POINTS, dtype="float64", order=order)
    assert len(tc._CACHE) == cached  # served from the shape cache, not compiled again
    assert_close(again, exact(order), "float64")


def test_jacfwd_hessian_of_a_linear_tree_is_zero_not_a_crash() -> None:
    # torch returns a ZeroTensor here, which .numpy() refuses unless forced
    linear = Call("mul", (y, Const(3)))
    got = TorchEngine("jacfwd").derivatives(linear, np.array([[0.5]]), dtype="float64", order=2)
    assert got.tolist() == [[[0.0]]]
