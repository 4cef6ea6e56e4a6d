"""Tests for harness.oracle: the verdict table, ulp errors, the rounding model's tolerance
and the finite-difference theory check.

Expected values are written by hand (ulp sizes as powers of two, verdicts from the rules
in the module docstring) or computed independently (finite differences evaluated here
with numpy at exact points, derivatives of exp and sin from mpmath), never by the oracle.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from harness.dtypes import dtype_info
from harness.expr import Call, Expr, Var, to_text
from harness.oracle import SAFETY, judge, rounding_model, rounding_tolerance
from harness.schema import FAILING, JUDGED
from harness.strategies import cases
from harness.truth import SymbolicEngine

NAN, INF = math.nan, math.inf
X, Y = Var("x"), Var("y")
TRUTH = SymbolicEngine()
GENERATED = settings(
    max_examples=25, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def call(op: str, *args: Expr) -> Call:
    return Call(op, tuple(args))


def verdict_of(
    got: float, truth: float, status: str = "ok", tol: float = 1e-12, *,
    one_sided: tuple[float, float] | None = None, out_of_range: bool = False,
) -> str:
    """The verdict of one entry (float64), the other arguments as given."""
    sides = None if one_sided is None else (np.array([one_sided[0]]), np.array([one_sided[1]]))
    j = judge(
        np.array([got]), np.array([truth]), np.array([status]), np.array([tol]),
        dtype="float64", one_sided=sides, out_of_range=np.array([out_of_range]),
    )
    return str(j.verdict[0])


# ---- the verdict table ----------------------------------------------------------------------

VERDICT_TABLE = [
    # (got, truth, status, one-sided (left, right), out of range, expected verdict)
    pytest.param(2.0, 2.0, "ok", None, False, "ok", id="equal"),
    pytest.param(2.0 + 1e-13, 2.0, "ok", None, False, "ok", id="inside-tolerance"),
    pytest.param(2.0 + 1e-9, 2.0, "ok", None, False, "mismatch", id="outside-tolerance"),
    pytest.param(-2.0, 2.0, "ok", None, False, "mismatch", id="wrong-sign"),
    pytest.param(2.0 + 1e-9, 2.0, "uncertified", None, False, "mismatch", id="uncertified-judged"),
    pytest.param(NAN, 2.0, "ok", None, False, "nan-mismatch", id="nan-from-engine"),
    pytest.param(INF, 2.0, "ok", None, False, "nan-mismatch", id="inf-from-engine"),
    pytest.param(-INF, 2.0, "ok", None, False, "nan-mismatch", id="minus-inf-from-engine"),
    pytest.param(2.0, NAN, "ok", None, False, "nan-mismatch", id="nan-truth-finite-engine"),
    pytest.param(2.0, NAN, "undefined", None, False, "undefined", id="undefined-truth"),
    pytest.param(NAN, NAN, "undefined", None, False, "undefined", id="undefined-both-nan"),
    pytest.param(2.0 + 1e-9, 2.0, "ok", None, True, "out-of-range", id="mismatch-out-of-range"),
    pytest.param(NAN, 2.0, "ok", None, True, "out-of-range", id="nan-out-of-range"),
    pytest.param(2.0, 2.0, "ok", None, True, "ok", id="ok-stays-ok-out-of-range"),
    pytest.param(0.0, NAN, "kink", (0.0, 1.0), False, "kink-convention", id="kink-left-end"),
    pytest.param(1.0, NAN, "kink", (0.0, 1.0), False, "kink-convention", id="kink-right-end"),
    pytest.param(0.5, NAN, "kink", (0.0, 1.0), False, "kink-convention", id="kink-inside-hull"),
    pytest.param(0.0, NAN, "kink", (-1.0, 1.0), False, "kink-convention", id="abs-at-zero"),
    pytest.param(5.0, NAN, "kink", (0.0, 1.0), False, "kink-violation", id="kink-above-hull"),
    pytest.param(-1e-9, NAN, "kink", (0.0, 1.0), False, "kink-violation", id="kink-just-below"),
    pytest.param(-1e-13, NAN, "kink", (0.0, 1.0), False, "kink-convention", id="kink-below-within-tol"),
    pytest.param(NAN, NAN, "kink", (0.0, 1.0), False, "kink-violation", id="kink-nan-engine"),
    pytest.param(0.5, NAN, "kink", None, False, "undefined", id="kink-without-one-sided"),
    pytest.param(0.5, NAN, "kink", (NAN, 1.0), False, "undefined", id="kink-without-a-left-limit"),
    pytest.param(0.5, NAN, "kink", (0.0, INF), False, "undefined", id="kink-with-an-infinite-side"),
    # a one-sided limit the truth cannot give (not certified, or beyond float64) judges nothing
    pytest.param(5.0, NAN, "kink", (NAN, 1.0), False, "undefined", id="kink-one-side-unknown"),
    pytest.param(5.0, NAN, "kink", (0.0, 1.0), True, "out-of-range", id="kink-violation-out-of-range"),
    pytest.param(0.5, NAN, "kink", (0.0, 1.0), True, "kink-convention", id="kink-convention-out-of-range"),
    pytest.param(
        math.inf, NAN, "kink", (-math.inf, -math.inf), False, "undefined", id="kink-sides-beyond-range"
    ),
    # equal one-sided limits: the derivative exists and is judged as usual against them
    pytest.param(0.0, NAN, "kink", (0.0, 0.0), False, "ok", id="smooth-kink-right"),
    pytest.param(0.5, NAN, "kink", (0.0, 0.0), False, "mismatch", id="smooth-kink-wrong"),
    pytest.param(NAN, NAN, "kink", (0.0, 0.0), False, "nan-mismatch", id="smooth-kink-nan"),
]


@pytest.mark.parametrize(("got", "truth", "status", "sides", "oor", "expected"), VERDICT_TABLE)
def test_judge_gives_the_verdict_the_rules_prescribe(
    got: float, truth: float, status: str, sides: tuple[float, float] | None, oor: bool,
    expected: str,
) -> None:
    assert verdict_of(got, truth, status, one_sided=sides, out_of_range=oor) == expected


BRANCH_TABLE = [
    # (got, truth, other branch's derivative (NaN: a jump flips), its tolerance, verdict)
    pytest.param(0.0, 2.0, 0.0, 1e-12, "branch-ambiguous", id="other-branch"),
    pytest.param(1e-13, 2.0, 0.0, 1e-12, "branch-ambiguous", id="other-branch-within-tol"),
    pytest.param(5.0, 2.0, 0.0, 1e-12, "mismatch", id="neither-branch"),
    pytest.param(2.0, 2.0, 0.0, 1e-12, "ok", id="truths-branch"),
    pytest.param(5.0, 2.0, NAN, NAN, "branch-ambiguous", id="a-jump-flips-anything-goes"),
    pytest.param(NAN, 2.0, NAN, NAN, "branch-ambiguous", id="a-jump-flips-nan-too"),
]


@pytest.mark.parametrize(("got", "truth", "other", "other_tol", "expected"), BRANCH_TABLE)
def test_where_rounding_may_flip_a_branch_either_branchs_derivative_is_accepted(
    got: float, truth: float, other: float, other_tol: float, expected: str
) -> None:
    j = judge(
        np.array([got]), np.array([truth]), np.array(["ok"]), np.array([1e-12]), dtype="float64",
        branch=(np.array([True]), np.array([other]), np.array([other_tol])),
    )
    assert j.verdict[0] == expected


def test_a_branch_is_not_ambiguous_where_the_model_says_so() -> None:
    j = judge(
        np.array([0.0]), np.array([2.0]), np.array(["ok"]), np.array([1e-12]), dtype="float64",
        branch=(np.array([False]), np.array([0.0]), np.array([1e-12])),
    )
    assert j.verdict[0] == "mismatch"


IDEAL_TABLE = [
    # (got, truth, status, formula tolerance, ideal tolerance, verdict)
    pytest.param(2.0 + 1e-15, 2.0, "ok", 1e-12, 1e-14, "ok", id="within-ideal"),
    pytest.param(2.0 + 1e-13, 2.0, "ok", 1e-12, 1e-14, "inaccurate", id="beyond-ideal-within-formula"),
    pytest.param(2.0 + 1e-13, 2.0, "uncertified", 1e-12, 1e-14, "inaccurate", id="uncertified-inaccurate"),
    pytest.param(2.0 + 1e-9, 2.0, "ok", 1e-12, 1e-14, "mismatch", id="beyond-both"),
    pytest.param(0.0, 1.7e-17, "ok", 2.4e-15, 2.3e-32, "inaccurate", id="tanh-prime-20-rounded-to-zero"),
    # an ideal tolerance wider than the formula one is the formula one: never ok beyond it
    pytest.param(2.0 + 1e-9, 2.0, "ok", 1e-12, 1e-6, "mismatch", id="ideal-capped-by-formula"),
    # kinks and undefined entries are judged by their own rules, never inaccurate
    pytest.param(0.5 + 1e-13, NAN, "kink", 1e-12, 1e-14, "undefined", id="kink-not-inaccurate"),
]


@pytest.mark.parametrize(("got", "truth", "status", "tol", "ideal", "expected"), IDEAL_TABLE)
def test_beyond_the_ideal_tolerance_and_within_the_formula_one_is_inaccurate(
    got: float, truth: float, status: str, tol: float, ideal: float, expected: str
) -> None:
    j = judge(
        np.array([got]), np.array([truth]), np.array([status]), np.array([tol]), dtype="float64",
        ideal_tolerance=np.array([ideal]),
    )
    assert j.verdict[0] == expected


def test_the_verdict_tables_cover_every_verdict() -> None:
    covered = {p.values[-1] for p in VERDICT_TABLE} | {p.values[-1] for p in BRANCH_TABLE}
    covered |= {p.values[-1] for p in IDEAL_TABLE}
    assert covered == set(JUDGED)


def test_an_ok_whose_tolerance_is_the_whole_value_is_out_of_range_where_the_model_says_so() -> None:
    assert verdict_of(2.0, 1.0, tol=1.5, out_of_range=True) == "out-of-range"
    assert verdict_of(2.0, 1.0, tol=1.5, out_of_range=False) == "ok"


def test_failed_marks_exactly_the_failing_verdicts() -> None:
    got = np.array([1.0, 2.0, NAN, 5.0, 0.5, 1.0])
    truth = np.array([1.0, 1.0, 1.0, NAN, NAN, NAN])
    status = np.array(["ok", "ok", "ok", "kink", "kink", "undefined"])
    sides = (np.zeros(6), np.ones(6))
    j = judge(got, truth, status, np.full(6, 1e-12), dtype="float64", one_sided=sides)
    assert j.verdict.tolist() == [
        "ok", "mismatch", "nan-mismatch", "kink-violation", "kink-convention", "undefined",
    ]
    assert j.failed.tolist() == [False, True, True, True, False, False]
    assert FAILING & set(JUDGED) == {"inaccurate", "mismatch", "nan-mismatch", "kink-violation"}


def test_the_truth_bound_widens_the_tolerance() -> None:
    got, truth = np.array([1.0 + 1e-10]), np.array([1.0])
    status, tol = np.array(["ok"]), np.array([1e-12])
    assert judge(got, truth, status, tol, dtype="float64").verdict[0] == "mismatch"
    widened = judge(got, truth, status, tol, dtype="float64", truth_bound=np.array([1e-9]))
    assert widened.verdict[0] == "ok"
    assert widened.tolerance[0] == pytest.approx(1e-12 + 1e-9, rel=1e-15)
    # a NaN bound (no certified ball) adds nothing rather than poisoning the tolerance
    nan_bound = judge(got, truth, status, tol, dtype="float64", truth_bound=np.array([NAN]))
    assert nan_bound.tolerance[0] == 1e-12


def test_judge_works_entrywise_on_hessian_shaped_arrays() -> None:
    truth = np.array([[[2.0, 0.5], [0.5, -1.0]]])
    got = truth.copy()
    got[0, 1, 0] = 0.75
    j = judge(got, truth, np.full(truth.shape, "ok"), np.full(truth.shape, 1e-12), dtype="float64",
              out_of_range=np.array([False]))
    assert j.verdict.tolist() == [[["ok", "ok"], ["mismatch", "ok"]]]


# ---- ulp, absolute and relative errors, by hand ---------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "truth", "got", "ulps"),
    [
        ("float64", 1.0, 1.0 + 2.0**-52, 1.0),
        ("float64", 1.0, 1.0 - 2.0**-52, 1.0),  # ulp is that of the truth's binade [1, 2)
        ("float64", 0.75, 0.75 + 2.0**-52, 2.0),  # binade [0.5, 1): ulp 2**-53
        ("float64", -3.0, -3.0 - 3 * 2.0**-51, 3.0),  # binade [2, 4): ulp 2**-51
        ("float64", 5 * 2.0**-1074, 8 * 2.0**-1074, 3.0),  # subnormal: ulp 2**-1074
        ("float32", 1.0, 1.0 + 3 * 2.0**-23, 3.0),
        ("float32", 2.0**-130, 2.0**-130 + 2.0**-149, 1.0),  # float32 subnormal
        ("float16", 1.0, 1.0 + 2.0**-10, 1.0),
        ("float16", 1000.0, 1001.5, 3.0),  # binade [512, 1024): ulp 2**-1
        ("bfloat16", 1.0, 1.0 + 2.0**-7, 1.0),
        ("bfloat16", 1.0, 1.5, 64.0),
    ],
)
def test_ulp_error_counts_units_in_the_last_place_of_the_truth(
    dtype: str, truth: float, got: float, ulps: float
) -> None:
    j = judge(np.array([got]), np.array([truth]), np.array(["ok"]), np.array([0.0]), dtype=dtype)
    assert j.ulp_error[0] == ulps
    assert j.abs_error[0] == abs(got - truth)
    assert j.rel_error[0] == abs(got - truth) / abs(truth)


def test_errors_are_nan_or_inf_where_a_side_is_not_finite() -> None:
    j = judge(
        np.array([NAN, INF, 1.0]), np.array([1.0, 1.0, NAN]), np.array(["ok", "ok", "undefined"]),
        np.zeros(3), dtype="float64",
    )
    assert np.isnan(j.abs_error[0]) and np.isnan(j.ulp_error[0])
    assert np.isinf(j.abs_error[1])
    assert np.isnan(j.abs_error[2]) and np.isnan(j.rel_error[2])


# ---- the rounding model -------------------------------------------------------------------------

SIN_EXP = call("mul", call("sin", X), call("exp", Y))
SIN_EXP_POINTS = np.array([[0.5, 1.0], [1.5, -2.0], [-0.75, 0.25]])


def _u(dtype: str) -> float:
    return dtype_info(dtype).unit_roundoff


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("order", [1, 2])
def test_tolerance_scales_with_the_unit_roundoff_on_a_fixed_tree(dtype: str, order: int) -> None:
    wide, _ = rounding_tolerance(SIN_EXP, SIN_EXP_POINTS, dtype=dtype, order=order)
    narrow, _ = rounding_tolerance(SIN_EXP, SIN_EXP_POINTS, dtype="float64", order=order)
    ratio = wide / narrow
    expected = _u(dtype) / _u("float64")
    assert np.all(ratio >= expected * (1 - 1e-9))
    assert np.all(ratio <= expected * 1.01)  # only the subnormal floors differ


def test_tolerance_of_sin_times_exp_is_a_few_roundings_of_the_gradient() -> None:
    """d/dx sin(x) e^y = cos(x) e^y: two library calls and one product, so a handful of
    unit roundoffs of |cos(x) e^y|, scaled by SAFETY; neither 0 nor a loose global rtol."""
    tol, oor = rounding_tolerance(SIN_EXP, SIN_EXP_POINTS, dtype="float64", order=1)
    x, y = SIN_EXP_POINTS.T
    grad_x = np.abs(np.cos(x) * np.exp(y))
    relative = tol[:, 0] / (SAFETY * _u("float64") * grad_x)
    assert not oor.any()
    assert np.all(relative >= 1.0) and np.all(relative <= 20.0)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tolerance_grows_by_the_ratio_of_unit_roundoffs_on_generated_trees(dtype: str) -> None:
    """Every term of the model is proportional to u except the subnormal floor, which grows
    faster, and the change of a partial across an argument's error where that argument is
    known to worse than ``oracle._FAR`` relative (a value computed as 0 by cancellation),
    which need not grow with u at all; so the ratio is u_dtype / u_float64 or more for all
    but a few entries and, over all entries, is that ratio in the median (a zero
    derivative, x * x at 0, has only the floor)."""
    ratios: list[np.ndarray] = []

    @settings(GENERATED)
    @given(cases(max_size=10, n_points=8, dtype="float16"))
    def collect(case: tuple[Expr, np.ndarray]) -> None:
        expr, pts = case
        t64, _ = rounding_tolerance(expr, pts, dtype="float64", order=1)
        wide, _ = rounding_tolerance(expr, pts, dtype=dtype, order=1)
        with np.errstate(over="ignore"):
            ratios.append((wide / t64).ravel())

    collect()
    ratio = np.concatenate(ratios)
    expected = _u(dtype) / _u("float64")
    assert len(ratio) >= 100
    assert np.mean(ratio >= expected * (1 - 1e-9)) >= 0.95
    assert np.all(ratio >= expected / 2)
    assert np.median(ratio) <= expected * 1.01


@pytest.mark.parametrize("order", [1, 2])
def test_tolerance_is_tight_enough_to_catch_a_relative_1e7_error_in_float64(order: int) -> None:
    """Over generated trees, most entries' tolerance is below 1e-9 of the derivative, so an
    engine off by a relative 1e-7 cannot hide in it. "Most": where a derivative cancels to
    nearly 0 (cos(x) + (x - x) at x = 1e-200) the model's absolute terms dominate."""
    relative: list[np.ndarray] = []
    loose: list[str] = []

    @settings(GENERATED, max_examples=40)
    @given(cases(max_size=10, n_points=8, dtype="float64"))
    def collect(case: tuple[Expr, np.ndarray]) -> None:
        expr, pts = case
        tol, oor = rounding_tolerance(expr, pts, dtype="float64", order=order)
        assert not np.isnan(tol).any()
        assert np.all(np.isfinite(tol[~oor]))
        truth = TRUTH.evaluate(expr, pts, dtype="float64", order=order)
        judged = (truth.status == "ok") & (truth.values != 0)
        rel = tol[judged] / np.abs(truth.values[judged])
        relative.append(rel)
        if (rel >= 1e-9).any():
            loose.append(f"{to_text(expr)} at {pts[np.nonzero(judged)[0][rel >= 1e-9][0]].tolist()}")

    collect()
    entries = np.concatenate(relative)
    assert len(entries) >= 100
    assert np.mean(entries < 1e-9) >= 0.9, (np.quantile(entries, [0.5, 0.9, 0.95]), loose)
    assert np.median(entries) < 1e-13


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_tolerance_is_never_nan_in_any_dtype_on_generated_trees(dtype: str) -> None:
    @settings(GENERATED, max_examples=10)
    @given(cases(max_size=10, n_points=8, dtype=dtype))
    def check(case: tuple[Expr, np.ndarray]) -> None:
        expr, pts = case
        for order in (1, 2):
            tol, oor = rounding_tolerance(expr, pts, dtype=dtype, order=order)
            assert not np.isnan(tol).any()
            assert np.all(np.isfinite(tol[~oor]))
            assert np.all(tol > 0)

    check()


