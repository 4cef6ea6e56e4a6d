"""Differential verdicts: a transformed or compiled mode's value against its eager mode's.

The truth says whether a derivative is right; this says whether a compiler or transform
changed it. An engine that has an eager counterpart (``engine.eager()`` returns an engine:
``torch:compile-aot`` -> ``torch:reverse``, ``jax:jit-grad`` -> ``jax:eager``, ...) is
compared entry by entry with that engine's value at the same expression, point, dtype and
order. The finding a compiler maintainer wants is ``differs``: the eager value is ``ok``
and the transformed one lies further from it than the entry's rounding-model tolerance
(or is NaN or an infinity where eager's is not). The words are
:data:`harness.schema.VS_EAGER`; the column is ``vs_eager``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.engines.base import Engine
from harness.schema import VS_EAGER

__all__ = ["eager_engine", "vs_eager"]

AGREES, DIFFERS, EAGER_NOT_OK = VS_EAGER


def eager_engine(engine: Engine) -> Engine | None:
    """The engine ``engine`` is compared with: its ``eager()`` result, or None for an
    engine without one (an eager mode, a user engine)."""
    eager: Any = getattr(engine, "eager", None)
    return eager() if callable(eager) else None


def vs_eager(
    value: np.ndarray, eager_value: np.ndarray, eager_verdict: np.ndarray, tolerance: np.ndarray
) -> np.ndarray:
    """Per entry: ``eager-not-ok`` where eager's verdict is not ``ok`` (nothing to compare
    with), else ``agrees`` where both are the same non-finite value or differ by at most
    ``tolerance`` (absolute, the entry's own), else ``differs``. All arrays share a shape;
    returns an object array of that shape."""
    value = np.asarray(value, dtype=np.float64)
    eager_value = np.asarray(eager_value, dtype=np.float64)
    tolerance = np.asarray(tolerance, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.abs(value - eager_value)
        close = np.isfinite(gap) & (gap <= tolerance)
    same = (value == eager_value) | (np.isnan(value) & np.isnan(eager_value))
    out = np.where(same | close, AGREES, DIFFERS).astype(object)
    out[np.asarray(eager_verdict) != "ok"] = EAGER_NOT_OK
    # no finite tolerance (the exact value is out of the dtype's range): nothing to judge by
    out[~np.isfinite(tolerance)] = ""
    return out
