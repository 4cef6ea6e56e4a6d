"""The check API: does this engine compute the right derivatives?

:func:`check_engine` draws random expressions and points with Hypothesis, compares the
engine with the certified truth through the oracle's rounding model, and shrinks the
first disagreement to the smallest expression and simplest point. :func:`compare` is the
one-case step it repeats; the campaign and ``replay`` use it too, so every front end
judges a case the same way and produces rows of the same long table.
"""

from __future__ import annotations

import contextlib
import random
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable

from harness.differential import eager_engine, vs_eager
from harness.edges import edge_points
from harness.engines.base import Engine, EngineError, check_engine_object, check_request
from harness.expr import Call, Expr, to_text, variables, walk
from harness.limits import TimeLimitExceeded, time_limit
from harness.memo import Memo
from harness.ops import DEFAULT_OPS, JUMP_OPS, KINK_OPS, OPS
from harness.oracle import judge, one_sided_tolerance, rounding_model
from harness.rows import ResultRows
from harness.schema import RESULT_COLUMNS, VS_EAGER, failing_verdicts, point_text_array, repro_command
from harness.strategies import expressions, points, reproducible_generation
from harness.truth import SymbolicEngine, truth_engine

__all__ = [
    "CheckResult",
    "EngineMismatch",
    "Failure",
    "assert_engine",
    "check_engine",
    "compare",
    "compare_rows",
    "default_ops",
    "engine_spec",
    "unit_trees",
]



def engine_spec(engine: Engine) -> str | None:
    """The text ``--engine`` takes to rebuild ``engine``, or None where no text can.

    The engine's own ``spec`` attribute when it has one (set it to ``"mymodule:engine"``
    for an engine object your module defines); a built-in name (a torch mode on a GPU is
    ``torch:<mode>@cuda``); None for a torch engine with overrides (built in Python, it
    cannot be named on the command line; a subclass of it that sets them in its own ``__init__`` is named by
    class); otherwise ``module:class``, which rebuilds an engine whose class takes no
    arguments."""
    from harness.engines import is_builtin
    from harness.engines.torch_ad import TorchEngine

    own = getattr(engine, "spec", None)
    if isinstance(own, str) and own:
        return own
    if is_builtin(engine.name):  # a torch engine on a GPU too: torch:jacfwd@cuda
        return engine.name
    if type(engine) is TorchEngine:  # overrides or a device: given in Python, not by name
        return None
    cls = type(engine)
    return f"{cls.__module__}:{cls.__qualname__}"


_NOT_FROM_THE_COMMAND_LINE = (
    "not reproducible from the command line: {engine} is built in Python (give it a "
    "`spec` attribute naming a module:attr that builds it, or pass spec= to check_engine); "
    "in Python: {call}"
)


GLUE_OPS: tuple[str, ...] = ("add", "sub", "mul", "div", "neg")
"""Ops that join an engine's own ops into trees when only those are checked."""


def default_ops(engine: Engine) -> tuple[str, ...]:
    """The ops :func:`check_engine` searches unless told: for an engine that overrides
    some ops of another (``TorchEngine(overrides=...)``, any engine with an
    ``overrides`` mapping) those ops and :data:`GLUE_OPS`, so that a check of your own
    Function is about your Function; otherwise the default ops."""
    overrides = getattr(engine, "overrides", None)
    if isinstance(overrides, Mapping) and overrides:
        return tuple(dict.fromkeys([*overrides, *GLUE_OPS]))
    return tuple(DEFAULT_OPS)


def _mode(engine: Engine) -> str:
    return str(getattr(engine, "mode", "") or "")


def _derivative_entries(names: Sequence[str], order: int) -> list[tuple[tuple[int, ...], str]]:
    """Each entry of the gradient or Hessian: its index and its ``var`` label."""
    if order == 1:
        return [((i,), n) for i, n in enumerate(names)]
    return [((i, j), f"{a},{b}") for i, a in enumerate(names) for j, b in enumerate(names)]


def _as_array(result: Any) -> np.ndarray:
    """An engine's result as a float64 array; tensors that require grad are detached."""
    if hasattr(result, "detach"):
        result = result.detach()
    if hasattr(result, "cpu"):
        result = result.cpu()
    return np.asarray(result, dtype=np.float64)


