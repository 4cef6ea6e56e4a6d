"""``diffharness accuracy``: each unary op alone at every input of a dtype, in every mode.

glibc publishes the worst ulp error of its math functions; nobody publishes one for
derivative rules. This sweeps each unary op of the table, alone (``op(x)``), through an
engine's derivative at orders 1 and 2:

* float16 and bfloat16: every finite input (65,536 bit patterns each);
* float32 and float64: a dense sweep, ``points`` magnitudes spaced evenly in log2 from
  the smallest subnormal to the largest finite number, both signs, and 0;

plus every edge of the op (:mod:`harness.edges`), each kept only where the op is defined.
Every entry is judged as :func:`harness.check.compare` judges it (certified truth,
rounding-model tolerance), in batches, so the interval filter settles most points at once.

The table has one row per op, dtype, engine mode and order: the points swept, the largest
and median error in ulps of the correctly rounded truth (only where the truth is finite and
nonzero; ``max_abs_error`` covers a truth of 0), where the largest occurs, and the count of
each verdict. :func:`write_accuracy` writes it as ``accuracy.csv`` and as ``accuracy.html``
with a plot of ulp error against x per op.
"""

from __future__ import annotations

import argparse
import html
import io
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.dtypes import DTYPES, dtype_info, round_array
from harness.edges import op_edges
from harness.engines.base import Engine, EngineError
from harness.expr import Call, Var
from harness.ops import OPS
from harness.oracle import op_tree
from harness.schema import FAILING, JUDGED

__all__ = [
    "DENSE_POINTS", "Digest", "Sweep", "digest", "inputs", "main", "run_accuracy", "summarise", "sweep",
    "sweeps", "write_accuracy",
]

DENSE_POINTS = 2**20
"""Points of the dense sweep of float32 and float64 (half of them on each side of 0)."""

_BATCH = 1 << 14
_EXHAUSTIVE = ("float16", "bfloat16")


def _every_half(dtype: str) -> np.ndarray:
    bits = np.arange(2**16, dtype=np.uint32)
    halves = bits.astype(np.uint16).view(np.float16) if dtype == "float16" else (bits << 16).view(np.float32)
    halves = halves[np.isfinite(halves)]  # bfloat16: the top half of a float32
    return halves.astype(np.float64)


