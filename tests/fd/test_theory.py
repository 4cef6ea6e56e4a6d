"""Theory curves and diagnostics (harness/fd/theory.py): a consistent scheme is called
consistent, a broken one (a wrong weight, a wrong divisor, a wrong order) is not."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from harness.dtypes import dtype_info
from harness.fd.stencils import scheme_facts
from harness.fd.theory import fd_diagnostics, predicted_error

H_GRID = 2.0 ** -np.arange(1, 53)  # fine enough for three h in the five-point truncation regime
X0 = 0.75
EPS64 = dtype_info("float64").eps


def _abs_derivatives(f: object) -> list[float]:
    """|f^(k)(X0)| for k = 0..6, from mpmath at 40 digits (independent of the harness)."""
    with mpmath.workdps(40):
        return [abs(float(mpmath.diff(f, X0, k))) for k in range(7)]


FUNCTIONS = {"exp": (np.exp, _abs_derivatives(mpmath.exp)), "sin": (np.sin, _abs_derivatives(mpmath.sin))}


def _fd_errors(
    f: object, offsets: tuple[Fraction, ...], weights: tuple[Fraction, ...], exact: float
) -> np.ndarray:
    """Relative error of ``sum_k w_k f(x + s_k h) / h`` over the grid, in float64 numpy,
    with the step made exact (h = (x + h) - x) as the seed's design asks."""
    h = (X0 + H_GRID) - X0
    s = np.array([float(v) for v in offsets])
    w = np.array([float(v) for v in weights])
    values = f(X0 + s[None, :] * h[:, None])  # type: ignore[operator]
    estimate = (values * w[None, :]).sum(axis=1) / h
    return np.abs(estimate - exact) / abs(exact)


def _diagnose(
    scheme: str, function: str, weights: tuple[Fraction, ...] | None = None,
    expected_order: int | None = None,
) -> dict[str, object]:
    facts = scheme_facts(scheme)
    f, derivs = FUNCTIONS[function]
    weights = facts.first.weights if weights is None else weights
    observed = _fd_errors(f, facts.first.offsets, weights, derivs[1])
    table = {k: np.array(v) for k, v in enumerate(derivs)}
    predicted = predicted_error(scheme, H_GRID, table, EPS64) / derivs[1]
    truncation = predicted_error(scheme, H_GRID, table, 0.0) / derivs[1]
    order = facts.order if expected_order is None else expected_order
    return fd_diagnostics(H_GRID, observed, predicted, truncation, order, eps=EPS64)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize(("scheme", "order"), [("forward", 1), ("central", 2), ("five-point", 4)])
def test_real_schemes_match_their_theory_curve(function: str, scheme: str, order: int) -> None:
    d = _diagnose(scheme, function)
    assert d["consistent"] is True
    assert abs(float(d["observed_order"]) - order) <= 0.5  # type: ignore[arg-type]
    # the best h lands within a factor of 100 of the predicted best h
    assert 1e-2 <= float(d["best_h"]) / float(d["predicted_h"]) <= 1e2  # type: ignore[arg-type]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_central_difference_divided_by_h_instead_of_2h_is_inconsistent(function: str) -> None:
    weights = tuple(2 * w for w in scheme_facts("central").first.weights)
    assert weights == (Fraction(-1), Fraction(0), Fraction(1))
    d = _diagnose("central", function, weights)
    assert d["consistent"] is False
    assert float(d["best_error"]) > 0.5  # type: ignore[arg-type]  # it estimates 2 f'


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize("index", [0, 1, 3, 4])
def test_five_point_stencil_with_one_weight_perturbed_is_inconsistent(function: str, index: int) -> None:
    weights = list(scheme_facts("five-point").first.weights)
    assert weights[2] == 0  # the centre carries no weight; perturb the others
    weights[index] += Fraction(1, 1000)
    d = _diagnose("five-point", function, tuple(weights))
    assert d["consistent"] is False


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_a_first_order_scheme_claimed_as_second_order_is_inconsistent(function: str) -> None:
    d = _diagnose("forward", function, expected_order=2)
    assert d["consistent"] is False
    assert abs(float(d["observed_order"]) - 1) <= 0.5  # type: ignore[arg-type]


def test_fd_diagnostics_without_a_truncation_regime_reports_nan_order() -> None:
    flat = np.full(H_GRID.shape, 1e-14)
    d = fd_diagnostics(H_GRID, flat, flat, np.zeros_like(flat), 2, eps=EPS64)
    assert math.isnan(d["observed_order"])
    assert d["best_error"] == 1e-14
    assert d["consistent"] is True  # the order cannot be measured; the error is as predicted