def compare(
    engine: Engine,
    expr: Expr,
    pts: np.ndarray,
    *,
    dtype: str,
    order: int = 1,
    case_id: str = "",
    source: str = "generated",
    truth: SymbolicEngine | None = None,
) -> pd.DataFrame:
    """Judge one engine on one expression at a batch of points: one row per entry.

    Never raises for what the engine does: an exception inside the engine, or a result of
    the wrong shape, becomes rows with verdict ``error`` (``EngineError``, meaning "not
    supported", gives ``skipped``; ``attrs["message"]`` says why), so one bad case never
    takes a run down. A result may be anything numpy reads, or a torch/JAX array (detached
    and moved to the CPU). Bad *arguments* (points that do not fit the expression or
    dtype) raise ``ValueError``. :func:`compare_rows` gives the same rows without a
    DataFrame.
    """
    return compare_rows(
        engine, expr, pts, dtype=dtype, order=order, case_id=case_id, source=source, truth=truth
    ).frame()


def compare_rows(
    engine: Engine,
    expr: Expr,
    pts: np.ndarray,
    *,
    dtype: str,
    order: int = 1,
    case_id: str = "",
    source: str = "generated",
    truth: SymbolicEngine | None = None,
) -> ResultRows:
    """:func:`compare`'s rows as :class:`~harness.rows.ResultRows` (what a campaign writes
    straight to CSV); its ``message`` is the frame's ``attrs["message"]``."""
    check_engine_object(engine)
    pts = check_request(expr, pts, dtype, order)
    truth = truth or truth_engine()
    names = variables(expr)
    start = time.perf_counter()
    verdict_override: str | None = None
    message = ""
    expected_shape = (len(pts),) + (len(names),) * order
    try:
        # a copy: an engine that writes into its input must not move the truth's points
        got = _as_array(engine.derivatives(expr, pts.copy(), dtype=dtype, order=order))
        if got.shape != expected_shape:  # a wrong answer, not an unsupported request
            verdict_override = "error"
            message = f"engine returned shape {got.shape}, expected {expected_shape}"
    except EngineError as exc:
        verdict_override, message = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 - an engine crash is a finding, not our crash
        verdict_override, message = "error", f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    t, tol, ideal, oor, one_sided, branch, convention = _reference(truth, expr, pts, dtype, order)
    if verdict_override is not None:
        got = np.full(t.values.shape, np.nan)
    j = judge(
        got,
        t.values,
        t.status,
        tol,
        dtype=dtype,
        truth_bound=t.bounds,
        out_of_range=oor,
        one_sided=one_sided,
        branch=branch,
        ideal_tolerance=ideal,
        convention=convention,
    )
    if eager_engine(engine) is None:  # an eager mode: the transformed modes compare with these
        _EAGER_CACHE.put(
            _eager_key(engine, expr, pts, dtype, order),
            None if verdict_override is not None else (got, j.verdict),
        )
    entries = _derivative_entries(names, order)
    per_point = len(entries)
    n_rows = len(pts) * per_point

    def flat(a: np.ndarray) -> np.ndarray:
        return np.asarray(a).reshape(n_rows)

    return ResultRows.of(
        n_rows,
        {
            "case_id": case_id,
            "source": source,
            "expr": to_text(expr),
            "variables": ",".join(names),
            "point": np.repeat(point_text_array(names, pts), per_point),
            "point_index": np.repeat(np.arange(len(pts)), per_point),
            "var": np.tile(np.array([var for _, var in entries], dtype=object), len(pts)),
            "engine": engine.name,
            "mode": _mode(engine),
            "dtype": dtype,
            "order": order,
            "scheme": "",
            "h": np.nan,
            "value": flat(got),
            "truth": flat(t.values),
            "truth_bound": flat(t.bounds),
            "truth_status": flat(t.status),
            "abs_error": flat(j.abs_error),
            "rel_error": flat(j.rel_error),
            "ulp_error": flat(j.ulp_error),
            "tolerance": flat(j.tolerance),
            "ideal_tolerance": flat(j.ideal_tolerance),
            "verdict": verdict_override if verdict_override else flat(j.verdict),
            "vs_eager": "" if verdict_override else flat(
                _against_eager(engine, expr, pts, dtype, order, truth, got, j.tolerance)
            ),
            "seconds": seconds / max(1, len(pts)),
        },
        message if verdict_override is not None else None,
    )


