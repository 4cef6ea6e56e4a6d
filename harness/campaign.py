"""Campaigns: many cases through many engines into one long pandas table, on disk as it goes.

A campaign is fully described by a :class:`CampaignConfig` (saved as ``config.json`` in the
run folder). Its cases are the corpus files plus ``n_cases`` generated ones, drawn by
Hypothesis from ``seed`` in the parent process, so the case list, and therefore
``results.csv``, is byte-identical for the same seed whatever the number of workers.

Each finished case is written at once to ``parts/NNNNN*.csv`` (atomically), then recorded
(sizes and SHA-256) in ``parts/NNNNN.json``, so an interrupted run keeps what it finished
and ``resume`` skips those cases, after checking each against its record. A case that
raises or runs past ``case_timeout`` seconds becomes a row with verdict ``error`` or
``timeout``, and a worker process that dies twice on a case an ``error`` row; none stops
the run. ``results.csv`` holds every column of :data:`harness.schema.RESULT_COLUMNS` except
``seconds``, which differs between runs and so goes to ``timings.csv``. The tables are
joined from the parts file by file; once every case is in, ``complete.json`` records them
and ``parts/`` is removed.

A run folder is data that may come from anyone: its files are read bounded, never through
a link, and the engines its ``config.json`` names must be built in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.check import compare_rows
from harness.csvtext import columns_csv, frame_csv
from harness.dtypes import dtype_info, round_array
from harness.engines import engine_from_spec, refuse_unless_builtin
from harness.expr import Expr, to_text, variables
from harness.fd.stencils import DEFAULT_H_GRID, SCHEMES
from harness.fd.tables import fd_tables
from harness.forkserver import fork_context
from harness.limits import (
    MAX_CASES,
    MAX_POINTS,
    DataFileError,
    TimeLimitExceeded,
    check_seconds,
    import_lazy_modules,
    read_data_bytes,
    read_data_file,
    time_limit,
)
from harness.ops import DEFAULT_OPS, JUMP_OPS, KINK_OPS, OPS
from harness.parser import parse
from harness.rows import ResultRows
from harness.runlock import run_lock
from harness.schema import CSV_COLUMNS, FD_COLUMNS, RESULT_COLUMNS, THEORY_COLUMNS, TIMING_COLUMNS
from harness.truth import truth_engine

__all__ = [
    "EXECUTORS",
    "CampaignConfig",
    "CampaignResult",
    "TaskCase",
    "generate_cases",
    "load_cases_file",
    "merge_campaigns",
    "run_campaign",
    "save_cases_file",
]


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
        _check_field_types(self)
        for d in self.dtypes:
            dtype_info(d)
        bad = [s for s in self.schemes if s not in SCHEMES]
        if bad:
            raise ValueError(f"schemes={bad} unknown; expected some of {list(SCHEMES)}")
        if not 0 <= self.n_cases <= MAX_CASES:
            raise ValueError(f"n_cases={self.n_cases}: expected 0 to {MAX_CASES}")
        for o in self.orders:
            if o not in (1, 2):
                raise ValueError(f"orders={self.orders}: each order must be 1 or 2")
        unknown_ops = [o for o in self.ops if o not in OPS]
        if unknown_ops:
            raise ValueError(f"ops={unknown_ops} unknown; expected some of {list(OPS)}")
        if not 1 <= self.n_points <= MAX_POINTS:
            raise ValueError(f"n_points={self.n_points}: expected 1 to {MAX_POINTS}")
        if not 1 <= self.max_size <= MAX_EXPR_SIZE:
            raise ValueError(f"max_size={self.max_size}: expected 1 to {MAX_EXPR_SIZE}")
        if any(not (abs(h) < 1e300 and math.isfinite(h) and h > 0) for h in self.h_grid):
            raise ValueError(f"h_grid={list(self.h_grid)}: expected finite steps > 0")
        check_seconds(self.case_timeout, "case_timeout")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CampaignConfig:
        """The config saved by :meth:`to_json`; ``ValueError`` names a field of a wrong type."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object of campaign options, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        return cls(**kwargs)


MAX_EXPR_SIZE = 200
"""Largest ``max_size`` (nodes of a generated expression) a campaign may ask for."""


