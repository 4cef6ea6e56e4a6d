"""The pytest plugin, used the way a user's test suite uses it (through pytester).

The plugin is registered by the package's ``pytest11`` entry point (the package is
installed), so the inner pytest runs load it with no ``-p`` flag.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

# pytester's in-process runs drop the modules a run imported when it ends, and torch's C
# extension cannot be imported a second time in one process: import what the inner tests
# use here, once, so that it stays.
import harness.check  # noqa: F401
import harness.engines.torch_ad  # noqa: F401
import harness.report  # noqa: F401

pytest_plugins = ["pytester"]

ENGINES = """
import numpy as np
from harness.engines.torch_ad import TorchEngine

SMALL = dict(n_examples=3, seed=1, dtypes=("float64",), orders=(1,), ops=("sin", "mul"))


class Doubling:
    \"\"\"A wrong engine: twice torch's derivative.\"\"\"

    name = "doubling"

    def supports(self, op):
        return True

    def derivatives(self, expr, points, *, dtype, order=1):
        return 2 * TorchEngine("reverse").derivatives(expr, points, dtype=dtype, order=order)
"""

CORRECT_TEST = ENGINES + """

def test_torch_reverse_is_right(diffharness_check):
    result = diffharness_check(TorchEngine("reverse"), **SMALL)
    assert result.ok and len(result.frame) > 0
"""

WRONG_TEST = ENGINES + """

def test_doubling_is_wrong(diffharness_check):
    diffharness_check(Doubling(), **SMALL)
"""


def test_the_plugin_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--diffharness-report*DIR*"])


def test_diffharness_check_passes_a_correct_engine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engine=CORRECT_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_diffharness_check_fails_a_wrong_engine_with_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engine=WRONG_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*engine doubling: 1 failure(s)*",
        "*mismatch: d/d(x) of *",
        "*rerun: diffharness check --engine *",
    ])
    # the report replaces the traceback (pytrace=False): no plugin internals in the output
    assert "pytest_plugin.py" not in result.stdout.str()


def test_diffharness_report_writes_the_report_of_what_the_tests_checked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_engine=CORRECT_TEST + WRONG_TEST[len(ENGINES):])
    report_dir = pytester.path / "dh-report"
    result = pytester.runpytest("--diffharness-report", str(report_dir))
    result.assert_outcomes(passed=1, failed=1)
    page = report_dir / "report.html"
    assert page.is_file() and "<html" in page.read_text(encoding="utf-8").lower()
    result.stdout.fnmatch_lines([f"*diffharness report: {page}*"])
    rows = pd.read_csv(report_dir / "results.csv")
    assert set(rows["engine"]) == {"torch:reverse", "doubling"}
    # the edge phase reaches exp's overflow edge, out of float64's range: nothing fails
    assert set(rows.loc[rows["engine"] == "torch:reverse", "verdict"]) <= {"ok", "out-of-range"}
    assert "mismatch" in set(rows.loc[rows["engine"] == "doubling", "verdict"])
    worst = pd.read_csv(report_dir / "worst_cases.csv")
    assert worst["verdict"].iloc[0] == "mismatch" and worst["engine"].iloc[0] == "doubling"


def test_without_the_option_no_report_is_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engine=CORRECT_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not list(Path(pytester.path).rglob("report.html"))


@pytest.mark.parametrize(
    ("profile", "derandomize", "max_examples"), [("ci", True, 100), ("dev", False, 20)]
)
def test_the_hypothesis_profiles_are_accepted_and_applied(
    pytester: pytest.Pytester, profile: str, derandomize: bool, max_examples: int
) -> None:
    pytester.makepyfile(test_profile=f"""
from hypothesis import settings

def test_profile_is_loaded():
    assert settings().derandomize is {derandomize}
    assert settings().max_examples == {max_examples}
""")
    # in a subprocess: loading a profile changes Hypothesis's global settings
    result = pytester.runpytest_subprocess("--hypothesis-profile", profile)
    result.assert_outcomes(passed=1)


def test_under_xdist_the_report_holds_the_rows_of_every_worker(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_engine=CORRECT_TEST + WRONG_TEST[len(ENGINES):])
    report_dir = pytester.path / "dh-report"
    (report_dir / ".diffharness-workers").mkdir(parents=True)
    stale = pd.DataFrame({"engine": ["stale"], "verdict": ["ok"]})
    stale.to_csv(report_dir / ".diffharness-workers" / "gw9.csv", index=False)  # from an older run
    # two worker processes; each test lands on one of them
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "--diffharness-report", str(report_dir))
    result.assert_outcomes(passed=1, failed=1)
    rows = pd.read_csv(report_dir / "results.csv")
    assert set(rows["engine"]) == {"torch:reverse", "doubling"}
    assert not (report_dir / ".diffharness-workers").exists()


UNSEEDED_TEST = ENGINES + """

def test_torch_reverse_unseeded(diffharness_check):
    diffharness_check(
        TorchEngine("reverse"), n_examples=4, dtypes=("float64",), orders=(1,), ops=("sin", "mul")
    )
"""


def test_two_runs_under_the_ci_profile_check_the_same_rows(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engine=UNSEEDED_TEST)
    tables = []
    for run in ("a", "b"):
        report_dir = pytester.path / f"report-{run}"
        result = pytester.runpytest_subprocess(
            "--hypothesis-profile", "ci", "--diffharness-report", str(report_dir)
        )
        result.assert_outcomes(passed=1)
        tables.append((report_dir / "results.csv").read_text(encoding="utf-8"))
    assert tables[0] == tables[1] and tables[0].count("\n") > 10

