"""Campaigns under faults: killed workers, engines that hang or swallow the alarm, damaged
part files, and the disk a finished run leaves.

Each test is named for the fault it survives. The engines that misbehave live in
``tests/fault_engines.py`` so that worker processes can import them.
"""

from __future__ import annotations

import json
import shutil
import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import harness.campaign as campaign
from harness.campaign import CampaignConfig, run_campaign

SMALL = CampaignConfig(
    n_cases=6, seed=3, dtypes=("float64",), engines=("torch:reverse",), schemes=("central",),
    h_grid=(1e-2, 1e-4, 1e-6), corpus=(), n_points=3, max_size=6, case_timeout=60.0,
)
CASES = """\
[[case]]
id = "square"
expr = "x*x"
points = [{x = 1.5}, {x = -0.25}]

[[case]]
id = "sine"
expr = "sin(x)"
points = [{x = 0.5}]

[[case]]
id = "cube"
expr = "x*x*x"
points = [{x = 2.0}]
"""


def corpus_config(tmp_path: Path, engine: str, **overrides: object) -> CampaignConfig:
    root = tmp_path / "corpus"
    root.mkdir(exist_ok=True)
    (root / "c.toml").write_text(CASES, encoding="utf-8")
    return replace(
        SMALL, n_cases=0, schemes=(), dtypes=("float64",), corpus=(str(root),), engines=(engine,),
        **overrides,
    )


def stop_after(k: int) -> Callable[[int], None]:
    done: list[int] = []

    def hook(index: int) -> None:
        done.append(index)
        if len(done) >= k:
            raise KeyboardInterrupt

    return hook


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("clean") / "run"
    run_campaign(SMALL, run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="module")