def _check_field_types(config: CampaignConfig) -> None:
    """``ValueError`` naming the first field whose value is not of its declared type
    (``config.json`` is a data file: any field may hold anything)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = f.default
        if isinstance(default, tuple):
            item = type(default[0]) if default else str
            ok = isinstance(value, tuple) and all(
                isinstance(v, item) and not isinstance(v, bool)
                or (item is float and isinstance(v, int) and not isinstance(v, bool))
                for v in value
            )
            expected = f"a list of {item.__name__}"
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            expected = "a number"
        else:
            ok = isinstance(value, type(default)) and not isinstance(value, bool)
            expected = f"a value of type {type(default).__name__}"
        if not ok:
            raise ValueError(f"{f.name}={value!r}: expected {expected}")


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
    """A finished (or resumed) campaign: its folder and its tables.

    ``judged`` holds the rows of results.csv that carry a verdict (the engines under test,
    and ``error``/``timeout`` rows) and ``error_table`` the report's error-against-h table of
    its finite-difference rows: both are built reading results.csv in chunks, keeping of
    each finite-difference row only its relative error (8 bytes, where the row takes a few
    hundred in a DataFrame). ``results``, the whole long table, is read from results.csv
    when first asked for.
    """

    run_dir: Path
    judged: pd.DataFrame
    fd_diagnostics: pd.DataFrame
    theory: pd.DataFrame
    timings: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)
    error_table: pd.DataFrame | None = None

    @functools.cached_property
    def results(self) -> pd.DataFrame:
        """results.csv, every row (it grows with the run: a 2,000-case run is about 1 GB)."""
        results = pd.read_csv(self.run_dir / "results.csv", keep_default_na=False, na_values=[""])
        results["verdict"] = results["verdict"].fillna("")
        return results


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
        edges=True,
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
    """The generated cases saved by :func:`save_cases_file` (``path`` is the file).

    Bounded like every data file: at most :func:`_cases_file_limit` bytes, exactly
    ``config.n_cases`` cases of ``config.n_points`` points over the config's variables.
    """
    limit = _cases_file_limit(config)
    try:
        items = json.loads(read_data_file(path, limit, follow_symlinks=False))["generated"]
        if not isinstance(items, list):
            raise TypeError("'generated' is not a list")
        if len(items) != config.n_cases:
            raise ValueError(
                f"{path} holds {len(items)} generated cases, but the campaign asks for "
                f"n_cases={config.n_cases}; use the same --cases as the run that wrote it"
            )
        cases = []
        for k, item in enumerate(items):
            expr = parse(item["expr"])
            raw = item["points"]
            if not isinstance(raw, list) or len(raw) != config.n_points:
                raise ValueError(f"case {k} has {len(raw)} points, expected n_points={config.n_points}")
            pts = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
            if pts.shape[1] != len(variables(expr)) or pts.shape[1] > len(config.variables):
                raise ValueError(f"case {k}: points of {pts.shape[1]} values for {to_text(expr)!r}")
            cases.append((expr, pts))
    except DataFileError as exc:
        raise ValueError(f"{exc}; expected the {CASES_FILE} of a run") from None
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(
            f"{path}: not a readable case list ({type(exc).__name__}: {str(exc)[:200]}); "
            "expected the cases.json of a run"
        ) from None
    return cases


def _cases_file_limit(config: CampaignConfig) -> int:
    """Bytes a ``cases.json`` of ``config`` may hold: generous per case (about 40 bytes a
    number, 80 an expression node), so that only a file of other cases reaches it."""
    per_case = 200 + 80 * config.max_size + 40 * config.n_points * len(config.variables)
    return 1000 + config.n_cases * per_case


# ---- one case -----------------------------------------------------------------------




def _error_row(task: TaskCase, verdict: str, message: str) -> ResultRows:
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
    return ResultRows.of(1, row)


def _timeout_message(config: CampaignConfig) -> str:
    return f"case ran past {config.case_timeout} s"


def run_case(
    task: TaskCase, config: CampaignConfig, trusted: Collection[str] | None = None
) -> tuple[int, ResultRows, list[dict[str, Any]], list[dict[str, Any]]]:
    """Every engine, dtype, order and scheme on one case; never raises.

    ``trusted`` are the engine specs the user named (default: ``config.engines``); any
    other engine of the case comes from a case file and must be built in.
    """
    trusted = config.engines if trusted is None else trusted
    frames: list[ResultRows] = []
    diags: list[dict[str, Any]] = []
    theory: list[dict[str, Any]] = []
    try:
        with time_limit(config.case_timeout):
            for dtype in task.dtypes:
                for spec in task.engines:
                    if spec not in trusted:
                        refuse_unless_builtin(spec, f"the case file of case {task.case_id}")
                    try:
                        engine = engine_from_spec(spec)
                    except ImportError as exc:  # an optional engine (jax) not installed
                        frames.append(_error_row(task, "skipped", f"{spec}: {exc}"))
                        continue
                    for order in task.orders:
                        start = time.perf_counter()
                        rows = compare_rows(
                            engine,
                            task.expr,
                            task.points,
                            dtype=dtype,
                            order=order,
                            case_id=task.case_id,
                            source=task.source,
                            truth=truth_engine(),
                        )
                        frames.append(rows.with_column("seconds", time.perf_counter() - start))
                if config.schemes:
                    f, d, th = fd_tables(
                        task.case_id, task.source, task.expr, task.points, dtype=dtype,
                        schemes=config.schemes, h_grid=config.h_grid, truth=truth_engine(),
                    )
                    frames += f
                    diags += d
                    theory += th
    except TimeLimitExceeded:
        frames.append(_error_row(task, "timeout", _timeout_message(config)))
    except Exception as exc:  # noqa: BLE001 - a bad case must not take the run down
        frames.append(_error_row(task, "error", f"{type(exc).__name__}: {exc}"))
    rows = ResultRows.join(frames) if frames else _error_row(task, "error", "no rows")
    return task.index, rows, diags, theory


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
    import_lazy_modules()
    _WORKER_CONFIG = config


def _work(task: TaskCase) -> int:
    """Run one case and write its part files here, in the worker: the parent only counts,
    so writing CSV does not serialise the workers behind one process."""
    assert _WORKER_CONFIG is not None and _WORKER_PARTS is not None
    _save_part(_WORKER_PARTS, *run_case(task, _WORKER_CONFIG, _WORKER_TRUSTED))
    return task.index


def _worker_main(conn: Any, config: CampaignConfig, parts: Path, trusted: frozenset[str]) -> None:
    """A worker process: run each case the parent sends, answer with its index."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers on Ctrl-C
    _init_worker(config, parts, trusted)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(_work(task))


