"""The command line: what `diffharness ...` prints, writes and exits with.

Every call goes through ``harness.cli.main(argv)`` in-process. Bad input must give exit
status 2 and one readable line (or argparse's usage and error), never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"

# what the README's table promises in every run folder
RUN_FILES = (
    "results.csv", "error_vs_h.csv", "ad_accuracy.csv", "verdicts_per_op.csv",
    "worst_cases.csv", "fd_diagnostics.csv", "timings.csv", "metadata.json", "config.json",
    "report.html",
)
SMALL_RUN = (
    "run", "--cases", "3", "--seed", "5", "--no-corpus", "--engines", "torch:reverse",
    "--dtypes", "float64", "--schemes", "central",
)


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI; returns (exit status, stdout, stderr), argparse's exits included."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, err: str) -> None:
    """Exit 2 and either one 'diffharness ...' line or argparse's usage + error lines."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    if lines[0].startswith("usage:"):
        assert lines[-1].startswith("diffharness") and ": error: " in lines[-1]
    else:
        assert len(lines) == 1 and lines[0].startswith("diffharness"), err


# ---- run --------------------------------------------------------------------------------


def test_run_writes_the_report_prints_its_path_and_points_latest_at_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "reports"
    code, out, err = invoke(capsys, *SMALL_RUN, "--out", str(out_dir), "--name", "first")
    assert code == 0, err
    run_dir = out_dir / "first"
    printed = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("report: ")]
    assert printed == [str(run_dir / "report.html")]
    assert (run_dir / "report.html").read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    assert not missing
    latest = out_dir / "latest"
    assert latest.is_symlink() and latest.resolve() == run_dir.resolve()
    metadata = json.loads((run_dir / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["seed"] == 5 and metadata["cases"] == 3


def test_a_second_run_moves_latest_to_the_newer_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "reports"
    for name in ("one", "two"):
        code, _, err = invoke(capsys, *SMALL_RUN, "--cases", "1", "--out", str(out_dir), "--name", name)
        assert code == 0, err
    assert (out_dir / "latest").resolve() == (out_dir / "two").resolve()


def test_run_reports_an_invalid_corpus_file_on_stderr_and_runs_the_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bad.toml").write_text('[[case]]\nid = "bad"\nexpr = "x +"\npoints = [{x = 1.0}]\n')
    (corpus / "good.toml").write_text(
        '[[case]]\nid = "ok"\nexpr = "x*x"\npoints = [{x = 1.5}]\ndtypes = ["float64"]\n'
    )
    code, out, err = invoke(
        capsys, "run", "--cases", "0", "--corpus", str(corpus), "--engines", "torch:reverse",
        "--dtypes", "float64", "--schemes", "central", "--out", str(tmp_path / "r"), "--name", "c",
    )
    assert code == 0, err
    assert f"{corpus / 'bad.toml'}:3" in err
    metadata = json.loads((tmp_path / "r" / "c" / "metadata.json").read_text(encoding="utf-8"))
    assert len(metadata["corpus_problems"]) == 1
    assert "ok 1" in out  # the good case ran: one AD entry, verdict ok


def test_run_into_a_used_folder_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = (*SMALL_RUN, "--cases", "1", "--out", str(tmp_path), "--name", "same")
    assert invoke(capsys, *args)[0] == 0
    code, _, err = invoke(capsys, *args)
    assert_usage_error(code, err)
    assert "--resume" in err


def test_run_whose_engine_crashes_on_every_case_still_writes_a_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "crashing_engine_for_cli.py"
    module.write_text(textwrap.dedent("""\
        class Crashing:
            name = "crashing"
            def supports(self, op):
                return True
            def derivatives(self, expr, points, *, dtype, order=1):
                raise RuntimeError("boom")

        crashing = Crashing()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = invoke(
        capsys, "run", "--cases", "1", "--no-corpus", "--engines", "crashing_engine_for_cli:crashing",
        "--dtypes", "float64", "--schemes", "central", "--out", str(tmp_path / "r"), "--name", "x",
    )
    assert code == 0, err
    assert (tmp_path / "r" / "x" / "report.html").is_file()
    assert "error" in out


# ---- --help -----------------------------------------------------------------------------

HELP_OPTIONS = {
    "run": ("--cases", "--seed", "--dtypes", "--orders", "--engines", "--schemes", "--ops",
            "--corpus", "--no-corpus", "--workers", "--timeout", "--out", "--name", "--resume",
            "--strict"),
    "check": ("--engine", "--expr", "--at", "--dtype", "--order", "--n-examples", "--seed",
              "--dtypes", "--orders", "--ops", "--save"),
    "explain": ("--at", "--dtype", "--order"),
    "replay": ("--engines",),
    "cases": ("list", "validate"),
}


@pytest.mark.parametrize("command", sorted(HELP_OPTIONS))
def test_help_of_every_command_exits_0_and_names_its_options(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = invoke(capsys, command, "--help")
    assert code == 0, err
    assert out.startswith(f"usage: diffharness {command}")
    missing = [o for o in HELP_OPTIONS[command] if o not in out]
    assert not missing


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(capsys, "--help")
    assert code == 0
    assert all(c in out for c in ("run", "check", "explain", "replay", "cases", "bench"))


def test_bench_help_exits_0_and_names_its_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, "bench", "--help")
    assert code == 0, err
    assert "generation" in out


# ---- bad input --------------------------------------------------------------------------

BAD_ARGS = {
    "unknown dtype": ("run", "--dtypes", "float64,float128"),
    "order 3": ("run", "--orders", "3"),
    "unknown op": ("run", "--ops", "sin,frobnicate"),
    "negative cases": ("run", "--cases", "-1"),
    "unknown scheme": ("run", "--schemes", "sideways"),
    "at without value": ("check", "--engine", "torch:reverse", "--expr", "sin(x)", "--at", "x"),
    "at not a number": ("check", "--engine", "torch:reverse", "--expr", "sin(x)", "--at", "x=abc"),
    "at wrong variable": ("check", "--engine", "torch:reverse", "--expr", "sin(x)", "--at", "y=1"),
    "expr without at": ("check", "--engine", "torch:reverse", "--expr", "sin(x)"),
    "unparsable expr": ("check", "--engine", "torch:reverse", "--expr", "x +", "--at", "x=1"),
    "hostile expr": ("check", "--engine", "torch:reverse", "--expr", "__import__('os')", "--at", "x=1"),
    "inexact constant": ("check", "--engine", "torch:reverse", "--expr", "x**0.1", "--at", "x=1"),
    "point inexact in dtype": ("check", "--engine", "torch:reverse", "--expr", "x", "--at",
                               "x=0.1", "--dtype", "float32"),
    "unknown engine": ("check", "--engine", "nosuch", "--expr", "sin(x)", "--at", "x=1"),
    "engine module missing": ("check", "--engine", "no_such_module_xyz:E", "--expr", "x", "--at", "x=1"),
    "engine not an engine": ("check", "--engine", "os:getcwd", "--expr", "x", "--at", "x=1"),
    "explain unparsable": ("explain", "sin(x", "--at", "x=1"),
    "explain unknown dtype": ("explain", "sin(x)", "--at", "x=1", "--dtype", "float8"),
    "explain order 3": ("explain", "sin(x)", "--at", "x=1", "--order", "3"),
    "unknown command": ("frobnicate",),
    "cases unknown action": ("cases", "delete"),
    "shard past its count": ("run", "--shard", "2/2"),
    "shard not K/N": ("run", "--shard", "half"),
    "merge of a folder that is no campaign": ("merge", "no-such-run"),
    "cases from a folder that is no run": ("run", "--cases-from", "no-such-run"),
}


@pytest.mark.parametrize("argv", BAD_ARGS.values(), ids=list(BAD_ARGS))
def test_bad_input_gives_one_clear_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # a bad run must not leave reports/ anywhere that matters
    code, out, err = invoke(capsys, *argv)
    assert_usage_error(code, err)
    assert not (tmp_path / "reports").exists()


def test_a_hostile_expression_is_refused_without_running_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    for text in (
        f"__import__('os').system('touch {marker}')",
        f"exec(\"open('{marker}', 'w')\")",
        "().__class__.__bases__[0].__subclasses__()",
        "x.__class__",
        "lambda: 1",
    ):
        code, _, err = invoke(capsys, "check", "--engine", "torch:reverse", "--expr", text, "--at", "x=1")
        assert_usage_error(code, err)
        code, _, err = invoke(capsys, "explain", text, "--at", "x=1")
        assert_usage_error(code, err)
    assert not marker.exists()


def test_an_engine_spec_naming_a_function_with_required_arguments_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = invoke(capsys, "check", "--engine", "os:system", "--expr", "x", "--at", "x=1")
    assert_usage_error(code, err)


# ---- check ------------------------------------------------------------------------------


def test_check_one_expression_with_torch_reverse_exits_0_and_prints_the_derivative(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = invoke(capsys, "check", "--engine", "torch:reverse", "--expr", "sin(x)", "--at", "x=0.5")
    assert code == 0, err
    row = [line.split() for line in out.splitlines() if line.split()[:1] == ["x"]]
    assert len(row) == 1
    assert float(row[0][1]) == pytest.approx(0.8775825618903728, rel=1e-3)  # cos(0.5), as printed
    assert row[0][-1] == "ok"


HALVING_MODULE = """\
from harness.engines.torch_ad import TorchEngine


class Halving:
    name = "halving"

    def supports(self, op):
        return True

    def derivatives(self, expr, points, *, dtype, order=1):
        return TorchEngine("reverse").derivatives(expr, points, dtype=dtype, order=order) / 2


halving = Halving()
"""


@pytest.fixture
def halving_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module with a wrong engine: ``Halving`` (a class), ``halving`` (one)."""
    (tmp_path / "halving_engine_for_cli.py").write_text(HALVING_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "halving_engine_for_cli"


def test_check_one_expression_with_a_wrong_engine_exits_1_and_says_mismatch(
    capsys: pytest.CaptureFixture[str], halving_module: str
) -> None:
    code, out, err = invoke(
        capsys, "check", "--engine", f"{halving_module}:halving", "--expr", "x*x", "--at", "x=1.5",
    )
    assert code == 1, err
    row = [line.split() for line in out.splitlines() if line.split()[:1] == ["x"]]
    assert row[0][1:3] == ["1.5", "3"]  # half of the true 2x = 3
    assert row[0][-1] == "mismatch"


def test_check_with_an_engine_class_spec_instantiates_the_class(
    capsys: pytest.CaptureFixture[str], halving_module: str
) -> None:
    code, out, err = invoke(
        capsys, "check", "--engine", f"{halving_module}:Halving", "--expr", "x*x", "--at", "x=1.5",
    )
    assert code == 1, err
    assert "mismatch" in out and "TypeError" not in out


# ---- cases and replay -------------------------------------------------------------------


def test_cases_list_and_validate_accept_the_curated_cases(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, "cases", "list", str(CASES))
    assert code == 0, err
    assert "seed-forward-difference" in out and "3*(x + 1)**2" in out
    code, out, err = invoke(capsys, "cases", "validate", str(CASES))
    assert code == 0, err
    assert f"ok: {CASES / 'seed.toml'} (4 case(s))" in out


@pytest.mark.parametrize("action", ["list", "validate"])
def test_cases_on_a_broken_file_exits_2_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, action: str
) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text('[[case]]\nid = "fine"\nexpr = "x"\npoints = [{x = 1.0}]\n\n'
                   '[[case]]\nid = "broken"\nexpr = "x"\npoints = [{y = 1.0}]\n')
    code, _, err = invoke(capsys, "cases", action, str(bad))
    assert code == 2
    assert "Traceback" not in err
    assert f"{bad}:9:" in err and "points" in err


def test_cases_on_a_missing_path_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = invoke(capsys, "cases", "validate", str(tmp_path / "nowhere"))
    assert_usage_error(code, err)


def test_replay_of_the_seed_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys, "replay", str(CASES / "seed.toml"))
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines() if line.strip()] == ["pass"] * 4


def test_replay_of_a_wrong_expectation_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    case = tmp_path / "wrong.toml"
    case.write_text('[[case]]\nid = "w"\nexpr = "3*x**2"\npoints = [{x = 1.0}]\n'
                    'dtypes = ["float64"]\nengines = ["torch:reverse"]\nexpect = "mismatch"\n')
    code, out, _ = invoke(capsys, "replay", str(case))
    assert code == 1
    assert out.startswith("FAIL")


def test_merge_joins_shards_into_the_report_of_a_one_machine_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    common = ("--cases", "3", "--no-corpus", "--workers", "1", "--schemes", "central",
              "--engines", "torch:reverse", "--dtypes", "float64", "--out", str(tmp_path))
    for k in range(2):
        code, out, _ = invoke(capsys, "run", *common, "--shard", f"{k}/2", "--name", f"s{k}")
        assert code == 0 and f"(shard {k}/2)" in out
    code, out, _ = invoke(capsys, "run", *common, "--name", "one")
    assert code == 0
    code, out, err = invoke(capsys, "merge", str(tmp_path / "s0"), str(tmp_path / "s1"),
                            "--out", str(tmp_path), "--name", "merged")
    assert code == 0 and "diffharness merge: 3 cases" in out and err == ""
    one, merged = tmp_path / "one" / "results.csv", tmp_path / "merged" / "results.csv"
    assert merged.read_bytes() == one.read_bytes()
    assert (tmp_path / "merged" / "report.html").is_file()
    code, _, err = invoke(capsys, "merge", str(tmp_path / "s0"), "--out", str(tmp_path), "--name", "half")
    assert code == 0 and "--resume" in err  # the cases of shard 1 are missing, and it says how to finish


def test_a_misspelt_built_in_engine_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--engine", "torch:sideways", "--expr", "x", "--at", "x=1"]) == 2
    err = capsys.readouterr().err
    assert "not a built-in engine" in err and "torch:reverse, torch:forward, torch:functional" in err


def test_an_engine_module_in_the_current_folder_is_found_without_pythonpath(tmp_path: Path) -> None:
    (tmp_path / "myengines_for_cli_test.py").write_text(
        "from harness.engines.torch_ad import TorchEngine\nENGINE = TorchEngine('reverse')\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = Path(sys.executable).parent / "diffharness"  # the console script: no cwd on its path
    done = subprocess.run(
        [str(script), "check", "--engine", "myengines_for_cli_test:ENGINE",
         "--expr", "sin(x)", "--at", "x=0.5"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout
