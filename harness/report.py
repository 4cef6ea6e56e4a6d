"""Reports of a campaign: pivot tables, CSV files, terminal text and one offline HTML page.

The inputs are the campaign's plain data: the long
``results`` table (one row per derivative entry), ``fd_diagnostics`` (one row per case,
dtype, scheme, variable and order), the ``theory`` error curve and the run ``metadata``.
Every function here is pure except :func:`write_report`, which writes the files.

Rows are told apart by ``scheme``: a finite-difference row names its scheme, an AD row
has ``scheme == ""`` (NaN after a CSV round trip reads the same). Statistics skip NaN
errors (a relative error of 0/0 says nothing) and keep infinite ones (they are real).

User text (case ids, expressions, engine names, metadata) is shown escaped everywhere:
``html.escape`` and ``DataFrame.to_html(escape=True)`` in HTML, control characters
spelled out in terminal tables, and plot labels drawn as glyph paths with "$" escaped
so that no label is read as mathtext.
The page has no scripts, and a Content-Security-Policy forbids them in case escaping
ever missed a spot.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.dtypes import DTYPES
from harness.expr import Call, walk
from harness.ops import OPS
from harness.schema import FAILING, VERDICTS, VS_EAGER, repro_command

__all__ = [
    "ERROR_VS_H_COLUMNS",
    "NO_OPS",
    "SCHEMES",
    "UNPARSED",
    "ad_accuracy",
    "error_vs_h",
    "error_vs_h_table",
    "fd_summary",
    "ops_in_expression",
    "render_html",
    "terminal_table",
    "verdict_counts",
    "verdicts_per_op",
    "worst_cases",
    "write_report",
]

SCHEMES: tuple[str, ...] = (
    "forward", "backward", "central", "five-point", "complex-step", "richardson",
)
"""Finite-difference schemes in display order (others follow, sorted by name)."""

UNPARSED = "(unparsed)"
"""Op label for AD rows whose expression text does not parse."""

NO_OPS = "(no ops)"
"""Op label for AD rows whose expression is a bare variable or constant."""

_STATS: tuple[str, ...] = ("median", "p90", "max")

DIFFERS = VS_EAGER[1]

_TEXT_COLUMNS = ("case_id", "expr", "point", "var", "engine", "mode", "dtype", "scheme",
                 "verdict", "source")
_FLOAT_COLUMNS = ("h", "value", "truth", "tolerance", "abs_error", "rel_error", "ulp_error")
_REQUIRED = (*_TEXT_COLUMNS, *_FLOAT_COLUMNS, "order")
_OPTIONAL = ("vs_eager",)  # text; empty in tables written before the column existed

_FD_COLUMNS = ("dtype", "scheme", "order", "best_h", "best_error", "predicted_h",
               "predicted_error", "observed_order", "expected_order", "consistent")

# Characters that would move the cursor, recolour or reorder a terminal's text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


# ---- normalising inputs -----------------------------------------------------------------


def _normalise(results: pd.DataFrame) -> pd.DataFrame:
    """A copy with the columns the report reads, typed: text as str, numbers as float."""
    missing = [c for c in _REQUIRED if c not in results.columns]
    if missing and len(results):
        raise ValueError(
            f"results is missing columns={missing}; expected the campaign's long table "
            "(harness.campaign), one row per derivative entry"
        )
    df = results.reindex(columns=list(dict.fromkeys([*results.columns, *_REQUIRED, *_OPTIONAL])))
    for c in (*_TEXT_COLUMNS, *_OPTIONAL):
        df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    for c in _FLOAT_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["order"] = pd.to_numeric(df["order"]).astype("int64")
    return df


def _fd_only(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["scheme"] != ""]


def _ad_only(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["scheme"] == ""]


def _quantile(values: Any, q: float) -> float:
    """Linear-interpolated quantile (numpy's default) over non-NaN values; inf-safe.

    ``np.quantile`` turns ``inf`` neighbours into NaN (inf - inf) with a warning; here an
    infinite upper neighbour gives inf, as the order statistics say it should.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan
    pos = q * (x.size - 1)
    i = int(math.floor(pos))
    frac = pos - i
    if frac == 0.0 or x[i] == x[i + 1]:
        return float(x[i])
    return float(x[i] + frac * (x[i + 1] - x[i]))


def _median(values: Any) -> float:
    return _quantile(values, 0.5)


def _p90(values: Any) -> float:
    return _quantile(values, 0.9)


def _max(values: Any) -> float:
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.max()) if x.size else math.nan


def _rank(order: Sequence[str]) -> Callable[[str], tuple[int, str]]:
    """Sort key: names in ``order`` first, in that order, then the rest by name."""
    index = {name: i for i, name in enumerate(order)}
    return lambda name: (index.get(name, len(index)), name)


_dtype_key = _rank(tuple(DTYPES))
_scheme_key = _rank(SCHEMES)
_op_key = _rank(tuple(OPS))


def _sorted_by(df: pd.DataFrame, keys: Mapping[str, Callable[[str], Any] | None]) -> pd.DataFrame:
    """Rows sorted by several columns, each through its own key function (or as is)."""
    if df.empty:
        return df.reset_index(drop=True)
    sort_cols = {
        f"_k{i}": df[c].map(fn) if fn else df[c] for i, (c, fn) in enumerate(keys.items())
    }
    keyed = df.assign(**sort_cols).sort_values(list(sort_cols), kind="stable")
    return keyed.drop(columns=list(sort_cols)).reset_index(drop=True)


# ---- tables -----------------------------------------------------------------------------