@dataclass
class _Slot:
    process: Any
    conn: Any
    task: TaskCase | None = None
    started: float = 0.0


class _Workers:
    """Worker processes, each running one case at a time, watched by the parent.

    Each worker has its own pipe, so the parent knows which case every worker runs
    (``multiprocessing.Pool`` waits forever for a worker that died). A worker that dies
    (killed, out of memory, a crash in C code) is replaced and its case runs once more; if
    it dies again, the case becomes an ``error`` row saying so. A worker still on its case
    well past ``case_timeout`` (the alarm inside it did not stop the case: a long call into
    C code) is killed and the case becomes a ``timeout`` row. The processes start in a
    thread, while the parent draws the cases.
    """

    def __init__(self, workers: int, config: CampaignConfig, parts: Path, trusted: frozenset[str]) -> None:
        self._n, self._config, self._parts, self._trusted = workers, config, parts, trusted
        self._slots: list[_Slot] = []
        self._error: BaseException | None = None
        self._ctx: Any = None

        def start() -> None:
            try:
                self._ctx = fork_context()
                self._slots = [self._start() for _ in range(workers)]
            except BaseException as exc:  # noqa: BLE001 - re-raised in run()
                self._error = exc

        self._thread = threading.Thread(target=start, name="diffharness-workers", daemon=True)
        self._thread.start()

    def _start(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(child, self._config, self._parts, self._trusted), daemon=True
        )
        process.start()
        child.close()
        return _Slot(process, parent)

    def _replace(self, slot: _Slot) -> None:
        _stop(slot)
        fresh = self._start()
        slot.process, slot.conn, slot.task = fresh.process, fresh.conn, None

    def run(self, todo: Sequence[TaskCase], done: Callable[[int], None]) -> None:
        """Run every case of ``todo``; ``done(index)`` after each one's parts are written."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        queue = list(reversed(todo))  # popped from the end: in the order given
        deaths: dict[int, int] = {}
        limit = self._config.case_timeout + max(5.0, self._config.case_timeout / 4)
        while queue or any(s.task is not None for s in self._slots):
            for slot in self._slots:
                if slot.task is None and queue:
                    if not slot.process.is_alive():
                        self._replace(slot)
                    task = queue.pop()
                    try:
                        slot.conn.send(task)
                    except OSError:  # died since the check: give it to a fresh worker
                        queue.append(task)
                        self._replace(slot)
                        continue
                    slot.task, slot.started = task, time.monotonic()
            busy = [s for s in self._slots if s.task is not None]
            if not busy:
                continue
            wait_s = max(0.0, min(s.started + limit for s in busy) - time.monotonic())
            ready = multiprocessing.connection.wait(
                [s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=wait_s
            )
            for slot in busy:
                if slot.task is None:
                    continue
                task = slot.task
                if slot.conn in ready:
                    try:
                        index = slot.conn.recv()
                    except (EOFError, OSError):
                        pass  # died: handled below with its exit code
                    else:
                        slot.task = None
                        done(index)
                        continue
                if slot.process.sentinel in ready or slot.conn in ready:
                    slot.process.join()
                    why = _exit_reason(slot.process.exitcode)
                    self._replace(slot)
                    deaths[task.index] = deaths.get(task.index, 0) + 1
                    if deaths[task.index] == 1:
                        queue.append(task)  # next: a fresh worker reruns it once
                    else:
                        message = f"the worker process running this case died twice ({why})"
                        _save_part(self._parts, *_failed_case(task, "error", message))
                        done(task.index)
                elif time.monotonic() > slot.started + limit:
                    self._replace(slot)
                    _save_part(self._parts, *_failed_case(task, "timeout", _timeout_message(self._config)))
                    done(task.index)

    def close(self) -> None:
        """Stop every worker (at once: a case still running is left for --resume)."""
        self._thread.join()
        for slot in self._slots:
            _stop(slot)


def _stop(slot: _Slot) -> None:
    if slot.process.is_alive():
        slot.process.kill()
    slot.process.join()
    slot.conn.close()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _failed_case(
    task: TaskCase, verdict: str, message: str
) -> tuple[int, ResultRows, list[dict[str, Any]], list[dict[str, Any]]]:
    """What :func:`run_case` returns for a case stopped from outside: one row saying why."""
    return task.index, _error_row(task, verdict, message), [], []


# ---- Dask -----------------------------------------------------------------------------

EXECUTORS: tuple[str, ...] = ("local", "dask")
"""Where a campaign's cases run: here (``local``, worker processes) or on a Dask cluster."""


def _case_on_a_dask_worker(
    task: TaskCase, config: CampaignConfig, trusted: frozenset[str]
) -> tuple[int, ResultRows, list[dict[str, Any]], list[dict[str, Any]]]:
    """One case on a Dask worker: :func:`run_case`'s tables, returned for the parent to
    write (the worker need not share the run folder's file system)."""
    import torch

    torch.set_num_threads(1)
    import_lazy_modules()
    return run_case(task, config, trusted)