def _dense(dtype: str, n: int) -> np.ndarray:
    info = dtype_info(dtype)
    logs = np.linspace(math.log2(info.smallest_subnormal), math.log2(info.max), max(1, n // 2))
    with np.errstate(over="ignore"):
        magnitudes = round_array(np.exp2(logs), dtype)
    magnitudes = magnitudes[np.isfinite(magnitudes)]
    return np.concatenate([-magnitudes[::-1], [0.0], magnitudes])


def inputs(op: str, dtype: str, n_dense: int = DENSE_POINTS) -> np.ndarray:
    """Sorted, distinct inputs of the sweep of ``op`` in ``dtype`` where ``op(x)`` is
    defined and finite (in float64 and in ``dtype``)."""
    from harness.strategies import valid_points

    base = _every_half(dtype) if dtype in _EXHAUSTIVE else _dense(dtype, n_dense)
    xs = np.unique(np.concatenate([base, op_edges(op, dtype)]) + 0.0)
    tree = Call(op, (Var("x"),))
    keep = valid_points(tree, xs[:, None], dtype, margin=0.0, kinks="include", max_magnitude=math.inf)
    return xs[keep]


@dataclass(frozen=True)
class Sweep:
    """One op, dtype, engine mode and order: each input's value, truth, ulp error and verdict."""

    op: str
    dtype: str
    engine: str
    mode: str
    order: int
    x: np.ndarray
    value: np.ndarray
    truth: np.ndarray
    abs_error: np.ndarray
    ulp_error: np.ndarray
    verdict: np.ndarray


def sweep(engine: Engine, op: str, dtype: str, order: int, n_dense: int = DENSE_POINTS) -> Sweep:
    """``op(x)`` through ``engine`` at every input of :func:`inputs`, judged in batches.
    Raises :class:`EngineError` when the engine does not support the op, dtype or order."""
    outcome = sweeps(engine, op, dtype, (order,), n_dense)[order]
    if isinstance(outcome, str):
        raise EngineError(outcome)
    return outcome


def sweeps(
    engine: Engine, op: str, dtype: str, orders: Sequence[int], n_dense: int = DENSE_POINTS
) -> dict[int, Sweep | str]:
    """:func:`sweep` at each of ``orders``, batch by batch with the orders inside: the
    rounding model of order 2 needs the op's certified first partials, which are the
    truth of order 1 at the same points, so each batch's truth is computed once (the truth
    engine remembers its last few answers). Per order the sweep, or why the engine
    skipped it."""
    from harness.check import compare

    tree = op_tree(op, 1)
    xs = inputs(op, dtype, n_dense)
    parts: dict[int, list[pd.DataFrame]] = {o: [] for o in orders}
    skipped: dict[int, str] = {}
    # one point first: an unsupported op, dtype or order is known before any truth is built
    batches = [(0, 1), *((a, a + _BATCH) for a in range(1, len(xs), _BATCH))] if len(xs) else []
    for start, stop in batches:
        for order in orders:
            if order in skipped:
                continue
            rows = compare(engine, tree, xs[start:stop, None], dtype=dtype, order=order)
            if len(rows) and (rows["verdict"] == "skipped").all():
                skipped[order] = str(rows.attrs.get("message", f"{engine.name} skipped {op} in {dtype}"))
            else:
                parts[order].append(rows)
    out: dict[int, Sweep | str] = {}
    for order in orders:
        if order in skipped:
            out[order] = skipped[order]
            continue
        rows = pd.concat(parts[order], ignore_index=True) if parts[order] else pd.DataFrame()
        mode = str(rows["mode"].iloc[0]) if len(rows) else ""
        out[order] = Sweep(op, dtype, engine.name, mode, order, xs, _column(rows, "value"),
                           _column(rows, "truth"), _column(rows, "abs_error"), _column(rows, "ulp_error"),
                           rows["verdict"].to_numpy(dtype=object) if len(rows) else np.zeros(0, dtype=object))
    return out


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    return np.asarray(rows[name].to_numpy(), dtype=np.float64) if len(rows) else np.zeros(0)


def summarise(sweeps: Sequence[Sweep]) -> pd.DataFrame:
    """One row per sweep: points, ulp errors (max, median, where the max is), the largest
    absolute error where the truth is 0, and the count of each verdict."""
    records = []
    for s in sweeps:
        nonzero = np.isfinite(s.truth) & (s.truth != 0) & np.isfinite(s.ulp_error)
        record: dict[str, object] = {
            "op": s.op, "dtype": s.dtype, "engine": s.engine, "mode": s.mode, "order": s.order,
            "points": len(s.x),
            "max_ulp_error": float(s.ulp_error[nonzero].max()) if nonzero.any() else math.nan,
            "median_ulp_error": float(np.median(s.ulp_error[nonzero])) if nonzero.any() else math.nan,
            "x_at_max": math.nan, "value_at_max": math.nan, "truth_at_max": math.nan,
        }
        if nonzero.any():
            worst = int(np.flatnonzero(nonzero)[np.argmax(s.ulp_error[nonzero])])
            record.update(x_at_max=float(s.x[worst]), value_at_max=float(s.value[worst]),
                          truth_at_max=float(s.truth[worst]))
        zero = s.truth == 0
        worst_at_zero = float(np.nanmax(s.abs_error[zero])) if zero.any() else math.nan
        record["max_abs_error_at_zero_truth"] = worst_at_zero
        for verdict in JUDGED:
            record[verdict] = int(np.count_nonzero(s.verdict == verdict))
        record["failing"] = int(np.isin(s.verdict, list(FAILING)).sum())
        records.append(record)
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class Digest:
    """What the report keeps of a sweep: its :func:`summarise` row and, for the plot, the
    largest ulp error in each of :data:`_PLOT_BINS` bins of x (inputs in sorted order)."""

    record: dict[str, object]
    plot_x: np.ndarray
    plot_ulp: np.ndarray


def digest(s: Sweep) -> Digest:
    """The :class:`Digest` of one sweep (small: a worker sends it back, not the sweep)."""
    ok = np.isfinite(s.ulp_error) & (s.truth != 0) & np.isfinite(s.truth)
    x, e = s.x[ok], np.maximum(s.ulp_error[ok], 2.0**-10)  # 0 has no place on a log axis
    cuts = np.linspace(0, len(x), min(_PLOT_BINS, len(x)) + 1).astype(int)
    spans = [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
    at = [a + int(np.argmax(e[a:b])) for a, b in spans]
    return Digest(summarise([s]).iloc[0].to_dict(), x[at], e[at])


def _sweep_task(task: tuple[str, str, str, tuple[int, ...], int]) -> dict[int, Digest | str]:
    """One op and dtype at every order, in a worker: the engine is rebuilt from its spec
    there."""
    from harness.engines import engine_from_spec

    spec, op, dtype, orders, n_dense = task
    try:
        engine = engine_from_spec(spec)
        outcomes = sweeps(engine, op, dtype, orders, n_dense)
    except EngineError as exc:
        return {order: str(exc) for order in orders}
    return {order: o if isinstance(o, str) else digest(o) for order, o in outcomes.items()}


def _one_thread() -> None:
    """Worker start-up: torch's own thread pool would fight the other workers for cores."""
    import torch

    torch.set_num_threads(1)


def run_accuracy(
    engines: Sequence[str],
    *,
    dtypes: Sequence[str] = ("float16", "bfloat16"),
    orders: Sequence[int] = (1, 2),
    ops: Sequence[str] | None = None,
    n_dense: int = DENSE_POINTS,
    workers: int = 1,
    progress: bool = False,
) -> tuple[list[Digest], dict[str, str]]:
    """Every unary op (or ``ops``) each engine (a spec, as ``--engine`` takes) supports, in
    each dtype and order, on ``workers`` processes. Returns the digests in task order and,
    keyed ``engine/op/dtype/order``, why each skipped sweep was skipped."""
    from harness.engines import engine_from_spec

    names = [o for o in (ops or OPS) if OPS[o].arity == 1]
    tasks = [
        (spec, op, dtype, tuple(orders), n_dense)
        for spec in engines
        for op in names
        if engine_from_spec(spec).supports(op)
        for dtype in dtypes
    ]
    digests: list[Digest] = []
    skipped: dict[str, str] = {}

    def collect(task: tuple[str, str, str, tuple[int, ...], int], per_order: dict[int, Digest | str]) -> None:
        spec, op, dtype = task[:3]
        for order, outcome in per_order.items():
            key = f"{spec}/{op}/{dtype}/{order}"
            if isinstance(outcome, str):
                skipped[key] = outcome
                continue
            digests.append(outcome)
            if progress:
                print(f"  {key}: {outcome.record['points']} points", file=sys.stderr, flush=True)

    if workers > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_one_thread)
        with pool:
            for task, per_order in zip(tasks, pool.map(_sweep_task, tasks), strict=True):
                collect(task, per_order)
    else:
        for task in tasks:
            collect(task, _sweep_task(task))
    return digests, skipped


_PLOT_BINS = 1500


def _plot_op(op: str, digests: Sequence[Digest]) -> str:
    """Inline SVG: ulp error against x, one panel per dtype and order, one colour per mode
    (the largest error in each bin of x; symlog x axis)."""
    import matplotlib
    from matplotlib.figure import Figure

    def key(d: Digest) -> tuple[str, int]:
        return str(d.record["dtype"]), int(d.record["order"])  # type: ignore[call-overload]

    panels = sorted({key(d) for d in digests}, key=lambda k: (list(DTYPES).index(k[0]), k[1]))
    fig = Figure(figsize=(4.2 * len(panels), 3.0))
    palette = matplotlib.color_sequences["tab10"]
    modes = sorted({str(d.record["engine"]) for d in digests})
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "diffharness", "font.size": 8}):
        for i, (dtype, order) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            for d in digests:
                if key(d) == (dtype, order) and len(d.plot_x):
                    colour = palette[modes.index(str(d.record["engine"])) % 10]
                    ax.plot(d.plot_x, d.plot_ulp, ".", markersize=1.5, color=colour,
                            label=str(d.record["engine"]))
            ax.set_xscale("symlog", linthresh=dtype_info(dtype).tiny)
            ax.set_yscale("log")
            ax.set_title(f"{op}: {dtype}, order {order}")
            ax.set_xlabel("x")
            ax.set_ylabel("ulp error (max per bin)")
            if i == 0 and modes:
                ax.legend(fontsize=7, markerscale=4)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def write_accuracy(out_dir: Path, digests: Sequence[Digest], skipped: dict[str, str]) -> pd.DataFrame:
    """Write ``accuracy.csv`` (the :func:`summarise` rows) and ``accuracy.html`` (the table
    and a plot per op) under ``out_dir``; returns the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame.from_records([d.record for d in digests])
    table.to_csv(out_dir / "accuracy.csv", index=False)
    sections = []
    for op in dict.fromkeys(str(d.record["op"]) for d in digests):
        chosen = [d for d in digests if d.record["op"] == op]
        sections.append(f"<h2>{html.escape(op)}</h2>{_plot_op(op, chosen)}")
    skipped_html = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in skipped.items())
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>diffharness accuracy</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 4px;text-align:right}</style></head><body>"
        "<h1>Derivative accuracy, each op alone at every input</h1>"
        "<p>ulp error: |value - truth| in ulps of the dtype at the correctly rounded truth, "
        "where the truth is finite and nonzero. Failing counts use the harness's verdicts.</p>"
        + table.to_html(index=False, float_format=lambda v: f"{v:.4g}", escape=True)
        + (f"<h2>Skipped</h2><ul>{skipped_html}</ul>" if skipped else "")
        + "".join(sections) + "</body></html>"
    )
    (out_dir / "accuracy.html").write_text(page, encoding="utf-8")
    return table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffharness accuracy",
        description="Each unary op alone at every float16/bfloat16 input (a dense sweep for "
        "float32/float64), through each engine mode at orders 1 and 2; ulp error tables and plots.",
    )
    p.add_argument("--engine", action="append", default=None,
                   help="engine spec, repeatable (default torch:reverse)")
    p.add_argument("--dtypes", default="float16,bfloat16", help="comma-separated (default float16,bfloat16)")
    p.add_argument("--orders", default="1,2", help="comma-separated (default 1,2)")
    p.add_argument("--ops", default="", help="comma-separated unary ops (default: all)")
    p.add_argument("--points", type=int, default=DENSE_POINTS,
                   help=f"points of the float32/float64 dense sweep (default {DENSE_POINTS})")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes (default: one per core)")
    p.add_argument("--out", default="reports", help="output folder (default reports)")
    p.add_argument("--name", default="", help="run folder name (default accuracy-<time>)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from harness.engines import engine_from_spec

    args = _parser().parse_args(argv)
    try:
        dtypes = tuple(d for d in args.dtypes.split(",") if d)
        for d in dtypes:
            dtype_info(d)
        orders = tuple(int(o) for o in args.orders.split(",") if o)
        if not orders or any(o not in (1, 2) for o in orders):
            raise ValueError(f"--orders {args.orders!r}: expected 1, 2 or 1,2")
        ops = tuple(o for o in args.ops.split(",") if o) or None
        unknown = [o for o in ops or () if o not in OPS or OPS[o].arity != 1]
        if unknown:
            raise ValueError(f"--ops: {unknown} are not unary ops; unary ops: "
                             f"{', '.join(o for o in OPS if OPS[o].arity == 1)}")
        engines = args.engine or ["torch:reverse"]
        for spec in engines:
            engine_from_spec(spec)  # an unknown spec is named here, before any work
        if args.points < 2:
            raise ValueError(f"--points {args.points}: expected at least 2")
        if args.workers < 1:
            raise ValueError(f"--workers {args.workers}: expected at least 1")
    except ValueError as exc:
        print(f"diffharness accuracy: error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    digests, skipped = run_accuracy(engines, dtypes=dtypes, orders=orders, ops=ops, n_dense=args.points,
                                    workers=args.workers, progress=True)
    name = args.name or time.strftime("accuracy-%Y%m%d-%H%M%S")
    out_dir = Path(args.out) / name
    table = write_accuracy(out_dir, digests, skipped)
    shown = table[["op", "dtype", "mode", "order", "points", "max_ulp_error", "median_ulp_error",
                   "x_at_max", "failing"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"diffharness accuracy: {len(digests)} sweeps, {int(table['points'].sum()) if len(table) else 0} "
          f"entries in {time.perf_counter() - start:.1f} s; table: {out_dir / 'accuracy.csv'}, "
          f"page: {out_dir / 'accuracy.html'}")
    return 1 if len(table) and int(table["failing"].sum()) else 0
