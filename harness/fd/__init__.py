"""Finite differences: the schemes' stencils, the engine over a grid of h, and theory.

* :mod:`harness.fd.stencils`: schemes, exact weights, error constants, evaluation plans;
* :mod:`harness.fd.engine`: :class:`FiniteDiffEngine` (one h, or a whole grid in one batch);
* :mod:`harness.fd.theory`: the predicted error curve and how an observed one compares;
* :mod:`harness.fd.tables`: one case's rows, diagnostics and theory curve for a campaign.
"""

from __future__ import annotations

from harness.fd.engine import FiniteDiffEngine, Sweep, shared_stencils
from harness.fd.stencils import (
    DEFAULT_H_GRID,
    RICHARDSON_LEVELS,
    SCHEME_FACTS,
    SCHEMES,
    SchemeFacts,
    Stencil,
    scheme_facts,
)
from harness.fd.tables import fd_tables
from harness.fd.theory import fd_diagnostics, optimal_h, predicted_error

__all__ = [
    "DEFAULT_H_GRID",
    "RICHARDSON_LEVELS",
    "SCHEMES",
    "SCHEME_FACTS",
    "FiniteDiffEngine",
    "SchemeFacts",
    "Stencil",
    "Sweep",
    "fd_diagnostics",
    "fd_tables",
    "optimal_h",
    "predicted_error",
    "scheme_facts",
    "shared_stencils",
]