def test_a_magnitude_beyond_the_dtype_marks_the_point_out_of_range() -> None:
    expr = call("exp", X)
    pts = np.array([[1.0], [12.0]])  # e**12 = 162755 > 65504, float16's largest
    _, oor16 = rounding_tolerance(expr, pts, dtype="float16")
    _, oor64 = rounding_tolerance(expr, pts, dtype="float64")
    assert oor16.tolist() == [False, True]
    assert oor64.tolist() == [False, False]


def test_an_op_partial_beyond_float64_marks_the_point_out_of_range() -> None:
    # d/dx (x / x) at 5e-324 is 1/x - x/x**2 = 0, but each partial is 2e323: torch's inf - inf
    expr = Call("div", (X, X))
    _, oor = rounding_tolerance(expr, np.array([[5e-324], [1.5]]), dtype="float64")
    assert oor.tolist() == [True, False]


def test_a_jump_located_by_a_rounded_quotient_is_ambiguous_within_that_rounding() -> None:
    # fmod's backward takes trunc of the rounded a/b: 1/0.33333334 in float32 is
    # 2.99999991, which rounds to 3, so -3 (the other side's d/db) is as right as -2
    expr = Call("fmod", (X, Var("y")))
    pts = np.array([[1.0, 0.3333333432674408], [1.0, 0.3]])
    model = rounding_model(expr, pts, dtype="float32", at_break=np.zeros(2, dtype=bool))
    assert model.ambiguous.tolist() == [True, False]
    truth = SymbolicEngine().evaluate(expr, pts[:1], dtype="float32")
    assert truth.values[0].tolist() == [1.0, -2.0]
    verdicts = [
        judge(np.array([[1.0, got]]), truth.values, truth.status, model.tolerance[:1], dtype="float32",
              branch=(model.ambiguous[:1], model.other[:1], model.other_tolerance[:1])).verdict[0, 1]
        for got in (-2.0, -3.0)
    ]
    assert verdicts == ["ok", "branch-ambiguous"]
    far = judge(np.array([[1.0, -3.0]]), truth.values, truth.status, model.tolerance[:1], dtype="float32")
    assert far.verdict[0, 1] == "mismatch"  # without the branch hint: a derivative off by 1