def _run_on_dask(
    todo: Sequence[TaskCase],
    config: CampaignConfig,
    parts: Path,
    trusted: frozenset[str],
    done: Callable[[int], None],
    *,
    scheduler: str | None,
    workers: int,
) -> None:
    """Run ``todo`` on Dask (``distributed``): the scheduler at ``scheduler``, or a
    ``LocalCluster`` of ``workers`` single-threaded processes. Each case's parts are
    written here, in the order the cases finish, by the same code as a local run's; a
    case whose worker died (Dask gives up after its retries) becomes an ``error`` row.
    Dask runs a case in a worker thread, where no alarm can stop it: ``--timeout`` then
    bounds nothing inside a case (a local run's parent kills a worker that runs too long).
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError(
            "executor='dask' needs the optional package distributed; install it with "
            "pip install -e '.[dask]' (or pip install distributed)"
        ) from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = {
            client.submit(_case_on_a_dask_worker, task, config, trusted, pure=False): task for task in todo
        }
        for future in as_completed(futures):
            task = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker is a row, not our crash
                result = _failed_case(task, "error", f"the Dask worker running this case failed: {exc}")
            _save_part(parts, *result)
            done(task.index)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---- part files ----------------------------------------------------------------------

PART_KINDS: tuple[str, ...] = ("", ".fd", ".time", ".theory")
"""Case i's part files are ``parts/{i:05d}{kind}.csv``; ``parts/{i:05d}.json`` records
their sizes and SHA-256, and is written last, so that it marks the case as done."""
MAX_PART_BYTES = 1 << 30
"""Largest part file a record may name (a case of 1,000 points, 2 variables, every engine,
dtype, order, scheme and step stays far below it)."""
MAX_RUN_JSON_BYTES = 1_000_000
"""Largest config.json, shard.json, tasks.json or part record read from a run folder."""
COMPLETE_FILE = "complete.json"
"""Written when a run has every case: sizes and SHA-256 of its tables (the parts are gone)."""
TABLES: tuple[str, ...] = ("results.csv", "fd_diagnostics.csv", "timings.csv", "theory.csv")


class DamagedPart(ValueError):
    """A part file (or its record) of a run folder does not match what was written."""


def _write_atomic(path: Path, text: str | bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    os.replace(tmp, path)


def _part_names(index: int) -> list[str]:
    return [f"{index:05d}{kind}.csv" for kind in PART_KINDS]


def _save_part(
    parts: Path, index: int, rows: ResultRows, diags: list[dict[str, Any]], theory: list[dict[str, Any]]
) -> None:
    texts = [
        rows.csv(CSV_COLUMNS),
        frame_csv(pd.DataFrame(diags, columns=list(FD_COLUMNS)), FD_COLUMNS, False),
        # one call of compare gives all rows of a group, each with the call's seconds
        columns_csv(_transpose(rows.timings(), TIMING_COLUMNS), TIMING_COLUMNS, False),
        columns_csv(_transpose([tuple(r[c] for c in THEORY_COLUMNS) for r in theory], THEORY_COLUMNS),
                    THEORY_COLUMNS, False),
    ]
    _write_case_parts(parts, index, [t.encode("utf-8") for t in texts])


def _transpose(records: Sequence[tuple[Any, ...]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Records (tuples in ``names`` order) as one array per column; text as object arrays."""
    if not records:
        return {n: np.empty(0, dtype=object) for n in names}
    return {n: np.array(values, dtype=object if isinstance(values[0], str) else None)
            for n, values in zip(names, zip(*records, strict=True), strict=True)}


def _write_case_parts(parts: Path, index: int, files: Sequence[bytes]) -> None:
    """Write case ``index``'s part files (in :data:`PART_KINDS` order), then their record."""
    record = {}
    for name, data in zip(_part_names(index), files, strict=True):
        _write_atomic(parts / name, data)
        record[name] = [len(data), hashlib.sha256(data).hexdigest()]
    _write_atomic(parts / f"{index:05d}.json", json.dumps(record, sort_keys=True))


def _read_case_parts(parts: Path, index: int) -> list[bytes] | None:
    """The part files of case ``index`` in :data:`PART_KINDS` order, each checked against
    the case's record; None when the case has no record (it never finished). Raises
    :class:`DamagedPart` naming the file and what is wrong with it."""
    record_path = parts / f"{index:05d}.json"
    if not os.path.lexists(record_path):
        return None
    try:
        record = json.loads(read_data_file(record_path, MAX_RUN_JSON_BYTES, follow_symlinks=False))
    except (ValueError, RecursionError) as exc:
        raise DamagedPart(f"{record_path}: not a readable part record ({str(exc)[:120]})") from None
    names = _part_names(index)
    if not (
        isinstance(record, dict)
        and sorted(record) == sorted(names)
        and all(
            isinstance(v, list)
            and len(v) == 2
            and isinstance(v[0], int)
            and 0 <= v[0] <= MAX_PART_BYTES
            and isinstance(v[1], str)
            for v in record.values()
        )
    ):
        raise DamagedPart(f"{record_path}: expected the sizes and SHA-256 of {', '.join(names)}")
    out = []
    for name in names:
        size, digest = record[name]
        path = parts / name
        try:
            data = read_data_bytes(path, size, follow_symlinks=False)
        except DataFileError as exc:
            raise DamagedPart(str(exc)) from None
        if len(data) != size:
            raise DamagedPart(f"{path}: {len(data)} bytes, but its record {record_path.name} says {size}")
        if hashlib.sha256(data).hexdigest() != digest:
            raise DamagedPart(f"{path}: contents differ from its record {record_path.name} (SHA-256)")
        out.append(data)
    return out


