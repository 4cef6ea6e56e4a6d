"""What theory predicts for finite differences, and how an observed curve compares.

:func:`predicted_error` is each scheme's error model at a step h (truncation from the exact
higher derivatives plus rounding), :func:`optimal_h` the step that minimises it, and
:func:`fd_diagnostics` compares one observed error-vs-h curve with the predicted one (best
h and error, observed order of convergence, consistent or not). The constants come from
:data:`harness.fd.stencils.SCHEME_FACTS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from harness.fd.stencils import scheme_facts

__all__ = ["fd_diagnostics", "optimal_h", "predicted_error"]

# ---- theory curves -----------------------------------------------------------------------


def _deriv(derivs: Mapping[int, Any], k: int, scheme: str) -> np.ndarray:
    try:
        return np.abs(np.asarray(derivs[k], dtype=np.float64))
    except KeyError:
        raise ValueError(
            f"derivs has no k={k}: scheme={scheme!r} needs |f^(k)| for the truncation term; "
            f"pass derivs with keys 0, 1 and {scheme_facts(scheme).truncation_derivative}"
        ) from None


def predicted_error(
    scheme: str, h: Any, derivs: Mapping[int, Any], eps: float
) -> np.ndarray:
    """The error model of ``scheme`` for a first derivative at step ``h`` (broadcasts).

    ``derivs`` maps k to ``|f^(k)(x)|`` (arrays that broadcast with ``h``); the model needs
    k = 0 and k = ``truncation_derivative``. When k = 1 is given, ``eps * |f'|`` is added:
    the rounding of the result itself, a floor no scheme beats (without it the complex
    step's error would fall to 0 as h does). ``eps`` is the dtype's machine epsilon.
    """
    facts = scheme_facts(scheme)
    step = np.asarray(h, dtype=np.float64)
    truncation = (
        facts.truncation_coefficient
        * step**facts.order
        * _deriv(derivs, facts.truncation_derivative, scheme)
    )
    total = truncation
    if facts.rounding_coefficient:
        with np.errstate(divide="ignore"):
            total = total + facts.rounding_coefficient * eps * _deriv(derivs, 0, scheme) / step
    if 1 in derivs:
        total = total + eps * _deriv(derivs, 1, scheme)
    return np.asarray(total, dtype=np.float64)


def optimal_h(scheme: str, derivs: Mapping[int, Any], eps: float) -> np.ndarray:
    """The step that minimises :func:`predicted_error`, in closed form.

    ``d/dh [C_t h^p D + C_r eps F / h] = 0`` gives
    ``h* = (C_r eps F / (p C_t D)) ** (1 / (p + 1))`` with ``F = |f|`` and
    ``D = |f^(p+1)|``. The complex step has no rounding term, so its h* is 0 (any h small
    enough that the truncation term is negligible is best); ``D == 0`` gives inf.
    """
    facts = scheme_facts(scheme)
    p = facts.order
    top = _deriv(derivs, facts.truncation_derivative, scheme)
    if not facts.rounding_coefficient:
        return np.zeros_like(top)
    f = _deriv(derivs, 0, scheme)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = facts.rounding_coefficient * eps * f / (p * facts.truncation_coefficient * top)
    return np.asarray(np.where(top == 0, np.inf, ratio ** (1.0 / (p + 1))), dtype=np.float64)



def fd_diagnostics(
    h: np.ndarray,
    observed: np.ndarray,
    predicted: np.ndarray,
    truncation: np.ndarray,
    expected_order: int,
    *,
    eps: float,
) -> dict[str, Any]:
    """Compare one scheme's observed error-vs-h curve with its theory curve.

    No pass/fail per h: ``observed``, ``predicted`` (truncation plus rounding, from the
    exact higher derivatives) and ``truncation`` (the same model with no rounding) are
    relative errors over the grid ``h``. Returns the best h and error observed and
    predicted, the observed order of convergence (the log-log slope where truncation
    dominates rounding by 10x and the error is still below 10%; NaN with fewer than three
    such h), and ``consistent``: the best observed error is within 30x of the predicted
    best (plus 64 eps) and the order is within 0.5 of the scheme's. A broken scheme (a
    wrong weight) fails one of the two.
    """
    h = np.asarray(h, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    pred = np.asarray(predicted, dtype=np.float64)
    trunc = np.asarray(truncation, dtype=np.float64)
    nan = float("nan")
    out: dict[str, Any] = {
        "best_h": nan,
        "best_error": nan,
        "predicted_h": nan,
        "predicted_error": nan,
        "observed_order": nan,
        "expected_order": expected_order,
        "consistent": False,
    }
    if np.isfinite(obs).any():
        i = int(np.nanargmin(np.where(np.isfinite(obs), obs, np.nan)))
        out["best_h"], out["best_error"] = float(h[i]), float(obs[i])
    if np.isfinite(pred).any():
        k = int(np.nanargmin(np.where(np.isfinite(pred), pred, np.nan)))
        out["predicted_h"], out["predicted_error"] = float(h[k]), float(pred[k])
    with np.errstate(invalid="ignore"):
        rounding = pred - trunc
    with np.errstate(all="ignore"):
        regime = (
            np.isfinite(obs)
            & (obs > 0)
            & (obs < 0.1)
            & (trunc > 0)
            & (trunc >= 10 * rounding)
            & (obs >= 10 * rounding)
        )
    if regime.sum() >= 3:
        slope = np.polyfit(np.log(h[regime]), np.log(obs[regime]), 1)[0]
        out["observed_order"] = float(slope)
    best_ok = bool(
        np.isfinite(out["best_error"])
        and out["best_error"] <= 30 * np.nan_to_num(out["predicted_error"], nan=0.0) + 64 * eps
    )
    order = out["observed_order"]
    order_ok = bool(np.isnan(order) or abs(order - expected_order) <= 0.5)
    out["consistent"] = best_ok and order_ok
    return out
