"""Data files are data: a case folder or run folder from anyone never runs code.

Each test is an attack a downloaded folder could make: a case file or a run folder's
``config.json`` naming a ``package.module:attr`` engine whose module sits beside it, ready
to be imported. The module, if ever imported, leaves a marker file; no test may find it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.campaign import CampaignConfig, run_campaign
from harness.cases import load_cases
from harness.cli import main
from harness.replay import replay_case

EVIL_MODULE = textwrap.dedent(
    """\
    from pathlib import Path
    Path(__file__).with_name("IMPORTED").write_text("code from a data file ran")

    def boom():
        raise SystemExit(0)
    """
)


@pytest.fixture
def evil_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding an importable module ``evil_diffharness_data`` (on sys.path)."""
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "evil_diffharness_data.py").write_text(EVIL_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    return folder


def case_text(engine: str) -> str:
    return (
        '[[case]]\nid = "c"\nexpr = "x*x"\npoints = [{x = 1.5}]\ndtypes = ["float64"]\n'
        f"engines = [{json.dumps(engine)}]\n"
    )


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # pragma: no cover - what the attack did before the fix
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("spec", ["evil_diffharness_data:boom", "sys:exit", "os:abort"])
def test_replay_of_a_case_file_naming_a_module_engine_fails_the_case_without_importing_it(
    spec: str, evil_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (evil_folder / "evil.toml").write_text(case_text(spec), encoding="utf-8")
    code, out, _ = invoke(capsys, "replay", str(evil_folder / "evil.toml"))
    assert code == 1, out  # sys:exit used to make this 0 and hide the case
    assert "FAIL" in out and "refused" in out and "only built-in engines" in out
    assert not (evil_folder / "IMPORTED").exists()


def test_replay_runs_a_user_engine_the_command_line_names_itself(
    evil_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (evil_folder / "own.toml").write_text(case_text("evil_diffharness_data:boom"), encoding="utf-8")
    (case,) = load_cases(evil_folder / "own.toml")
    _, problems = replay_case(case, engines=["torch:reverse"])  # the caller's engines
    assert problems == []
    assert not (evil_folder / "IMPORTED").exists()


def test_a_campaign_corpus_case_naming_a_module_engine_is_an_error_row_and_nothing_runs(
    evil_folder: Path,
) -> None:
    (evil_folder / "cases").mkdir()
    (evil_folder / "cases" / "evil.toml").write_text(
        case_text("evil_diffharness_data:boom"), encoding="utf-8"
    )
    config = CampaignConfig(
        n_cases=0, dtypes=("float64",), engines=("torch:reverse",), schemes=(),
        corpus=(str(evil_folder / "cases"),),
    )
    rows = run_campaign(config, evil_folder / "run", progress=False).results
    assert rows["verdict"].tolist() == ["error"]
    assert "refused" in rows["truth_status"].iloc[0]
    assert not (evil_folder / "IMPORTED").exists()


def small_run(capsys: pytest.CaptureFixture[str], out: Path) -> Path:
    code, _, err = invoke(
        capsys, "run", "--cases", "2", "--seed", "1", "--no-corpus", "--engines", "torch:reverse",
        "--dtypes", "float64", "--schemes", "central", "--workers", "1", "--out", str(out),
        "--name", "r",
    )
    assert code == 0, err
    return out / "r"


def test_resume_of_a_run_folder_whose_config_names_a_module_engine_is_refused_before_anything_runs(
    evil_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = small_run(capsys, evil_folder / "reports")
    config = json.loads((run_dir / "config.json").read_text())
    config["engines"] = ["evil_diffharness_data:boom"]
    (run_dir / "config.json").write_text(json.dumps(config))
    for part in (run_dir / "parts").glob("*"):
        part.unlink()
    code, _, err = invoke(capsys, "run", "--resume", str(run_dir))
    assert code == 2
    assert "config.json" in err and "refused" in err and "--engines" in err
    assert len(err.strip().splitlines()) == 1
    assert not (evil_folder / "IMPORTED").exists()


def test_resume_runs_a_module_engine_only_when_the_command_line_names_it_again(
    evil_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (evil_folder / "own_engine_diffharness.py").write_text(
        "from harness.engines.torch_ad import TorchEngine\nengine = TorchEngine('reverse')\n",
        encoding="utf-8",
    )
    code, _, err = invoke(
        capsys, "run", "--cases", "2", "--seed", "1", "--no-corpus", "--engines",
        "own_engine_diffharness:engine", "--dtypes", "float64", "--schemes", "central",
        "--workers", "1", "--out", str(evil_folder / "reports"), "--name", "r",
    )
    assert code == 0, err
    run_dir = evil_folder / "reports" / "r"
    (run_dir / "complete.json").unlink()  # every case runs again on resume
    code, _, err = invoke(capsys, "run", "--resume", str(run_dir))
    assert code == 2 and "own_engine_diffharness:engine" in err and "refused" in err
    code, _, err = invoke(
        capsys, "run", "--resume", str(run_dir), "--engines", "own_engine_diffharness:engine"
    )
    assert code == 0, err


# ---- bounds: files that never end, block, or point outside ----------------------------


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("usage:"), err
    for needle in needles:
        assert needle in lines[-1], err


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_case_file_that_never_ends_or_blocks_is_refused_at_once(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "endless.toml"
    if target == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(target)
    code, _, err = invoke(capsys, "cases", "validate", str(path))
    assert code == 2 and "not a regular file" in err and str(path) in err
    code, out, _ = invoke(capsys, "replay", str(path))
    assert code == 1 and "not a regular file" in out


@pytest.mark.parametrize("name", ["config.json", "cases.json"])
def test_a_run_folder_file_linked_to_dev_zero_is_refused_naming_it(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = small_run(capsys, tmp_path / "reports")
    (run_dir / "complete.json").unlink()
    (run_dir / name).unlink()
    (run_dir / name).symlink_to("/dev/zero")
    code, _, err = invoke(capsys, "run", "--resume", str(run_dir))
    assert_one_line_error(code, err, str(run_dir / name), "symlink")


def test_a_cases_json_with_more_points_than_its_config_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = small_run(capsys, tmp_path / "reports")
    (run_dir / "complete.json").unlink()
    data = json.loads((run_dir / "cases.json").read_text())
    data["generated"][0]["points"] = data["generated"][0]["points"] * 25_000
    (run_dir / "cases.json").write_text(json.dumps(data))
    code, _, err = invoke(capsys, "run", "--resume", str(run_dir))
    assert_one_line_error(code, err, "cases.json")
    assert "limit" in err or "n_points" in err


def test_a_case_with_more_points_than_the_limit_is_refused_naming_it(tmp_path: Path) -> None:
    from harness.cases import CaseFileError
    from harness.limits import MAX_POINTS

    points = ", ".join("{x = 1.0}" for _ in range(MAX_POINTS + 1))
    path = tmp_path / "many.toml"
    path.write_text(f'[[case]]\nid = "many"\nexpr = "x"\npoints = [{points}]\n', encoding="utf-8")
    with pytest.raises(CaseFileError, match=f"over the limit of {MAX_POINTS}"):
        load_cases(path)


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/diffharness-absolute-name", "..", "a/b"])
def test_a_run_name_that_leaves_the_output_folder_is_refused(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deep" / "reports"
    code, _, err = invoke(capsys, "run", "--cases", "1", "--no-corpus", "--out", str(out), "--name", name)
    assert_one_line_error(code, err, "--name")
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/diffharness-absolute-name").exists()


def test_a_plain_file_at_latest_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    (out / "latest").write_text("mine")
    small_run(capsys, out)
    assert (out / "latest").read_text() == "mine"


# ---- one line, not a traceback ---------------------------------------------------------


def test_an_overflowing_hex_float_point_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "explain", "sin(x)", "--at", "x=0x1p99999")
    assert_one_line_error(code, err, "--at", "0x1p99999")


def test_an_output_folder_that_is_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hostname").write_text("a file")
    code, _, err = invoke(
        capsys, "run", "--cases", "1", "--no-corpus", "--out", str(tmp_path / "hostname"), "--name", "r"
    )
    assert_one_line_error(code, err, str(tmp_path / "hostname"))


def test_an_unknown_fd_scheme_in_a_case_file_names_field_and_valid_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fd.toml"
    path.write_text(
        '[[case]]\nid = "c"\nexpr = "x"\npoints = [{x = 1.0}]\n'
        '[[case.fd]]\nscheme = "nope"\nh = 1e-3\ndtype = "float64"\nvalue = 1.0\n',
        encoding="utf-8",
    )
    code, _, err = invoke(capsys, "cases", "validate", str(path))
    assert code == 2 and "field 'fd'" in err and "'nope'" in err and "central" in err


def test_a_case_file_nested_ten_thousand_deep_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 10_000 + "]" * 10_000 + "\n", encoding="utf-8")
    code, _, err = invoke(capsys, "cases", "validate", str(path))
    assert code == 2 and str(path) in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_cases", "many"), ("dtypes", "float64"), ("case_timeout", None), ("h_grid", [1, "a"]),
     ("n_points", 10**9), ("orders", [3])],
)
def test_a_config_json_field_of_the_wrong_type_is_one_line_naming_the_field(
    field: str, value: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = small_run(capsys, tmp_path / "reports")
    config = json.loads((run_dir / "config.json").read_text())
    config[field] = value
    (run_dir / "config.json").write_text(json.dumps(config))
    code, _, err = invoke(capsys, "run", "--resume", str(run_dir))
    assert_one_line_error(code, err, "config.json", field)


def test_a_garbage_part_in_merge_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = []
    for k in range(2):
        code, _, err = invoke(
            capsys, "run", "--cases", "2", "--seed", "1", "--no-corpus", "--engines", "torch:reverse",
            "--dtypes", "float64", "--schemes", "central", "--workers", "1", "--shard", f"{k}/2",
            "--out", str(tmp_path), "--name", f"s{k}",
        )
        assert code == 0, err
        shards.append(str(tmp_path / f"s{k}"))
    part = tmp_path / "s1" / "parts" / "00001.csv"
    part.write_bytes(b"\x00\xff garbage")
    code, _, err = invoke(capsys, "merge", *shards, "--out", str(tmp_path), "--name", "m")
    assert_one_line_error(code, err, str(part))


@pytest.mark.parametrize("seconds", ["nan", "inf", "-5", "0", "soon"])
@pytest.mark.parametrize("command", [["run"], ["explain", "x", "--at", "x=1"], ["replay", "cases"]])
def test_a_timeout_that_is_not_a_positive_finite_number_is_a_usage_error(
    seconds: str, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = invoke(capsys, *command, "--timeout", seconds)
    assert_one_line_error(code, err, "--timeout")


TOWER = "exp(" * 24 + "x" + ")" * 24


def test_explain_stops_at_its_time_limit_with_one_line() -> None:
    # the command as a user runs it: its own process, whose main thread takes the alarm
    # (a test runner's worker thread, as pytest-xdist's, cannot)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "explain", TOWER, "--at", "x=-30", "--timeout", "0.5"],
        capture_output=True, text=True, timeout=300,
    )
    assert_one_line_error(done.returncode, done.stderr, "--timeout 0.5")


def test_replay_fails_a_case_past_its_time_limit_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "slow.toml"
    path.write_text(
        '[[case]]\nid = "quick"\nexpr = "x*x"\npoints = [{x = 1.5}]\ndtypes = ["float64"]\n'
        '[[case]]\nid = "sleeps"\nexpr = "sin(x)"\npoints = [{x = 0.5}]\ndtypes = ["float64"]\n'
        '[[case]]\nid = "again"\nexpr = "x*y"\npoints = [{x = 1.5, y = 2.0}]\ndtypes = ["float64"]\n',
        encoding="utf-8",
    )
    # the engine sleeps on sin(x) inside `except Exception`, which swallowed the old alarm
    code, out, _ = invoke(
        capsys, "replay", str(path), "--engines", "fault_engines:SwallowsAlarmOnSine", "--timeout", "5"
    )
    assert code == 1
    assert "sleeps: ran past --timeout 5 s" in out
    assert [line.split()[0] for line in out.splitlines() if not line.startswith(" ")] == [
        "pass", "FAIL", "pass"
    ]


def test_a_worker_count_past_the_limit_is_refused_before_any_process_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.campaign import max_workers

    code, _, err = invoke(
        capsys, "run", "--cases", "1", "--no-corpus", "--workers", str(max_workers() + 1),
        "--out", str(tmp_path), "--name", "w",
    )
    assert_one_line_error(code, err, "workers", str(max_workers()))


def test_a_check_search_stops_at_an_example_past_its_time_limit_naming_it() -> None:
    import time

    import numpy as np

    from harness.check import check_engine
    from harness.engines.torch_ad import TorchEngine
    from harness.limits import TimeLimitExceeded

    class Sleeper(TorchEngine):
        def derivatives(self, expr: object, points: np.ndarray, *, dtype: str, order: int = 1) -> object:
            try:
                time.sleep(600)
            except Exception:  # noqa: BLE001, S110 - swallows what it can, as engines do
                pass
            return super().derivatives(expr, points, dtype=dtype, order=order)

    with pytest.raises(TimeLimitExceeded, match="per example"):
        check_engine(
            Sleeper(), n_examples=1, unit_examples=1, dtypes=("float64",), orders=(1,), seed=1,
            timeout=1.0,
        )