def test_an_unsupported_order_is_rejected_with_its_value() -> None:
    with pytest.raises(ValueError, match="order=3"):
        rounding_tolerance(SIN_EXP, SIN_EXP_POINTS, dtype="float64", order=3)


def test_an_op_partial_that_underflows_to_zero_leaves_room_for_an_engines_zero() -> None:
    # d/dx exp(erf(cosh(x))) at x = -4 is -1.1e-322: erf'(cosh 4) = erf'(27.3) ~ 1.5e-324
    # is 0 in float64 (below half the smallest subnormal), and so is torch's product. No
    # float64 chain rule gets closer; the tolerance must cover the whole value.
    x = Var("x")
    expr = Call("exp", (Call("erf", (Call("cosh", (x,)),)),))
    pts = np.array([[-4.0]])
    truth = SymbolicEngine().evaluate(expr, pts, dtype="float64").values
    assert truth[0, 0] < 0 and abs(truth[0, 0]) < 1e-320
    tol, out_of_range = rounding_tolerance(expr, pts, dtype="float64")
    assert tol[0, 0] >= abs(truth[0, 0]) and not out_of_range[0]
    # while a normal-sized partial keeps its tolerance tight
    tight, _ = rounding_tolerance(expr, np.array([[-1.0]]), dtype="float64")
    assert tight[0, 0] < 1e-13


