"""Campaigns: many cases through many engines into one long pandas table, on disk as it goes.

A campaign is fully described by a :class:`CampaignConfig` (saved as ``config.json`` in the
run folder). Its cases are the corpus files plus ``n_cases`` generated ones, drawn by
Hypothesis from ``seed`` in the parent process, so the case list, and therefore
``results.csv``, is byte-identical for the same seed whatever the number of workers.

Each finished case is written at once to ``parts/NNNNN.csv`` (atomically), so an
interrupted run keeps what it finished and ``resume`` skips those cases. A case that
raises or runs past ``case_timeout`` seconds becomes a row with verdict ``error`` or
``timeout``; it never stops the run. ``results.csv`` holds every column of
:data:`harness.check.RESULT_COLUMNS` except ``seconds``, which differs between runs and so
goes to ``timings.csv``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.check import RESULT_COLUMNS, compare, point_text_array
from harness.dtypes import dtype_info, round_array, ulp
from harness.engines import engine_from_spec, refuse_unless_builtin
from harness.engines.base import EngineError
from harness.engines.finite_diff import (
    DEFAULT_H_GRID,
    SCHEMES,
    FiniteDiffEngine,
    predicted_error,
    scheme_facts,
    shared_stencils,
)
from harness.engines.symbolic import SymbolicEngine
from harness.expr import Expr, to_text, variables
from harness.ops import DEFAULT_OPS, JUMP_OPS, KINK_OPS
from harness.oracle import fd_diagnostics
from harness.parse import parse

__all__ = [
    "CampaignConfig",
    "CampaignResult",
    "FD_COLUMNS",
    "THEORY_COLUMNS",
    "TaskCase",
    "generate_cases",
    "load_cases_file",
    "merge_campaigns",
    "run_campaign",
    "save_cases_file",
]

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
THEORY_COLUMNS: tuple[str, ...] = ("case_id", "dtype", "scheme", "h", "rel_error")
CSV_COLUMNS: tuple[str, ...] = tuple(c for c in RESULT_COLUMNS if c != "seconds")
MAX_TAYLOR = 5
"""Highest derivative derived symbolically for the theory curves (f^(5): five-point)."""


@dataclass(frozen=True)
class CampaignConfig:
    """Everything that decides a campaign's results (timing and workers aside)."""

    n_cases: int = 300
    seed: int = 0
    dtypes: tuple[str, ...] = ("float64", "float32")
    orders: tuple[int, ...] = (1,)
    engines: tuple[str, ...] = ("torch:reverse", "torch:forward", "torch:functional")
    schemes: tuple[str, ...] = SCHEMES
    h_grid: tuple[float, ...] = DEFAULT_H_GRID
    ops: tuple[str, ...] = DEFAULT_OPS
    max_size: int = 10
    n_points: int = 8
    variables: tuple[str, ...] = ("x", "y")
    corpus: tuple[str, ...] = ("cases",)
    case_timeout: float = 60.0

    def __post_init__(self) -> None:
        for d in self.dtypes:
            dtype_info(d)
        bad = [s for s in self.schemes if s not in SCHEMES]
        if bad:
            raise ValueError(f"schemes={bad} unknown; expected some of {list(SCHEMES)}")
        if self.n_cases < 0:
            raise ValueError(f"n_cases={self.n_cases} must be >= 0")
        for o in self.orders:
            if o not in (1, 2):
                raise ValueError(f"orders={self.orders}: each order must be 1 or 2")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CampaignConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        return cls(**kwargs)


@dataclass(frozen=True)
class TaskCase:
    """One case of a campaign, as sent to a worker."""

    index: int
    case_id: str
    source: str
    expr: Expr
    points: np.ndarray
    dtypes: tuple[str, ...]
    orders: tuple[int, ...]
    engines: tuple[str, ...]


@dataclass
class CampaignResult:
    """A finished (or resumed) campaign: its folder and its tables."""

    run_dir: Path
    results: pd.DataFrame
    fd_diagnostics: pd.DataFrame
    theory: pd.DataFrame
    timings: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)


# ---- the case list ------------------------------------------------------------------


def _narrowest(dtypes: Sequence[str]) -> str:
    return min(dtypes, key=lambda d: dtype_info(d).bits)