def _remove_case_parts(parts: Path, index: int) -> None:
    for name in [f"{index:05d}.json", *_part_names(index)]:
        with contextlib.suppress(FileNotFoundError):
            (parts / name).unlink()


def _read_json(path: Path, what: str) -> Any:
    """A small JSON file of a run folder (never a link, at most MAX_RUN_JSON_BYTES)."""
    try:
        return json.loads(read_data_file(path, MAX_RUN_JSON_BYTES, follow_symlinks=False))
    except DataFileError as exc:
        raise ValueError(f"{exc}; expected the {what} of a diffharness run") from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            f"{path}: not valid JSON ({type(exc).__name__}: {str(exc)[:120]}); expected the {what} "
            "of a diffharness run"
        ) from None


class _HashingWriter:
    """A binary file written at ``path`` + ``.tmp`` and moved into place on :meth:`close`,
    hashing what goes through it."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path, self.tmp = path, path.with_suffix(path.suffix + ".tmp")
        self.fh = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()
        self.digest, self.size = hashlib.sha256(), 0
        self.write((",".join(header) + "\n").encode("utf-8"))

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.digest.update(data)
        self.size += len(data)

    def close(self) -> list[Any]:
        self.fh.close()
        os.replace(self.tmp, self.path)
        return [self.size, self.digest.hexdigest()]


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
    workers: int = 0,
    resume: bool = False,
    progress: bool | None = None,
    on_case: Callable[[int], None] | None = None,
    shard: tuple[int, int] | None = None,
    cases_from: str | Path | None = None,
    user_engines: Sequence[str] = (),
    executor: str = "local",
    scheduler: str | None = None,
) -> CampaignResult:
    """Run (or resume) a campaign into ``run_dir`` and return its tables.

    ``executor="local"`` runs the cases here: ``workers=0`` in this process (no watchdog:
    a case stuck inside C code, where its alarm cannot stop it, holds the run; monkeypatched
    op tables are seen), ``workers=N`` in N worker processes that the parent watches (a
    worker that dies or hangs is replaced, see :class:`_Workers`). ``"dask"`` sends
    each one to a Dask cluster (:func:`_run_on_dask`: the scheduler at ``scheduler``, or a
    ``LocalCluster`` of ``workers`` processes, at least one) and writes its parts here as it comes back,
    so the run folder, ``results.csv`` included, is the same as a local run's and
    ``resume`` works on it.

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
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r}: expected one of {', '.join(EXECUTORS)}")
    if scheduler is not None and executor != "dask":
        raise ValueError(f"scheduler={scheduler!r} is for executor='dask'; pass executor='dask' too")
    if not 0 <= workers <= max_workers():
        raise ValueError(f"workers={workers}: expected 0 to {max_workers()} (4 per CPU core, at least 64)")
    with contextlib.ExitStack() as hold:  # one writer per run folder: see harness.runlock
        hold.enter_context(run_lock(run_dir, create=False))  # an existing folder: from here
        parts = run_dir / "parts"
        notes: list[str] = []  # damaged files resume found, and what it did about them
        if os.path.islink(parts):
            raise ValueError(f"{parts}: a symlink; a run folder's parts/ must be a folder inside it")
        started_with: dict[str, Any] = {}
        if resume:
            config, shard = _resumed_config(run_dir, user_engines)
            started_with = _started_with(run_dir, config)
            complete = _check_complete(run_dir)
            if complete == "":
                return _load_complete(run_dir, config, {"workers": workers, "shard": shard})
            if complete is not None:
                notes.append(
                    f"{complete}; the run's parts were removed when it completed, so every case runs again"
                )
                (run_dir / COMPLETE_FILE).unlink()
        elif (parts.exists() and any(parts.iterdir())) or os.path.lexists(run_dir / COMPLETE_FILE):
            raise FileExistsError(
                f"{run_dir} already holds a campaign; pass --resume or choose another folder"
            )
        else:
            shard = _check_shard(shard) if shard is not None else None
        source = _cases_source(run_dir, config, resume, cases_from)  # checked before any file is made
        hold.enter_context(run_lock(run_dir))  # a new folder: made now, and held
        parts.mkdir(parents=True, exist_ok=True)
        _write_atomic(run_dir / "config.json", json.dumps(config.to_json(), indent=2))
        if shard is not None:
            _write_atomic(run_dir / "shard.json", json.dumps(list(shard)))
        trusted = frozenset(user_engines) | (frozenset() if resume else frozenset(config.engines))
        started = time.time()
        # Worker processes start (imports, about three seconds) while the cases are drawn here.
        pool = _Workers(workers, config, parts, trusted) if workers > 0 and executor == "local" else None
        try:
            tasks, problems = build_tasks(config, load_cases_file(source, config) if source else None)
            if source is None or Path(source).resolve() != (run_dir / CASES_FILE).resolve():
                save_cases_file(run_dir, tasks)
            fingerprint = _fingerprint(tasks)
            if started_with.get("fingerprint") not in (None, fingerprint):
                raise ValueError(
                    f"{run_dir / CASES_FILE}: the cases of this run (its {CASES_FILE} and the corpus "
                    f"{', '.join(config.corpus) or '-'}) differ from those it started with (tasks.json "
                    "records their fingerprint); restore them, or start a new run"
                )
            info = {
                "cases": len(tasks),
                "corpus_problems": problems,
                "fingerprint": fingerprint,
                "config_sha256": _config_digest(config),
            }
            _write_atomic(run_dir / "tasks.json", json.dumps(info))
            todo = []
            for task in tasks:
                if shard is not None and task.index % shard[1] != shard[0]:
                    continue
                try:
                    finished = _read_case_parts(parts, task.index) is not None
                except DamagedPart as exc:
                    notes.append(f"{exc}; case {task.case_id} runs again")
                    _remove_case_parts(parts, task.index)
                    finished = False
                if not finished:
                    todo.append(task)
            show = (sys.stderr.isatty() and not os.environ.get("CI")) if progress is None else progress
            bar = _Progress(len(todo), show)

            def done(index: int) -> None:
                bar.step()
                if on_case:
                    on_case(index)

            if executor == "dask":
                _run_on_dask(todo, config, parts, trusted, done, scheduler=scheduler, workers=max(1, workers))
            elif pool is None or not todo:
                if pool is not None:
                    pool.close()
                    pool = None
                _init_worker(config, parts, trusted)
                for task in todo:
                    _work(task)
                    done(task.index)
            else:
                pool.run(todo, done)
        finally:
            if pool is not None:
                pool.close()
        extra = {"workers": workers, "shard": shard, "damaged": notes}
        return _finish(run_dir, config, len(tasks), problems, started, extra, remove_parts=shard is None)


