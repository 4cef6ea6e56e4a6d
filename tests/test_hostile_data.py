"""Data files are data: a case folder or run folder from anyone never runs code.

Each test is an attack a downloaded folder could make: a case file or a run folder's
``config.json`` naming a ``package.module:attr`` engine whose module sits beside it, ready
to be imported. The module, if ever imported, leaves a marker file; no test may find it.
"""

from __future__ import annotations

import json
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


def test_resume_with_the_module_engine_on_the_command_line_runs_it(
    evil_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (evil_folder / "own_engine_diffharness.py").write_text(
        "from harness.engines.torch_ad import TorchEngine\nengine = TorchEngine('reverse')\n",
        encoding="utf-8",
    )
    run_dir = small_run(capsys, evil_folder / "reports")
    config = json.loads((run_dir / "config.json").read_text())
    config["engines"] = ["own_engine_diffharness:engine"]
    (run_dir / "config.json").write_text(json.dumps(config))
    for part in (run_dir / "parts").glob("*"):
        part.unlink()
    code, _, err = invoke(
        capsys, "run", "--resume", str(run_dir), "--engines", "own_engine_diffharness:engine"
    )
    assert code == 0, err
