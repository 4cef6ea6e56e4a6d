"""The words every stage shares: result columns, verdicts, point text and the rerun command.

A leaf module (numpy only, no torch, sympy or pandas) so that the report, case files and
the command line can read and write results without loading an engine. Each name here
has one meaning across the package:

* a *verdict* is the judgement of one derivative entry (:data:`VERDICTS`); the oracle
  gives :data:`JUDGED`, the runner adds :data:`RUN_FAILURES` for a case that could not be
  judged at all; :data:`FAILING` are the verdicts that make a check fail;
* a *point* is one row of coordinates, written as text ``x=1.0,y=-0.5`` (each value's
  shortest exact float64 repr) and read back by :func:`parse_point`;
* a *rerun command* is the one shell line that re-checks one entry (:func:`repro_command`).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

import numpy as np

from harness.memo import Memo

__all__ = [
    "CSV_COLUMNS",
    "DTYPE_NAMES",
    "ALLOWABLE",
    "FAILING",
    "FD_COLUMNS",
    "JUDGED",
    "RESULT_COLUMNS",
    "RUN_FAILURES",
    "SCHEMES",
    "SKIPPED",
    "THEORY_COLUMNS",
    "TIMING_COLUMNS",
    "VERDICTS",
    "VS_EAGER",
    "coordinate",
    "failing_verdicts",
    "format_point",
    "parse_point",
    "point_items",
    "point_text_array",
    "point_texts",
    "repro_command",
]

RESULT_COLUMNS: tuple[str, ...] = (
    "case_id",
    "source",
    "expr",
    "variables",
    "point",
    "point_index",
    "var",
    "engine",
    "mode",
    "dtype",
    "order",
    "scheme",
    "h",
    "value",
    "truth",
    "truth_bound",
    "truth_status",
    "abs_error",
    "rel_error",
    "ulp_error",
    "tolerance",
    "ideal_tolerance",
    "verdict",
    "vs_eager",
    "seconds",
)
"""Columns of the long results table, in order (documented in the README)."""

CSV_COLUMNS: tuple[str, ...] = tuple(c for c in RESULT_COLUMNS if c != "seconds")
"""Columns of ``results.csv``: all but ``seconds``, which differs between runs and so
goes to ``timings.csv``; the same seed then gives a byte-identical file."""

FD_COLUMNS: tuple[str, ...] = (
    "case_id",
    "expr",
    "point_count",
    "var",
    "dtype",
    "order",
    "scheme",
    "best_h",
    "best_error",
    "predicted_h",
    "predicted_error",
    "observed_order",
    "expected_order",
    "consistent",
)
"""Columns of ``fd_diagnostics.csv``: one row per case, variable, dtype and scheme."""

TIMING_COLUMNS: tuple[str, ...] = ("case_id", "engine", "dtype", "order", "scheme", "seconds")
"""Columns of ``timings.csv``: one row per request of a case (an engine, dtype and order,
or a scheme's finite-difference table) with its seconds, kept out of ``results.csv`` so
that the same seed gives a byte-identical file."""

THEORY_COLUMNS: tuple[str, ...] = ("case_id", "dtype", "scheme", "h", "rel_error")
"""Columns of a run's theory curves: the median predicted relative error per case and h."""

DTYPE_NAMES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
"""The dtypes under test (the ``dtype`` column), widest first; :mod:`harness.dtypes` holds
their constants."""

SCHEMES: tuple[str, ...] = (
    "forward", "backward", "central", "five-point", "complex-step", "richardson",
)
"""Finite-difference scheme names (the ``scheme`` column), in the order reports list them;
:mod:`harness.fd.stencils` defines each."""

JUDGED: tuple[str, ...] = (
    "ok",
    "inaccurate",
    "mismatch",
    "nan-mismatch",
    "kink-convention",
    "kink-violation",
    "undefined",
    "out-of-range",
    "branch-ambiguous",
)
"""Verdicts the oracle gives a derivative entry, in report order. ``inaccurate``: within
the tolerance of the usual backward formulas, beyond that of a careful engine (accuracy
lost to cancellation, e.g. tanh'(20) = 0 in float64); failing unless allowed.
``branch-ambiguous``:
the dtype's rounding may put a kink's or jump's argument on the other side, and the
engine took that side (see :mod:`harness.oracle`); not a failure."""

RUN_FAILURES: tuple[str, ...] = ("error", "timeout")
"""Verdicts of a case that could not be judged: the engine or the case raised, or it ran
past its time limit. ``truth_status`` then holds the message."""

SKIPPED = "skipped"
"""Verdict of a request the engine does not support (an op, dtype, order, or an optional
engine that is not installed): nothing was judged, and nothing failed."""

VERDICTS: tuple[str, ...] = (*JUDGED, *RUN_FAILURES, SKIPPED)
"""Every verdict a result row can hold, in report order."""

VS_EAGER: tuple[str, ...] = ("agrees", "differs", "eager-not-ok")
"""Values of the ``vs_eager`` column, a transformed or compiled mode's value against the
same engine's eager mode (:mod:`harness.differential`): ``agrees`` (within the entry's
tolerance, or the same NaN or infinity), ``differs`` (eager is ``ok`` and this value is
further from it than the tolerance: a compiler or transform changed the derivative),
``eager-not-ok`` (eager's own verdict is not ``ok``: nothing trustworthy to compare with).
Empty where there is no comparison: an eager mode, an engine without an eager counterpart,
a row without a value (skipped, error), an entry without a finite tolerance (its exact
value is out of the dtype's range) and finite-difference rows. Not a verdict: a
``differs`` row's ``verdict`` still says what the truth says."""

FAILING: frozenset[str] = frozenset(
    {"inaccurate", "mismatch", "nan-mismatch", "kink-violation", *RUN_FAILURES}
)
"""Verdicts that fail a check: the engine is wrong, or it could not be checked."""

ALLOWABLE: tuple[str, ...] = ("inaccurate", "kink-violation")
"""Failing verdicts a check may be told to accept (``allow=``, ``--allow``): accuracy lost
to a cancelling formula, a convention outside the one-sided derivatives."""


def failing_verdicts(allow: Iterable[str] = ()) -> frozenset[str]:
    """:data:`FAILING` less the verdicts in ``allow`` (each one of :data:`ALLOWABLE`)."""
    allow = tuple(allow)
    for v in allow:
        if v not in ALLOWABLE:
            raise ValueError(
                f"allow={v!r} is not a verdict a check can accept; expected one of "
                f"{', '.join(ALLOWABLE)}"
            )
    return FAILING - frozenset(allow)


def coordinate(raw: object, where: str) -> float:
    """One coordinate from text or a number: decimal (``0.5``, ``1e-3``) or hex float
    (``0x1.8p+0``), finite or not; ``where`` names the input in the error."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ValueError(f"{where} = {raw!r}: expected a number or a hex-float string")
    if isinstance(raw, str):
        text = raw.strip()
        try:
            if text.lower().lstrip("+-").startswith("0x"):
                return float.fromhex(text)
            return float(text)
        except (ValueError, OverflowError):
            raise ValueError(
                f"{where} = {raw!r}: expected a float64 number such as 0.5, -1e-3 or 0x1.8p+0"
            ) from None
    try:
        return float(raw)
    except OverflowError:
        raise ValueError(f"{where} = {raw!r}: beyond float64's range") from None


def format_point(names: Sequence[str], row: np.ndarray) -> str:
    """``x=1.0,y=-0.5`` with each value's shortest exact float64 repr."""
    return ",".join(f"{n}={float(v)!r}" for n, v in zip(names, row, strict=False))


def point_items(text: str, where: str = "point") -> dict[str, float]:
    """:func:`format_point`'s text as ``{name: value}`` in the text's order; hex floats are
    accepted too, an empty text is the point of a tree without variables. ``where`` names
    the input in errors."""
    values: dict[str, float] = {}
    if not text.strip():
        return values
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{where} {text!r}: expected name=value pairs like x=1,y=0.5")
        if name in values:
            raise ValueError(f"{where} {text!r}: {name} is given twice")
        values[name] = coordinate(value, f"{where} {name}")
    return values


def parse_point(text: str, names: Sequence[str], where: str = "point") -> np.ndarray:
    """:func:`format_point`'s text back to a (1, len(names)) float64 array in ``names``
    order, every variable given once and no other."""
    values = point_items(text, where)
    missing = [n for n in names if n not in values]
    extra = [n for n in values if n not in names]
    if missing or extra:
        raise ValueError(
            f"{where} {text!r}: the expression's variables are {list(names)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; not in the expression: {extra}" if extra else "")
        )
    return np.array([[values[n] for n in names]], dtype=np.float64)