def unjoined_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SMALL stopped after its last case, before joining: every part file is there."""
    run_dir = tmp_path_factory.mktemp("unjoined") / "run"
    with pytest.raises(KeyboardInterrupt):
        run_campaign(SMALL, run_dir, progress=False, on_case=stop_after(SMALL.n_cases))
    return run_dir


# ---- a worker that dies ------------------------------------------------------------


def test_a_worker_killed_once_is_replaced_and_its_case_rerun_to_the_same_results(
    tmp_path: Path,
) -> None:
    reference = run_campaign(corpus_config(tmp_path, "torch:reverse"), tmp_path / "ref", progress=False)
    config = corpus_config(tmp_path, "fault_engines:DiesOnceWhileTokenExists")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "die-once").write_text("")
    result = run_campaign(config, run_dir, workers=2, progress=False)
    assert not (run_dir / "die-once").exists()  # a worker did die
    assert (run_dir / "results.csv").read_bytes() == (tmp_path / "ref" / "results.csv").read_bytes()
    assert len(result.results) == len(reference.results)


def test_a_case_that_kills_its_worker_twice_is_an_error_row_and_the_run_finishes(
    tmp_path: Path,
) -> None:
    config = corpus_config(tmp_path, "fault_engines:DiesOnSine")
    rows = run_campaign(config, tmp_path / "run", workers=2, progress=False).results
    sine = rows[rows["case_id"] == "c:sine"]
    assert sine["verdict"].tolist() == ["error"]
    assert "died twice" in sine["truth_status"].iloc[0] and "SIGKILL" in sine["truth_status"].iloc[0]
    others = rows[rows["case_id"] != "c:sine"]
    assert set(others["case_id"]) == {"c:square", "c:cube"} and (others["verdict"] == "ok").all()


# ---- time limits ---------------------------------------------------------------------


def test_an_engine_that_swallows_exceptions_cannot_swallow_the_time_limit(tmp_path: Path) -> None:
    config = corpus_config(tmp_path, "fault_engines:SwallowsAlarmOnSine", case_timeout=1.0)
    rows = run_campaign(config, tmp_path / "run", progress=False).results
    assert rows.loc[rows["case_id"] == "c:sine", "verdict"].tolist() == ["timeout"]
    assert (rows.loc[rows["case_id"] != "c:sine", "verdict"] == "ok").all()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_deaf_to_the_alarm_is_killed_by_the_parent_and_the_case_is_a_timeout_row(
    tmp_path: Path, workers: int
) -> None:
    # a limit the other cases keep even on a loaded machine (a worker's first case pays
    # for its imports); the deaf case sleeps 600 s. One worker is watched as two are.
    config = corpus_config(tmp_path, "fault_engines:IgnoresAlarmOnSine", case_timeout=8.0)
    rows = run_campaign(config, tmp_path / "run", workers=workers, progress=False).results
    sine = rows[rows["case_id"] == "c:sine"]
    assert sine["verdict"].tolist() == ["timeout"]
    assert sine["truth_status"].iloc[0] == "case ran past 8.0 s"
    assert (rows.loc[rows["case_id"] != "c:sine", "verdict"] == "ok").all()


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -5.0, 0.0])
def test_a_time_limit_that_is_not_a_positive_finite_number_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="case_timeout"):
        replace(SMALL, case_timeout=seconds)


def test_timings_count_each_engine_call_once_not_once_per_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter(range(0, 10_000, 4))  # every reading of the clock is 4 s after the last
    real = campaign.time
    clock = types.SimpleNamespace(**{n: getattr(real, n) for n in dir(real) if not n.startswith("_")})
    clock.perf_counter = lambda: float(next(ticks))
    monkeypatch.setattr(campaign, "time", clock)
    run_campaign(corpus_config(tmp_path, "torch:reverse"), tmp_path / "run", progress=False)
    timings = pd.read_csv(tmp_path / "run" / "timings.csv")
    square = timings[timings["case_id"] == "c:square"]  # two points: two rows per call
    assert square["seconds"].tolist() == [4.0, 4.0]  # one call in float64, one in float32


# ---- damaged part files --------------------------------------------------------------


def _truncate_at_line(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: len(lines) // 2]))


def _truncate_mid_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 3])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit: same size, other contents
    path.write_bytes(bytes(data))


def _passwd_link(path: Path) -> None:
    path.unlink()
    path.symlink_to("/etc/passwd")


DAMAGE = {
    "truncated at a line": _truncate_at_line,
    "truncated mid-line": _truncate_mid_line,
    "emptied": _empty,
    "one bit flipped": _garble,
    "a symlink to /etc/passwd": _passwd_link,
}


@pytest.mark.parametrize("kind", ["", ".fd", ".time", ".theory", ".json"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_reruns_the_case_of_a_damaged_part_says_which_and_loses_no_row(
    kind: str, damage: str, clean_run: Path, unjoined_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(unjoined_run, run_dir, symlinks=True)
    part = run_dir / "parts" / ("00003.json" if kind == ".json" else f"00003{kind}.csv")
    if part.stat().st_size == 0 and damage != "a symlink to /etc/passwd":
        part.write_bytes(b"x\n")  # an empty part (no rows of that kind) damaged by growing
    else:
        DAMAGE[damage](part)
    rerun: list[int] = []
    result = run_campaign(SMALL, run_dir, resume=True, progress=False, on_case=rerun.append)
    assert rerun == [3]
    assert (run_dir / "results.csv").read_bytes() == (clean_run / "results.csv").read_bytes()
    assert any(str(part) in note and "runs again" in note for note in result.metadata["damaged"])


def test_a_case_cut_off_while_writing_its_parts_runs_again_silently(
    clean_run: Path, unjoined_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(unjoined_run, run_dir)
    (run_dir / "parts" / "00002.json").unlink()  # the record is written last
    _truncate_mid_line(run_dir / "parts" / "00002.csv")
    rerun: list[int] = []
    result = run_campaign(SMALL, run_dir, resume=True, progress=False, on_case=rerun.append)
    assert rerun == [2]
    assert "damaged" not in result.metadata
    assert (run_dir / "results.csv").read_bytes() == (clean_run / "results.csv").read_bytes()


def test_merge_refuses_a_shard_whose_part_is_a_symlink_naming_it(tmp_path: Path) -> None:
    for k in range(2):
        run_campaign(SMALL, tmp_path / f"s{k}", shard=(k, 2), progress=False)
    part = tmp_path / "s1" / "parts" / "00001.csv"
    _passwd_link(part)
    with pytest.raises(ValueError, match=f"{part}: a symlink"):
        campaign.merge_campaigns(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"])
    assert not (tmp_path / "merged" / "results.csv").exists()


def test_merge_refuses_a_garbage_part_naming_it_and_the_way_out(tmp_path: Path) -> None:
    for k in range(2):
        run_campaign(SMALL, tmp_path / f"s{k}", shard=(k, 2), progress=False)
    part = tmp_path / "s0" / "parts" / "00002.csv"
    part.write_bytes(b'garbage,"unclosed\n')
    with pytest.raises(ValueError, match=f"{part}.*--resume {tmp_path / 's0'}"):
        campaign.merge_campaigns(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"])


# ---- what a finished run leaves --------------------------------------------------------


def test_a_finished_run_removes_its_parts_and_records_its_tables(clean_run: Path) -> None:
    assert not (clean_run / "parts").exists()
    record = json.loads((clean_run / "complete.json").read_text())
    assert record["results.csv"][0] == (clean_run / "results.csv").stat().st_size


def test_an_interrupted_run_keeps_its_parts(unjoined_run: Path) -> None:
    assert len(list((unjoined_run / "parts").glob("*.json"))) == SMALL.n_cases
    assert not (unjoined_run / "complete.json").exists()


def test_resume_of_a_finished_run_runs_nothing_and_keeps_the_results(
    clean_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(clean_run, run_dir)
    rerun: list[int] = []
    result = run_campaign(SMALL, run_dir, resume=True, progress=False, on_case=rerun.append)
    assert rerun == []
    assert (run_dir / "results.csv").read_bytes() == (clean_run / "results.csv").read_bytes()
    assert len(result.results) == len(pd.read_csv(clean_run / "results.csv"))


def test_resume_of_a_finished_run_with_a_damaged_results_csv_runs_every_case_again(
    clean_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(clean_run, run_dir)
    _truncate_at_line(run_dir / "results.csv")
    rerun: list[int] = []
    result = run_campaign(SMALL, run_dir, resume=True, progress=False, on_case=rerun.append)
    assert sorted(rerun) == list(range(SMALL.n_cases))
    assert (run_dir / "results.csv").read_bytes() == (clean_run / "results.csv").read_bytes()
    assert any("results.csv" in note for note in result.metadata["damaged"])


def test_resume_refuses_a_config_json_edited_since_the_run_started(
    unjoined_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(unjoined_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["h_grid"] = [0.5, 1e-4, 1e-6]
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json: differs from the config this run started with"):
        run_campaign(SMALL, run_dir, resume=True, progress=False)



def test_the_report_read_in_chunks_is_the_report_of_the_whole_table(
    clean_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.report import error_vs_h, render_html

    monkeypatch.setattr(campaign, "CHUNK_ROWS", 7)  # many chunks, each a mix of row kinds
    run_dir = tmp_path / "run"
    shutil.copytree(clean_run, run_dir)
    result = run_campaign(SMALL, run_dir, resume=True, progress=False)
    assert result.error_table is not None
    pd.testing.assert_frame_equal(result.error_table, error_vs_h(result.results))
    assert (result.results["scheme"].isna()).sum() == len(result.judged)
    whole = render_html(result.results, result.fd_diagnostics, result.theory, {})
    chunked = render_html(
        result.judged, result.fd_diagnostics, result.theory, {}, error_table=result.error_table
    )
    assert chunked == whole


def test_resume_on_the_command_line_names_each_damaged_part_on_stderr(
    unjoined_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(unjoined_run, run_dir)
    _empty(run_dir / "parts" / "00001.fd.csv")
    capsys.readouterr()
    assert main(["run", "--resume", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert f"damaged: {run_dir / 'parts' / '00001.fd.csv'}: 0 bytes" in err
    assert "case g00001 runs again" in err


def test_a_run_killed_with_sigkill_mid_way_resumes_to_the_uninterrupted_results(
    tmp_path: Path,
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from harness.cli import main

    options = [
        "--cases", "12", "--seed", "3", "--no-corpus", "--engines", "torch:reverse",
        "--dtypes", "float64", "--schemes", "central", "--workers", "2", "--out", str(tmp_path),
    ]
    assert main(["run", *options, "--name", "clean"]) == 0
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", *options, "--name", "killed"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while len(list((killed / "parts").glob("*.json"))) < 2:
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)  # the parent and its workers, mid-way
    finally:
        process.wait()
    assert not (killed / "complete.json").exists()
    assert main(["run", "--resume", str(killed)]) == 0
    assert (killed / "results.csv").read_bytes() == (tmp_path / "clean" / "results.csv").read_bytes()


def test_an_optional_engine_that_is_not_installed_gives_skipped_rows_not_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = campaign.engine_from_spec

    def without_jax(spec: str):  # type: ignore[no-untyped-def]
        if spec.startswith("jax:"):
            raise ImportError("JaxEngine needs the optional package jax")
        return real(spec)

    monkeypatch.setattr(campaign, "engine_from_spec", without_jax)
    config = replace(corpus_config(tmp_path, "torch:reverse"), engines=("torch:reverse", "jax:reverse"))
    rows = run_campaign(config, tmp_path / "run", workers=0, progress=False).results
    assert set(rows["verdict"]) == {"ok", "skipped"}
    assert rows.loc[rows["verdict"] == "skipped", "truth_status"].str.contains("optional package jax").all()
