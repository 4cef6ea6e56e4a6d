"""Tests for harness.fd.engine (and the stencils it runs).

Expected values come from math/numpy by hand (exact derivatives, textbook stencil weights,
the seed's float32 arithmetic), never from the engine under test. Convergence is checked
by the observed order (the log-log slope of error against h), not by a magic threshold.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.engines.base import Engine, EngineError
from harness.expr import Call, Const, Expr, Var
from harness.fd import (
    DEFAULT_H_GRID,
    SCHEME_FACTS,
    SCHEMES,
    FiniteDiffEngine,
    optimal_h,
    predicted_error,
)
from harness.fd import engine as finite_diff
from harness.strategies import cases

x, y, z = Var("x"), Var("y"), Var("z")
EPS64 = float(np.finfo(np.float64).eps)


def call(op: str, *args: Expr) -> Call:
    return Call(op, tuple(args))


EXP = call("exp", x)
SIN = call("sin", x)
# Steps 0.2 down to 0.0125: every scheme is in its truncation regime in float64 here.
TRUNCATION_STEPS = 0.2 * 2.0 ** -np.arange(5)
SMOOTH_POINTS = np.array([[0.5], [1.0], [-0.7]])
SMOOTH_CASES = [(EXP, np.exp), (SIN, np.cos)]


def errors(scheme: str, expr: Expr, exact, steps) -> np.ndarray:
    sweep = FiniteDiffEngine(scheme).sweep(expr, SMOOTH_POINTS, dtype="float64", h_grid=steps)
    return np.abs(sweep.values[..., 0] - exact(SMOOTH_POINTS[:, 0]))


# ---- convergence ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scheme, expected",
    [("forward", 1), ("backward", 1), ("central", 2), ("five-point", 4), ("complex-step", 2)],
)
@pytest.mark.parametrize("expr, exact", SMOOTH_CASES, ids=["exp", "sin"])
def test_observed_order_of_convergence_matches_the_scheme(scheme, expected, expr, exact):
    err = errors(scheme, expr, exact, TRUNCATION_STEPS)
    for i in range(err.shape[1]):
        slope = np.polyfit(np.log(TRUNCATION_STEPS), np.log(err[:, i]), 1)[0]
        assert abs(slope - expected) < 0.25, (scheme, SMOOTH_POINTS[i], slope)


@pytest.mark.parametrize("expr, exact", SMOOTH_CASES, ids=["exp", "sin"])
def test_richardson_is_far_more_accurate_than_central_at_every_step(expr, exact):
    central = errors("central", expr, exact, TRUNCATION_STEPS)
    richardson = errors("richardson", expr, exact, TRUNCATION_STEPS)
    assert np.all(richardson < 1e-3 * central)


@pytest.mark.parametrize("expr, exact", SMOOTH_CASES, ids=["exp", "sin"])
def test_richardson_error_estimate_bounds_its_error_where_truncation_dominates(expr, exact):
    steps = (0.2, 0.1, 0.05)
    sweep = FiniteDiffEngine("richardson").sweep(expr, SMOOTH_POINTS, dtype="float64",
                                                 h_grid=steps)
    truth = exact(SMOOTH_POINTS[:, 0])
    actual = np.abs(sweep.values[..., 0] - truth)
    assert np.all(actual <= sweep.error_estimate[..., 0] + 4 * EPS64 * np.abs(truth))


def test_schemes_without_an_estimate_report_nan_estimates():
    sweep = FiniteDiffEngine("central").sweep(EXP, SMOOTH_POINTS, dtype="float64")
    assert np.isnan(sweep.error_estimate).all()
    assert np.isfinite(sweep.values[:10]).all()


# ---- complex step -----------------------------------------------------------------------

COMPLEX_CASES = [
    (EXP, np.exp),
    (call("mul", x, SIN), lambda v: np.sin(v) + v * np.cos(v)),
    # negative bases: torch's principal-branch complex pow would lose the derivative here
    (call("pow", x, Const(Fraction(3))), lambda v: 3 * v**2),
    (call("pow", x, Const(Fraction(-2))), lambda v: -2 / v**3),
    (call("tanh", x), lambda v: 1 / np.cosh(v) ** 2),
    (call("div", call("atan", x), call("add", Const(Fraction(2)), x)),
     lambda v: 1 / ((1 + v * v) * (2 + v)) - np.arctan(v) / (2 + v) ** 2),
]


@pytest.mark.parametrize("expr, exact", COMPLEX_CASES, ids=lambda c: str(c)[:20])
def test_complex_step_is_within_a_few_ulp_at_h_1e_minus_20(expr, exact):
    points = np.array([[-1.75], [-0.5], [0.375], [1.0], [2.5]])
    got = FiniteDiffEngine("complex-step", h=1e-20).derivatives(expr, points, dtype="float64")
    want = exact(points[:, 0])
    assert np.all(np.abs(got[:, 0] - want) <= 4 * np.spacing(np.abs(want)))


@pytest.mark.parametrize("op", ["abs", "erf"])
def test_complex_step_refuses_a_tree_with_an_op_it_cannot_run_through(op):
    expr = call("exp", call("mul", x, call(op, x)))
    engine = FiniteDiffEngine("complex-step")
    assert not engine.supports(op)
    with pytest.raises(EngineError, match=f"op='{op}'"):
        engine.derivatives(expr, np.array([[0.5]]), dtype="float64")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_complex_step_refuses_dtypes_without_a_complex_counterpart(dtype):
    with pytest.raises(EngineError, match=f"dtype='{dtype}'"):
        FiniteDiffEngine("complex-step").derivatives(EXP, np.array([[0.5]]), dtype=dtype)


# ---- the seed's float32 row and exact steps ---------------------------------------------------


def test_seed_forward_difference_in_float32_divides_by_the_exact_step():
    seed = call("mul", Const(3), call("pow", call("add", x, Const(1)), Const(2)))
    sweep = FiniteDiffEngine("forward", h=1e-3).sweep(
        seed, np.array([[1.0]]), dtype="float32", h_grid=(1e-3,)
    )
    # By hand in float32: 1 + h rounds, f is evaluated in float32 (the square of a float32
    # is exact in float64, then rounded once), the difference is exact (Sterbenz).
    one, h = np.float32(1.0), np.float32(1e-3)
    h_eff = (one + h) - one
    assert h_eff == np.float32(1.001) - one and h_eff != np.float32(1e-3)

    def f(v: np.float32) -> np.float32:
        return np.float32(3) * np.float32(float(v + np.float32(1)) ** 2)

    numerator = float(f(one + h) - f(one))
    assert sweep.h_effective[0, 0, 0] == float(h_eff)
    assert sweep.values[0, 0, 0] == pytest.approx(numerator / float(h_eff), rel=1e-15)
    assert sweep.values[0, 0, 0] == pytest.approx(12.0014304, abs=1e-7)
    # The seed document's 12.00199... is this same float32 numerator over the nominal 1e-3.
    assert f"{numerator / 1e-3:.5f}" == "12.00199"


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-1e6, 1e6, width=32, allow_subnormal=False),
    st.sampled_from([1e-1, 1e-3, 1e-5, 1e-7]),
)
def test_effective_step_is_the_float32_difference_of_x_plus_h_and_x(value, h):
    sweep = FiniteDiffEngine("forward").sweep(
        SIN, np.array([[value]]), dtype="float32", h_grid=(h,)
    )
    x32 = np.float32(value)
    want = float((x32 + np.float32(h)) - x32)
    assert sweep.h_effective[0, 0, 0] == want
    if want == 0:
        assert np.isnan(sweep.values[0, 0, 0])


def test_relative_steps_scale_with_the_magnitude_of_x():
    engine = FiniteDiffEngine("central", h=2.0**-10, relative=True)
    sweep = engine.sweep(EXP, np.array([[1024.0], [0.25], [-4.0]]), dtype="float64",
                         h_grid=(2.0**-10,))
    assert engine.name == "fd:central:rel"
    assert sweep.h_effective[0, :, 0].tolist() == [1.0, 2.0**-10, 2.0**-8]


def test_step_below_the_spacing_at_x_gives_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny = FiniteDiffEngine("central", h=1e-17).sweep(
            EXP, np.array([[1.0], [2.0]]), dtype="float64", h_grid=(1e-17,)
        )
        half = FiniteDiffEngine("five-point", relative=True).sweep(
            call("mul", x, y), np.array([[0.5, 60000.0]]), dtype="float16", order=2
        )
    assert (tiny.h_effective == 0).all() and np.isnan(tiny.values).all()
    # float16: 1e-16 is below every spacing; y + 0.1 * 60000 overflows to inf, which spoils
    # only the Hessian entries that step along y.
    assert np.isnan(half.values[-1]).all()
    assert half.values[0, 0, 0, 0] == 0.0
    assert np.isnan(half.values[0].ravel()[1:]).all()
    assert np.isfinite(half.values[2]).all()


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_central_difference_is_exact_on_a_quadratic_with_dyadic_steps(dtype):
    # (0.5 +- 1/16)**2 = 81/256 and 49/256 fit in 7 bits, so every dtype computes them exactly.
    got = FiniteDiffEngine("central", h=2.0**-4).derivatives(
        call("mul", x, x), np.array([[0.5]]), dtype=dtype
    )
    assert got[0, 0] == 1.0


# ---- best step against the error model -----------------------------------------------------


@pytest.mark.parametrize("scheme", ["forward", "backward", "central", "five-point"])
def test_best_step_on_the_default_grid_is_within_a_decade_of_optimal_h(scheme):
    # exp near 1: relative error of every derivative order is measured against |f^(k)| = 1
    # after dividing by exp(x); the median over 32 points smooths out lucky roundings.
    points = (1 + np.arange(32) / 64)[:, None]
    sweep = FiniteDiffEngine(scheme).sweep(EXP, points, dtype="float64")
    rel = np.abs(sweep.values[..., 0] / np.exp(points[:, 0]) - 1)
    typical = np.median(np.where(np.isnan(rel), np.inf, rel), axis=1)
    best = sweep.h[np.argmin(typical)]
    predicted = float(optimal_h(scheme, {k: 1.0 for k in range(10)}, EPS64))
    assert abs(math.log10(best / predicted)) <= 1.0, (best, predicted)


@pytest.mark.parametrize("scheme", ["forward", "backward", "central", "five-point", "richardson"])
def test_optimal_h_is_the_minimiser_of_predicted_error(scheme):
    derivs = {0: 2.0, 1: 0.7, SCHEME_FACTS[scheme].truncation_derivative: 3.0}
    best = float(optimal_h(scheme, derivs, EPS64))
    fine = best * np.logspace(-1, 1, 2001)
    curve = predicted_error(scheme, fine, derivs, EPS64)
    assert fine[np.argmin(curve)] == pytest.approx(best, rel=2e-3)


def test_predicted_error_is_the_design_tables_model_for_central():
    h = np.array([1e-2, 1e-6])
    got = predicted_error("central", h, {0: 2.0, 3: 5.0}, EPS64)
    np.testing.assert_allclose(got, h**2 / 6 * 5.0 + EPS64 * 2.0 / h, rtol=1e-14)


def test_complex_step_model_has_no_cancellation_and_optimal_h_zero():
    derivs = {0: 1.0, 1: 1.0, 3: 1.0}
    assert float(optimal_h("complex-step", derivs, EPS64)) == 0.0
    assert float(predicted_error("complex-step", 1e-20, derivs, EPS64)) == pytest.approx(EPS64)


# ---- stencils, error constants, Hessians -------------------------------------------------------


F = Fraction


@pytest.mark.parametrize(
    "scheme, which, offsets, weights",
    [
        ("forward", "first", (0, 1), (-1, 1)),
        ("backward", "first", (-1, 0), (-1, 1)),
        ("central", "first", (-1, 0, 1), (F(-1, 2), 0, F(1, 2))),
        ("five-point", "first", (-2, -1, 0, 1, 2), tuple(F(w, 12) for w in (1, -8, 0, 8, -1))),
        ("forward", "second", (0, 1, 2), (1, -2, 1)),
        ("central", "second", (-1, 0, 1), (1, -2, 1)),
        ("five-point", "second", (-2, -1, 0, 1, 2),
         tuple(F(w, 12) for w in (-1, 16, -30, 16, -1))),
    ],
)
def test_stencil_weights_reproduce_the_textbook_ones(scheme, which, offsets, weights):
    stencil = getattr(SCHEME_FACTS[scheme], which)
    assert stencil.offsets == tuple(F(s) for s in offsets)
    assert stencil.weights == tuple(F(w) for w in weights)


def test_richardson_stencil_is_the_romberg_combination_of_central_differences():
    # Extrapolating D(h), D(h/2), D(h/4), D(h/8) to h=0 in powers of h**2 weights D(h) by
    # prod_{j=1..3} 4**-j / (4**-j - 1) = (-1/3)(-1/15)(-1/63) = -1/2835; D(h) puts 1/2 on +1.
    stencil = SCHEME_FACTS["richardson"].first
    assert stencil.offsets[0] == -1 and stencil.offsets[-1] == 1
    assert stencil.weights[-1] == F(-1, 5670) and stencil.weights[0] == F(1, 5670)


@pytest.mark.parametrize(
    "scheme, order, truncation, derivative, rounding",
    [
        ("forward", 1, 1 / 2, 2, 2.0),
        ("backward", 1, 1 / 2, 2, 2.0),
        ("central", 2, 1 / 6, 3, 1.0),
        ("five-point", 4, 1 / 30, 5, 1.5),
        ("complex-step", 2, 1 / 6, 3, 0.0),
        # h**8 f^(9)/9! survives, scaled by prod of the four h_k**2 relative to h**8: 4**-6.
        ("richardson", 8, 1 / (362880 * 4096), 9, None),
    ],
)
def test_error_model_constants_match_the_design_table(
    scheme, order, truncation, derivative, rounding
):
    facts = SCHEME_FACTS[scheme]
    assert facts.order == order
    assert facts.truncation_coefficient == pytest.approx(truncation, rel=1e-15)
    assert facts.truncation_derivative == derivative
    if rounding is not None:
        assert facts.rounding_coefficient == rounding


HESSIAN_TOLERANCE = {
    "forward": 1e-2, "backward": 1e-2, "central": 1e-6, "five-point": 1e-8,
    "complex-step": 1e-6, "richardson": 1e-6,
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hessian_of_xy_is_the_swap_matrix_and_of_x_cubed_is_6x(scheme):
    engine = FiniteDiffEngine(scheme, h=1e-3)
    tol = HESSIAN_TOLERANCE[scheme]
    points = np.array([[1.0, 2.0], [0.5, -3.0], [-1.25, 0.75]])
    swap = engine.derivatives(call("mul", x, y), points, dtype="float64", order=2)
    np.testing.assert_allclose(swap, np.broadcast_to([[0, 1], [1, 0]], (3, 2, 2)), atol=tol)
    cube = engine.derivatives(call("pow", x, Const(3)), np.array([[2.0], [-2.0]]),
                              dtype="float64", order=2)
    np.testing.assert_allclose(cube[:, 0, 0], [12.0, -12.0], atol=tol)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hessian_matches_exact_second_derivatives_of_sin_x_exp_y(scheme):
    points = np.array([[0.5, 0.25], [-1.5, 0.75]])
    s, c, e = np.sin(points[:, 0]), np.cos(points[:, 0]), np.exp(points[:, 1])
    exact = np.stack([np.stack([-s * e, c * e], -1), np.stack([c * e, s * e], -1)], -2)
    expr = call("mul", SIN, call("exp", y))
    got = FiniteDiffEngine(scheme, h=1e-3).derivatives(expr, points, dtype="float64", order=2)
    np.testing.assert_allclose(got, exact, atol=HESSIAN_TOLERANCE[scheme])


# ---- engine plumbing ------------------------------------------------------------------------


def test_engine_follows_the_protocol_and_names_its_scheme():
    engine = FiniteDiffEngine("five-point")
    assert isinstance(engine, Engine)
    assert engine.name == "fd:five-point"
    assert engine.supports("abs") and not engine.supports("no_such_op")
    assert FiniteDiffEngine("complex-step").supports("exp")


def test_unknown_scheme_error_names_the_value_and_the_known_schemes():
    with pytest.raises(ValueError, match="scheme='fourier'.*forward, backward, central, "
                                         "five-point, complex-step, richardson"):
        FiniteDiffEngine("fourier")


@pytest.mark.parametrize("h", [0.0, -1e-3, math.nan, math.inf])
def test_a_step_that_is_not_positive_and_finite_is_refused(h):
    with pytest.raises(ValueError, match="h="):
        FiniteDiffEngine("central", h=h)
    with pytest.raises(ValueError, match=r"h_grid\[1\]="):
        FiniteDiffEngine("central").sweep(EXP, np.array([[1.0]]), dtype="float64",
                                          h_grid=(1e-3, h))


def test_default_h_grid_is_every_decade_from_1e_minus_1_to_1e_minus_16():
    assert DEFAULT_H_GRID == tuple(float(f"1e-{k}") for k in range(1, 17))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit, NaN equal to NaN."""
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _sweep_or_error(scheme: str, expr: Expr, pts: np.ndarray, **kwargs):
    relative = kwargs.pop("relative", False)
    try:
        return FiniteDiffEngine(scheme, relative=relative).sweep(expr, pts, **kwargs)
    except EngineError as exc:
        return str(exc)