_EAGER_CACHE: Memo[tuple[np.ndarray, np.ndarray] | None] = Memo(64)


def _eager_key(
    eager: Engine, expr: Expr, pts: np.ndarray, dtype: str, order: int
) -> tuple[Any, ...]:
    """What decides an eager engine's values and verdicts on one request: its class, name
    and overrides, the tree and the op table rows it uses, the points, dtype and order."""
    rows = tuple(OPS[node.op] for node in walk(expr) if isinstance(node, Call))
    overrides = tuple(sorted(getattr(eager, "overrides", {}).items()))
    return (type(eager), eager.name, overrides, expr, rows, pts.shape, pts.tobytes(), dtype, order)


def _against_eager(
    engine: Engine,
    expr: Expr,
    pts: np.ndarray,
    dtype: str,
    order: int,
    truth: SymbolicEngine,
    got: np.ndarray,
    tolerance: np.ndarray,
) -> np.ndarray:
    """The ``vs_eager`` words of ``engine``'s values ``got`` (:mod:`harness.differential`);
    empty strings for an engine without an eager counterpart. The eager engine's values
    and verdicts are remembered per request (:func:`_eager_key`), by every eager request
    :func:`compare_rows` judges as well, as a campaign judges the eager mode and then
    every transformed mode of a case on the same request."""
    eager = eager_engine(engine)
    if eager is None:
        return np.full(got.shape, "", dtype=object)

    def compute() -> tuple[np.ndarray, np.ndarray] | None:
        rows = compare_rows(eager, expr, pts, dtype=dtype, order=order, truth=truth)
        if rows.message is not None:  # eager skipped or failed: no values
            return None
        shape = got.shape
        return rows.columns["value"].astype(np.float64).reshape(shape), rows.columns["verdict"].reshape(shape)

    found = _EAGER_CACHE.get(_eager_key(eager, expr, pts, dtype, order), compute)
    if found is None:
        return np.full(got.shape, VS_EAGER[2], dtype=object)
    return vs_eager(got, found[0], found[1], tolerance)


_Branch = tuple[np.ndarray, np.ndarray, np.ndarray]
_Reference = tuple[
    Any,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    "tuple[np.ndarray, np.ndarray] | None",
    _Branch,
    "tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None",
]
_REFERENCE_CACHE: Memo[_Reference] = Memo(32)


def _reference(
    truth: SymbolicEngine, expr: Expr, pts: np.ndarray, dtype: str, order: int
) -> _Reference:
    """Truth, formula and ideal tolerances, out-of-range mask, one-sided limits and the other branch (where
    rounding may flip a kink, see :class:`~harness.oracle.RoundingModel`) for one request.

    At a kink the tolerance is that of the one-sided values (:func:`one_sided_tolerance`).

    They depend on the case, not on the engine, so several engines judged on the same
    case (every mode of a campaign) share one computation through a small LRU cache.
    """

    def compute() -> _Reference:
        t = truth.evaluate(expr, pts, dtype=dtype, order=order)
        model = rounding_model(expr, pts, dtype=dtype, order=order, at_break=t.at_break)
        tol, ideal, oor = model.tolerance, model.ideal_tolerance, model.out_of_range
        kink = t.status == "kink"
        one_sided = None
        if order == 1 and kink.any():
            one_sided = truth.one_sided(expr, pts, dtype=dtype)
            rows = np.flatnonzero(kink.any(axis=1))
            side_tol = one_sided_tolerance(expr, pts[rows], dtype=dtype)
            tol = tol.copy()
            tol[rows] = np.where(kink[rows], np.fmax(tol[rows], side_tol), tol[rows])
        convention = None
        if model.at_kink is not None and model.sides is not None:
            convention = (model.at_kink, *model.sides)
        branch = (model.ambiguous, model.other, model.other_tolerance)
        return t, tol, ideal, oor, one_sided, branch, convention

    return _REFERENCE_CACHE.get((truth, expr, dtype, order, pts.shape, pts.tobytes()), compute)




