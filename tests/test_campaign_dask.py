"""Campaigns on Dask (``run_campaign(executor="dask")``, ``diffharness run --executor dask``):
the same run folder as a local run, resumable, on a LocalCluster here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_campaign import SMALL, result_parts, stop_after

from harness.campaign import run_campaign

pytest.importorskip("distributed", reason="the dask extra (distributed) is not installed")
pytestmark = pytest.mark.slow  # starts a LocalCluster of two processes


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("local") / "run"
    run_campaign(SMALL, run_dir, workers=0, progress=False)
    return run_dir


def test_a_dask_run_writes_the_same_results_csv_as_a_local_run(local_run: Path, tmp_path: Path) -> None:
    run_campaign(SMALL, tmp_path / "dask", workers=2, executor="dask", progress=False)
    assert (tmp_path / "dask" / "results.csv").read_bytes() == (local_run / "results.csv").read_bytes()


def test_an_interrupted_dask_run_resumes_to_the_same_results(local_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_campaign(SMALL, run_dir, workers=2, executor="dask", progress=False, on_case=stop_after(2))
    assert len(result_parts(run_dir)) == 2  # the two cases that came back first are kept
    rerun: list[int] = []
    run_campaign(
        replace(SMALL, seed=99), run_dir, workers=2, executor="dask", resume=True, progress=False,
        on_case=rerun.append,
    )
    assert len(rerun) == SMALL.n_cases - 2
    assert (run_dir / "results.csv").read_bytes() == (local_run / "results.csv").read_bytes()


def test_an_unknown_executor_or_a_scheduler_without_dask_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor='ray'.*local, dask"):
        run_campaign(SMALL, tmp_path / "a", executor="ray", progress=False)
    with pytest.raises(ValueError, match="scheduler=.*executor='dask'"):
        run_campaign(SMALL, tmp_path / "b", scheduler="tcp://127.0.0.1:8786", progress=False)