def _config_digest(config: CampaignConfig) -> str:
    return hashlib.sha256(json.dumps(config.to_json(), indent=2).encode("utf-8")).hexdigest()


def _started_with(run_dir: Path, config: CampaignConfig) -> dict[str, Any]:
    """What ``tasks.json`` recorded when the run started ({} when it cannot be read: it is
    written again). ``ValueError`` when ``config.json`` no longer holds that config."""
    try:
        info = _tasks_info(run_dir / "tasks.json")
    except ValueError:
        return {}
    recorded = info.get("config_sha256")
    if recorded is not None and recorded != _config_digest(config):
        raise ValueError(
            f"{run_dir / 'config.json'}: differs from the config this run started with (tasks.json "
            "records its SHA-256); restore it, or start a new run"
        )
    return info


def max_workers() -> int:
    """Most worker processes a run may start: 4 per CPU core, at least 64."""
    return max(64, 4 * (os.cpu_count() or 1))


def _resumed_config(
    run_dir: Path, user_engines: Sequence[str]
) -> tuple[CampaignConfig, tuple[int, int] | None]:
    """The config and shard a run folder holds, checked as the data they are."""
    cfg_path = run_dir / "config.json"
    if not os.path.lexists(cfg_path):
        raise FileNotFoundError(f"--resume {run_dir}: no config.json there; is it a campaign folder?")
    try:
        config = CampaignConfig.from_json(_read_json(cfg_path, "config.json"))
    except ValueError as exc:
        raise ValueError(exc if str(exc).startswith(str(cfg_path)) else f"{cfg_path}: {exc}") from None
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
    if not os.path.lexists(shard_path):
        return config, None
    raw = _read_json(shard_path, "shard.json")
    try:
        return config, _check_shard(tuple(raw) if isinstance(raw, list) else ())
    except ValueError as exc:
        raise ValueError(f"{shard_path}: {exc}") from None


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
        theirs = _read_json(cfg_path, "config.json")
        differ = _differing_options(theirs if isinstance(theirs, dict) else {}, ours)
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
    Raises ``ValueError`` when the sources are not shards of one campaign, or when a part
    file of one does not match its record (naming it).
    """
    run_dir = Path(run_dir)
    if not sources:
        raise ValueError("sources=[]: name at least one shard folder to merge")
    configs = []
    for src in map(Path, sources):
        cfg = src / "config.json"
        if not os.path.lexists(cfg):
            raise ValueError(f"{src}: no config.json there; expected a campaign (shard) folder")
        data = _read_json(cfg, "config.json")
        try:
            CampaignConfig.from_json(data)
        except ValueError as exc:
            raise ValueError(f"{cfg}: {exc}") from None
        configs.append((src, data))
    first_src, first = configs[0]
    for src, cfg in configs[1:]:
        differ = _differing_options(first, cfg)
        if differ:
            raise ValueError(
                f"{src} and {first_src} are not shards of one campaign: their config.json "
                f"differ in {', '.join(differ)}; run every shard with the same options"
            )
    infos = {}
    for src, _ in configs:
        tasks_file = src / "tasks.json"
        if os.path.lexists(tasks_file):
            infos[src] = _tasks_info(tasks_file)
    prints = {src: info.get("fingerprint") for src, info in infos.items()}
    if len(set(prints.values())) > 1:
        raise ValueError(
            f"shards {', '.join(map(str, prints))} drew different case lists from the same "
            "options (different diffharness, Hypothesis or corpus versions?); run every "
            "shard with the same versions and the same cases/ folder"
        )
    with run_lock(run_dir):  # one writer per run folder: see harness.runlock
        parts = run_dir / "parts"
        if (parts.exists() and any(parts.iterdir())) or os.path.lexists(run_dir / COMPLETE_FILE):
            raise FileExistsError(f"{run_dir} already holds a campaign; choose another folder")
        config = CampaignConfig.from_json(first)
        if first_src in infos:
            n, problems = infos[first_src]["cases"], infos[first_src]["corpus_problems"]
        else:
            tasks, problems = build_tasks(config)
            n = len(tasks)
        parts.mkdir(parents=True, exist_ok=True)
        merged: dict[int, list[str]] = {}  # the SHA-256 of each case's files, from any shard
        for src, _ in configs:
            for i in range(n):
                try:
                    files = _read_case_parts(src / "parts", i)
                except DamagedPart as exc:
                    again = f"diffharness run --resume {src}"
                    raise ValueError(f"{exc}; run its case again with: {again}") from None
                if files is None:
                    continue
                digests = [hashlib.sha256(data).hexdigest() for data in files]
                if i in merged:
                    if merged[i] != digests:
                        raise ValueError(
                            f"{src / 'parts' / _part_names(i)[0]} and the same case from another shard "
                            "differ; shards of one campaign must come from the same diffharness and "
                            "library versions"
                        )
                    continue
                _write_case_parts(parts, i, files)
                merged[i] = digests
        _write_atomic(run_dir / "config.json", json.dumps(config.to_json(), indent=2))
        _write_atomic(
            run_dir / "tasks.json",
            json.dumps(
                {"cases": n, "corpus_problems": problems, "fingerprint": next(iter(prints.values()), None)}
            ),
        )
        return _finish(
            run_dir,
            config,
            n,
            problems,
            time.time(),
            {"merged_from": [str(s) for s in sources]},
            remove_parts=True,
        )


def _tasks_info(path: Path) -> dict[str, Any]:
    """``tasks.json`` of a run folder, checked: a case count, problems and a fingerprint."""
    info = _read_json(path, "tasks.json")
    if not (
        isinstance(info, dict)
        and isinstance(info.get("cases"), int)
        and not isinstance(info.get("cases"), bool)
        and 0 <= info["cases"] <= 2 * MAX_CASES
        and isinstance(info.get("corpus_problems"), list)
        and all(isinstance(p, str) for p in info["corpus_problems"])
        and isinstance(info.get("fingerprint"), (str, type(None)))
        and isinstance(info.get("config_sha256"), (str, type(None)))
    ):
        raise ValueError(
            f"{path}: expected cases (a whole number up to {2 * MAX_CASES}), corpus_problems "
            "(a list of text) and fingerprint; is it the tasks.json of a diffharness run?"
        )
    return info


def _finish(
    run_dir: Path,
    config: CampaignConfig,
    n: int,
    problems: list[str],
    started: float,
    extra: dict[str, Any],
    *,
    remove_parts: bool,
) -> CampaignResult:
    """Join the part files of cases 0..n-1 into the run's tables and metadata.

    The tables are built file by file (each part checked against its record), never whole
    in memory. With every case present and ``remove_parts``, the sizes and SHA-256 of the
    tables go to ``complete.json`` and ``parts/`` is removed: the tables hold all it held.
    """
    parts = run_dir / "parts"
    writers = [
        _HashingWriter(run_dir / "results.csv", CSV_COLUMNS),
        _HashingWriter(run_dir / "fd_diagnostics.csv", FD_COLUMNS),
        _HashingWriter(run_dir / "timings.csv", TIMING_COLUMNS),
        _HashingWriter(run_dir / "theory_long.csv", THEORY_COLUMNS),
    ]
    missing: list[int] = []
    damaged = list(extra.pop("damaged", []))
    try:
        for i in range(n):
            try:
                files = _read_case_parts(parts, i)
            except DamagedPart as exc:
                damaged.append(f"{exc}; case {i} is missing from the tables")
                files = None
            if files is None:
                missing.append(i)
                continue
            for writer, data in zip(writers, files, strict=True):
                writer.write(data)
    except BaseException:
        for writer in writers:
            writer.fh.close()
        raise
    records = {w.path.name: w.close() for w in writers}
    theory = _theory_medians(run_dir / "theory_long.csv")
    (run_dir / "theory_long.csv").unlink()
    theory_bytes = frame_csv(theory, ["dtype", "scheme", "h", "rel_error"], True).encode("utf-8")
    _write_atomic(run_dir / "theory.csv", theory_bytes)
    records["theory.csv"] = [len(theory_bytes), hashlib.sha256(theory_bytes).hexdigest()]
    del records["theory_long.csv"]
    if missing or "merged_from" in extra:
        extra["missing_cases"] = missing
    if damaged:
        extra["damaged"] = damaged
    if remove_parts and not missing:
        _write_atomic(run_dir / COMPLETE_FILE, json.dumps(records, sort_keys=True))
        shutil.rmtree(parts)
    return _result(run_dir, config, n, problems, started, extra, theory)


def _theory_medians(path: Path) -> pd.DataFrame:
    """The median predicted error per dtype, scheme and h over the theory rows at ``path``."""
    kinds = {"dtype": "category", "scheme": "category"}
    long = pd.read_csv(path, usecols=["dtype", "scheme", "h", "rel_error"], dtype=kinds)
    if not len(long):
        return pd.DataFrame(columns=["dtype", "scheme", "h", "rel_error"])
    medians = long.groupby(["dtype", "scheme", "h"], observed=True)["rel_error"].median().reset_index()
    return medians.astype({"dtype": str, "scheme": str})


def _result(
    run_dir: Path,
    config: CampaignConfig,
    n: int,
    problems: list[str],
    started: float,
    extra: dict[str, Any],
    theory: pd.DataFrame,
) -> CampaignResult:
    """The run's tables, read from its folder in chunks, and its metadata."""
    judged, error_table = _read_results(run_dir / "results.csv")
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
    return CampaignResult(
        run_dir,
        judged,
        _read_compact(run_dir / "fd_diagnostics.csv", {}),
        theory,
        _read_compact(run_dir / "timings.csv", {}),
        metadata,
        error_table,
    )


