"""Tests for harness.functions: the numpy versions of the special functions in the op
table's sympy forms, against mpmath at 50 digits."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from harness.functions import NUMPY_FUNCTIONS


def _polygamma_exact(n: int, x: float) -> float:
    # mpmath's own polygamma for x > 0; for x < 0 the reflection formula with mpmath's
    # numerical derivative of cot (mpmath's series at large negative x is slow too)
    with mpmath.workdps(50):
        t = mpmath.mpf(x)
        if t > 0:
            return float(mpmath.polygamma(n, t))
        cot = mpmath.diff(lambda s: mpmath.cot(mpmath.pi * s), t, n)
        return float((-1) ** n * mpmath.polygamma(n, 1 - t) - mpmath.pi * cot)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
@pytest.mark.parametrize(
    "x", [2.5, 1e6, -3.5, -16.5, -17.01, -20.7, -123456.789, -1e8 + 0.5, -1e12 + 0.3, -1e15 + 0.125]
)
def test_polygamma_is_accurate_at_large_negative_arguments_too(n: int, x: float) -> None:
    # scipy's series takes time in proportion to |x| left of 0 (hours at -1e12): a
    # campaign's case hung there, inside C where its time limit cannot stop it
    got = float(NUMPY_FUNCTIONS["polygamma"](np.array([float(n)]), np.array([x]))[0])
    assert got == pytest.approx(_polygamma_exact(n, x), rel=1e-12)


def test_polygamma_at_a_pole_is_not_a_number() -> None:
    got = NUMPY_FUNCTIONS["polygamma"](np.array([1.0, 2.0]), np.array([-5e15, -1e300]))
    assert not np.isfinite(got).any()