_POINT_TEXTS: Memo[np.ndarray] = Memo(8)


def point_texts(names: Sequence[str], pts: np.ndarray) -> list[str]:
    """:func:`format_point` of every row of ``pts``."""
    return list(point_text_array(names, pts))


def point_text_array(names: Sequence[str], pts: np.ndarray) -> np.ndarray:
    """:func:`point_texts` as a read-only object array, remembered: every engine and scheme
    judged on one case labels its rows with the same points."""
    return _POINT_TEXTS.get((tuple(names), pts.shape, pts.tobytes()), lambda: _texts(names, pts))


def _texts(names: Sequence[str], pts: np.ndarray) -> np.ndarray:
    # format_point's text with one format string per tree: `float!r` is the shortest repr
    template = ",".join(f"{name}={{!r}}" for name in names)
    rows = np.asarray(pts, dtype=np.float64).tolist()  # floats, as format_point writes them
    out = np.array([template.format(*row) for row in rows] if names else [""] * len(rows),
                   dtype=object)
    out.setflags(write=False)
    return out


def repro_command(spec: str, expr_text: str, point: str, dtype: str, order: int) -> str:
    """The one-line shell command that re-checks one entry; every argument shell-quoted.

    ``shlex.split`` of the result gives back exactly the arguments, whatever the text.
    """
    return shlex.join(
        [
            "diffharness",
            "check",
            "--engine",
            spec,
            "--expr",
            expr_text,
            "--at",
            point,
            "--dtype",
            dtype,
            "--order",
            str(order),
        ]
    )

