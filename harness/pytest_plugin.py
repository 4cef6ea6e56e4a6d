"""pytest plugin (entry point ``pytest11``): check engines inside your own test suite.

Fixtures:

* ``diffharness_check(engine, **kwargs)``: runs :func:`harness.check_engine`, fails the
  test with the shrunk failure report when the engine is wrong, records every checked
  row, and returns the :class:`~harness.check.CheckResult`. The keyword arguments are
  ``check_engine``'s: ``n_examples`` (random cases per dtype and order; here
  :data:`FIXTURE_DEFAULTS` gives 50, where ``check_engine`` takes 200), ``seed``,
  ``dtypes`` (float64 and float32), ``orders`` (1 and 2), ``ops`` (the engine's supported
  ones among the default ops), ``max_size``, ``n_points``, ``variables``,
  ``unit_examples``, ``spec`` (how the printed rerun command names the engine),
  ``save_dir``, ``truth``, ``timeout`` and ``allow`` (failing verdicts to accept, e.g.
  ``("inaccurate",)``). Without a ``seed``, a derandomised Hypothesis profile (``ci``)
  gives each test a seed of its own from its node id, so two runs check the same rows;
  other profiles draw a new seed each run and print it;
* ``diffharness_recorder``: ``.add(frame)`` records rows of the long results table that a
  test produced itself (e.g. from :func:`harness.compare` inside a Hypothesis test).

Options: ``--diffharness-report DIR`` writes the same report as ``diffharness run`` (CSV
tables and ``report.html``) from everything recorded during the session.

Hypothesis profiles ``dev`` (few examples), ``ci`` (derandomised, so a CI run repeats
exactly) and ``thorough`` (many examples) are registered; pick one with
``--hypothesis-profile NAME``. A profile of the same name in your own conftest wins, since
conftest files load after plugins.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

__all__ = ["FIXTURE_DEFAULTS", "PROFILES", "Recorder", "stable_seed"]

FIXTURE_DEFAULTS: dict[str, Any] = {"n_examples": 50}
"""What ``diffharness_check`` passes to ``check_engine`` unless the test says otherwise: a
budget that checks one custom op in seconds (the edge and unit phases run in full)."""

PROFILES: dict[str, dict[str, Any]] = {
    "dev": {"max_examples": 20, "deadline": None},
    "ci": {
        "max_examples": 100,
        "deadline": None,
        "derandomize": True,
        "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow],
    },
    "thorough": {"max_examples": 2000, "deadline": None},
}

for _name, _kwargs in PROFILES.items():
    # On top of Hypothesis's own defaults, not of whatever profile is loaded now: with CI
    # set, Hypothesis loads its built-in derandomised "ci" profile at import, and a
    # profile inheriting from it would silently be derandomised too.
    settings.register_profile(_name, parent=settings.get_profile("default"), **_kwargs)


class Recorder:
    """Collects rows of the long results table during a pytest session."""

    def __init__(self) -> None:
        self.frames: list[Any] = []

    def add(self, frame: Any) -> None:
        """Record a DataFrame with the columns of ``harness.schema.RESULT_COLUMNS``."""
        if frame is not None and len(frame):
            self.frames.append(frame)


_RECORDER_KEY = pytest.StashKey[Recorder]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("diffharness")
    group.addoption(
        "--diffharness-report",
        metavar="DIR",
        default=None,
        help="write a diffharness report (CSV tables, report.html) of what the tests checked",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RECORDER_KEY] = Recorder()
    target = config.getoption("--diffharness-report", default=None)
    if target and not hasattr(config, "workerinput"):  # not an xdist worker: start afresh
        shutil.rmtree(Path(target) / _WORKER_ROWS, ignore_errors=True)


# Under pytest-xdist (``pytest -n auto``) each worker leaves its rows here and the
# controller, whose session ends last, writes the one report from all of them.
_WORKER_ROWS = ".diffharness-workers"


@pytest.fixture(scope="session")
def diffharness_recorder(request: pytest.FixtureRequest) -> Recorder:
    """The session's recorder: ``.add(frame)`` puts rows into the end-of-session report.

    Session-scoped, so Hypothesis tests (``@given``) can take it without a health-check
    complaint about function-scoped fixtures."""
    return request.config.stash[_RECORDER_KEY]


def stable_seed(text: str) -> int:
    """A seed from a test's node id: the same in every run and process."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@pytest.fixture
def diffharness_check(diffharness_recorder: Recorder, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``diffharness_check(engine, **kwargs)``: assert an engine matches the truth."""
    from harness.check import check_engine

    def run(engine: Any, **kwargs: Any) -> Any:
        kwargs = {**FIXTURE_DEFAULTS, **kwargs}
        if kwargs.get("seed") is None and settings().derandomize:
            kwargs["seed"] = stable_seed(request.node.nodeid)
        result = check_engine(engine, **kwargs)
        diffharness_recorder.add(result.frame)
        if not result.ok:
            pytest.fail(result.report(), pytrace=False)
        return result

    return run


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = session.config.getoption("--diffharness-report", default=None)
    if not target:
        return
    recorder = session.config.stash.get(_RECORDER_KEY, None)
    import pandas as pd

    from harness.report import write_report
    from harness.schema import RESULT_COLUMNS

    frames = list(recorder.frames) if recorder else []
    run_dir = Path(target)
    rows_dir = run_dir / _WORKER_ROWS
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is not None:
        rows_dir.mkdir(parents=True, exist_ok=True)
        if frames:  # CSV, never pickle: the folder is the user's, and data must not run code
            rows = pd.concat(frames, ignore_index=True)
            rows.to_csv(rows_dir / f"{workerinput['workerid']}.csv", index=False)
        return
    for part in sorted(rows_dir.glob("*.csv")):
        if part.is_file() and not part.is_symlink():
            frames.append(pd.read_csv(part, keep_default_na=False, na_values=[""]))
    shutil.rmtree(rows_dir, ignore_errors=True)
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(RESULT_COLUMNS))
    run_dir.mkdir(parents=True, exist_ok=True)
    results.drop(columns=["seconds"], errors="ignore").to_csv(run_dir / "results.csv", index=False)
    metadata = {
        "source": "pytest",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rows": len(results),
        "exitstatus": int(exitstatus),
    }
    html = write_report(run_dir, results, pd.DataFrame(), pd.DataFrame(), metadata)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"diffharness report: {html} ({len(results)} rows)")
