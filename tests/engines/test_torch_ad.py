"""Tests for harness.engines.torch_ad: TorchEngine in every mode, order, dtype and device.

The per-op tests read the op table (like JAX's lax_autodiff_test reads its op specs): a new
row in ``harness.ops`` is picked up automatically, at points where its domain and kink
margins are positive. The reference derivatives come from sympy at 50 digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.dtypes import dtype_info, ulp
from harness.engines.base import Engine, EngineError
from harness.engines.torch_ad import EAGER_MODES, TorchEngine, seed_tensor_grad, torch_function
from harness.expr import Call, Const, Expr, Var, to_sympy, variables
from harness.ops import OPS, REACH_OPS, Op
from harness.truth.forms import Floor, FloorSpike, RealAbs, RealSign, realify

X, Y = Var("x"), Var("y")
ORDERS = (1, 2)


def call(op: str, *args: Expr) -> Call:
    return Call(op, tuple(args))


def const(value: float) -> Const:
    return Const(Fraction(value))


# ---- op specs read from the op table ---------------------------------------------------------

# Candidate arguments: dyadic with few significant bits, so every tested dtype holds them.
UNARY_ARGS = ((0.75,), (-0.625,), (1.5,), (0.375,))
BINARY_ARGS = ((0.75, -0.625), (1.5, 2.0), (-1.75, 3.0), (0.375, 0.75))
TERNARY_ARGS = ((0.75, -0.625, 1.5), (-1.75, 0.375, 3.0), (1.5, 2.0, 3.0))
MARGIN = 0.125


@dataclass(frozen=True)
class OpSpec:
    """One op applied to fresh variables (constants where the op wants them), and points."""

    op: str
    expr: Expr
    points: tuple[tuple[float, ...], ...]

    @property
    def array(self) -> np.ndarray:
        return np.array(self.points, dtype=np.float64)


def _inside(row: Op, args: tuple[float, ...]) -> bool:
    tensors = [torch.tensor([a], dtype=torch.float64) for a in args]
    margins = [row.domain(*tensors)]
    if row.kinks is not None:
        margins.append(row.kinks(*tensors))
    return all(bool(m[0] > MARGIN) for m in margins)


def _op_specs() -> list[OpSpec]:
    specs: list[OpSpec] = []
    # The reach ops are judged by check_engine's rounding model instead (tests/
    # test_reach_ops_caught.py, the README's findings): fixed ulp budgets do not fit them.
    for row in (r for r in OPS.values() if r.name not in REACH_OPS):
        # an op with params takes its library default there; pow draws its exponent here
        fixed = dict(zip(row.const_args, row.params[0], strict=True)) if row.params else {}
        free = [k for k in range(row.arity) if k not in fixed]
        candidates = {1: UNARY_ARGS, 2: BINARY_ARGS, 3: TERNARY_ARGS}.get(len(free), ())
        full = [_with_fixed(args, free, fixed, row.arity) for args in candidates]
        inside = [args for args in full if _inside(row, args)]
        if not inside:
            raise AssertionError(
                f"op={row.name!r} (arity {row.arity}) has no candidate point inside its domain; "
                "add one to UNARY_ARGS/BINARY_ARGS/TERNARY_ARGS in this test"
            )
        grouped: dict[Expr, list[tuple[float, ...]]] = {}
        for args in inside:
            names = iter((X, Y, Var("z")))
            tree_args = tuple(
                const(a) if k in row.const_args else next(names) for k, a in enumerate(args)
            )
            point = tuple(a for k, a in enumerate(args) if k not in row.const_args)
            grouped.setdefault(Call(row.name, tree_args), []).append(point)
        specs.extend(OpSpec(row.name, e, tuple(p)) for e, p in grouped.items())
    return specs


def _with_fixed(
    args: tuple[float, ...], free: list[int], fixed: dict[int, Fraction], arity: int
) -> tuple[float, ...]:
    values = dict(zip(free, args, strict=True)) | {k: float(v) for k, v in fixed.items()}
    return tuple(values[k] for k in range(arity))


OP_SPECS = _op_specs()
SPEC_IDS = [f"{s.op}{i}" for i, s in enumerate(OP_SPECS)]


@cache
def sympy_truth(expr: Expr, points: tuple[tuple[float, ...], ...], order: int) -> np.ndarray:
    """Exact derivatives by sympy, evaluated at 50 digits (away from jumps and kinks)."""
    names = variables(expr)
    syms = [sympy.Symbol(n, real=True) for n in names]
    out = np.zeros((len(points),) + (len(names),) * order)
    f = realify(to_sympy(expr, dict(zip(names, syms, strict=True))))
    for p, point in enumerate(points):
        exact = [sympy.Rational(*Fraction(v).as_integer_ratio()) for v in point]
        subs = dict(zip(syms, exact, strict=True))
        for index in np.ndindex(*out.shape[1:]):
            # away from the jumps the spikes (floor', sign') are 0
            derivative = sympy.diff(f, *(syms[i] for i in index))
            derivative = derivative.replace(sympy.DiracDelta, lambda *a: sympy.Integer(0))
            derivative = derivative.replace(FloorSpike, lambda *a: sympy.Integer(0))
            derivative = derivative.replace(RealAbs, sympy.Abs).replace(RealSign, sympy.sign)
            derivative = derivative.replace(Floor, sympy.floor)
            out[(p,) + index] = float(derivative.evalf(50, subs=subs))
    return out


def test_the_op_specs_cover_every_core_op_of_the_table() -> None:
    assert {s.op for s in OP_SPECS} == set(OPS) - set(REACH_OPS)


# ---- the seed's rows ------------------------------------------------------------------------

SEED_POLY = call(
    "add",
    call(
        "add",
        call("add", call("pow", X, const(4)), call("mul", const(3), call("pow", X, const(3)))),
        call("mul", const(8), call("pow", X, const(2))),
    ),
    const(3),
)
THREE_X_SQUARED = call("mul", const(3), call("pow", X, const(2)))


@pytest.mark.parametrize("mode", EAGER_MODES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_derivative_of_three_x_squared_at_one_is_six_not_twelve(mode: str, dtype: str) -> None:
    got = TorchEngine(mode).derivatives(THREE_X_SQUARED, np.array([[1.0]]), dtype=dtype)
    assert got.tolist() == [[6.0]]
    assert seed_tensor_grad(THREE_X_SQUARED, [1.0], dtype=dtype, reduction="sum").tolist() == [6.0]


def test_seed_tensor_grad_of_the_mean_over_sixteen_ones_is_29_over_16() -> None:
    grad = seed_tensor_grad(SEED_POLY, np.ones((4, 4)), dtype="float32", reduction="mean")
    assert grad.shape == (4, 4)
    assert np.all(grad == 1.8125)  # (4 + 9 + 16) / 16, exact in float32


def test_mean_reduction_engine_returns_the_full_derivative_29() -> None:
    engine = TorchEngine("reverse", reduction="mean")
    got = engine.derivatives(SEED_POLY, np.ones((16, 1)), dtype="float32")
    assert np.all(got == 29.0)


def test_mean_reduction_keeps_the_rounding_of_one_over_n_visible() -> None:
    # d/dx of mean(x) over 3 points is 1/3, which float16 rounds; times 3 it is not 1.
    got = TorchEngine("reverse", reduction="mean").derivatives(X, np.ones((3, 1)), dtype="float16")
    expected = float(np.float16(1 / 3)) * 3
    assert expected != 1.0
    assert np.all(got == expected)


# ---- every op, every mode, against sympy ----------------------------------------------------


# torch.func's Hessian of logsigmoid resizes the kernel's internal buffer output and warns
@pytest.mark.filterwarnings("ignore:An output with one or more elements was resized:UserWarning")
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", EAGER_MODES)
@pytest.mark.parametrize("spec", OP_SPECS, ids=SPEC_IDS)
def test_every_mode_matches_sympy_derivatives_of_each_op(
    spec: OpSpec, mode: str, order: int
) -> None:
    got = TorchEngine(mode).derivatives(spec.expr, spec.array, dtype="float64", order=order)
    want = sympy_truth(spec.expr, spec.points, order)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", EAGER_MODES)
@pytest.mark.parametrize("spec", OP_SPECS, ids=SPEC_IDS)
def test_float32_is_within_eight_float32_ulps_of_float64(
    spec: OpSpec, mode: str, order: int
) -> None:
    engine = TorchEngine(mode)
    wide = engine.derivatives(spec.expr, spec.array, dtype="float64", order=order)
    narrow = engine.derivatives(spec.expr, spec.array, dtype="float32", order=order)
    assert np.all(np.abs(narrow - wide) <= 8 * ulp(wide, "float32"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("spec", OP_SPECS, ids=SPEC_IDS)
def test_half_precision_is_finite_and_within_a_few_eps_of_float64(
    spec: OpSpec, order: int, dtype: str
) -> None:
    eps = dtype_info(dtype).eps
    for mode in EAGER_MODES:
        engine = TorchEngine(mode)
        wide = engine.derivatives(spec.expr, spec.array, dtype="float64", order=order)
        narrow = engine.derivatives(spec.expr, spec.array, dtype=dtype, order=order)
        assert np.all(np.isfinite(narrow))
        assert np.all(np.abs(narrow - wide) <= 4 * eps * np.maximum(np.abs(wide), 1.0)), mode


# ---- modes agree with each other on random trees --------------------------------------------

BOUNDED_UNARY = ("sin", "cos", "tanh", "sigmoid", "atan", "erf", "neg")
BINARY = ("add", "sub", "mul")


def _has_variables(expr: Expr) -> bool:
    return len(variables(expr)) > 0


def trees() -> st.SearchStrategy[Expr]:
    """Trees over x and y of ops that stay finite on [-2, 2]; shrink towards leaves."""
    leaves: st.SearchStrategy[Expr] = st.sampled_from([X, Y, const(0.75), const(-1.5), const(3.0)])
    tree: st.SearchStrategy[Expr] = st.recursive(
        leaves,
        lambda kids: st.builds(call, st.sampled_from(BOUNDED_UNARY), kids)
        | st.builds(call, st.sampled_from(BINARY), kids, kids),
        max_leaves=8,
    )
    return tree.filter(_has_variables)


GRID = np.linspace(-2.0, 2.0, 9)


@settings(max_examples=40, deadline=None)
@given(expr=trees())
def test_all_modes_agree_with_reverse_mode_on_random_trees(expr: Expr) -> None:
    n_vars = len(variables(expr))
    points = np.stack(np.meshgrid(*([GRID] * n_vars)), axis=-1).reshape(-1, n_vars)
    for order in ORDERS:
        reference = TorchEngine("reverse").derivatives(expr, points, dtype="float64", order=order)
        for mode in EAGER_MODES[1:]:
            got = TorchEngine(mode).derivatives(expr, points, dtype="float64", order=order)
            np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-12, err_msg=mode)


# ---- overrides ------------------------------------------------------------------------------


class WrongSin(torch.autograd.Function):
    """sin whose derivative rules are wrong by a sign: d/dx gives -cos(x)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sin(x)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[no-untyped-def,override]
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def,override]
        (x,) = ctx.saved_tensors
        return -grad * torch.cos(x)

    @staticmethod
    def jvp(ctx, tangent):  # type: ignore[no-untyped-def,override]
        (x,) = ctx.saved_tensors
        return -tangent * torch.cos(x)