def generate_cases(config: CampaignConfig) -> list[tuple[Expr, np.ndarray]]:
    """The campaign's generated cases, drawn by Hypothesis from ``config.seed``.

    Deterministic: Hypothesis runs with a fixed seed, no example database and only the
    generate phase. Points are drawn for the dtype with the fewest significand bits, then
    made exact in every dtype of the campaign (see :func:`_exact_in_all`).
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from harness.strategies import cases, reproducible_generation

    if config.n_cases == 0:
        return []
    kinks = "include" if set(config.ops) & set(KINK_OPS + JUMP_OPS) else "avoid"
    strategy = cases(
        config.ops,
        max_size=config.max_size,
        variables=config.variables,
        n_points=config.n_points,
        dtype=_narrowest(config.dtypes),
        kinks=kinks,
    )
    out: list[tuple[Expr, np.ndarray]] = []

    @settings(
        max_examples=config.n_cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hseed(config.seed)
    @given(strategy)
    def collect(case: tuple[Expr, np.ndarray]) -> None:
        out.append(case)

    with reproducible_generation():
        collect()
    return [(e, _exact_in_all(p, config.dtypes)) for e, p in out[: config.n_cases]]


def _exact_in_all(pts: np.ndarray, dtypes: Sequence[str]) -> np.ndarray:
    """Points exact in every dtype: float16 and bfloat16 each hold values the other cannot
    (range against precision), so round through all of them until nothing moves."""
    for _ in range(4):
        before = pts
        for d in dtypes:
            pts = round_array(pts, d)
        if np.array_equal(pts, before, equal_nan=True):
            break
    return pts


def _corpus_tasks(config: CampaignConfig, start: int) -> tuple[list[TaskCase], list[str]]:
    from harness.cases import CaseFileError, case_files, load_cases

    tasks: list[TaskCase] = []
    problems: list[str] = []
    for root in config.corpus:
        if not Path(root).exists():
            problems.append(f"corpus path {root!r} does not exist")
            continue
        for path in case_files(root):
            try:
                loaded = load_cases(path)
            except CaseFileError as exc:
                problems.append(str(exc))
                continue
            for c in loaded:
                tasks.append(
                    TaskCase(
                        start + len(tasks),
                        f"{path.stem}:{c.id}",
                        "corpus",
                        c.expr,
                        c.points,
                        c.dtypes,
                        c.orders,
                        c.engines or config.engines,
                    )
                )
    return tasks, problems


def build_tasks(
    config: CampaignConfig, generated: Sequence[tuple[Expr, np.ndarray]] | None = None
) -> tuple[list[TaskCase], list[str]]:
    """Generated cases first, then the corpus; returns the tasks and corpus problems.

    ``generated`` replaces drawing the generated cases (see :func:`load_cases_file`)."""
    drawn = generate_cases(config) if generated is None else generated
    tasks = [
        TaskCase(i, f"g{i:05d}", "generated", e, p, config.dtypes, config.orders, config.engines)
        for i, (e, p) in enumerate(drawn)
    ]
    corpus, problems = _corpus_tasks(config, len(tasks))
    return tasks + corpus, problems


CASES_FILE = "cases.json"
"""The generated cases of a run, as drawn: resume and other shards reuse them."""


def save_cases_file(run_dir: Path, tasks: Sequence[TaskCase]) -> None:
    """Write the generated cases (expression text and points) to ``run_dir/cases.json``.

    Hypothesis does not always draw the same cases for one seed in two processes, so a
    resumed run and the other shards of a campaign read the list from here instead of
    drawing it again. Not written when some expression would not read back identically.
    """
    generated = [t for t in tasks if t.source == "generated"]
    if any(parse(to_text(t.expr)) != t.expr for t in generated):
        return
    data = {"generated": [{"expr": to_text(t.expr), "points": t.points.tolist()} for t in generated]}
    _write_atomic(run_dir / CASES_FILE, json.dumps(data))


def load_cases_file(path: Path, config: CampaignConfig) -> list[tuple[Expr, np.ndarray]]:
    """The generated cases saved by :func:`save_cases_file` (``path`` is the file)."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))["generated"]
        cases = []
        for item in items:
            expr = parse(item["expr"])
            pts = np.asarray(item["points"], dtype=np.float64).reshape(len(item["points"]), -1)
            cases.append((expr, pts))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a readable case list ({exc}); expected the cases.json of a run"
        ) from exc
    if len(cases) != config.n_cases:
        raise ValueError(
            f"{path} holds {len(cases)} generated cases, but the campaign asks for "
            f"n_cases={config.n_cases}; use the same --cases as the run that wrote it"
        )
    return cases