def test_the_rounding_model_follows_a_patched_op_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # node values come from the op table's torch functions; a cached model of the old
    # table must not answer for the new one
    from dataclasses import replace

    import torch

    from harness import compile as compile_module

    expr = Call("exp", (Call("sin", (Var("x"),)),))
    pts = np.array([[0.5], [1.5]])
    before, _ = rounding_tolerance(expr, pts, dtype="float64")
    scaled = replace(compile_module.OPS["sin"], torch_fn=lambda u: 40 * torch.sin(u))
    monkeypatch.setattr(compile_module, "OPS", {**compile_module.OPS, "sin": scaled})
    after, _ = rounding_tolerance(expr, pts, dtype="float64")
    assert np.all(after > 1e3 * before)  # exp(40 sin x) is far larger than exp(sin x)


@pytest.mark.parametrize("name", ["norminf", "amax"])
def test_the_formula_partials_of_a_max_of_nine_arguments_compile_and_pick_the_largest(name: str) -> None:
    # sympy prints Heaviside through a simplified Piecewise unless told otherwise: too
    # deeply nested to compile for seven or more arguments (a SyntaxError in a campaign)
    from harness.oracle import _partial_functions

    partials = _partial_functions(name, 9, 1)
    args = [np.array([-3.0, 0.5])] + [np.array([1.0, 2.0])] * 8
    # norminf = max |a_i|: d/da0 = sign(a0) where |a0| is the largest, 0 elsewhere; amax =
    # max a_i: a0 = -3 is not the largest. a1 ties with a2..a8 (Heaviside(0) = 1/2) unless
    # |a0| = 3 wins (norminf at the first point)
    expected_0 = [-1.0, 0.0] if name == "norminf" else [0.0, 0.0]
    expected_1 = [0.0, 0.5] if name == "norminf" else [0.5, 0.5]
    np.testing.assert_array_equal(partials[(0,)](*args), expected_0)
    np.testing.assert_array_equal(partials[(1,)](*args), expected_1)