def error_vs_h(results: pd.DataFrame) -> pd.DataFrame:
    """Relative error of first derivatives by finite differences, against step size h.

    A long table like results.csv, one row per ``dtype``, ``scheme``, ``h`` and
    ``statistic`` (median, p90, max of ``rel_error`` over every FD row of order 1 at that
    h: all cases, points and variables together), h descending. ``rows`` counts those FD
    rows and ``measured`` the ones with an error: where h is below the spacing of the
    numbers at x (x + h == x) no step is taken, the error is NaN and the point drops out,
    so a statistic over ``measured / rows`` well under 1 describes a biased minority.
    Read the medians of one dtype and scheme down h to see the V-curve: truncation error
    falling with h, then rounding error (eps/h) rising.
    """
    df = _normalise(results)
    fd = _fd_only(df)
    fd = fd[(fd["order"] == 1) & fd["h"].notna()]
    groups = {key: g.to_numpy() for key, g in fd.groupby(["scheme", "dtype", "h"])["rel_error"]}
    return error_vs_h_table(groups)


ERROR_VS_H_COLUMNS: tuple[str, ...] = (
    "dtype", "scheme", "h", "rows", "measured", "statistic", "rel_error",
)
"""Columns of :func:`error_vs_h` and of a run's error_vs_h.csv."""


def error_vs_h_table(groups: Mapping[tuple[str, str, float], np.ndarray]) -> pd.DataFrame:
    """:func:`error_vs_h` from the ``rel_error`` values (NaN included) of each
    ``(scheme, dtype, h)``: a campaign gathers them reading results.csv in chunks, never
    holding the whole table."""
    records = []
    for scheme, dtype, h in groups:
        values = np.asarray(groups[(scheme, dtype, h)], dtype=np.float64)
        measured = int(np.count_nonzero(~np.isnan(values)))
        for name, stat in zip(_STATS, (_median, _p90, _max), strict=True):
            records.append((dtype, scheme, float(h), int(values.size), measured, name,
                            stat(values)))
    table = pd.DataFrame(records, columns=list(ERROR_VS_H_COLUMNS))
    table = table.astype({"h": float, "rows": "int64", "measured": "int64", "rel_error": float})
    table = table.assign(_neg_h=-table["h"])
    keys = {"dtype": _dtype_key, "scheme": _scheme_key, "_neg_h": None, "statistic": _rank(_STATS)}
    return _sorted_by(table, keys).drop(columns="_neg_h")


def _verdict_columns(present: Iterable[str]) -> list[str]:
    """Every known verdict in the oracle's order, then any unknown ones present."""
    return [*VERDICTS, *sorted(set(present) - set(VERDICTS))]