# ---- one case -----------------------------------------------------------------------


class CaseTimeout(Exception):
    """Raised inside a worker when a case runs past its time limit."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    if seconds <= 0 or not hasattr(signal, "setitimer") or not _main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"case ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


_TRUTH: SymbolicEngine | None = None


def _truth() -> SymbolicEngine:
    global _TRUTH
    if _TRUTH is None:
        _TRUTH = SymbolicEngine()
    return _TRUTH


def _fd_rows(
    task: TaskCase, config: CampaignConfig, dtype: str
) -> tuple[list[pd.DataFrame], list[dict[str, Any]], list[dict[str, Any]]]:
    """Error-vs-h rows, FD diagnostics and theory curve of one case in one dtype."""
    truth = _truth()
    names = variables(task.expr)
    pts = task.points
    t = truth.evaluate(task.expr, pts, dtype=dtype, order=1)
    needed = max((scheme_facts(s).truncation_derivative for s in config.schemes), default=0)
    taylor = truth.taylor(task.expr, pts, dtype=dtype, max_order=min(needed, MAX_TAYLOR))
    eps = dtype_info(dtype).eps
    text = to_text(task.expr)
    diags: list[dict[str, Any]] = []
    theory: list[dict[str, Any]] = []
    grid = np.asarray(config.h_grid, dtype=np.float64)
    texts = point_text_array(names, pts)
    name_array = np.asarray(names, dtype=object)
    columns: list[dict[str, np.ndarray]] = []
    sweeps = {}
    with shared_stencils():  # the schemes share their stencil inputs (x, x + h, ...)
        for scheme in config.schemes:
            try:
                sweeps[scheme] = FiniteDiffEngine(scheme).sweep(
                    task.expr, pts, dtype=dtype, order=1, h_grid=config.h_grid
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
                    pred = np.stack([predicted_error(scheme, h, derivs, eps) for h in grid]) / scale
                    trunc = np.stack([predicted_error(scheme, h, derivs, 0.0) for h in grid]) / scale
            else:  # e.g. Richardson's f^(9): too costly to derive symbolically; no theory
                pred = trunc = np.full((len(grid), len(pts)), np.nan)
            ok_pts = t.status[:, i] == "ok"
            if ok_pts.any():
                observed = _row_nanmedian(np.where(ok_pts[None], rel_err[:, :, i], np.nan))
                predicted = _row_nanmedian(np.where(ok_pts[None], pred, np.nan))
                truncation = _row_nanmedian(np.where(ok_pts[None], trunc, np.nan))
                d = fd_diagnostics(grid, observed, predicted, truncation, facts.order, eps=eps)
                diags.append(
                    {
                        "case_id": task.case_id,
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
                        "case_id": task.case_id,
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
    n_rows = len(merged["h"])
    frame = pd.DataFrame(
        {
            "case_id": [task.case_id] * n_rows,
            "source": [task.source] * n_rows,
            "expr": [text] * n_rows,
            "variables": [",".join(names)] * n_rows,
            "point": merged["point"],
            "point_index": merged["point_index"],
            "var": merged["var"],
            "engine": merged["engine"],
            "mode": [""] * n_rows,
            "dtype": [dtype] * n_rows,
            "order": np.ones(n_rows, dtype=np.int64),
            "scheme": merged["scheme"],
            "h": merged["h"],
            "value": merged["value"],
            "truth": merged["truth"],
            "truth_bound": merged["truth_bound"],
            "truth_status": merged["truth_status"],
            "abs_error": merged["abs_error"],
            "rel_error": merged["rel_error"],
            "ulp_error": merged["ulp_error"],
            "tolerance": np.full(n_rows, np.nan),
            "verdict": [""] * n_rows,
            "seconds": np.full(n_rows, np.nan),
        },
        columns=list(RESULT_COLUMNS),
    )
    return [frame], diags, theory


def _row_nanmedian(a: np.ndarray) -> np.ndarray:
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


def _error_row(task: TaskCase, verdict: str, message: str) -> pd.DataFrame:
    row: dict[str, Any] = {c: np.nan for c in RESULT_COLUMNS}
    row.update(
        case_id=task.case_id,
        source=task.source,
        expr=to_text(task.expr),
        variables=",".join(variables(task.expr)),
        point="",
        point_index=-1,
        var="",
        engine="",
        mode="",
        dtype="",
        order=0,
        scheme="",
        truth_status=message[:200],
        verdict=verdict,
    )
    return pd.DataFrame([row], columns=list(RESULT_COLUMNS))


def run_case(
    task: TaskCase, config: CampaignConfig, trusted: Collection[str] | None = None
) -> tuple[int, pd.DataFrame, list[dict[str, Any]], list[dict[str, Any]]]:
    """Every engine, dtype, order and scheme on one case; never raises.

    ``trusted`` are the engine specs the user named (default: ``config.engines``); any
    other engine of the case comes from a case file and must be built in.
    """
    trusted = config.engines if trusted is None else trusted
    frames: list[pd.DataFrame] = []
    diags: list[dict[str, Any]] = []
    theory: list[dict[str, Any]] = []
    try:
        with _time_limit(config.case_timeout):
            for dtype in task.dtypes:
                for spec in task.engines:
                    if spec not in trusted:
                        refuse_unless_builtin(spec, f"the case file of case {task.case_id}")
                    engine = engine_from_spec(spec)
                    for order in task.orders:
                        start = time.perf_counter()
                        rows = compare(
                            engine,
                            task.expr,
                            task.points,
                            dtype=dtype,
                            order=order,
                            case_id=task.case_id,
                            source=task.source,
                            truth=_truth(),
                        )
                        rows["seconds"] = time.perf_counter() - start
                        frames.append(rows)
                if config.schemes:
                    f, d, th = _fd_rows(task, config, dtype)
                    frames += f
                    diags += d
                    theory += th
    except CaseTimeout as exc:
        frames.append(_error_row(task, "timeout", str(exc)))
    except Exception as exc:  # noqa: BLE001 - a bad case must not take the run down
        frames.append(_error_row(task, "error", f"{type(exc).__name__}: {exc}"))
    frame = pd.concat(frames, ignore_index=True) if frames else _error_row(task, "error", "no rows")
    return task.index, frame, diags, theory


# ---- workers and files -------------------------------------------------------------

_WORKER_CONFIG: CampaignConfig | None = None
_WORKER_PARTS: Path | None = None
_WORKER_TRUSTED: frozenset[str] = frozenset()


def _init_worker(config: CampaignConfig, parts: Path, trusted: frozenset[str]) -> None:
    global _WORKER_CONFIG, _WORKER_PARTS, _WORKER_TRUSTED
    _WORKER_PARTS = parts
    _WORKER_TRUSTED = trusted
    import torch

    torch.set_num_threads(1)
    _WORKER_CONFIG = config


def _work(task: TaskCase) -> int:
    """Run one case and write its part files here, in the worker: the parent only counts,
    so writing CSV does not serialise the workers behind one process."""
    assert _WORKER_CONFIG is not None and _WORKER_PARTS is not None
    _save_part(_WORKER_PARTS, *run_case(task, _WORKER_CONFIG, _WORKER_TRUSTED))
    return task.index


# Imported once in the fork server, so that no worker pays for them: the campaign and
# everything it imports, and torch._dynamo, which torch.func loads on its first use.
_PRELOAD = ["harness.campaign", "torch._dynamo"]


class _PoolStarter:
    """Starts a forkserver pool in a thread; :meth:`get` waits for it."""

    def __init__(self, workers: int, config: CampaignConfig, parts: Path, trusted: frozenset[str]) -> None:
        self._pool: Any = None
        self._error: BaseException | None = None

        def start() -> None:
            try:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(_PRELOAD)
                self._pool = ctx.Pool(workers, initializer=_init_worker, initargs=(config, parts, trusted))
            except BaseException as exc:  # noqa: BLE001 - re-raised in get()
                self._error = exc

        self._thread = threading.Thread(target=start, name="diffharness-pool", daemon=True)
        self._thread.start()

    def get(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._pool

    def close(self) -> None:
        self._thread.join()
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv(frame: pd.DataFrame, columns: Sequence[str], header: bool) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, columns=list(columns), index=False, header=header, lineterminator="\n")
    return buf.getvalue()


def _save_part(
    parts: Path, index: int, frame: pd.DataFrame, diags: list[dict[str, Any]], theory: list[dict[str, Any]]
) -> None:
    stem = f"{index:05d}"
    _write_atomic(
        parts / f"{stem}.fd.csv", _csv(pd.DataFrame(diags, columns=list(FD_COLUMNS)), FD_COLUMNS, False)
    )
    _write_atomic(
        parts / f"{stem}.theory.csv",
        _csv(pd.DataFrame(theory, columns=list(THEORY_COLUMNS)), THEORY_COLUMNS, False),
    )
    timing = (
        frame.groupby(["case_id", "engine", "dtype", "order", "scheme"], dropna=False, sort=False)["seconds"]
        .sum()
        .reset_index()
    )
    _write_atomic(
        parts / f"{stem}.time.csv",
        _csv(timing, ["case_id", "engine", "dtype", "order", "scheme", "seconds"], False),
    )
    # the results part last: its presence marks the case as done for --resume
    _write_atomic(parts / f"{stem}.csv", _csv(frame, CSV_COLUMNS, False))


def _merge(parts: Path, n: int, name: str, columns: Sequence[str]) -> str:
    chunks = [",".join(columns) + "\n"]
    for i in range(n):
        p = parts / (f"{i:05d}{name}.csv")
        if p.exists():
            chunks.append(p.read_text(encoding="utf-8"))
    return "".join(chunks)


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self.start = time.perf_counter()

    def step(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(1, self.total))
        rate = self.done / max(1e-9, time.perf_counter() - self.start)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} cases, {rate:.1f}/s"
        )
        sys.stderr.flush()
        if self.done == self.total:
            sys.stderr.write("\n")


def _versions() -> dict[str, str]:
    import platform

    import hypothesis
    import sympy
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sympy": sympy.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "hypothesis": hypothesis.__version__,
        "platform": platform.platform(),
    }


def run_campaign(
    config: CampaignConfig,
    run_dir: str | Path,
    *,
    workers: int = 1,
    resume: bool = False,
    progress: bool | None = None,
    on_case: Callable[[int], None] | None = None,
    shard: tuple[int, int] | None = None,
    cases_from: str | Path | None = None,
    user_engines: Sequence[str] = (),
) -> CampaignResult:
    """Run (or resume) a campaign into ``run_dir`` and return its tables.

    ``resume=True`` reads ``config.json`` (and ``shard.json``, if any) from ``run_dir``
    (the passed ``config`` and ``shard`` are ignored), keeps the finished parts and runs
    only the missing cases. ``shard=(k, n)`` runs only the cases whose index is ``k``
    modulo ``n``: n machines with the same config and shards 0..n-1 cover the campaign,
    and :func:`merge_campaigns` joins their folders into the results one machine gives.
    ``cases_from`` (a run folder of the same config) takes the generated cases from its
    ``cases.json`` instead of drawing them, so that every shard runs the same list; a
    resumed run reads its own.

    Engines named by data files are built in only: ``config.engines`` (unless read from
    ``config.json`` on resume) and ``user_engines`` are the caller's, and only those may be
    ``package.module:attr`` specs. A resumed run whose ``config.json`` names another
    engine is refused (``ValueError``) before anything runs.
    """
    run_dir = Path(run_dir)
    parts = run_dir / "parts"
    if resume:
        cfg_path = run_dir / "config.json"
        if not cfg_path.exists():
            raise FileNotFoundError(f"--resume {run_dir}: no config.json there; is it a campaign folder?")
        config = CampaignConfig.from_json(json.loads(cfg_path.read_text()))
        for spec in config.engines:
            if spec not in user_engines:
                try:
                    refuse_unless_builtin(spec, f"{cfg_path} (field engines)")
                except ValueError as exc:
                    raise ValueError(
                        f"{exc}; if you started this run with --engines {spec} yourself, "
                        "resume with the same --engines"
                    ) from None
        shard_path = run_dir / "shard.json"
        shard = _check_shard(tuple(json.loads(shard_path.read_text()))) if shard_path.exists() else None
    elif parts.exists() and any(parts.iterdir()):
        raise FileExistsError(f"{run_dir} already holds a campaign; pass --resume or choose another folder")
    else:
        shard = _check_shard(shard) if shard is not None else None
    source = _cases_source(run_dir, config, resume, cases_from)  # checked before any file is made
    parts.mkdir(parents=True, exist_ok=True)
    _write_atomic(run_dir / "config.json", json.dumps(config.to_json(), indent=2))
    if shard is not None:
        _write_atomic(run_dir / "shard.json", json.dumps(list(shard)))
    trusted = frozenset(user_engines) | (frozenset() if resume else frozenset(config.engines))
    started = time.time()
    # Worker processes start (imports, about two seconds) while the cases are drawn here.
    pool = _PoolStarter(workers, config, parts, trusted) if workers > 1 else None
    try:
        tasks, problems = build_tasks(config, load_cases_file(source, config) if source else None)
    except BaseException:
        if pool is not None:
            pool.close()
        raise
    if source is None or Path(source).resolve() != (run_dir / CASES_FILE).resolve():
        save_cases_file(run_dir, tasks)
    _write_atomic(
        run_dir / "tasks.json",
        json.dumps({"cases": len(tasks), "corpus_problems": problems, "fingerprint": _fingerprint(tasks)}),
    )
    todo = [t for t in tasks if not (parts / f"{t.index:05d}.csv").exists()]
    if shard is not None:
        todo = [t for t in todo if t.index % shard[1] == shard[0]]
    show = (sys.stderr.isatty() and not os.environ.get("CI")) if progress is None else progress
    bar = _Progress(len(todo), show)
    if pool is None or len(todo) <= 1:
        if pool is not None:
            pool.close()
        _init_worker(config, parts, trusted)
        for task in todo:
            _work(task)
            bar.step()
            if on_case:
                on_case(task.index)
    else:
        with pool.get() as running:
            for index in running.imap_unordered(_work, todo, chunksize=1):
                bar.step()
                if on_case:
                    on_case(index)
    return _finish(run_dir, config, len(tasks), problems, started, {"workers": workers, "shard": shard})


def _cases_source(
    run_dir: Path, config: CampaignConfig, resume: bool, cases_from: str | Path | None
) -> Path | None:
    """Where the generated cases come from: ``cases_from``'s list (checked to be of the same
    config), the run's own list when resuming, or None (draw them)."""
    if cases_from is not None:
        src = Path(cases_from)
        cfg_path = src / "config.json"
        if not (src / CASES_FILE).exists() or not cfg_path.exists():
            raise ValueError(
                f"--cases-from {src}: no {CASES_FILE} and config.json there; expected the "
                "folder of a run (a shard) of this campaign"
            )
        ours = json.loads(json.dumps(config.to_json()))  # tuples as lists, as in the file
        differ = _differing_options(json.loads(cfg_path.read_text()), ours)
        if differ:
            raise ValueError(
                f"--cases-from {src}: that run's options differ in {', '.join(differ)}; "
                "run with the same options"
            )
        return src / CASES_FILE
    if resume and (run_dir / CASES_FILE).exists():
        return run_dir / CASES_FILE
    return None