CHUNK_ROWS = 200_000
"""Rows of a table read at a time: memory for reading is this, not the table's size."""


def _read_results(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The judged rows of results.csv (``scheme`` empty) and the error-against-h table of
    its finite-difference rows, reading ``CHUNK_ROWS`` rows at a time: of each
    finite-difference row only its relative error is kept, under (scheme, dtype, h)."""
    judged: list[pd.DataFrame] = []
    errors: dict[tuple[str, str, float], list[np.ndarray]] = {}
    canon: dict[str, str] = {}
    # vs_eager is mostly empty: without a dtype pandas guesses per block and warns
    for chunk in pd.read_csv(
        path, keep_default_na=False, na_values=[""], chunksize=CHUNK_ROWS, dtype={"vs_eager": object}
    ):
        fd = chunk["scheme"].notna() & (chunk["scheme"] != "")
        judged.append(_compact(chunk[~fd].copy(), canon))
        rows = chunk[fd & (pd.to_numeric(chunk["order"], errors="coerce") == 1)]
        h = pd.to_numeric(rows["h"], errors="coerce").astype(float)
        rel = pd.to_numeric(rows["rel_error"], errors="coerce").astype(float)
        rows = pd.DataFrame(
            {"scheme": rows["scheme"].astype(str), "dtype": rows["dtype"].astype(str), "h": h, "rel": rel}
        )[h.notna()]
        for key, values in rows.groupby(["scheme", "dtype", "h"])["rel"]:
            errors.setdefault(key, []).append(values.to_numpy(dtype=np.float64))
    frame = pd.concat(judged, ignore_index=True) if judged else pd.DataFrame(columns=list(CSV_COLUMNS))
    frame["verdict"] = frame["verdict"].fillna("")
    from harness.report import error_vs_h_table

    return frame, error_vs_h_table({k: np.concatenate(v) for k, v in errors.items()})


def _read_compact(path: Path, canon: dict[str, str]) -> pd.DataFrame:
    """A CSV table read in chunks, each text value stored once however often it repeats."""
    chunks = [_compact(c, canon) for c in pd.read_csv(path, chunksize=CHUNK_ROWS)]
    return pd.concat(chunks, ignore_index=True) if chunks else pd.read_csv(path)


def _compact(frame: pd.DataFrame, canon: dict[str, str]) -> pd.DataFrame:
    """``frame`` with equal strings of its text columns made one object (``canon`` holds
    them): pandas makes a new string per cell, which multiplies the memory of a table."""
    for column in frame.columns:
        if frame[column].dtype == object:
            values = [canon.setdefault(v, v) if type(v) is str else v for v in frame[column].to_numpy()]
            frame[column] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def _check_complete(run_dir: Path) -> str | None:
    """None when the run has no ``complete.json``; "" when its tables match it; otherwise
    what does not match, naming the file."""
    path = run_dir / COMPLETE_FILE
    if not os.path.lexists(path):
        return None
    try:
        record = _read_json(path, COMPLETE_FILE)
    except ValueError as exc:
        return str(exc)
    if not (
        isinstance(record, dict)
        and sorted(record) == sorted(TABLES)
        and all(isinstance(v, list) and len(v) == 2 for v in record.values())
    ):
        return f"{path}: expected the sizes and SHA-256 of {', '.join(TABLES)}"
    for name in TABLES:
        table = run_dir / name
        try:
            st = os.lstat(table)
        except OSError:
            return f"{table}: missing"
        if not stat.S_ISREG(st.st_mode):
            return f"{table}: not a regular file"
        if st.st_size != record[name][0]:
            return f"{table}: {st.st_size} bytes, but {COMPLETE_FILE} says {record[name][0]}"
        digest = hashlib.sha256()
        with open(table, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != record[name][1]:
            return f"{table}: contents differ from {COMPLETE_FILE} (SHA-256)"
    return ""


def _load_complete(run_dir: Path, config: CampaignConfig, extra: dict[str, Any]) -> CampaignResult:
    """A resumed run that had already finished: its checked tables, nothing run again."""
    info = _tasks_info(run_dir / "tasks.json")
    theory = pd.read_csv(run_dir / "theory.csv")
    return _result(run_dir, config, info["cases"], info["corpus_problems"], time.time(), extra, theory)