def test_judging_an_infinity_next_to_float64s_max_warns_nothing_and_reads_it_as_a_rounding() -> None:
    """truth + tolerance beyond float64 itself: the overflow rule compares without a
    RuntimeWarning (a campaign's log filled with them), and inf within the tolerance of the
    overflow threshold is the truth rounded up."""
    import warnings

    got = np.array([[np.inf]])
    expected = np.array([[1.7e308]])
    tol = np.array([[1.7e308]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        j = judge(got, expected, np.array([["ok"]]), tol, dtype="float64", ideal_tolerance=tol)
    assert j.verdict.tolist() == [["ok"]]


def test_an_mpmath_partial_that_cannot_take_a_complex_value_is_nan_not_a_crash() -> None:
    # mpmath's atan2 raises AttributeError on the complex value a square root of a
    # rounding-negative discriminant makes (the 3x3 eigenvalues' closed form)
    import mpmath

    from harness.oracle import _mp_float

    assert math.isnan(_mp_float(lambda a: mpmath.atan2(mpmath.sqrt(a), 1), [-1e-30]))
    assert _mp_float(lambda a: mpmath.atan2(mpmath.sqrt(a), 1), [0.25]) == math.atan2(0.5, 1)


def test_a_tree_the_truth_cannot_evaluate_node_by_node_still_gets_a_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # exp(800) overflows float64, so the model asks the truth for the node's value; where
    # the truth has no rule for the tree's form, the model keeps float64's inf (out of range)
    from harness.engines.base import EngineError
    from harness.truth import truth_engine

    def refuse(*args: object, **kwargs: object) -> None:
        raise EngineError("no rule")

    monkeypatch.setattr(type(truth_engine()), "node_values", refuse)
    expr = Call("exp", (Var("x"),))
    model = rounding_model(expr, np.array([[800.0], [1.0]]), dtype="float64")
    assert model.out_of_range.tolist() == [True, False]
    assert np.isfinite(model.tolerance[1]).all()


def _model_in_long_double(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every point take the rounding model's long double passes."""
    import harness.oracle as oracle
    from harness.memo import clear_all

    narrowed = oracle._narrowed

    def wide(*args: object) -> oracle._Local:
        local = narrowed(*args)  # type: ignore[arg-type]
        return oracle._Local(
            local.vals, local.partials, local.vals64, local.partials64, np.ones_like(local.wide_rows)
        )

    clear_all()
    monkeypatch.setattr(oracle, "_narrowed", wide)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_rounding_model_in_float64_agrees_with_long_double(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # edge points among them: values past float64 (cosh(800)), underflows (x * x at 1e-200)
    @settings(GENERATED, max_examples=12)
    @given(cases(max_size=10, n_points=8, dtype=dtype))
    def check(case: tuple[Expr, np.ndarray]) -> None:
        expr, pts = case
        pts = np.concatenate([pts, np.full((2, pts.shape[1]), 800.0), np.full((1, pts.shape[1]), 1e-200)])
        for order in (1, 2):
            with monkeypatch.context() as patch:
                fast = rounding_model(expr, pts, dtype=dtype, order=order)
                _model_in_long_double(patch)
                slow = rounding_model(expr, pts, dtype=dtype, order=order)
            from harness.memo import clear_all

            clear_all()
            assert fast.out_of_range.tolist() == slow.out_of_range.tolist()
            assert fast.ambiguous.tolist() == slow.ambiguous.tolist()
            for a, b in ((fast.tolerance, slow.tolerance), (fast.ideal_tolerance, slow.ideal_tolerance)):
                assert (np.isfinite(a) == np.isfinite(b)).all()
                # the passes round differently; a few subnormal floors apart at most
                big = np.isfinite(a) & (np.abs(b) > 1e-300)
                np.testing.assert_allclose(a[big], b[big], rtol=0.05)

    check()


def test_a_point_float64_cannot_hold_takes_the_long_double_passes() -> None:
    # cosh(800) = 1.4e347: the truth supplies it, float64 cannot hold it
    expr = call("div", call("cosh", X), call("cosh", X))
    pts = np.array([[800.0], [1.0]])
    import harness.oracle as oracle

    local = oracle._local_partials(expr, pts, 1)
    assert local.wide_rows.tolist() == [True, False]
    model = rounding_model(expr, pts, dtype="float64")
    # d/dx (cosh/cosh) = 0 at both; the model's magnitudes are those of long double
    assert model.out_of_range.tolist() == [True, False]
    assert np.isfinite(model.tolerance[1]).all()


def test_exp2_as_exp_of_x_ln2_is_inaccurate_and_a_wrong_rule_still_a_mismatch() -> None:
    # JAX's exp2 is exp(x * ln 2): the product's rounding grows by |x ln 2| (155 ulps at
    # 1000.5); a careful exp2 is within an ulp. The formula tolerance admits the first only.
    pts = np.array([[1000.5], [126.0], [-149.00001525878906]])
    truth = TRUTH.evaluate(call("exp2", X), pts, dtype="float64")
    model = rounding_model(call("exp2", X), pts, dtype="float64")
    ln2 = math.log(2)
    by_exp = np.exp(pts * ln2) * ln2  # what the lowering computes, in float64
    error = np.abs(by_exp - truth.values)
    assert (error > model.ideal_tolerance).any()
    assert (error <= model.tolerance).all()
    wrong = truth.values * (1 + 1e-6)
    assert (np.abs(wrong - truth.values) > model.tolerance).all()


def test_an_op_formula_that_cancels_is_replaced_by_its_exact_value() -> None:
    # d3/db3 log(e**a + e**b) = p (1 - p) (1 - 2p), p = e**b / (e**a + e**b): at (0, 54.6)
    # the formula cancels to 4.4e-16 in float64 and -1.1e-19 in long double
    import mpmath

    from harness.oracle import _careful_partial

    a, b = 0.0, 54.605918884277344
    with mpmath.workdps(60):
        p = mpmath.exp(b) / (mpmath.exp(a) + mpmath.exp(b))
        exact = float(p * (1 - p) * (1 - 2 * p))
    got = _careful_partial("logaddexp", (1, 1, 1), [np.array([a]), np.array([b])])
    assert float(got[0]) == pytest.approx(exact, rel=1e-12)


def test_a_hessian_half_wrong_in_a_logaddexp_tail_is_outside_the_ideal_tolerance() -> None:
    # erfc(54.6) is 0 in float64 (its exact value 1e-1297 is far below), so logaddexp's
    # d2/db2 = 1.9e-24 is known only through the partials' exact values; error terms built
    # on the cancelling formulas were as large as the Hessian itself
    expr = call("logaddexp", call("erfc", Y), call("gelu", Y))
    pts = np.array([[54.605918884277344]])
    truth = TRUTH.evaluate(expr, pts, dtype="float32", order=2)
    model = rounding_model(expr, pts, dtype="float32", order=2)
    assert truth.values.ravel()[0] == pytest.approx(1.9273e-24, rel=1e-4)
    assert (model.ideal_tolerance < 0.5 * np.abs(truth.values)).all()


def test_sinc_past_a_radian_of_angle_error_is_within_the_formula_tolerance() -> None:
    # at x = 2**26 in float32, pi x is 12 radians off, so (cos(pi x) pi x - sin(pi x)) /
    # (pi x**2) is anywhere in +-1/x: the usual formula's loss (the formula tolerance), not
    # a wrong rule; a careful engine's sinc' = 1/x stays inside the ideal tolerance
    import torch

    x = 2.0**26
    pts = np.array([[x]])
    truth = TRUTH.evaluate(call("sinc", X), pts, dtype="float32")
    model = rounding_model(call("sinc", X), pts, dtype="float32")
    t = torch.tensor(x, dtype=torch.float32)
    angle = math.pi * t
    usual = float((torch.cos(angle) * angle - torch.sin(angle)) / (math.pi * t * t))
    assert truth.values[0, 0] == pytest.approx(1 / x, rel=1e-12)
    assert abs(usual - truth.values[0, 0]) <= model.tolerance[0, 0]
    assert model.ideal_tolerance[0, 0] < 1e-3 * truth.values[0, 0]