def _verdict_counts_by(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = _verdict_columns(rows["verdict"].unique())
    if rows.empty:
        return pd.DataFrame(columns=[*keys, *columns])
    counts = rows.groupby([*keys, "verdict"]).size().unstack("verdict", fill_value=0)
    counts = counts.reindex(columns=columns, fill_value=0).astype("int64").reset_index()
    counts.columns.name = None
    return counts


def ad_accuracy(results: pd.DataFrame) -> pd.DataFrame:
    """How accurate each AD engine is: one row per engine x mode x dtype x order.

    Columns: the four keys, ``rows`` (entries checked), ``failing`` (entries with a
    verdict in ``schema.FAILING``), median / p90 / max of ``ulp_error`` over the rows
    whose truth is nonzero, ``max_error_ratio`` (largest ``abs_error / tolerance``: 1 is
    the edge of the rounding model's budget), ``truth_zero_rows`` and ``max_abs_error_truth_zero`` (one ulp
    of 0 is the smallest subnormal, so there an error is told in absolute terms, never in
    ulps), ``median_rel_error`` (drawn as the engine's horizontal line in the error plot),
    ``differs_from_eager`` (entries whose ``vs_eager`` is ``differs``: a transformed or
    compiled mode moved an eager-``ok`` value by more than its tolerance; 0 for an eager
    mode), and a count per verdict (every verdict of ``schema.VERDICTS``, zeros included).
    """
    ad = _ad_only(_normalise(results))
    keys = ["engine", "mode", "dtype", "order"]
    counts = _verdict_counts_by(ad, keys)
    stats_cols = ["median_ulp_error", "p90_ulp_error", "max_ulp_error", "max_error_ratio",
                  "truth_zero_rows", "max_abs_error_truth_zero", "median_rel_error"]
    if ad.empty:
        return pd.DataFrame(
            columns=[*keys, "rows", "failing", "differs_from_eager", *stats_cols, *counts.columns[4:]]
        )
    zero = ad["truth"] == 0
    with np.errstate(all="ignore"):
        ratio = ad["abs_error"] / ad["tolerance"]
    ad = ad.assign(_ulps=ad["ulp_error"].where(~zero), _zero=zero,
                   _zero_abs=ad["abs_error"].where(zero), _ratio=ratio)
    grouped = ad.groupby(keys)
    stats = pd.DataFrame(
        {
            "rows": grouped.size(),
            "failing": grouped["verdict"].agg(lambda v: int(v.isin(FAILING).sum())),
            "differs_from_eager": grouped["vs_eager"].agg(lambda v: int((v == DIFFERS).sum())),
            "median_ulp_error": grouped["_ulps"].agg(_median),
            "p90_ulp_error": grouped["_ulps"].agg(_p90),
            "max_ulp_error": grouped["_ulps"].agg(_max),
            "max_error_ratio": grouped["_ratio"].agg(_max),
            "truth_zero_rows": grouped["_zero"].sum().astype("int64"),
            "max_abs_error_truth_zero": grouped["_zero_abs"].agg(_max),
            "median_rel_error": grouped["rel_error"].agg(_median),
        }
    ).reset_index()
    table = stats.merge(counts, on=keys, how="left")
    return _sorted_by(table, {"engine": None, "mode": None, "dtype": _dtype_key, "order": None})


def ops_in_expression(text: str) -> tuple[str, ...]:
    """Distinct op names in an expression's text, in op-table order.

    Parsed with :func:`harness.parser.parse` (never evaluated). Text that does not parse
    gives ``(UNPARSED,)`` and a tree without ops ``(NO_OPS,)``, so every row is counted.
    """
    from harness.parser import parse  # the parser pulls in torch; only needed here

    try:
        tree = parse(text)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return (UNPARSED,)
    names = {node.op for node in walk(tree) if isinstance(node, Call)}
    return tuple(sorted(names, key=_op_key)) or (NO_OPS,)


def verdicts_per_op(
    results: pd.DataFrame, ops_of: Callable[[str], Iterable[str]] = ops_in_expression
) -> pd.DataFrame:
    """Verdict counts of AD rows per op: a row counts once for every op its expression has.

    Columns: ``op``, ``rows``, ``failing`` and one count per verdict. Sorted with the most
    failing ops first, then in op-table order. ``ops_of`` maps expression text to op names
    (each distinct text is parsed once).
    """
    ad = _ad_only(_normalise(results))
    ops = {text: tuple(ops_of(text)) for text in ad["expr"].unique()}
    exploded = ad[["expr", "verdict"]].assign(op=ad["expr"].map(ops)).explode("op")
    counts = _verdict_counts_by(exploded, ["op"])
    verdicts = list(counts.columns[1:])
    counts.insert(1, "rows", counts[verdicts].sum(axis=1).astype("int64"))
    failing = [v for v in verdicts if v in FAILING]
    counts.insert(2, "failing", counts[failing].sum(axis=1).astype("int64"))
    if counts.empty:
        return counts
    counts = counts.assign(_neg_failing=-counts["failing"])
    return _sorted_by(counts, {"_neg_failing": None, "op": _op_key}).drop(columns="_neg_failing")


_WORST_COLUMNS = ["case_id", "source", "engine", "mode", "dtype", "order", "var", "point", "expr",
                  "value", "truth", "tolerance", "abs_error", "ulp_error", "rel_error", "verdict"]


def worst_cases(results: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The ``n`` worst AD rows: failing verdicts first, then closest to failing.

    "Closest" is ``error_ratio`` = ``abs_error / tolerance`` (1 is the edge of the rounding
    model's budget), largest first, then ``ulp_error``; ulps alone mislead where the truth
    is 0 (one ulp of 0 is the smallest subnormal). Rows with neither a failing verdict nor
    an error are left out. The ``repro`` column holds the command that re-checks the case.
    """
    if n < 0:
        raise ValueError(f"n={n} must be >= 0: the number of rows to keep")
    ad = _ad_only(_normalise(results))
    failing = ad["verdict"].isin(FAILING)
    with np.errstate(all="ignore"):
        ratio = ad["abs_error"].astype(float) / ad["tolerance"].astype(float)
    keep = ad.assign(_failing=failing, error_ratio=ratio)[failing | ad["ulp_error"].notna()]
    keep = keep.sort_values(
        ["_failing", "error_ratio", "ulp_error"], ascending=[False, False, False],
        na_position="last", kind="stable",
    ).head(n)
    out = keep[[*_WORST_COLUMNS, "error_ratio"]].reset_index(drop=True)
    out["repro"] = [
        repro_command(e, x, p, d, o)
        for e, x, p, d, o in zip(
            out["engine"], out["expr"], out["point"], out["dtype"], out["order"], strict=True
        )
    ]
    return out


_FD_SUMMARY_STATS = {
    "median_best_h": "best_h",
    "median_best_error": "best_error",
    "median_predicted_h": "predicted_h",
    "median_predicted_error": "predicted_error",
    "median_observed_order": "observed_order",
    "expected_order": "expected_order",
}


def _as_bool(values: pd.Series) -> pd.Series:
    """Booleans from bools or from their text after a CSV round trip ("True"/"False")."""
    if values.dtype == bool:
        return values
    return values.map(lambda v: str(v).strip().lower() in {"true", "1", "yes"})


def fd_summary(fd_diagnostics: pd.DataFrame) -> pd.DataFrame:
    """The FD diagnostics condensed: one row per dtype x scheme x order over all cases.

    Columns: ``rows``, medians of best/predicted h and error and of the observed order,
    ``expected_order`` (median) and ``consistent_fraction`` (share of rows whose observed
    behaviour matched theory).
    """
    missing = [c for c in _FD_COLUMNS if c not in fd_diagnostics.columns]
    keys = ["dtype", "scheme", "order"]
    columns = [*keys, "rows", *_FD_SUMMARY_STATS, "consistent_fraction"]
    if fd_diagnostics.empty:
        return pd.DataFrame(columns=columns)
    if missing:
        raise ValueError(
            f"fd_diagnostics is missing columns={missing}; expected one row per "
            f"(case_id, dtype, scheme, var, order) with columns {list(_FD_COLUMNS)}"
        )
    df = fd_diagnostics.assign(consistent=_as_bool(fd_diagnostics["consistent"]))
    grouped = df.groupby(keys)
    parts: dict[str, pd.Series] = {"rows": grouped.size()}
    for name, column in _FD_SUMMARY_STATS.items():
        parts[name] = grouped[column].agg(_median)
    parts["consistent_fraction"] = grouped["consistent"].mean()
    table = pd.DataFrame(parts).reset_index()
    return _sorted_by(table[columns], {"dtype": _dtype_key, "scheme": _scheme_key, "order": None})


def verdict_counts(results: pd.DataFrame) -> pd.Series:
    """Count of AD rows per verdict: every known verdict (zeros too), then unknown ones."""
    ad = _ad_only(_normalise(results))
    counts = ad["verdict"].value_counts()
    columns = _verdict_columns(counts.index)
    return counts.reindex(columns, fill_value=0).astype("int64").rename("rows")


# ---- terminal ---------------------------------------------------------------------------


def _printable_text(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return value


def _printable(df: pd.DataFrame) -> pd.DataFrame:
    """Copy with control characters in text cells and labels spelled as ``\\uXXXX``."""
    out = df.copy()
    for position in range(out.shape[1]):
        if _is_text(out.iloc[:, position]):
            out.isetitem(position, out.iloc[:, position].map(_printable_text))
    out.columns = out.columns.map(
        lambda c: tuple(map(_printable_text, c)) if isinstance(c, tuple) else _printable_text(c)
    )
    if _is_text(out.index):
        out.index = out.index.map(_printable_text)
    return out


def _is_text(values: pd.Series | pd.Index) -> bool:
    # pandas >= 3 stores text as a "str" dtype, older versions as object.
    return pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(
        values.dtype
    )


def terminal_table(
    df: pd.DataFrame, max_rows: int = 40, digits: int = 4, max_colwidth: int | None = 60
) -> str:
    """Fixed-width text of ``df`` for a terminal: floats to ``digits`` significant digits,
    NaN as ``-``, at most ``max_rows`` rows (a last line says how many were left out),
    text cut to ``max_colwidth`` characters (None: never, e.g. for repro commands to
    copy), control characters in user text spelled out as ``\\uXXXX``."""
    if max_rows < 1:
        raise ValueError(f"max_rows={max_rows} must be >= 1")
    if df.empty:
        return "(no rows)"
    shown = _printable(df.head(max_rows))
    if shown.index.dtype.kind == "f":
        shown.index = shown.index.map(lambda v: f"{v:.{digits}g}")
    text = shown.to_string(
        float_format=lambda v: f"{v:.{digits}g}", na_rep="-", max_colwidth=max_colwidth,
        index=not isinstance(df.index, pd.RangeIndex),
    )
    if len(df) > max_rows:
        text += f"\n... {len(df) - max_rows} more rows ({len(df)} in all)"
    return text


# ---- plot -------------------------------------------------------------------------------

_SVG_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _label(text: str) -> str:
    """Plot label for user text: "$" escaped so it is never mathtext, and a space before a
    leading "_", which a legend would otherwise drop."""
    text = str(_printable_text(text)).replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


def _ad_label(engine: str, mode: str) -> str:
    return engine if not mode or engine.endswith(mode) else f"{engine} [{mode}]"


def _positive_finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values) & (values > 0)]


def _plot_image(
    results: pd.DataFrame,
    theory: pd.DataFrame,
    table: pd.DataFrame | None = None,
    dtypes: Sequence[str] | None = None,
    image_format: str = "svg",
) -> bytes | None:
    """The image (``image_format``: svg, png...) of median relative error against h, one
    panel per dtype; None if there is nothing to plot.

    Per panel: one solid line per FD scheme through the medians taken over at least half
    of the points (hollow markers: medians over a minority, where x + h == x dropped the
    rest), its theory curve dashed in the same colour, and each AD engine/mode's median
    relative error (order 1) as a dotted horizontal line. The y axis fits the measured
    data; theory beyond it is clipped. Zeros cannot sit on a log axis: they are drawn at
    a floor below every other value, and the panel says so. ``dtypes``: the panels to
    draw (the run's requested dtypes); None draws every dtype with an h axis.
    """
    missing = [c for c in ("dtype", "scheme", "h", "rel_error") if c not in theory.columns]
    if missing and len(theory):
        raise ValueError(
            f"theory is missing columns={missing}; expected dtype, scheme, h, rel_error "
            "(the predicted median relative error at each h)"
        )
    table = error_vs_h(results) if table is None else table
    accuracy = ad_accuracy(results)
    accuracy = accuracy[accuracy["order"] == 1] if len(accuracy) else accuracy
    theory = theory if len(theory) else pd.DataFrame(columns=["dtype", "scheme", "h", "rel_error"])
    # Panels exist where h does: AD lines alone have no h axis to be drawn against.
    with_h = set(table["dtype"]) | set(theory["dtype"])
    panels = sorted(with_h if dtypes is None else with_h & set(dtypes), key=_dtype_key)
    if not panels:
        return None
    import matplotlib
    from matplotlib.figure import Figure

    schemes = sorted(set(table["scheme"]) | set(theory["scheme"]), key=_scheme_key)
    palette = matplotlib.color_sequences["tab10"]
    # Known schemes keep their colour from run to run; others take the palette's rest.
    colour = {s: palette[_scheme_key(s)[0] if s in SCHEMES else (len(SCHEMES) + i) % 10]
              for i, s in enumerate(schemes)}
    engines = sorted(set(zip(accuracy["engine"], accuracy["mode"], strict=True)))
    ad_colour = {key: palette[6 + i % 4] for i, key in enumerate(engines)}

    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    style = matplotlib.rc_context(
        {"svg.fonttype": "path", "svg.hashsalt": "diffharness", "font.size": 9,
         "axes.titlesize": 11}
    )
    with style, warnings.catch_warnings():
        # Exotic characters in user labels lack glyphs: drawn as boxes, not worth a warning.
        warnings.filterwarnings("ignore", message=r"Glyph \d+", category=UserWarning)
        fig = Figure(figsize=(6.4 * ncols, 4.4 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        for ax, dtype in zip(axes[: len(panels)], panels, strict=True):
            _draw_panel(ax, dtype, table, theory, accuracy, schemes, colour, ad_colour)
        buffer = io.BytesIO()
        fig.savefig(buffer, format=image_format, metadata={"Date": None} if image_format == "svg"
                    else {}, dpi=110)
    return buffer.getvalue()


def _plot_svg(
    results: pd.DataFrame,
    theory: pd.DataFrame,
    table: pd.DataFrame | None = None,
    dtypes: Sequence[str] | None = None,
) -> str | None:
    """:func:`_plot_image` as inline SVG text; None if there is nothing to plot."""
    image = _plot_image(results, theory, table, dtypes)
    if image is None:
        return None
    svg = image.decode("utf-8")
    return _SVG_COMMENT.sub("", svg[svg.index("<svg"):])


MAJORITY = 0.5
"""Share of a (dtype, scheme, h)'s points a median must be taken over to be drawn as
measured: below it, x + h == x dropped most points and the rest are a biased minority."""


def _medians(table: pd.DataFrame, dtype: str, scheme: str) -> pd.DataFrame:
    """h, median and the share of points behind it, for one dtype and scheme."""
    rows = table[(table["dtype"] == dtype) & (table["scheme"] == scheme)
                 & (table["statistic"] == "median")]
    rows = rows[rows["rel_error"].notna()].sort_values("h")
    share = rows["measured"] / rows["rows"].where(rows["rows"] > 0)
    return pd.DataFrame({"h": rows["h"].to_numpy(float), "median": rows["rel_error"].to_numpy(float),
                         "share": share.to_numpy(float)})


def _draw_panel(
    ax: Any,
    dtype: str,
    table: pd.DataFrame,
    theory: pd.DataFrame,
    accuracy: pd.DataFrame,
    schemes: list[str],
    colour: Mapping[str, Any],
    ad_colour: Mapping[tuple[str, str], Any],
) -> None:
    measured = [(s, _medians(table, dtype, s)) for s in schemes]
    measured = [(s, m) for s, m in measured if len(m)]
    predicted: list[tuple[str, np.ndarray, np.ndarray]] = []
    for scheme, curve in theory[theory["dtype"] == dtype].groupby("scheme"):
        curve = curve.sort_values("h")
        predicted.append(
            (str(scheme), curve["h"].to_numpy(float), curve["rel_error"].to_numpy(float))
        )
    ad = accuracy[accuracy["dtype"] == dtype]
    levels = [
        ((e, m), float(v))
        for e, m, v in zip(ad["engine"], ad["mode"], ad["median_rel_error"], strict=True)
        if not math.isnan(v)
    ]

    # The axes fit what was measured; theory beyond it is clipped.
    values = np.concatenate([np.array([v for _, v in levels], dtype=float)]
                            + [m["median"].to_numpy(float) for _, m in measured])
    if not values.size:
        values = np.concatenate([np.array([], dtype=float)] + [y for _, _, y in predicted])
    positive = _positive_finite(values)
    floor = 10.0 ** math.floor(math.log10(positive.min()) - 1) if positive.size else 1e-20
    has_zero = bool(np.any(values == 0))

    def lift(y: np.ndarray) -> np.ndarray:
        y = np.where(np.isinf(y), np.nan, y)
        return np.where(y == 0, floor, y)

    minority = False
    for scheme, m in measured:
        major = (m["share"] >= MAJORITY).to_numpy()
        h, y = m["h"].to_numpy(), lift(m["median"].to_numpy())
        ax.plot(h[major], y[major], "-o", color=colour[scheme], markersize=3, linewidth=1.5,
                label=_label(scheme))
        if not major.all():
            minority = True
            ax.plot(h[~major], y[~major], "o", markerfacecolor="none", markersize=5,
                    color=colour[scheme], linewidth=0)
    for scheme, h, y in predicted:
        ax.plot(h, lift(y), "--", color=colour.get(scheme, "black"), linewidth=1, alpha=0.8)
    for key, level in levels:
        ax.axhline(lift(np.array([level]))[0], linestyle=":", linewidth=1.8,
                   color=ad_colour[key], label=_label(f"AD {_ad_label(*key)}"))
    if predicted:
        ax.plot([], [], "--", color="black", linewidth=1, label="theory (dashed)")
    if minority:
        ax.plot([], [], "o", markerfacecolor="none", color="black", markersize=5,
                label="median of < half the points\n(x + h == x at the rest)")
    if not (measured or predicted or levels):
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
    ax.set_xscale("log")
    ax.set_yscale("log")
    shown = _positive_finite(lift(values))
    if shown.size:
        ax.set_ylim(shown.min() / 4, shown.max() * 4)
    note = f" (error 0 drawn at {floor:.0e})" if has_zero else ""
    ax.set_title(_label(dtype) + note)
    ax.set_xlabel("step size h")
    ax.set_ylabel("median relative error")
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best", framealpha=0.85)


# ---- HTML -------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em;
       color: #1b1b1b; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.summary { padding: 0.8em 1em; border-radius: 6px; font-size: 1.1em; margin: 1em 0; }
.pass { background: #e6f4ea; border: 1px solid #34a853; }
.fail { background: #fce8e6; border: 2px solid #d93025; color: #a50e0e; }
.empty { background: #f1f3f4; border: 1px solid #9aa0a6; }
.scroll { overflow-x: auto; }
h1 .note { font-size: 0.45em; font-weight: normal; margin-left: 1em; }
table.dataframe { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
table.dataframe th, table.dataframe td { border: 1px solid #ddd; padding: 3px 7px;
       font-family: ui-monospace, "DejaVu Sans Mono", monospace; vertical-align: top;
       white-space: nowrap; }
table.dataframe th { white-space: normal; }
table.dataframe td.text { white-space: normal; overflow-wrap: break-word; max-width: 36em; }
table.dataframe th { background: #f1f3f4; text-align: left; }
table.dataframe tbody tr:nth-child(even) { background: #fafafa; }
table.worst tr.bad td { color: #a50e0e; font-weight: 600; }
table.worst tr.repro td { border-top: none; padding-left: 2em; color: #3c4043; }
table.worst tbody tr:nth-child(4n+3), table.worst tbody tr:nth-child(4n+4) { background: #fafafa; }
table.worst tbody tr:nth-child(4n+1), table.worst tbody tr:nth-child(4n+2) { background: #fff; }
.plot svg { max-width: 100%; height: auto; }
.nodata { color: #5f6368; font-style: italic; padding: 1em; border: 1px dashed #9aa0a6; }
.note { color: #5f6368; font-size: 0.85em; }
table.worst td.text { max-width: 12em; overflow-wrap: anywhere; }
table.worst td.num { white-space: normal; overflow-wrap: anywhere; max-width: 10em; }
table.worst tr.repro td.text { max-width: none; }
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(df: pd.DataFrame, *, index: bool = False, max_rows: int = 200,
                csv_name: str | None = None, css_class: str | None = None) -> str:
    if df.empty:
        return '<p class="nodata">no data</p>'
    # Display headers may wrap at spaces; the CSV files keep the underscored names.
    shown = df.head(max_rows).rename(
        columns=lambda c: c.replace("_", " ") if isinstance(c, str) else c
    )
    if shown.index.dtype.kind == "f":
        shown.index = shown.index.map(lambda v: f"{v:.3g}")
    table = shown.to_html(
        escape=True, index=index, na_rep="–", border=0, classes=css_class,
        float_format=lambda v: f"{v:.3g}",
    )
    note = ""
    if len(df) > max_rows:
        where = f"; all of them are in {_e(csv_name)}" if csv_name else ""
        note = f'<p class="note">first {max_rows} of {len(df)} rows shown{where}</p>'
    return f'<div class="scroll">{table}</div>{note}'


def _cell(value: Any, exact: bool = False) -> str:
    """Escaped cell text: floats to 3 significant digits (``exact``: shortest repr that
    reads back the same float, so a value and its truth can be told apart), NaN as -."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        return repr(float(value)) if exact else f"{float(value):.3g}"
    return _e(value)


_WORST_SHOWN = ("case_id", "engine", "dtype", "order", "var", "point", "expr", "value",
                "truth", "error", "error_ratio", "verdict")
_WORST_TEXT = frozenset({"case_id", "point", "expr"})  # user text: may wrap
_WORST_HEAD = {"error_ratio": "error / tolerance", "case_id": "case"}


def _error_text(record: Mapping[str, Any]) -> str:
    """A row's error as a reader can trust it: ulps where the truth is nonzero, absolute
    error where it is 0 (one ulp of 0 is the smallest subnormal, so any miss is ~1e300
    ulps)."""
    truth, ulps, absolute = (float(record[k]) for k in ("truth", "ulp_error", "abs_error"))
    if truth != 0 and not math.isnan(ulps):
        return f"{ulps:.3g} ulp"
    if not math.isnan(absolute):
        return f"{absolute:.3g} abs"
    return "–"


def _worst_html(worst: pd.DataFrame) -> str:
    """Worst cases as a table whose every case row is followed by its repro command."""
    if worst.empty:
        return '<p class="nodata">no data</p>'
    head = "".join(
        f"<th>{_e(_WORST_HEAD.get(c, c.replace('_', ' ')))}</th>" for c in _WORST_SHOWN
    )
    rows = []
    for record in worst.to_dict("records"):
        bad = ' class="bad"' if record["verdict"] in FAILING else ""
        record["error"] = _error_text(record)
        cells = "".join(
            ('<td class="text">' if c in _WORST_TEXT
             else '<td class="num">' if c in ("value", "truth") else "<td>")
            + f"{_cell(record[c], exact=c in ('value', 'truth'))}</td>"
            for c in _WORST_SHOWN
        )
        rows.append(
            f"<tr{bad}>{cells}</tr><tr class=\"repro\">"
            f"<td class=\"text\" colspan=\"{len(_WORST_SHOWN)}\">"
            f"<code>{_e(record['repro'])}</code></td></tr>"
        )
    return (f'<div class="scroll"><table class="dataframe worst"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _summary_html(results: pd.DataFrame) -> str:
    counts = verdict_counts(results)
    total = int(counts.sum())
    if total == 0:
        return '<div class="summary empty">No AD rows: nothing was judged.</div>'
    failing = int(counts[counts.index.isin(FAILING)].sum())
    parts = " &middot; ".join(
        f"{_e(v)}: <b>{int(c)}</b>" for v, c in counts.items() if c or v in ("ok", *FAILING)
    )
    ad = _ad_only(_normalise(results))
    failing_cases = ad.loc[ad["verdict"].isin(FAILING), "case_id"].nunique()
    if failing:
        head = (f"<b>{failing} failing</b> of {total} AD rows "
                f"(in {failing_cases} case{'s' if failing_cases != 1 else ''})")
        return f'<div class="summary fail">{head}<br>{parts}</div>'
    return f'<div class="summary pass">All {total} AD rows pass.<br>{parts}</div>'


def _metadata_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(map(str, value)) or "–"
    return json.dumps(value, default=str, sort_keys=True)


def _metadata_html(metadata: Mapping[str, Any]) -> str:
    """One row per metadata key; a mapping (config, versions) one row per entry."""
    if not metadata:
        return '<p class="nodata">no metadata</p>'
    rows = []
    for key, value in metadata.items():
        entries = value.items() if isinstance(value, Mapping) and value else [("", value)]
        for sub, item in entries:
            name = f"{key}.{sub}" if sub != "" else str(key)
            rows.append(f'<tr><th>{_e(name)}</th><td class="text">{_e(_metadata_value(item))}'
                        "</td></tr>")
    return f'<div class="scroll"><table class="dataframe">{"".join(rows)}</table></div>'


def _requested_dtypes(metadata: Mapping[str, Any]) -> list[str] | None:
    """The dtypes the run asked for (its config's ``dtypes``), None when not recorded."""
    config = metadata.get("config")
    dtypes = config.get("dtypes") if isinstance(config, Mapping) else None
    if isinstance(dtypes, (list, tuple)) and all(isinstance(d, str) for d in dtypes):
        return list(dtypes)
    return None


def _plot_html(results: pd.DataFrame, theory: pd.DataFrame, table: pd.DataFrame,
               requested: Sequence[str] | None) -> str:
    try:
        svg = _plot_svg(results, theory, table, requested)
    except ImportError:
        return ('<p class="nodata">no plot: matplotlib is not installed '
                "(pip install 'diffharness[report]')</p>")
    if svg is None:
        return ('<p class="nodata">no data: no finite-difference rows or theory curves '
                "to plot against h</p>")
    return f'<div class="plot">{svg}</div>'


def _corpus_only(dtypes: Iterable[str], requested: Sequence[str] | None) -> list[str]:
    """Dtypes with rows that the run did not ask for: they come from corpus cases."""
    if requested is None:
        return []
    return sorted(set(dtypes) - set(requested), key=_dtype_key)


def _dtype_heading(dtype: str, corpus_only: Sequence[str]) -> str:
    extra = " (corpus cases only: the run did not ask for it)" if dtype in corpus_only else ""
    return f"<h3>{_e(dtype)}{_e(extra)}</h3>"


def _error_vs_h_html(table: pd.DataFrame, requested: Sequence[str] | None) -> str:
    """Per dtype: h down, per scheme the median and p90 of the relative error and the
    share of points measured; statistics over fewer than half the points in brackets."""
    dtypes = sorted(set(table["dtype"]), key=_dtype_key)
    if not dtypes:
        return '<p class="nodata">no data</p>'
    corpus_only = _corpus_only(dtypes, requested)
    parts = []
    for dtype in dtypes:
        rows = table[(table["dtype"] == dtype) & (table["statistic"] != "max")]
        wide = rows.pivot_table(index="h", columns=["scheme", "statistic"], values="rel_error",
                                aggfunc="first", dropna=False)
        share = rows.groupby(["h", "scheme"])[["measured", "rows"]].first()
        share = (share["measured"] / share["rows"]).unstack("scheme")
        schemes = sorted(set(rows["scheme"]), key=_scheme_key)
        cells: dict[tuple[str, str], list[str]] = {}
        hs = sorted(wide.index, reverse=True)
        for scheme in schemes:
            for stat in ("median", "p90"):
                cells[(scheme, stat)] = [
                    _bracketed(wide.loc[h, (scheme, stat)], share.loc[h, scheme]) for h in hs
                ]
            cells[(scheme, "measured")] = [_percent(share.loc[h, scheme]) for h in hs]
        shown = pd.DataFrame(cells, index=pd.Index([f"{h:.3g}" for h in hs], name="h"))
        shown.columns = pd.MultiIndex.from_tuples(list(cells), names=["scheme", ""])
        body = shown.to_html(escape=True, border=0, classes="evh")
        parts.append(f'{_dtype_heading(dtype, corpus_only)}<div class="scroll">{body}</div>')
    return "".join(parts)


def _bracketed(value: float, share: float) -> str:
    if math.isnan(value):
        return "–"
    text = f"{value:.3g}"
    return f"({text})" if not share >= MAJORITY else text


def _percent(share: float) -> str:
    return "–" if math.isnan(share) else f"{100 * share:.0f}%"


def _ad_accuracy_html(results: pd.DataFrame, requested: Sequence[str] | None) -> str:
    """AD accuracy for reading: engine and mode in one column, corpus-only dtypes labelled,
    the max ulp error (huge on rows that pass, where the truth is tiny next to the terms
    it is computed from) left to the CSV in favour of the max error / tolerance."""
    table = ad_accuracy(results)
    if table.empty:
        return _html_table(table)
    corpus_only = _corpus_only(table["dtype"], requested)
    table = table.assign(
        engine=[_ad_label(e, m) for e, m in zip(table["engine"], table["mode"], strict=True)],
        dtype=[f"{d} (corpus only)" if d in corpus_only else d for d in table["dtype"]],
    )
    zero_counts = [v for v in VERDICTS if v in table.columns and not table[v].any()]
    shown = table.drop(columns=["mode", "max_ulp_error", "median_rel_error", *zero_counts])
    return _html_table(shown.rename(columns={"max_error_ratio": "max error / tolerance"}),
                       csv_name="ad_accuracy.csv")


_LEGENDS = {
    "worst": "Failing rows first, then the largest error / tolerance (1 is the edge of the "
             "rounding model's budget). Error: in ulps where the truth is nonzero, absolute "
             "where the truth is 0. The command under each row re-checks its case.",
    "accuracy": "Per engine, dtype and derivative order. ulp errors over the rows whose truth "
                "is nonzero (where a derivative is tiny next to the terms it is computed from, "
                "a row within budget can be 1e15 ulps off: judge by error / tolerance, where 1 "
                "is the edge of the rounding model's budget); rows with truth 0 are counted "
                "apart with their largest absolute error. differs_from_eager: entries where a "
                "transformed or compiled mode (torch.compile, torch.func, jit) moved a value "
                "that its eager mode gets right by more than the tolerance. Verdicts that are "
                "0 everywhere and the max ulp error are left out here (ad_accuracy.csv has them).",
    "ops": "AD rows, counted once for every op their expression contains; failing = "
           + ", ".join(sorted(FAILING)) + ".",
    "fd": "Medians over cases of the best h and its relative error, measured and predicted, "
          "and of the observed order of convergence; consistent fraction: share of cases "
          "whose behaviour matched theory. Per-case rows are in fd_diagnostics.csv.",
    "evh": "First derivatives; relative error over all cases, points and variables at each "
           "h. measured: share of the points with an error (where x + h == x, or a step "
           "leaves the domain, there is none). Statistics over fewer than half of the points "
           "are in brackets. The max (in error_vs_h.csv) is infinite wherever a truth is 0.",
}


def render_html(
    results: pd.DataFrame,
    fd_diagnostics: pd.DataFrame,
    theory: pd.DataFrame,
    metadata: Mapping[str, Any],
    *,
    worst: int = 20,
    error_table: pd.DataFrame | None = None,
) -> str:
    """The whole report as one self-contained HTML page (no scripts, fonts or links out).

    Top to bottom: title, verdict banner (red when any verdict fails), the error-against-h
    plot (panels for the dtypes the run asked for, from ``metadata["config"]["dtypes"]``),
    then the worst cases, AD accuracy, verdicts per op, FD diagnostics summary and
    error-against-h tables, each with a one-line legend, and the run metadata last.
    Dtypes with rows the run did not ask for (from corpus cases) are labelled so.
    Every piece of text is escaped. ``error_table`` (:func:`error_vs_h` computed
    elsewhere) lets ``results`` hold the judged rows only, without the finite-difference
    rows.
    """
    error_table = error_vs_h(results) if error_table is None else error_table
    requested = _requested_dtypes(metadata)
    tables = [
        ("Worst AD cases", _LEGENDS["worst"], _worst_html(worst_cases(results, worst))),
        ("AD accuracy", _LEGENDS["accuracy"], _ad_accuracy_html(results, requested)),
        ("Verdicts per op", _LEGENDS["ops"],
         _html_table(verdicts_per_op(results), csv_name="verdicts_per_op.csv")),
        ("Finite differences: best h and observed order", _LEGENDS["fd"],
         _html_table(fd_summary(fd_diagnostics))),
        ("Finite differences: relative error against h", _LEGENDS["evh"],
         _error_vs_h_html(error_table, requested)),
    ]
    sections = "".join(
        f"<h2>{_e(title)}</h2><p class=\"note\">{_e(note)}</p>{body}"
        for title, note, body in tables
    )
    with_h = set(error_table["dtype"]) | (set(theory["dtype"]) if "dtype" in theory else set())
    left_out = _corpus_only(with_h, requested)
    unplotted = (f"; {', '.join(left_out)}: corpus cases only (the run asked for "
                 f"{', '.join(requested or [])}), not plotted, in the tables below"
                 if left_out else "")
    when = " &rarr; ".join(_e(metadata[k]) for k in ("started", "finished") if k in metadata)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>diffharness report</title><style>{_CSS}</style></head><body>"
        f"<h1>diffharness report <span class=\"note\">{when}</span></h1>"
        f"{_summary_html(results)}"
        "<h2>Relative error against step size h</h2>"
        '<p class="note">solid: median measured error of each finite-difference scheme '
        "(hollow: a median over fewer than half the points, where x + h == x dropped the "
        "rest); dashed: what theory predicts (clipped to the measured range); dotted: "
        f"median error of each AD engine{_e(unplotted)}</p>"
        f"{_plot_html(results, theory, error_table, requested)}{sections}"
        f"<h2>Run</h2>{_metadata_html(metadata)}</body></html>\n"
    )


# ---- files ------------------------------------------------------------------------------


def write_report(
    run_dir: str | Path,
    results: pd.DataFrame,
    fd_diagnostics: pd.DataFrame,
    theory: pd.DataFrame,
    metadata: Mapping[str, Any],
    *,
    error_table: pd.DataFrame | None = None,
) -> Path:
    """Write the report files of one run into ``run_dir`` and return the HTML page's path.

    Files: error_vs_h.csv (long: one row per dtype, scheme, h and statistic, columns
    ``ERROR_VS_H_COLUMNS``), ad_accuracy.csv, verdicts_per_op.csv, worst_cases.csv,
    metadata.json and report.html. results.csv and fd_diagnostics.csv are the campaign's
    to write (once, with their digests), not this function's.
    ``error_table`` is :func:`error_vs_h` of the finite-difference rows when ``results``
    holds only the judged rows (see :func:`render_html`).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    error_table = error_vs_h(results) if error_table is None else error_table
    error_table.to_csv(run_dir / "error_vs_h.csv", index=False)
    ad_accuracy(results).to_csv(run_dir / "ad_accuracy.csv", index=False)
    verdicts_per_op(results).to_csv(run_dir / "verdicts_per_op.csv", index=False)
    worst_cases(results).to_csv(run_dir / "worst_cases.csv", index=False)
    (run_dir / "metadata.json").write_text(
        json.dumps(dict(metadata), indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
    page = run_dir / "report.html"
    page.write_text(
        render_html(results, fd_diagnostics, theory, metadata, error_table=error_table), encoding="utf-8"
    )
    return page