def _differing_options(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The names of the options two ``config.json`` contents disagree on, sorted."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _fingerprint(tasks: Sequence[TaskCase]) -> str:
    """A hash of the case list: shards merge only when they ran the same cases."""
    digest = hashlib.sha256()
    for t in tasks:
        digest.update(f"{t.case_id}|{to_text(t.expr)}|{t.dtypes}|{t.orders}|{t.engines}|".encode())
        digest.update(np.ascontiguousarray(t.points, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _check_shard(shard: Sequence[int]) -> tuple[int, int]:
    if (
        len(shard) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
        or not 0 <= shard[0] < shard[1]
    ):
        raise ValueError(f"shard={tuple(shard)!r}: expected (k, n) with 0 <= k < n, e.g. (0, 4)")
    return int(shard[0]), int(shard[1])


def merge_campaigns(run_dir: str | Path, sources: Sequence[str | Path]) -> CampaignResult:
    """Join the folders of shards of one campaign (same ``config.json``) into ``run_dir``.

    Copies every finished case's part files and builds ``results.csv`` and the other
    tables from them, byte-identical to a one-machine run of the same config when every
    case is present. Cases no shard finished are listed in the metadata under
    ``missing_cases``; ``run_campaign(..., resume=True)`` on ``run_dir`` runs them.
    Raises ``ValueError`` when the sources are not shards of one campaign.
    """
    run_dir = Path(run_dir)
    if not sources:
        raise ValueError("sources=[]: name at least one shard folder to merge")
    configs = []
    for src in map(Path, sources):
        cfg = src / "config.json"
        if not cfg.exists():
            raise ValueError(f"{src}: no config.json there; expected a campaign (shard) folder")
        configs.append((src, json.loads(cfg.read_text())))
    first_src, first = configs[0]
    for src, cfg in configs[1:]:
        differ = _differing_options(first, cfg)
        if differ:
            raise ValueError(
                f"{src} and {first_src} are not shards of one campaign: their config.json "
                f"differ in {', '.join(differ)}; run every shard with the same options"
            )
    prints = {}
    for src, _ in configs:
        tasks_file = src / "tasks.json"
        if tasks_file.exists():
            prints[src] = json.loads(tasks_file.read_text()).get("fingerprint")
    if len(set(prints.values())) > 1:
        raise ValueError(
            f"shards {', '.join(map(str, prints))} drew different case lists from the same "
            "options (different diffharness, Hypothesis or corpus versions?); run every "
            "shard with the same versions and the same cases/ folder"
        )
    parts = run_dir / "parts"
    if parts.exists() and any(parts.iterdir()):
        raise FileExistsError(f"{run_dir} already holds a campaign; choose another folder")
    parts.mkdir(parents=True, exist_ok=True)
    for src, _ in configs:
        for part in sorted((src / "parts").glob("*.csv")):
            target = parts / part.name
            data = part.read_bytes()
            if target.exists() and target.read_bytes() != data:
                raise ValueError(
                    f"{part} and the same case from another shard differ; shards of one "
                    "campaign must come from the same diffharness and library versions"
                )
            target.write_bytes(data)
    config = CampaignConfig.from_json(first)
    _write_atomic(run_dir / "config.json", json.dumps(config.to_json(), indent=2))
    tasks_file = first_src / "tasks.json"
    if tasks_file.exists():
        info = json.loads(tasks_file.read_text())
        n, problems = int(info["cases"]), list(info["corpus_problems"])
    else:
        tasks, problems = build_tasks(config)
        n = len(tasks)
    _write_atomic(
        run_dir / "tasks.json",
        json.dumps(
            {"cases": n, "corpus_problems": problems, "fingerprint": next(iter(prints.values()), None)}
        ),
    )
    missing = [i for i in range(n) if not (parts / f"{i:05d}.csv").exists()]
    return _finish(
        run_dir,
        config,
        n,
        problems,
        time.time(),
        {"merged_from": [str(s) for s in sources], "missing_cases": missing},
    )


def _finish(
    run_dir: Path,
    config: CampaignConfig,
    n: int,
    problems: list[str],
    started: float,
    extra: dict[str, Any],
) -> CampaignResult:
    """Join the part files of cases 0..n-1 into the run's tables and metadata."""
    parts = run_dir / "parts"
    _write_atomic(run_dir / "results.csv", _merge(parts, n, "", CSV_COLUMNS))
    _write_atomic(run_dir / "fd_diagnostics.csv", _merge(parts, n, ".fd", FD_COLUMNS))
    _write_atomic(
        run_dir / "timings.csv",
        _merge(parts, n, ".time", ["case_id", "engine", "dtype", "order", "scheme", "seconds"]),
    )
    theory_long = pd.read_csv(io.StringIO(_merge(parts, n, ".theory", THEORY_COLUMNS)))
    results = pd.read_csv(run_dir / "results.csv", keep_default_na=False, na_values=[""])
    results["verdict"] = results["verdict"].fillna("")
    metadata = {
        "versions": _versions(),
        "config": config.to_json(),
        "seed": config.seed,
        **extra,
        "cases": n,
        "corpus_problems": problems,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - started, 2),
        "command": " ".join(sys.argv),
    }
    theory = (
        theory_long.groupby(["dtype", "scheme", "h"])["rel_error"].median().reset_index()
        if len(theory_long)
        else pd.DataFrame(columns=["dtype", "scheme", "h", "rel_error"])
    )
    return CampaignResult(
        run_dir,
        results,
        pd.read_csv(run_dir / "fd_diagnostics.csv"),
        theory,
        pd.read_csv(run_dir / "timings.csv"),
        metadata,
    )