def _cases_in_a_dtype(n_points: int, variables: tuple[str, ...]):
    """(dtype, (tree, points)) with the points exact in that dtype."""
    return st.sampled_from(["float64", "float32"]).flatmap(
        lambda dtype: st.tuples(
            st.just(dtype),
            cases(max_size=8, variables=variables, n_points=n_points, dtype=dtype,
                  kinks="include"),
        )
    )


@settings(max_examples=25, deadline=None)
@given(
    dtype_case=_cases_in_a_dtype(9, ("x", "y", "z")),
    scheme=st.sampled_from(SCHEMES),
    order=st.sampled_from([1, 2]),
    relative=st.booleans(),
)
def test_a_points_estimates_do_not_depend_on_the_other_points_in_the_batch(
    dtype_case, scheme, order, relative
):
    # torch's CPU kernels give other last bits on strided data and on a batch's tail, and
    # library reductions sum in shape-dependent orders; neither may reach the estimates.
    dtype, (expr, pts) = dtype_case
    kwargs = {"dtype": dtype, "order": order, "relative": relative}
    batch = _sweep_or_error(scheme, expr, pts, **kwargs)
    for rows in (slice(0, 1), slice(4, 5), slice(6, 9)):
        alone = _sweep_or_error(scheme, expr, pts[rows], **kwargs)
        if isinstance(batch, str):
            assert alone == batch
            continue
        assert _same(alone.values, batch.values[:, rows])
        assert _same(alone.error_estimate, batch.error_estimate[:, rows])
        assert _same(alone.h_effective, batch.h_effective[:, rows])