class BackwardOnlySin(torch.autograd.Function):
    """A correct sin in the classic style (ctx in forward, backward only): reverse mode only."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def,override]
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def,override]
        (x,) = ctx.saved_tensors
        return grad * torch.cos(x)


SIN_POINTS = (0.5, 1.25, -2.0)


@pytest.mark.parametrize("mode", EAGER_MODES)
def test_a_wrong_override_gives_minus_cos_as_first_derivative_in_every_mode(mode: str) -> None:
    engine = TorchEngine(mode, overrides={"sin": WrongSin.apply})
    got = engine.derivatives(call("sin", X), np.array(SIN_POINTS)[:, None], dtype="float64")
    cos = np.array([math.cos(v) for v in SIN_POINTS])
    np.testing.assert_allclose(got[:, 0], -cos, rtol=1e-15)
    assert np.all(np.sign(got[:, 0]) == -np.sign(cos))


@pytest.mark.parametrize("mode", ["reverse", "functional"])
def test_a_wrong_override_gives_plus_sin_as_second_derivative(mode: str) -> None:
    engine = TorchEngine(mode, overrides={"sin": WrongSin.apply})
    points = np.array(SIN_POINTS)[:, None]
    got = engine.derivatives(call("sin", X), points, dtype="float64", order=2)
    np.testing.assert_allclose(got[:, 0, 0], [math.sin(v) for v in SIN_POINTS], rtol=1e-15)


def test_forward_over_forward_through_a_custom_function_drops_the_second_derivative() -> None:
    """Pins torch bug pytorch/pytorch#197867: nested torch.func.jvp through an
    autograd.Function returns 0 for the second derivative. The engine reports what torch
    computes; when torch fixes the bug this gives sin(x) and the assertion flips."""
    engine = TorchEngine("forward", overrides={"sin": WrongSin.apply})
    points = np.array(SIN_POINTS)[:, None]
    got = engine.derivatives(call("sin", X), points, dtype="float64", order=2)
    assert np.all(got == 0.0)


def test_an_override_replaces_only_its_own_op() -> None:
    expr = call("add", call("sin", X), call("cos", X))
    got = TorchEngine("reverse", overrides={"sin": WrongSin.apply}).derivatives(
        expr, np.array([[0.5]]), dtype="float64"
    )
    assert got[0, 0] == pytest.approx(-math.cos(0.5) - math.sin(0.5), rel=1e-15)


def test_a_backward_only_override_works_in_reverse_mode() -> None:
    engine = TorchEngine("reverse", overrides={"sin": BackwardOnlySin.apply})
    points = np.array(SIN_POINTS)[:, None]
    np.testing.assert_allclose(
        engine.derivatives(call("sin", X), points, dtype="float64", order=2)[:, 0, 0],
        [-math.sin(v) for v in SIN_POINTS],
        rtol=1e-15,
    )


@pytest.mark.parametrize(("mode", "missing"), [("forward", "jvp"), ("functional", "setup_context")])
def test_a_backward_only_override_names_what_other_modes_need(mode: str, missing: str) -> None:
    engine = TorchEngine(mode, overrides={"sin": BackwardOnlySin.apply})
    with pytest.raises(EngineError, match=f"op='sin'.*{missing}"):
        engine.derivatives(call("sin", X), np.array([[0.5]]), dtype="float64")


def test_a_torch_error_inside_an_op_becomes_an_engine_error_naming_op_and_dtype() -> None:
    def no_half_kernel(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f'"sin_cpu" not implemented for {x.dtype}')

    engine = TorchEngine("reverse", overrides={"sin": no_half_kernel})
    with pytest.raises(EngineError, match="not implemented for torch.float16") as caught:
        engine.derivatives(call("sin", X), np.array([[0.5]]), dtype="float16")
    assert "op='sin'" in str(caught.value) and "dtype=float16" in str(caught.value)


# ---- NaN, shapes of edge cases, global state ------------------------------------------------


@pytest.mark.parametrize("mode", EAGER_MODES)
def test_nan_and_inf_are_returned_as_values_not_raised(mode: str) -> None:
    got = TorchEngine(mode).derivatives(
        call("sqrt", X), np.array([[-1.0], [0.0], [4.0]]), dtype="float64"
    )
    assert np.isnan(got[0, 0]) and got[1, 0] == math.inf and got[2, 0] == 0.25


@pytest.mark.parametrize("mode", EAGER_MODES)
def test_a_bare_variable_has_gradient_one_and_hessian_zero(mode: str) -> None:
    engine = TorchEngine(mode)
    points = np.array([[0.5, 2.0], [-1.0, 3.0]])
    expr = call("add", X, Y)
    assert engine.derivatives(expr, points, dtype="float32").tolist() == [[1, 1], [1, 1]]
    assert not engine.derivatives(expr, points, dtype="float32", order=2).any()
    assert engine.derivatives(X, points[:, :1], dtype="float64").tolist() == [[1.0], [1.0]]


def test_results_do_not_depend_on_the_callers_grad_mode_and_leave_it_alone() -> None:
    engine = TorchEngine("reverse")
    points = np.array([[0.5, 2.0]])
    expr = call("mul", call("sin", X), Y)
    plain = engine.derivatives(expr, points, dtype="float64", order=2)
    with torch.no_grad():
        assert engine.derivatives(expr, points, dtype="float64", order=2).tolist() == plain.tolist()
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        assert engine.derivatives(expr, points, dtype="float64", order=2).tolist() == plain.tolist()
        assert torch.is_inference_mode_enabled()
    assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32


def test_points_that_a_dtype_cannot_hold_are_rejected() -> None:
    with pytest.raises(ValueError, match="not exactly representable in float16"):
        TorchEngine().derivatives(X, np.array([[0.1]]), dtype="float16")


# ---- construction, names, devices -----------------------------------------------------------


def test_the_engine_satisfies_the_engine_protocol_and_supports_the_table_ops() -> None:
    engine = TorchEngine()
    assert isinstance(engine, Engine)
    assert all(engine.supports(name) for name in OPS)
    assert not engine.supports("gamma")


def test_names_are_stable_and_say_mode_device_reduction_and_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert TorchEngine().name == "torch:reverse"
    overridden = TorchEngine("forward", overrides={"sin": WrongSin.apply})
    assert overridden.name == "torch:forward+overrides"
    assert TorchEngine(reduction="mean").name == "torch:reverse+mean"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert TorchEngine("functional", device="cuda:0").name == "torch:functional@cuda:0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "backward"}, "mode='backward'.*reverse, forward, functional"),
        ({"reduction": "max"}, "reduction='max'.*sum, mean"),
        ({"mode": "forward", "reduction": "mean"}, "reverse-mode idiom"),
        ({"overrides": {"sine": torch.sin}}, r"unknown ops \['sine'\]"),
        ({"device": "gpu"}, "device='gpu'.*'cpu', 'cuda'"),
        ({"device": "meta"}, "device='meta'"),
    ],
)
def test_bad_arguments_are_rejected_with_the_valid_choices(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TorchEngine(**kwargs)


def test_a_non_callable_override_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"overrides\['sin'\]"):
        TorchEngine(overrides={"sin": 3})  # type: ignore[dict-item]


def test_cuda_without_a_gpu_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineError, match="device='cuda'.*is_available"):
        TorchEngine(device="cuda")


def test_torch_function_still_computes_the_tree_literally() -> None:
    fn = torch_function(call("log", call("exp", X)))
    x = torch.tensor([0.5, 40.0], dtype=torch.float32)
    assert fn([x]).tolist() == torch.log(torch.exp(x)).tolist()


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False"
)
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("mode", EAGER_MODES)
def test_on_cuda_float32_is_close_to_float64_and_float64_matches_the_cpu(
    mode: str, order: int
) -> None:
    cuda, cpu = TorchEngine(mode, device="cuda"), TorchEngine(mode)
    for spec in OP_SPECS:
        wide = cuda.derivatives(spec.expr, spec.array, dtype="float64", order=order)
        narrow = cuda.derivatives(spec.expr, spec.array, dtype="float32", order=order)
        on_cpu = cpu.derivatives(spec.expr, spec.array, dtype="float64", order=order)
        assert np.all(np.abs(narrow - wide) <= 8 * ulp(wide, "float32")), spec.op
        np.testing.assert_allclose(wide, on_cpu, rtol=1e-14, atol=1e-15, err_msg=spec.op)