@dataclass(frozen=True)
class Failure:
    """One wrong derivative, shrunk: what was expected, what came back, how to rerun it."""

    expr: str
    point: str
    dtype: str
    order: int
    var: str
    expected: float
    got: float
    ulp_error: float
    verdict: str
    command: str
    examples: int

    def __str__(self) -> str:
        return (
            f"{self.verdict}: d{'^2' if self.order == 2 else ''}/d({self.var}) of "
            f"{self.expr} at {self.point} in {self.dtype}: expected {self.expected!r}, "
            f"got {self.got!r} ({self.ulp_error:.3g} ulp); found after {self.examples} "
            f"example(s)\n    rerun: {self.command}"
        )


@dataclass
class CheckResult:
    """What :func:`check_engine` found. ``ok`` is True when no failing verdict occurred."""

    engine: str
    seed: int
    failures: list[Failure]
    frame: pd.DataFrame
    examples: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    rerun: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        """The failure report: one paragraph per failure, and the seed flag to rerun."""
        head = (
            f"engine {self.engine}: "
            + ("no mismatches" if self.ok else f"{len(self.failures)} failure(s)")
            + f" in {len(self.frame)} checked derivative entries"
        )
        lines = [head]
        lines += [str(f) for f in self.failures]
        lines += [f"skipped {k}: {v}" for k, v in self.skipped.items()]
        lines.append(f"rerun the search: {self.rerun}")
        return "\n".join(lines)


class EngineMismatch(AssertionError):
    """Raised by :func:`assert_engine`; its message is the failure report."""


def _case_strategy(
    ops: Sequence[str],
    max_size: int,
    names: Sequence[str],
    n_points: int,
    dtype: str,
    kinks: str,
) -> st.SearchStrategy[tuple[Expr, np.ndarray]]:
    trees = expressions(tuple(ops), max_size=max_size, variables=tuple(names))

    @st.composite
    def case(draw: Any) -> tuple[Expr, np.ndarray]:
        e = draw(trees)
        k = draw(st.integers(1, n_points))
        return e, draw(points(e, k, dtype, kinks=kinks, edges=True))

    return case()


def unit_trees(ops: Sequence[str], names: Sequence[str] = ("x", "y")) -> list[Expr]:
    """The simplest tree for each op, then each wrapped in negations.

    First ``op(x)``, ``op(x, y)`` (``pow`` with each of ``UNIT_EXPONENTS``, an op with
    ``params`` with each of them, a variadic op with its fewest arguments and one more,
    each a variable of its own: ``prod(x, y)``, ``prod(x, y, z)``): checked before
    random trees, so a wrong rule for one op is found within a few examples per op. Then
    ``neg(op(neg(x), ...))``: the incoming gradient (and tangent) is -1 there, not 1, so a
    backward or jvp that forgets to multiply by it is caught as deterministically."""
    from harness.expr import Call, Const, Var
    from harness.ops import OPS
    from harness.strategies import UNIT_EXPONENTS

    leaves = [Var(n) for n in names] or [Var("x")]
    out: list[Expr] = []
    for name in ops:
        row = OPS[name]
        counts = row.arities[:2]
        if counts[-1] - len(row.const_args) > len(leaves):  # clamp(x, y, z): three variables
            more = ("z", "w") + tuple(f"x{i}" for i in range(counts[-1] - 4))
            leaves = leaves + [Var(n) for n in more if Var(n) not in leaves]
        if row.params:
            for chosen in row.params:
                given = dict(zip(row.const_args, chosen, strict=True))
                args = [
                    Const(given[i]) if i in given else leaves[i % len(leaves)] for i in range(row.arity)
                ]
                out.append(Call(name, tuple(args)))
        elif row.const_args:
            for c in UNIT_EXPONENTS:
                args = [
                    Const(c) if i in row.const_args else leaves[i % len(leaves)] for i in range(row.arity)
                ]
                out.append(Call(name, tuple(args)))
        else:
            out.extend(Call(name, tuple(leaves[i % len(leaves)] for i in range(n))) for n in counts)
    chained = [
        Call("neg", (Call(t.op, tuple(Call("neg", (a,)) if isinstance(a, Var) else a for a in t.args)),))
        for t in out
        if isinstance(t, Call) and t.op != "neg"
    ]
    return out + chained


