"""The long double interval filter: every interval holds the exact image, and the truth
engine gives the same values and statuses with the filter as with arb alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flint import arb, ctx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harness.expr import variables
from harness.strategies import cases
from harness.truth import SymbolicEngine
from harness.truth import intervals as iv

pytestmark = pytest.mark.skipif(
    np.finfo(np.longdouble).nmant < 63, reason="long double is float64 here: the filter is off"
)

L = np.longdouble


def to_arb(x: Any) -> Any:
    """A long double as an exact arb."""
    m, e = np.frexp(L(x))
    return arb(int(np.ldexp(m, 64))) * arb(2) ** (int(e) - 64)


def contains(lo: Any, hi: Any, exact: Any) -> bool:
    return bool(to_arb(lo) <= exact.lower() and exact.upper() <= to_arb(hi))


def arb_erf(u: Any) -> Any:
    return u.erf()


UNARY: dict[str, tuple[Callable[..., iv.Result], Callable[[Any], Any], float, float]] = {
    # name: interval function, arb function, argument range
    "exp": (iv.exp, arb.exp, -700, 700),
    "log": (iv.log, arb.log, 1e-300, 1e300),
    "sin": (iv.sin, arb.sin, -1e6, 1e6),
    "cos": (iv.cos, arb.cos, -1e6, 1e6),
    "tan": (iv.tan, arb.tan, -100, 100),
    "sec": (iv.sec, arb.sec, -100, 100),
    "csc": (iv.csc, arb.csc, -100, 100),
    "cot": (iv.cot, arb.cot, -100, 100),
    "sinh": (iv.sinh, arb.sinh, -700, 700),
    "cosh": (iv.cosh, arb.cosh, -700, 700),
    "tanh": (iv.tanh, arb.tanh, -50, 50),
    "sech": (iv.sech, arb.sech, -700, 700),
    "coth": (iv.coth, arb.coth, -50, 50),
    "csch": (iv.csch, arb.csch, -700, 700),
    "atan": (iv.atan, arb.atan, -1e10, 1e10),
    "asinh": (iv.asinh, arb.asinh, -1e10, 1e10),
    "asin": (iv.asin, arb.asin, -1, 1),
    "acos": (iv.acos, arb.acos, -1, 1),
    "acosh": (iv.acosh, arb.acosh, 1, 1e10),
    "atanh": (iv.atanh, arb.atanh, -1, 1),
    "erf": (iv.erf, arb_erf, -30, 30),
    "erfc": (iv.erfc, arb.erfc, -10, 30),
    "sqrt": (iv.sqrt, arb.sqrt, 0, 1e300),
    "rsqrt": (iv.rsqrt, arb.rsqrt, 0, 1e300),
    "cube": (iv.nonneg_int_pow(3), lambda u: u**3, -1e30, 1e30),
    "square": (iv.nonneg_int_pow(2), lambda u: u**2, -1e30, 1e30),
    "inverse square": (iv.neg_int_pow(-2), lambda u: u**-2, -1e30, 1e30),
    "two-thirds power": (iv.real_pow(2, 3), lambda u: u ** (arb(2) / 3), 0, 1e30),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_interval_function_holds_the_exact_image_of_its_argument(name: str, data: Any) -> None:
    fn, exact_fn, low, high = UNARY[name]
    xs = data.draw(
        st.lists(st.floats(low, high, allow_nan=False, allow_infinity=False), min_size=1, max_size=8)
    )
    widths = data.draw(st.lists(st.sampled_from([0, 1, 5, 40]), min_size=len(xs), max_size=len(xs)))
    lo = np.array(xs, dtype=L)
    hi = np.array([L(x) + (L(abs(x)) * L(2.0**-62) * w if w else 0) for x, w in zip(xs, widths, strict=True)])
    with np.errstate(all="ignore"):
        out_lo, out_hi, unsure, _ = fn(lo, hi)
    for k in range(len(xs)):
        if unsure is not None and unsure[k]:
            continue
        if not (np.isfinite(out_lo[k]) and np.isfinite(out_hi[k])):
            continue
        with ctx.workprec(300):
            for end in (lo[k], (lo[k] + hi[k]) / 2, hi[k]):
                exact = exact_fn(to_arb(end))
                assert contains(out_lo[k], out_hi[k], exact), (name, end, out_lo[k], out_hi[k], exact)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-1e300, 1e300, allow_nan=False), st.floats(-1e300, 1e300, allow_nan=False),
    st.floats(-1e300, 1e300, allow_nan=False), st.floats(-1e300, 1e300, allow_nan=False),
)
def test_interval_sum_and_product_hold_every_combination_of_their_ends(
    a: float, b: float, c: float, d: float
) -> None:
    alo, ahi = L(min(a, b)), L(max(a, b))
    blo, bhi = L(min(c, d)), L(max(c, d))
    one = lambda v: np.array([v], dtype=L)  # noqa: E731
    s_lo, s_hi, _, _ = iv.add(one(alo), one(ahi), one(blo), one(bhi))
    p_lo, p_hi, _, _ = iv.mul(one(alo), one(ahi), one(blo), one(bhi))
    with ctx.workprec(4200):
        assert contains(s_lo[0], s_hi[0], to_arb(alo) + to_arb(blo))
        assert contains(s_lo[0], s_hi[0], to_arb(ahi) + to_arb(bhi))
        for u in (alo, ahi):
            for v in (blo, bhi):
                assert contains(p_lo[0], p_hi[0], to_arb(u) * to_arb(v))


def test_an_exact_sum_stays_a_point() -> None:
    lo, hi, _, _ = iv.add(*(np.array([0.5], dtype=L),) * 2, *(np.array([2.25], dtype=L),) * 2)
    assert lo[0] == hi[0] == L(2.75)


def test_settle_accepts_an_interval_only_where_both_ends_round_to_one_float64() -> None:
    one = L(1)
    step = L(2.0**-53)  # half a float64 ulp at 1: the rounding boundary
    lo = np.array([one, one - step / 4, one + step / 2, L(1e-320), L(1e400)])
    hi = np.array([one, one + step / 4, one + step * 1.25, L(1e-320), L(1e400)])
    values, bounds, settled = iv.settle(lo, hi)
    assert settled.tolist() == [True, True, False, False, False]
    assert values[0] == values[1] == 1.0
    assert bounds[0] == 0 and bounds[1] >= float(step / 4)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(case=cases(n_points=16, dtype="float64", kinks="include"), order=st.sampled_from([1, 2]))
def test_the_truth_is_the_same_with_and_without_the_filter(
    case: Any, order: int, monkeypatch_module: Any
) -> None:
    expr, pts = case[0], np.asarray(case[1])
    engine = SymbolicEngine()
    with_filter = engine.evaluate(expr, pts, dtype="float64", order=order)
    monkeypatch_module.setattr(iv, "AVAILABLE", False)
    try:
        arb_only = engine.evaluate(expr, pts, dtype="float64", order=order)
    finally:
        monkeypatch_module.setattr(iv, "AVAILABLE", True)
    assert np.array_equal(with_filter.values, arb_only.values, equal_nan=True)
    assert np.array_equal(with_filter.status, arb_only.status)
    ok = with_filter.status == "ok"
    # the filter's interval is wider than arb's ball, never narrower than the truth allows
    assert (with_filter.bounds[ok] >= 0).all()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def test_the_filter_settles_most_entries_of_ordinary_trees() -> None:
    from harness.bench import random_tree

    rng = np.random.default_rng(0)
    engine = SymbolicEngine()
    settled = total = 0
    for seed in range(10):
        tree = random_tree(12, seed)
        pts = rng.uniform(-2, 2, (64, len(variables(tree))))
        truth = engine.evaluate(tree, pts, dtype="float64")
        settled += int((truth.precision_bits == iv.PRECISION_BITS).sum())
        total += truth.values.size
    assert settled >= 0.7 * total, (settled, total)


def test_DIFFHARNESS_TRUTH_arb_turns_the_filter_off() -> None:
    env = {**os.environ, "DIFFHARNESS_TRUTH": "arb"}
    out = subprocess.run(
        [sys.executable, "-c", "from harness.truth import intervals; print(intervals.AVAILABLE)"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "value",
    [arb(1) / 3, arb.pi(), -arb.pi(), arb(2) ** 20000, -(arb(2) ** 20000), arb(2) ** -20000,
     -(arb(2) ** -20000), arb(0), arb(7) / 2 ** 70],
    ids=["1/3", "pi", "-pi", "2**20000", "-2**20000", "2**-20000", "-2**-20000", "0", "7/2**70"],
)
def test_constants_convert_to_an_interval_that_holds_them_even_beyond_long_doubles_range(
    value: Any,
) -> None:
    with ctx.workprec(300):
        lo, hi = iv.from_arb(value)
        assert lo <= hi
        assert np.isinf(lo) or to_arb(lo) <= value.lower()
        assert np.isinf(hi) or value.upper() <= to_arb(hi)
        assert not (np.isinf(lo) and lo > 0) and not (np.isinf(hi) and hi < 0)


def _long_doubles_of_every_kind() -> np.ndarray:
    """Zeros of both signs, subnormals, the normal boundary, normals at every scale,
    the extremes, infinities and NaN."""
    s, n, big = np.finfo(L).smallest_subnormal, np.finfo(L).smallest_normal, np.finfo(L).max
    rng = np.random.default_rng(7)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=L)
    edges = np.array([s, 2 * s, n - s, n, n + n * np.finfo(L).eps, big], dtype=L)
    scales = np.exp2(rng.integers(-16440, 16380, 4000).astype(L))
    return np.concatenate([
        special, edges, -edges,
        rng.integers(-3000, 3000, 2000).astype(L) * s,  # subnormals
        rng.standard_normal(4000).astype(L) * scales,
    ])


def test_outward_steps_are_nextafter_bit_for_bit_sign_of_zero_included():
    x = _long_doubles_of_every_kind()
    with np.errstate(all="ignore"):
        for got, want in ((iv._up(x), np.nextafter(x, L(np.inf))),
                          (iv._down(x), np.nextafter(x, L(-np.inf)))):
            same = (got == want) & (np.signbit(got) == np.signbit(want))
            assert np.all(same | (np.isnan(got) & np.isnan(want)))


@pytest.mark.parametrize("rel", [iv._REL_LIBM, iv._REL_ERF])
def test_library_error_pad_is_the_plain_formula_bit_for_bit(rel):
    x = _long_doubles_of_every_kind()
    with np.errstate(all="ignore"):
        got, want = iv._pad(x, rel), np.abs(x) * rel + iv._TINY
    assert np.all((got == want) | (np.isnan(got) & np.isnan(want)))


def test_a_point_interval_settles_with_bound_zero_and_a_wide_one_with_its_half_width():
    lo = np.array([1.5, 0.0, 1.0], dtype=L)
    hi = np.array([1.5, 0.0, 0.0], dtype=L)
    hi[2] = L(1) + np.finfo(L).eps * 4
    value, bound, settled = iv.settle(lo, hi)
    assert settled.all() and list(value) == [1.5, 0.0, 1.0]
    assert bound[0] == 0.0 and bound[1] == 0.0
    assert bound[2] >= 2 * float(np.finfo(L).eps) and bound[2] < 4 * float(np.finfo(L).eps)


def test_an_interval_from_plus_zero_to_minus_zero_is_two_numbers_to_one_over_u():
    # 1/+0 and 1/-0 differ, so the library is asked at both ends, as without the
    # one-call shortcut for single points
    with np.errstate(divide="ignore"):  # as the filter runs it
        lo, hi, unsure, _ = iv.neg_int_pow(-1)(
            np.array([0.0, -0.0], dtype=L), np.array([-0.0, 0.0], dtype=L)
        )
    assert list(lo) == [-np.inf, -np.inf] and list(hi) == [np.inf, np.inf]
    assert unsure is not None and unsure.all()