@settings(max_examples=15, deadline=None)
@given(dtype_case=_cases_in_a_dtype(5, ("x", "y")), order=st.sampled_from([1, 2]))
def test_a_scheme_gives_the_same_bits_alone_and_after_the_others_shared_its_inputs(
    dtype_case, order
):
    dtype, (expr, pts) = dtype_case
    alone = {s: _sweep_or_error(s, expr, pts, dtype=dtype, order=order) for s in SCHEMES}
    with finite_diff.shared_stencils():
        for scheme in reversed(SCHEMES):  # each finds most of its inputs evaluated already
            shared = _sweep_or_error(scheme, expr, pts, dtype=dtype, order=order)
            if isinstance(shared, str):
                assert shared == alone[scheme]
            else:
                assert _same(shared.values, alone[scheme].values)
                assert _same(shared.error_estimate, alone[scheme].error_estimate)


def test_schemes_evaluate_each_distinct_stencil_input_once_in_whole_vector_pieces(monkeypatch):
    calls, rows = [], []
    original_fn, original_run = finite_diff.torch_function, finite_diff._StencilValues._run

    def counting(expr, overrides=None):
        fn = original_fn(expr, overrides)

        def run(inputs):
            calls.append(inputs)
            return fn(inputs)

        return run

    def counting_run(self, columns):
        rows.append((self.work.is_complex, len(columns[0])))
        return original_run(self, columns)

    monkeypatch.setattr(finite_diff, "torch_function", counting)
    monkeypatch.setattr(finite_diff._StencilValues, "_run", counting_run)
    expr = call("mul", call("sin", call("add", x, y)), call("exp", z))
    n, m, n_h = 1000, 3, len(DEFAULT_H_GRID)
    points = np.random.default_rng(0).uniform(-1, 1, (n, m))
    with finite_diff.shared_stencils():
        for scheme in SCHEMES:
            FiniteDiffEngine(scheme).sweep(expr, points, dtype="float64")
    # real inputs: x once; per step and variable x +- h (forward, backward, central and
    # Richardson's first level), x +- 2h (five-point), x +- h/2, h/4, h/8 (Richardson)
    assert sum(k for is_complex, k in rows if not is_complex) == (1 + n_h * m * 10) * n
    assert sum(k for is_complex, k in rows if is_complex) == n_h * m * n  # x + ih
    for inputs in calls:
        assert len(inputs) == m
        for column in inputs:
            assert column.ndim == 1 and column.is_contiguous()
            assert len(column) % finite_diff._PAD == 0 and len(column) <= finite_diff._PIECE


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scheme", ["forward", "backward", "central", "five-point", "richardson"])
def test_stencil_sums_add_no_rounding_of_their_own_on_exact_function_values(scheme, dtype):
    # f(x) = 2x at x = 1000 (+-1/4): every stencil input and value is exact, so each
    # difference and each weighted sum is exact too when opposite weights are differenced
    # first. Summed left to right, f(x - 2h) - 8 f(x - h) rounds at the size of 7x.
    points = np.array([[1000.0], [-1000.25], [1000.25]])
    sweep = FiniteDiffEngine(scheme).sweep(
        call("mul", Const(2), x), points, dtype=dtype, h_grid=10.0 ** -np.arange(1, 8)
    )
    usable = np.isfinite(sweep.values)
    assert usable.sum() >= 9
    assert np.all(sweep.values[usable] == 2.0)


