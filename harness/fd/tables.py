"""A case's finite-difference tables: result rows, diagnostics and theory curve.

Every scheme runs over the whole h grid at every point (inside one
:func:`harness.fd.engine.shared_stencils` block, so the schemes share stencil inputs); each
value is compared with the certified truth, and each scheme's median error curve with
what theory predicts from the exact higher derivatives (power series of the tree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.dtypes import dtype_info, ulp
from harness.engines.base import EngineError
from harness.expr import Expr, to_text, variables
from harness.fd.engine import FiniteDiffEngine, shared_stencils
from harness.fd.stencils import scheme_facts
from harness.fd.theory import fd_diagnostics, predicted_error
from harness.rows import ResultRows
from harness.schema import point_text_array

__all__ = ["MAX_TAYLOR", "fd_tables", "row_nanmedian"]

MAX_TAYLOR = 5
"""Highest derivative the truth computes for a theory curve (five-point needs f^(5));
Richardson's f^(9) is too costly, so it gets no theory curve."""


def fd_tables(
    case_id: str,
    source: str,
    expr: Expr,
    pts: np.ndarray,
    *,
    dtype: str,
    schemes: Sequence[str],
    h_grid: Sequence[float],
    truth: Any,
) -> tuple[list[ResultRows], list[dict[str, Any]], list[dict[str, Any]]]:
    """One case's finite-difference tables in one dtype: its rows of the results table
    (one per scheme, h, point and variable), its diagnostics (one per scheme and variable,
    :func:`harness.fd.theory.fd_diagnostics`) and its theory curve (median predicted
    relative error per h). ``truth`` is the truth engine (values and Taylor terms); a
    scheme that cannot run (complex step through a non-analytic op, say) is left out."""
    names = variables(expr)
    t = truth.evaluate(expr, pts, dtype=dtype, order=1)
    needed = max((scheme_facts(s).truncation_derivative for s in schemes), default=0)
    taylor = truth.taylor(expr, pts, dtype=dtype, max_order=min(needed, MAX_TAYLOR))
    eps = dtype_info(dtype).eps
    text = to_text(expr)
    diags: list[dict[str, Any]] = []
    theory: list[dict[str, Any]] = []
    grid = np.asarray(h_grid, dtype=np.float64)
    texts = point_text_array(names, pts)
    name_array = np.asarray(names, dtype=object)
    columns: list[dict[str, np.ndarray]] = []
    sweeps = {}
    with shared_stencils():  # the schemes share their stencil inputs (x, x + h, ...)
        for scheme in schemes:
            try:
                sweeps[scheme] = FiniteDiffEngine(scheme).sweep(
                    expr, pts, dtype=dtype, order=1, h_grid=h_grid
                )
            except EngineError:
                continue  # e.g. complex step through a non-analytic op, or float16
    for scheme, sweep in sweeps.items():
        engine = FiniteDiffEngine(scheme)
        values = sweep.values  # (n_h, n, m)
        with np.errstate(all="ignore"):
            abs_err = np.abs(values - t.values[None])
            rel_err = abs_err / np.abs(t.values[None])
        facts = scheme_facts(scheme)
        for i, var in enumerate(names):
            derivs = {k: np.abs(taylor[k, :, i]) for k in range(taylor.shape[0])}
            if facts.truncation_derivative in derivs:
                with np.errstate(all="ignore"):
                    scale = np.abs(t.values[None, :, i])
                    steps = grid[:, None]  # (n_h, 1) against each point's |f^(k)| (n,)
                    pred = predicted_error(scheme, steps, derivs, eps) / scale
                    trunc = predicted_error(scheme, steps, derivs, 0.0) / scale
            else:  # e.g. Richardson's f^(9): too costly to derive symbolically; no theory
                pred = trunc = np.full((len(grid), len(pts)), np.nan)
            ok_pts = t.status[:, i] == "ok"
            if ok_pts.any():
                observed = row_nanmedian(np.where(ok_pts[None], rel_err[:, :, i], np.nan))
                predicted = row_nanmedian(np.where(ok_pts[None], pred, np.nan))
                truncation = row_nanmedian(np.where(ok_pts[None], trunc, np.nan))
                d = fd_diagnostics(grid, observed, predicted, truncation, facts.order, eps=eps)
                diags.append(
                    {
                        "case_id": case_id,
                        "expr": text,
                        "point_count": int(ok_pts.sum()),
                        "var": var,
                        "dtype": dtype,
                        "order": 1,
                        "scheme": scheme,
                        **d,
                    }
                )
                theory += [
                    {
                        "case_id": case_id,
                        "dtype": dtype,
                        "scheme": scheme,
                        "h": float(h),
                        "rel_error": float(e),
                    }
                    for h, e in zip(grid, predicted, strict=False)
                ]
        n_h, n = values.shape[0], values.shape[1]
        grids = np.meshgrid(np.arange(n_h), np.arange(n), np.arange(len(names)), indexing="ij")
        hh, pp, vv = (g.ravel() for g in grids)
        with np.errstate(all="ignore"):
            ulp_err = abs_err[hh, pp, vv] / ulp(t.values[pp, vv], dtype)
        columns.append(
            {
                "point": texts[pp],
                "point_index": pp,
                "var": name_array[vv],
                "engine": np.full(len(pp), engine.name, dtype=object),
                "scheme": np.full(len(pp), scheme, dtype=object),
                "h": grid[hh],
                "value": values[hh, pp, vv],
                "truth": t.values[pp, vv],
                "truth_bound": t.bounds[pp, vv],
                "truth_status": t.status[pp, vv],
                "abs_error": abs_err[hh, pp, vv],
                "rel_error": rel_err[hh, pp, vv],
                "ulp_error": ulp_err,
            }
        )
    if not columns:
        return [], diags, theory
    merged = {k: np.concatenate([c[k] for c in columns]) for k in columns[0]}
    rows = ResultRows.of(  # merged holds the per-row columns; the rest are one value each
        len(merged["h"]),
        {
            **merged,
            "case_id": case_id,
            "source": source,
            "expr": text,
            "variables": ",".join(names),
            "mode": "",
            "dtype": dtype,
            "order": 1,
            "tolerance": np.nan,
            "ideal_tolerance": np.nan,
            "verdict": "",
            "vs_eager": "",
            "seconds": np.nan,
        },
    )
    return [rows], diags, theory


def row_nanmedian(a: np.ndarray) -> np.ndarray:
    """The median of each row's non-NaN entries (NaN for an all-NaN row), as
    ``np.nanmedian(a, axis=1)`` gives, without its per-call cost on small arrays."""
    ordered = np.sort(a, axis=1)  # NaN sorts last
    count = np.sum(~np.isnan(a), axis=1)
    rows = np.arange(a.shape[0])
    low = ordered[rows, np.maximum((count - 1) // 2, 0)]
    high = ordered[rows, np.maximum(count // 2, 0)]
    with np.errstate(invalid="ignore", over="ignore"):
        middle = (low + high) / 2  # as numpy does, overflow included
    return np.where(count > 0, middle, np.nan)