def _at_the_edges(
    unit: Expr,
    dtype: str,
    fails: Callable[[tuple[Expr, np.ndarray]], bool],
    counter: dict[str, int],
) -> tuple[Expr, np.ndarray] | None:
    """One op alone at its edges in ``dtype`` (:func:`harness.edges.edge_points`), as one
    batch; the first failing point, or None."""
    pts = edge_points(unit, dtype)
    if not len(pts):
        return None
    for start in range(0, len(pts), _EDGE_BATCH):
        batch = np.array(pts[start : start + _EDGE_BATCH])  # a writable copy for the engine
        if fails((unit, batch)):
            for k in range(len(batch)):  # the first failing point, alone
                counter["n"] -= 1  # the search for it is not a new example
                if fails((unit, batch[k : k + 1])):
                    return unit, batch[k : k + 1]
    return None


_EDGE_BATCH = 64


def _search(
    strategy: st.SearchStrategy[Any], fails: Any, n: int, seed: int
) -> tuple[Expr, np.ndarray] | None:
    conf = settings(
        max_examples=n,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    try:
        with reproducible_generation():
            found: tuple[Expr, np.ndarray] = find(
                strategy, fails, settings=conf, random=random.Random(seed)
            )
    except (NoSuchExample, Unsatisfiable):
        return None
    return found


def _pair(expr: Expr, pts: np.ndarray) -> tuple[Expr, np.ndarray]:
    return expr, pts


def _unit_strategy(
    unit: Expr, *, n_points: int, dtype: str, kinks: str
) -> st.SearchStrategy[tuple[Expr, np.ndarray]]:
    return points(unit, n_points, dtype, kinks=kinks).map(partial(_pair, unit))


def _search_dtype(
    engine: Engine,
    dtype: str,
    orders: Sequence[int],
    failing: frozenset[str],
    truth: SymbolicEngine | None,
    timeout: float | None,
    frames: list[pd.DataFrame],
    skipped: dict[str, str],
    edge_units: Sequence[Expr],
    units: Sequence[Expr],
    cases: st.SearchStrategy[tuple[Expr, np.ndarray]],
    unit_strategy: Callable[[Expr], st.SearchStrategy[tuple[Expr, np.ndarray]]],
    n_examples: int,
    unit_examples: int,
    seed: int,
    recorded: int = 0,
) -> tuple[tuple[Expr, np.ndarray] | None, tuple[int, ...], dict[str, int]]:
    """One search in ``dtype`` whose every example is judged at each of ``orders``: the
    edges, the unit trees, then the random cases (the phases of :func:`check_engine`).

    Both orders see the same drawn cases, so drawing them once halves Hypothesis's share.
    From the first failing example on, only the orders that failed there ("targets") are
    judged, so the shrink keeps one consistent property. Returns the shrunk case (or
    None), the targets and the counter (``n`` examples judged, ``first`` the failing one).
    An order whose every row is ``skipped`` is recorded in ``skipped`` and dropped. The
    rows of the first ``recorded`` examples are already in ``frames`` (a search again for
    the orders that did not fail replays the same examples) and are not added twice."""
    live = list(orders)
    targets: list[int] = []
    counter = {"n": 0, "first": 0}

    class _NothingLeft(Exception):
        """Every order was skipped: nothing is left to search for."""

    def judge_at(case: tuple[Expr, np.ndarray], order: int) -> pd.DataFrame:
        expr, pts = case
        try:
            with time_limit(timeout) if timeout else contextlib.nullcontext():
                return compare(engine, expr, pts, dtype=dtype, order=order, truth=truth)
        except TimeLimitExceeded:
            raise TimeLimitExceeded(
                f"{to_text(expr)} ({dtype}, order {order}) ran past the time limit of "
                f"{timeout:g} s per example"
            ) from None

    def fails(case: tuple[Expr, np.ndarray]) -> bool:
        counter["n"] += 1
        bad: list[int] = []
        for order in list(targets or live):
            try:
                rows = judge_at(case, order)
                if len(rows) and (rows["verdict"] == "skipped").all():
                    raise EngineError(rows.attrs.get("message", "not supported"))
            except EngineError as exc:  # the engine's "not supported", or the truth's
                if targets:  # shrinking a failure: this smaller case just does not fail
                    continue
                skipped[f"{dtype}/order{order}"] = str(exc)
                live.remove(order)
                if not live:
                    raise _NothingLeft from None
                continue
            if not counter["first"] and counter["n"] > recorded:
                frames.append(rows)
            if rows["verdict"].isin(failing).any():
                bad.append(order)
        if bad and not counter["first"]:
            counter["first"] = counter["n"]
            targets.extend(bad)
        return bool(bad)

    found = None
    try:
        for alone in edge_units:
            found = _at_the_edges(alone, dtype, fails, counter)
            if found is not None:
                break
            if targets:  # a batch failed but no point of it alone: judge every order again
                targets.clear()
                counter["first"] = 0
        for unit in units if found is None else ():
            found = _search(unit_strategy(unit), fails, unit_examples, seed)
            if found is not None:
                break
        if found is None:
            found = _search(cases, fails, n_examples, seed)
    except _NothingLeft:
        return None, (), counter
    return found, tuple(targets), counter


def check_engine(
    engine: Engine,
    *,
    n_examples: int = 200,
    seed: int | None = None,
    dtypes: Iterable[str] = ("float64", "float32"),
    orders: Iterable[int] = (1, 2),
    ops: Sequence[str] | None = None,
    max_size: int = 10,
    n_points: int = 8,
    variables: Sequence[str] = ("x", "y"),
    unit_examples: int = 4,
    spec: str | None = None,
    save_dir: str | Path | None = None,
    truth: SymbolicEngine | None = None,
    timeout: float | None = None,
    allow: Iterable[str] = (),
) -> CheckResult:
    """Search for a wrong derivative of ``engine`` and shrink the first one found.

    For each dtype (one search whose every example is judged at each order: the orders see
    the same cases, drawn once): first every op alone at its edges in that dtype
    (:func:`harness.edges.edge_points`: where its value rounds to a limit, overflows,
    switches formula, meets its domain's end, at 0 and the subnormals, a few ulps either
    side), then every op alone at drawn points (:func:`unit_trees`, ``unit_examples``
    point batches each), then up to ``n_examples`` random (expression, points) cases drawn
    by Hypothesis from those ``ops`` the engine ``supports`` (kink and jump ops put special
    points at their kinks; without ``ops``, :func:`default_ops`). Every entry is judged
    with :func:`compare`. A failing case is shrunk to the smallest expression and the
    fewest, simplest points, then reported with the exact command that reproduces it;
    ``examples`` says how many cases it took.
    ``seed`` fixes the search (printed as ``--seed N``); ``save_dir`` writes each shrunk
    failure as a case file (see ``harness.cases``). A dtype or order the engine does not
    support (it raises ``EngineError``) is listed in ``skipped``. ``timeout`` bounds the
    seconds of each example: one that runs past stops the search with
    :class:`harness.limits.TimeLimitExceeded` naming it.
    ``allow`` names failing verdicts to accept (``("inaccurate",)``: accuracy lost to a
    cancelling backward formula, which fails the check by default); see
    :data:`harness.schema.ALLOWABLE`.
    """
    check_engine_object(engine)
    failing = failing_verdicts(allow)
    allow = tuple(allow)
    dtypes, orders = tuple(dtypes), tuple(orders)
    if n_examples < 1 or unit_examples < 0:
        raise ValueError(f"n_examples={n_examples} must be >= 1 and unit_examples={unit_examples} >= 0")
    wanted = tuple(ops) if ops is not None else default_ops(engine)
    ops = tuple(o for o in wanted if engine.supports(o))
    if not ops:
        raise ValueError(
            f"engine {engine.name!r} supports none of ops={list(wanted)}; pass ops the engine supports"
        )
    seed = random.SystemRandom().randrange(2**32) if seed is None else int(seed)
    spec = spec or engine_spec(engine)
    settings_text = f"seed={seed}, n_examples={n_examples}, dtypes={dtypes!r}, orders={orders!r}" + (
        f", ops={tuple(ops)!r}" if tuple(ops) != tuple(DEFAULT_OPS) else ""
    ) + (f", allow={allow!r}" if allow else "")
    kinks = "include" if set(ops) & set(KINK_OPS + JUMP_OPS) else "avoid"
    frames: list[pd.DataFrame] = []
    failures: list[Failure] = []
    examples: dict[str, int] = {}
    skipped: dict[str, str] = {}
    units = unit_trees(ops, variables)
    edge_units: list[Expr] = [
        u for u in units if isinstance(u, Call) and not any(isinstance(a, Call) for a in u.args)
    ]
    for dtype in dtypes:
        pending = list(orders)
        recorded = 0
        while pending:
            found, targets, counter = _search_dtype(
                engine, dtype, pending, failing, truth, timeout, frames, skipped,
                edge_units if unit_examples else [],
                units if unit_examples else [],
                _case_strategy(ops, max_size, variables, n_points, dtype, kinks),
                partial(_unit_strategy, n_points=n_points, dtype=dtype, kinks=kinks),
                n_examples, unit_examples, seed, recorded,
            )
            pending = [o for o in pending if f"{dtype}/order{o}" not in skipped]
            if found is None:
                for order in pending:
                    examples[f"{dtype}/order{order}"] = counter["n"]
                break
            # the shrunk case fails at one target order at least; an order that does not
            # fail there (nor failed first) is searched again on its own
            before = len(pending)
            recorded = max(recorded, counter["first"])
            for order in targets:
                failure = _failure(engine, found, dtype, order, spec, counter["first"], truth, failing)
                if failure is None:
                    continue
                examples[f"{dtype}/order{order}"] = counter["first"]
                failures.append(failure)
                pending.remove(order)
                if save_dir is not None:
                    from harness.cases import save_failure

                    save_failure(Path(save_dir), failure, spec or "")
            if len(pending) == before:
                expr, pts = found
                raise RuntimeError(
                    f"engine {engine.name!r} is not deterministic: {to_text(expr)} at {pts.tolist()} "
                    f"in {dtype} failed during the search at orders {list(targets)} but not when "
                    "judged again; make the engine give the same result for the same input"
                )
    rank = {(d, o): i for i, (d, o) in enumerate((d, o) for d in dtypes for o in orders)}
    failures.sort(key=lambda f: rank[(f.dtype, f.order)])
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(RESULT_COLUMNS))
    if spec is None:
        rerun = _NOT_FROM_THE_COMMAND_LINE.format(
            engine=engine.name, call=f"harness.check_engine(engine, {settings_text})"
        )
        return CheckResult(engine.name, seed, failures, frame, examples, skipped, rerun)
    words = [
        "diffharness",
        "check",
        "--engine",
        spec,
        "--seed",
        str(seed),
        "--n-examples",
        str(n_examples),
        "--dtypes",
        ",".join(dtypes),
        "--orders",
        ",".join(map(str, orders)),
    ]
    if tuple(ops) != tuple(DEFAULT_OPS):
        words += ["--ops", ",".join(ops)]
    if allow:
        words += ["--allow", ",".join(allow)]
    return CheckResult(engine.name, seed, failures, frame, examples, skipped, shlex.join(words))