def test_nominal_h_reproduces_the_seeds_printed_forward_difference():
    # The seed divides by the nominal h = 1e-3, not by float32(1 + h) - 1; with
    # exact_h=False the engine does the same and prints what the post printed.
    import torch

    from harness.expr import Call, Const, Var

    x = Var("x")
    expr = Call("mul", (Const(3), Call("pow", (Call("add", (x, Const(1))), Const(2)))))
    one = torch.ones(1, dtype=torch.float32)
    by_hand = ((3 * (one + 1e-3 + 1) ** 2 - 3 * (one + 1) ** 2) / 1e-3).item()
    engine = FiniteDiffEngine("forward", 1e-3, exact_h=False)
    got = engine.derivatives(expr, np.array([[1.0]]), dtype="float32")[0, 0]
    assert abs(got - by_hand) <= 1e-6 * by_hand
    assert abs(got - 12.00199) < 1e-5
    assert engine.name == "fd:forward:nominal-h"


def test_a_batch_too_large_for_one_table_goes_through_in_parts_with_the_same_bits(monkeypatch):
    expr = call("mul", call("sin", call("add", x, y)), call("exp", y))
    points = np.random.default_rng(3).uniform(-1, 1, (23, 2))
    whole = {s: _sweep_or_error(s, expr, points, dtype="float64") for s in SCHEMES}
    monkeypatch.setattr(finite_diff, "_POINTS_PER_TABLE", 5)
    with finite_diff.shared_stencils():
        for scheme in SCHEMES:
            parts = _sweep_or_error(scheme, expr, points, dtype="float64")
            assert _same(parts.values, whole[scheme].values)
            assert _same(parts.h_effective, whole[scheme].h_effective)
            assert _same(parts.error_estimate, whole[scheme].error_estimate)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("order", [1, 2])
