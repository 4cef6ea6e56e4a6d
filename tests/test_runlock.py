"""One writer per run folder: a second run, resume or merge on a folder another process is
writing stops at once, naming that process, and writes nothing there."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.campaign import CampaignConfig, run_campaign
from harness.cli import main
from harness.runlock import LOCK_FILE, RunFolderBusy, run_lock

HOLD = (
    "import sys, time\n"
    "from harness.runlock import run_lock\n"
    "with run_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


TRY = HOLD.replace("time.sleep(600)", "pass")  # takes the lock, prints "held", lets go


def try_from_another_process(run_dir: Path) -> subprocess.CompletedProcess[str]:
    """Another process's attempt to take ``run_dir``'s lock."""
    return subprocess.run(
        [sys.executable, "-c", TRY, str(run_dir)], capture_output=True, text=True, check=False
    )


def refused_to_another_process(run_dir: Path) -> bool:
    """Whether another process's attempt to take ``run_dir``'s lock is refused."""
    probe = try_from_another_process(run_dir)
    return probe.returncode != 0 and "RunFolderBusy" in probe.stderr


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A run folder whose lock another process holds until the test ends."""
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    yield run_dir, holder
    holder.kill()
    holder.wait()
    holder.stdout.close()


def test_a_folder_another_process_holds_is_refused_naming_that_process(
    held: tuple[Path, subprocess.Popen[str]],
) -> None:
    run_dir, holder = held
    with pytest.raises(RunFolderBusy, match=rf"pid {holder.pid}\b.*choose another folder"):
        with run_lock(run_dir):
            pass


def test_a_campaign_on_a_held_folder_writes_nothing_there(
    held: tuple[Path, subprocess.Popen[str]],
) -> None:
    run_dir, _ = held
    config = CampaignConfig(n_cases=2, corpus=(), schemes=(), dtypes=("float64",))
    with pytest.raises(RunFolderBusy):
        run_campaign(config, run_dir, progress=False)
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]


def test_the_command_line_refuses_a_held_folder_with_exit_status_2(
    held: tuple[Path, subprocess.Popen[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, holder = held
    argv = ["run", "--cases", "2", "--no-corpus", "--out", str(run_dir.parent), "--name", run_dir.name]
    assert main(argv) == 2
    assert f"pid {holder.pid}" in capsys.readouterr().err
    assert main(["run", "--resume", str(run_dir)]) == 2
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]


def test_the_lock_of_a_killed_process_is_free_at_once(held: tuple[Path, subprocess.Popen[str]]) -> None:
    run_dir, holder = held
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with run_lock(run_dir):  # the file stays, the kernel dropped the lock with the process
        assert (run_dir / LOCK_FILE).exists()


def test_holds_nest_within_one_process_and_end_with_the_outermost(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with run_lock(run_dir):
        with run_lock(run_dir):
            pass
        assert refused_to_another_process(run_dir)  # still held here
    probe = try_from_another_process(run_dir)
    assert probe.returncode == 0 and probe.stdout.strip() == "held"


def test_a_folder_made_inside_a_hold_that_found_none_is_locked(tmp_path: Path) -> None:
    run_dir = tmp_path / "new"
    with run_lock(run_dir, create=False):  # as the CLI holds a folder the campaign makes
        assert not run_dir.exists()
        with run_lock(run_dir):
            assert refused_to_another_process(run_dir)
        assert refused_to_another_process(run_dir)  # handed to the outer hold
    assert not refused_to_another_process(run_dir)


def test_the_command_line_locks_the_new_folder_it_runs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.campaign as campaign

    run_dir = tmp_path / "run"
    refused: list[bool] = []

    def another_process_tries(index: int) -> None:
        refused.append(refused_to_another_process(run_dir))

    real = campaign.run_campaign
    monkeypatch.setattr(
        campaign, "run_campaign", lambda *a, **k: real(*a, **k, on_case=another_process_tries)
    )
    argv = ["run", "--cases", "1", "--no-corpus", "--schemes", "none", "--dtypes", "float64",
            "--workers", "0", "--out", str(tmp_path), "--name", "run"]
    assert main(argv) == 0
    assert refused == [True]


@pytest.mark.parametrize("command", ["run", "merge"])
def test_the_command_line_holds_a_new_folder_while_it_writes_the_report(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.cli as cli

    common = ["--cases", "2", "--no-corpus", "--schemes", "none", "--dtypes", "float64",
              "--workers", "0", "--out", str(tmp_path)]
    if command == "merge":
        for k in range(2):
            assert main(["run", *common, "--shard", f"{k}/2", "--name", f"s{k}"]) == 0
        argv = ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path), "--name", "new"]
    else:
        argv = ["run", *common, "--name", "new"]
    run_dir = tmp_path / "new"
    refused: list[bool] = []
    real = cli._report

    def report_while_another_process_tries(*args: object, **kwargs: object) -> int:
        refused.append(refused_to_another_process(run_dir))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "_report", report_while_another_process_tries)
    assert main(argv) == 0
    assert refused == [True]
    assert (run_dir / "report.html").is_file()


def test_resuming_a_folder_that_does_not_exist_does_not_make_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    with pytest.raises((FileNotFoundError, ValueError)):
        run_campaign(CampaignConfig(), missing, resume=True, progress=False)
    assert not missing.exists()


def test_a_file_system_without_locks_runs_unlocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.runlock as runlock

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(runlock.fcntl, "flock", no_locks)
    entered = False
    with run_lock(tmp_path / "run"):
        entered = True
    assert entered


def test_a_folder_where_the_lock_file_cannot_be_made_runs_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.runlock as runlock

    def read_only(path: object, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setattr(runlock.os, "open", read_only)
    entered = False
    with run_lock(run_dir, create=False):
        entered = True
    assert entered and not (run_dir / LOCK_FILE).exists()