def _failure(
    engine: Engine,
    case: tuple[Expr, np.ndarray],
    dtype: str,
    order: int,
    spec: str | None,
    examples: int,
    truth: SymbolicEngine | None,
    failing: frozenset[str],
) -> Failure | None:
    """The failure of ``case`` at ``order``, or None where it does not fail at that order."""
    expr, pts = case
    rows = compare(engine, expr, pts, dtype=dtype, order=order, truth=truth)
    bad = rows[rows["verdict"].isin(failing)]
    if bad.empty:
        return None
    worst = bad.iloc[0]
    return Failure(
        expr=str(worst["expr"]),
        point=str(worst["point"]),
        dtype=dtype,
        order=order,
        var=str(worst["var"]),
        expected=float(worst["truth"]),
        got=float(worst["value"]),
        ulp_error=float(worst["ulp_error"]),
        verdict=str(worst["verdict"]),
        command=(
            repro_command(spec, str(worst["expr"]), str(worst["point"]), dtype, order)
            if spec is not None
            else _NOT_FROM_THE_COMMAND_LINE.format(
                engine=engine.name,
                call=f"harness.compare(engine, harness.parse({str(worst['expr'])!r}), numpy.array("
                f"[{pts[int(worst['point_index'])].tolist()!r}]), dtype={dtype!r}, order={order})",
            )
        ),
        examples=examples,
    )


def assert_engine(engine: Engine, **kwargs: Any) -> CheckResult:
    """:func:`check_engine`, raising :class:`EngineMismatch` with the report on failure."""
    result = check_engine(engine, **kwargs)
    if not result.ok:
        raise EngineMismatch(result.report())
    return result