def test_no_points_give_empty_sweeps_of_the_documented_shapes(scheme, order):
    expr = call("mul", call("sin", x), call("exp", y))
    sweep = FiniteDiffEngine(scheme).sweep(expr, np.zeros((0, 2)), dtype="float32", order=order)
    n_h = len(DEFAULT_H_GRID)
    assert sweep.h_effective.shape == (n_h, 0, 2)
    assert sweep.values.shape == sweep.error_estimate.shape == (n_h, 0) + (2,) * order


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scheme", ["forward", "backward", "central", "five-point", "richardson"])
def test_second_difference_stencils_subtract_before_they_scale(scheme, dtype):
    # f = 2x at x = 1000: every f(x + kh) is exact, so 1, -2, 1 (and the five-point
    # weights) give exactly 0 once the values are differenced against the middle one;
    # added left to right, f - 2 f rounds at the size of 4x and 0 is missed by ~ulp / h^2.
    points = np.array([[1000.0], [-1000.25]])
    linear = FiniteDiffEngine(scheme).sweep(
        call("mul", Const(2), x), points, dtype=dtype, order=2, h_grid=10.0 ** -np.arange(1, 5)
    )
    usable = np.isfinite(linear.values)
    assert usable.sum() >= 4 and np.all(linear.values[usable] == 0.0)
    # f = x + 2**1023: f - 2 f overflows; its differences do not
    huge = FiniteDiffEngine(scheme).sweep(
        call("add", x, Const(2**1023)), np.array([[1.0]]), dtype="float64", order=2,
        h_grid=(1e-1, 1e-2),
    )
    assert np.all(np.isfinite(huge.values))


