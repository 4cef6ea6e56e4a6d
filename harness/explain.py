"""``explain``: one expression at one point through every engine, the way a tutorial does it by hand.

The symbolic derivative and its certified value; each AD mode's value with its error in
ulps and verdict; the error-vs-h table of every finite-difference scheme; and a plain
account of why the finite differences miss: truncation error ~ h against rounding error
~ eps/h, with the best h that theory predicts and the one observed.
"""

from __future__ import annotations

import numpy as np
import sympy

from harness.check import compare
from harness.dtypes import dtype_info
from harness.engines.base import EngineError
from harness.engines.torch_ad import EAGER_MODES, TorchEngine
from harness.expr import Expr, to_sympy, to_text, variables
from harness.fd import (
    DEFAULT_H_GRID,
    SCHEMES,
    FiniteDiffEngine,
    optimal_h,
    predicted_error,
    scheme_facts,
    shared_stencils,
)
from harness.schema import format_point
from harness.truth import truth_engine

__all__ = ["explain"]


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return str(v)
    return f"{v:.10g}"


def explain(expr: Expr, point: np.ndarray, *, dtype: str = "float64", order: int = 1) -> str:
    """A multi-line, human-readable walk of ``expr`` at ``point`` (values in variable order)."""
    names = variables(expr)
    info = dtype_info(dtype)
    pts = np.asarray(point, dtype=np.float64).reshape(1, len(names))
    from harness.dtypes import round_array

    rounded = round_array(pts, dtype)
    lines = [f"f({', '.join(names)}) = {to_text(expr)}"]
    lines.append(f"at {format_point(names, pts[0])}, in {dtype} (unit roundoff {info.unit_roundoff:.3g})")
    if not np.array_equal(rounded, pts):
        lines.append(
            f"note: the point is not exact in {dtype}; using its rounded value "
            + format_point(names, rounded[0])
        )
        pts = rounded
    f = to_sympy(expr)
    syms = sorted(f.free_symbols, key=lambda s: s.name)
    truth = truth_engine()
    t = truth.evaluate(expr, pts, dtype=dtype, order=order)
    lines.append("")
    lines.append("symbolic derivative (sympy, the truth):")
    for i, s in enumerate(syms):
        if order == 1:
            lines.append(f"  d/d{s} = {sympy.diff(f, s)}")
            lines.append(
                f"        = {_fmt(t.values[0, i])}  (certified to +-{t.bounds[0, i]:.2g}, {t.status[0, i]})"
            )
    if order == 2:
        lines.append(f"  Hessian = {sympy.hessian(f, syms).tolist()}")
        lines.append(f"          = {t.values[0].tolist()}")
    lines.append("")
    lines.append("automatic differentiation:")
    for mode in EAGER_MODES:
        rows = compare(TorchEngine(mode), expr, pts, dtype=dtype, order=order, truth=truth)
        for _, r in rows.iterrows():
            lines.append(
                f"  torch {mode:<10} d/d{r['var']:<4} = {_fmt(r['value']):<18} "
                f"error {_fmt(r['ulp_error'])} ulp (tolerance {r['tolerance']:.2g})  {r['verdict']}"
            )
    if order != 1:
        return "\n".join(lines)
    taylor = truth.taylor(expr, pts, dtype=dtype, max_order=5)
    lines.append("")
    lines.append("finite differences, value and relative error against h (h made exact: (x + h) - x):")
    header = "  h       " + "".join(f"{s:>26}" for s in SCHEMES)
    sweeps = {}  # every variable's column at once, (n_h, 1, n_vars)
    with shared_stencils():
        for scheme in SCHEMES:
            try:
                sweeps[scheme] = (
                    FiniteDiffEngine(scheme).sweep(expr, pts, dtype=dtype, h_grid=DEFAULT_H_GRID).values
                )
            except EngineError:
                sweeps[scheme] = np.full((len(DEFAULT_H_GRID), 1, len(names)), np.nan)
    naive_all = (
        FiniteDiffEngine("forward", exact_h=False).sweep(expr, pts, dtype=dtype, h_grid=DEFAULT_H_GRID).values
    )
    for i, var in enumerate(names):
        lines.append(f" d/d{var}:")
        lines.append(header)
        exact = t.values[0, i]
        for k, h in enumerate(DEFAULT_H_GRID):
            cells = []
            for scheme in SCHEMES:
                v = sweeps[scheme][k, 0, i]
                rel = abs(v - exact) / abs(exact) if exact else abs(v - exact)
                cells.append(f"{_fmt(v):>15} ({rel:7.1e})" if np.isfinite(v) else f"{'n/a':>26}")
            lines.append(f"  {h:<7.0e} " + "".join(f"{c:>26}" for c in cells))
        naive = naive_all[:, 0, i]
        lines.append(
            "  forward difference as hand-written code computes it, (f(x + h) - f(x)) / h "
            "with the nominal h:"
        )
        lines.append(
            "    " + ", ".join(f"h={h:.0e}: {_fmt(v)}" for h, v in zip(DEFAULT_H_GRID, naive, strict=False))
        )
        derivs = {k: np.abs(taylor[k, :, i]) for k in range(taylor.shape[0])}
        lines.append("  why they differ (theory: truncation ~ h^p |f^(p+1)|, rounding ~ eps |f| / h):")
        for scheme in ("forward", "central", "five-point"):
            facts = scheme_facts(scheme)
            hstar = float(optimal_h(scheme, derivs, info.eps)[0])
            best = (
                float(predicted_error(scheme, hstar, derivs, info.eps)[0])
                if np.isfinite(hstar)
                else float("nan")
            )
            errs = np.abs(sweeps[scheme][:, 0, i] - exact)
            k = int(np.nanargmin(errs)) if np.isfinite(errs).any() else 0
            observed = f"observed best h {DEFAULT_H_GRID[k]:.0e} (error {errs[k]:.1e})"
            if np.isfinite(hstar):
                theory = f"best h by theory {hstar:.1e} (error ~{best:.1e})"
            else:
                theory = (
                    f"no truncation error (f^({facts.truncation_derivative}) = 0 here): the largest h is best"
                )
            lines.append(f"    {scheme:<10} order {facts.order}: {theory}; {observed}")
        h5 = 1e-5
        trunc = float(predicted_error("forward", h5, {0: derivs[0], 2: derivs[2]}, 0.0)[0])
        total = float(predicted_error("forward", h5, {0: derivs[0], 2: derivs[2]}, info.eps)[0])
        lines.append(
            f"    e.g. forward at h=1e-5: truncation {trunc:.1e} + rounding {total - trunc:.1e}: "
            + (
                "rounding dominates, so a smaller h makes it worse (the V-shaped curve)."
                if total - trunc > trunc
                else "truncation dominates; a smaller h would help."
            )
        )
    return "\n".join(lines)
