"""Verdicts of :func:`harness.check.compare` where rounding, kinks, jumps and the ends of a
dtype's range meet: correct engines are not called wrong there, and wrong answers are
not called ``ok``.

Every expected value is worked out by hand in the comment beside it; engines are torch
(right), or tiny stand-ins returning a fixed answer (right or wrong by construction).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.check import compare
from harness.engines.torch_ad import TorchEngine
from harness.expr import Expr, variables
from harness.parser import parse
from harness.schema import FAILING, parse_point

TORCH = TorchEngine("reverse")


class Fixed:
    """An engine that answers ``value`` for every entry."""

    name = "fixed"

    def __init__(self, value: float) -> None:
        self.value = value

    def supports(self, op: str) -> bool:
        return True

    def derivatives(self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1) -> np.ndarray:
        m = len(variables(expr))
        return np.full((len(points),) + (m,) * order, self.value)


def rows(engine: object, text: str, point: str, dtype: str = "float64", order: int = 1):  # type: ignore[no-untyped-def]
    expr = parse(text)
    return compare(engine, expr, parse_point(point, variables(expr)), dtype=dtype, order=order)  # type: ignore[arg-type]


def verdicts(engine: object, text: str, point: str, dtype: str = "float64", order: int = 1) -> dict[str, str]:
    r = rows(engine, text, point, dtype, order)
    return dict(zip(r["var"], r["verdict"], strict=True))


# ---- 1. a partial is a question along one axis ------------------------------------------


@pytest.mark.parametrize(
    ("text", "point", "truth_x"),
    [
        ("x*floor(y)", "x=0.5,y=1.0", 1.0),  # along x, f = x * floor(1) = x
        ("min(x, x*y)", "x=0.5,y=1.0", 1.0),  # along x the tie persists: f = x
        # along x, f = acos(0.5) * 2x (x + x and x / 0.5 tie): d/dx = 2 pi / 3
        ("acos(y) * min(x + x, x / y)", "x=0.5,y=0.5", 2 * math.pi / 3),
    ],
)
def test_a_break_in_another_variable_leaves_the_partial_defined_and_judged(
    text: str, point: str, truth_x: float
) -> None:
    r = rows(TORCH, text, point)
    x = r[r["var"] == "x"].iloc[0]
    assert x["truth_status"] == "ok" and x["truth"] == pytest.approx(truth_x, rel=1e-15)
    assert x["verdict"] == "ok"
    assert not r["verdict"].isin(FAILING).any()


def test_a_wrong_partial_beside_a_break_is_still_a_mismatch() -> None:
    # d/dx of x*floor(y) at y = 1 is 1; 0 (the other side's floor) is wrong along x
    assert verdicts(Fixed(0.0), "x*floor(y)", "x=0.5,y=1.0")["x"] == "mismatch"


def test_a_hessian_diagonal_entry_is_decided_along_its_axis() -> None:
    # d2/dx2 of x*floor(y) at y = 1 is 0 along x; the mixed and y entries cross the jump
    v = verdicts(Fixed(0.0), "x*floor(y)", "x=0.5,y=1.0", order=2)
    assert v == {"x,x": "ok", "x,y": "undefined", "y,x": "undefined", "y,y": "undefined"}
    assert verdicts(Fixed(3.0), "x*floor(y)", "x=0.5,y=1.0", order=2)["x,x"] == "mismatch"


# ---- 2. a jump along the axis is not a kink -----------------------------------------------


def test_a_function_that_jumps_along_the_axis_has_no_derivative_to_judge() -> None:
    # min(floor(y), y): -1 just below y = 0, 0 at and above it
    assert verdicts(TORCH, "min(floor(y), y)", "y=0.0") == {"y": "undefined"}
    assert verdicts(Fixed(0.5), "min(floor(y), y)", "y=0.0") == {"y": "undefined"}


def test_a_kink_along_the_axis_is_still_judged_against_its_one_sided_derivatives() -> None:
    # min(x, x*y) along y at y = 1: x*y below (d/dy = x = 0.5), x above (0)
    assert verdicts(Fixed(0.25), "min(x, x*y)", "x=0.5,y=1.0")["y"] == "kink-convention"
    assert verdicts(Fixed(0.75), "min(x, x*y)", "x=0.5,y=1.0")["y"] == "kink-violation"


# ---- 3. one-sided values have a tolerance -------------------------------------------------


def test_a_one_sided_value_rounded_to_the_dtype_is_a_convention() -> None:
    # abs(y / 0.75) at 0: one-sided derivatives -4/3 and 4/3; float32 holds 4/3 as
    # 1.33333337306976 (JAX's abs'(0) = 1 gives exactly that)
    got = float(np.float32(4.0 / 3.0))
    assert got != 4.0 / 3.0
    assert verdicts(Fixed(got), "abs(y / 0.75)", "y=0.0", dtype="float32") == {"y": "kink-convention"}
    assert verdicts(Fixed(1.5), "abs(y / 0.75)", "y=0.0", dtype="float32") == {"y": "kink-violation"}


# ---- 4. rounding that flips a branch ------------------------------------------------------


def test_a_branch_flipped_by_the_dtypes_rounding_is_branch_ambiguous_not_wrong() -> None:
    # exp(18.125) = 7.4e7 carries an error of several radians in float32, so the sign of
    # cos(exp(y)), exactly negative here (relu' = 0), is anyone's guess in that dtype
    r = rows(TORCH, "relu(cos(exp(y)))", "y=18.125", dtype="float32")
    assert r["truth"].iloc[0] == 0.0 and r["value"].iloc[0] != 0.0
    assert r["verdict"].iloc[0] == "branch-ambiguous"


def test_an_argument_rounded_exactly_onto_a_break_is_branch_ambiguous() -> None:
    # erf(-8) = -1 + 1e-29 is -1 in float64, so floor(3 - erf(-8)) is 4, not 3: the
    # engines' d/dy is 4 sigmoid'(-8), the truth's 3 sigmoid'(-8)
    r = rows(TORCH, "floor(min(4, x) - erf(y)) * sigmoid(y)", "x=3.0,y=-8.0")
    y = r[r["var"] == "y"].iloc[0]
    assert y["value"] == pytest.approx(4 / 3 * y["truth"], rel=1e-6)
    assert y["verdict"] == "branch-ambiguous"


def test_a_tie_made_by_rounding_may_be_split() -> None:
    # sinh(1) = 1.1752 and sqrt(0.5) + tanh(0.5) = 1.1692 both round to 1.171875 in
    # bfloat16: torch splits the tie, half of each branch's derivative
    v = verdicts(TORCH, "max(sinh(y), sqrt(x) + tanh(x))", "x=0.5,y=1.0", dtype="bfloat16")
    assert v == {"x": "branch-ambiguous", "y": "branch-ambiguous"}


def test_an_answer_on_neither_branch_is_still_a_mismatch() -> None:
    # the other branch's derivative is -sin(exp(y)) exp(y), of size below 7.4e7
    assert verdicts(Fixed(1e30), "relu(cos(exp(y)))", "y=18.125", dtype="float32") == {"y": "mismatch"}


def test_far_from_the_break_a_flipped_branch_is_a_mismatch() -> None:
    # relu(y - 0.5) at y = 1 in float32: the argument 0.5 is exact, nowhere near 0
    assert verdicts(Fixed(0.0), "relu(y - 0.5)", "y=1.0", dtype="float32") == {"y": "mismatch"}


# ---- 5. underflowing intermediates --------------------------------------------------------


@pytest.mark.parametrize("text", ["sqrt(x*x)", "x*x/x"])
def test_an_intermediate_below_float64s_subnormals_is_out_of_range(text: str) -> None:
    # x*x = 1e-400 is 0 in float64: torch gets sqrt'(0) = inf and 2x/x - 0 = 2
    assert verdicts(TORCH, text, "x=1e-200") == {"x": "out-of-range"}


def test_an_intermediate_inside_the_range_is_still_judged() -> None:
    assert verdicts(Fixed(2.0), "x*x/x", "x=1e-100") == {"x": "mismatch"}  # truth 1


# ---- 6. the tolerance is finite where the truth is ----------------------------------------


@pytest.mark.parametrize(
    ("text", "point"), [("cosh(x)", "x=710.0"), ("exp(x)", "x=709.0"), ("log(x)", "x=2.2e-308")]
)
def test_the_tolerance_is_finite_and_relative_where_the_model_overflowed_float64(
    text: str, point: str
) -> None:
    r = rows(TORCH, text, point).iloc[0]
    assert math.isfinite(r["truth"]) and math.isfinite(r["tolerance"])
    assert r["tolerance"] < 1e-12 * abs(r["truth"])
    for wrong in (0.0, 1.0, -5.0, r["truth"] / 2):
        assert verdicts(Fixed(wrong), text, point)["x"] != "ok"


# ---- 7. pow at base 0, order 2 ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("text", ["x**0", "x**1"])
def test_pow_at_base_zero_has_a_tight_second_derivative(text: str, dtype: str) -> None:
    # (x**0)'' = (x**1)'' = 0 exactly at 0
    r = rows(TORCH, text, "x=0.0", dtype=dtype, order=2).iloc[0]
    assert r["truth"] == 0.0 and r["tolerance"] < 1e-30 and r["verdict"] == "ok"
    assert verdicts(Fixed(1000.0), text, "x=0.0", dtype=dtype, order=2) == {"x,x": "mismatch"}


# ---- an inner kink on its break where f itself is smooth ------------------------------------


@pytest.mark.parametrize("text", ["relu(x*x)", "abs(x)*abs(x)"])
def test_a_convention_of_an_inner_kink_is_not_called_wrong_where_f_is_smooth(text: str) -> None:
    # f = x*x, f'' = 2; torch uses relu'(0) = 0 (abs'(0) = 0) and gets 0: the left branch
    # (relu -> 0) gives 0, the right one 2, abs's own partial at 0 gives 0 for abs*abs
    r = rows(TORCH, text, "x=0.0", order=2).iloc[0]
    assert r["truth"] == 2.0 and r["value"] == 0.0
    assert r["verdict"] == "kink-convention"


def test_outside_the_branches_of_an_inner_kink_is_still_a_mismatch() -> None:
    assert verdicts(Fixed(5.0), "relu(x*x)", "x=0.0", order=2) == {"x,x": "mismatch"}
    assert verdicts(Fixed(-1.0), "relu(x*x)", "x=0.0", order=2) == {"x,x": "mismatch"}


def test_away_from_the_break_an_inner_kinks_convention_does_not_apply() -> None:
    # relu(x*x) at 0.5: x*x = 0.25 is no break; 0 is plainly wrong (truth 2)
    assert verdicts(Fixed(0.0), "relu(x*x)", "x=0.5", order=2) == {"x,x": "mismatch"}


def test_an_inner_kinks_convention_is_accepted_where_f_itself_has_a_kink() -> None:
    # selu(fmod(4**y, celu(x, 1))) at x = y = 1/2: fmod(2, x) = 2 - trunc(2/x) x jumps there
    # (from 1/2 to 0) and lands on selu's kink; along x, f's one-sided slopes are
    # -3 scale = -3.152 and -4 scale = -4.203 (selu's argument is 0+ on both sides). torch
    # pairs fmod's partial at the point, -trunc(4) = -4, with selu's left slope
    # scale * alpha = 1.7581: -7.0324, a chain of the two ops' own conventions
    text, at = "selu(fmod(powv(4, y), celu(x, 1)))", "x=0.5,y=0.5"
    scale_alpha = 1.0507009873554805 * 1.6732632423543772
    r = rows(TORCH, text, at).set_index("var")
    assert r.loc["x", "value"] == pytest.approx(-4 * scale_alpha, rel=1e-12)
    assert r.loc["x", "verdict"] == "kink-convention"
    assert verdicts(Fixed(-9.0), text, at)["x"] == "kink-violation"
    assert verdicts(Fixed(-1.0), text, at)["x"] == "kink-violation"


# ---- 8. a rounding at the top of the range may overflow ---------------------------------------


def test_an_infinity_next_to_the_overflow_threshold_is_a_rounding_not_a_nan_mismatch() -> None:
    # log10''(x) = -1/(x**2 ln 10) = -65502.3 at x = 0.002574920654296875 (float16's largest
    # finite is 65504 and -65520 rounds to -inf): a few ulps of error (32 each) overflow
    r = rows(Fixed(-math.inf), "log10(x)", "x=0.002574920654296875", dtype="float16", order=2).iloc[0]
    assert -65504 < r["truth"] < -65500
    assert r["verdict"] == "ok" and r["abs_error"] == pytest.approx(65520 - 65502.3, abs=0.1)


def test_an_infinity_where_the_truth_is_beyond_the_dtypes_range_is_the_correct_rounding() -> None:
    # log''(x) = -1/x**2 = -1e10 at x = 1e-5 (float16: 1.0013580322265625e-05): past
    # -65520, so -inf is the correctly rounded truth
    r = rows(Fixed(-math.inf), "log(x)", "x=1.0013580322265625e-05", dtype="float16", order=2).iloc[0]
    assert r["truth"] < -65520 and r["verdict"] == "ok" and r["abs_error"] == 0


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_an_infinity_of_the_wrong_sign_or_a_nan_there_is_still_a_nan_mismatch(value: float) -> None:
    assert verdicts(Fixed(value), "log10(x)", "x=0.002574920654296875", dtype="float16", order=2) == {
        "x,x": "nan-mismatch"
    }


def test_an_infinity_where_the_truth_is_far_below_the_threshold_is_a_nan_mismatch() -> None:
    # rsqrt'(x) = -x**-1.5 / 2 = -32850.4 at x = 0.000614166259765625: half of float16's
    # range away from overflowing (torch's result.pow(3) overflows before the factor 0.5)
    assert verdicts(Fixed(-math.inf), "rsqrt(x)", "x=0.000614166259765625", dtype="float16") == {
        "x": "nan-mismatch"
    }


# ---- 9. the usual formulas' cancellations in half precision ----------------------------------


@pytest.mark.parametrize(
    ("text", "point", "order", "usual", "truth", "wrong"),
    [
        # 1/(1 - x*x) with x*x = 1983/2048 rounded once: 1/(65/2048) = 31.5; exact 31.2823
        ("atanh(x)", "x=-0.98388671875", 1, 31.5, 31.2823335496237, 33.0),
        # phi(x) (2 - x*x) from two terms of 0.21 that cancel at sqrt(2): x*x rounds to 2
        ("gelu(x)", "x=-1.4140625", 2, 0.0, 6.27171709515363e-05, 0.01),
        # (2x - 1)/(x (1 - x))**2 by the product rule: terms of size 8 cancel next to 1/2
        ("logit(x)", "x=0.499267578125", 2, -0.02734375, -0.0234376005831618, -0.125),
    ],
)
def test_a_cancelling_formula_in_float16_is_inaccurate_and_a_wrong_value_a_mismatch(
    text: str, point: str, order: int, usual: float, truth: float, wrong: float
) -> None:
    entry = "x" if order == 1 else "x,x"
    r = rows(Fixed(usual), text, point, dtype="float16", order=order).iloc[0]
    assert r["truth"] == pytest.approx(truth, rel=1e-3)
    assert r["verdict"] == "inaccurate"
    assert verdicts(Fixed(wrong), text, point, dtype="float16", order=order) == {entry: "mismatch"}


def test_i1s_second_derivative_through_its_usual_rule_is_inaccurate_and_a_wrong_value_a_mismatch() -> (
    None
):
    # torch's float32 i1''(1/2) by autograd through i1' = i0 - i1/x: terms of size 2.2 and
    # 1.0 cancel to 0.194; exact 0.19408200703541980 (mpmath), 31 ulps away
    usual = 0.19408154487609863
    r = rows(Fixed(usual), "i1(x)", "x=0.5", dtype="float32", order=2).iloc[0]
    assert r["truth"] == pytest.approx(0.1940820070354198, rel=1e-12)
    assert r["verdict"] == "inaccurate"
    assert verdicts(Fixed(0.1941), "i1(x)", "x=0.5", dtype="float32", order=2) == {"x,x": "mismatch"}


@pytest.mark.parametrize(
    ("text", "point", "dtype", "order", "usual", "truth", "wrong"),
    [
        # torch's sinc'' at 32.09 (autograd through (pi x cos(pi x) - sin(pi x))/(pi x**2)):
        # pi x = 100.8 rounded moves sin and cos by ~1e-14, 95 ulps of -0.02825 (mpmath)
        ("sinc(x)", "x=32.08686828613281", "float64", 2, -0.02825487221865553, -0.02825487221865586, -0.0283),
        # jax.grad(i0) in float32: the product rule through exp(|x|) i0e(x) cancels two terms
        # of size i0 = 1.0003 to i1 = 0.0180014040 (mpmath), 16 ulps off
        ("i0(x)", "x=0.03599697723984718", "float32", 1, 0.01800137758255005, 0.0180014040428567, 0.0181),
        # d/dx xlogy(sinc(2), x) = sinc(2)/x = 0 exactly; sin(2 pi) with 2 pi rounded makes
        # torch's (and JAX's) sinc(2) -3.9e-17, so the usual value is -7.8e-17
        ("xlogy(sinc(2), x)", "x=0.5", "float64", 1, -7.796343665038751e-17, 0.0, 1e-10),
    ],
)
def test_a_usual_formulas_rounding_is_inaccurate_and_a_wrong_value_a_mismatch(
    text: str, point: str, dtype: str, order: int, usual: float, truth: float, wrong: float
) -> None:
    entry = "x" if order == 1 else "x,x"
    r = rows(Fixed(usual), text, point, dtype=dtype, order=order).iloc[0]
    assert r["truth"] == pytest.approx(truth, rel=1e-12, abs=1e-300)
    assert r["verdict"] == "inaccurate"
    assert verdicts(Fixed(wrong), text, point, dtype=dtype, order=order) == {entry: "mismatch"}


def test_a_partial_is_allowed_its_change_across_a_large_value_error() -> None:
    # atanh(0.25 + y + hypot(y, x)) at y = -2**64, x = 3/4 in float32: 0.25 + y rounds to y,
    # so every engine evaluates atanh at 0 (derivative 1) where the exact argument is
    # 0.25 + 1.5e-20 (derivative 16/15). d/dx is x/hypot times that: 4.0657586e-20 as
    # computed, 4.3368087e-20 exactly. atanh''(0) = 0 says nothing of this; the change of
    # atanh' across the argument's error (0.25 - 0) does.
    text, at = "atanh(0.25 + y + hypot(y, x))", "x=0.75,y=-1.8446741874686296e+19"
    computed = 0.75 / 1.8446741874686296e19
    r = rows(Fixed(computed), text, at, dtype="float32").set_index("var")
    assert r.loc["x", "truth"] == pytest.approx(computed * 16 / 15, rel=1e-6)
    assert r.loc["x", "verdict"] == "ok"
    assert verdicts(Fixed(5 * computed), text, at, dtype="float32")["x"] == "mismatch"


def test_atan2s_mixed_second_partial_cancels_in_its_usual_rule() -> None:
    # d2/dx dy atan2(y, x) = -(x**2 - y**2)/r**4 = -0.00187207181290787352 (mpmath) at
    # (3.107, 3); torch by autograd through x/r**2 subtracts 2 x**2/r**4 from 1/r**2 and
    # gives -0.0018720718129078828 (43 ulps): inaccurate; a wrong entry stays a mismatch
    text, at = "atan2(y, x)", "x=3.1066436767578125,y=3.0"
    got = verdicts(Fixed(-0.0018720718129078828), text, at, order=2)
    assert got["x,y"] == got["y,x"] == "inaccurate"
    assert verdicts(Fixed(-0.00188), text, at, order=2)["x,y"] == "mismatch"


def test_pows_mixed_second_partial_cancels_where_b_ln_a_is_near_minus_one() -> None:
    # d2/da db a**b = a**(b - 1) (1 + b ln a) = -0.0280938 at (0.5, 1.5): the two terms,
    # of size 1.44, cancel to 2%; torch's (and JAX's) autograd gives it 24 float32 ulps off,
    # 0.5 ulps of the terms. A rule without the 1 (a**(b - 1) b ln a = -0.735) is wrong.
    text, at = "powv(x, y)", "x=0.5,y=1.5"
    assert set(verdicts(TorchEngine("reverse"), text, at, dtype="float32", order=2).values()) == {"ok"}
    assert verdicts(Fixed(-0.7351), text, at, dtype="float32", order=2)["x,y"] == "mismatch"
    assert verdicts(Fixed(-0.0282), text, at, dtype="float32", order=2)["x,y"] == "mismatch"


def test_pows_first_partial_through_a_rounded_exponent_is_inaccurate_not_wrong() -> None:
    # d/da a**b = b a**(b - 1): torch rounds b - 1 = -16.314... to float32 first, and the
    # power moves by |(b - 1) ln a| = 19 u relative: 13 ulps at (3.21, -15.3), which a
    # careful rule (b a**b / a) avoids; a rule off by 1e-4 is wrong
    text, at = "powv(x, y)", "x=3.21235990524292,y=-15.314032554626465"
    got = verdicts(TorchEngine("reverse"), text, at, dtype="float32")
    assert got == {"x": "inaccurate", "y": "ok"}
    assert verdicts(Fixed(-8.256e-08), text, at, dtype="float32")["x"] == "mismatch"


def test_prods_second_derivative_through_out_over_x_is_inaccurate_not_wrong() -> None:
    # d2/dx2 prod(x, y) = 0; torch's backward out / x, differentiated along x again, leaves
    # y/x - x y/x**2 = 3.7e-9 at x = 47.9 in float32 (JAX's product of the others gives 0)
    text, at = "prod(x, y)", "x=47.90528106689453,y=-1.5"
    got = verdicts(TorchEngine("reverse"), text, at, dtype="float32", order=2)
    assert got == {"x,x": "inaccurate", "x,y": "ok", "y,x": "ok", "y,y": "ok"}
    assert verdicts(Fixed(1e-3), text, at, dtype="float32", order=2)["x,x"] == "mismatch"