def test_shared_stencils_read_the_points_as_they_were_not_the_callers_array_later():
    expr = call("sin", x)
    buffer = np.array([[0.5], [1.0]])
    with finite_diff.shared_stencils():
        FiniteDiffEngine("central").sweep(expr, buffer, dtype="float64")
        buffer[:] = [[2.0], [3.0]]  # the caller reuses its array
        got = FiniteDiffEngine("five-point").sweep(expr, np.array([[0.5], [1.0]]), dtype="float64")
    np.testing.assert_allclose(got.values[3, :, 0], np.cos([0.5, 1.0]), rtol=1e-9)


def test_shared_stencils_follow_a_patched_translator_and_op_table(monkeypatch):
    from dataclasses import replace

    from harness import compile as compile_module

    expr, pts = call("sin", x), np.array([[0.5]])
    original = finite_diff.torch_function
    with finite_diff.shared_stencils():
        for k in (2.0, 3.0, 5.0):  # each patch may land where the last one was freed
            def scaled(e, overrides=None, k=k):
                fn = original(e, overrides)
                return lambda inputs: k * fn(inputs)

            monkeypatch.setattr(finite_diff, "torch_function", scaled)
            got = FiniteDiffEngine("central").sweep(expr, pts, dtype="float64").values[3, 0, 0]
            assert got == pytest.approx(k * math.cos(0.5), rel=1e-6)
        monkeypatch.setattr(finite_diff, "torch_function", original)
        doubled = replace(compile_module.OPS["sin"], torch_fn=lambda u: 2 * torch.sin(u))
        monkeypatch.setattr(compile_module, "OPS", {**compile_module.OPS, "sin": doubled})
        got = FiniteDiffEngine("central").sweep(expr, pts, dtype="float64").values[3, 0, 0]
        assert got == pytest.approx(2 * math.cos(0.5), rel=1e-6)


def test_sweeps_outside_shared_stencils_keep_no_values():
    FiniteDiffEngine("central").sweep(call("sin", x), np.array([[0.5]]), dtype="float64")
    assert finite_diff._SHARED is None
    with finite_diff.shared_stencils():
        with finite_diff.shared_stencils():  # nested: the outer block's tables
            FiniteDiffEngine("central").sweep(call("sin", x), np.array([[0.5]]), dtype="float64")
            assert finite_diff._SHARED is not None and len(finite_diff._SHARED) == 1
        assert finite_diff._SHARED is not None
    assert finite_diff._SHARED is None
