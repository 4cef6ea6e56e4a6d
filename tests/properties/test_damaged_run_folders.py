"""Random damage to a run folder, then ``--resume``: the same results or a clear error.

One file of a run folder, drawn at random, is truncated, emptied, deleted or garbled at a
random place; resuming the run must then give a ``results.csv`` byte-identical to the
undamaged run's, or raise an error whose message names the damaged file. Never a
``results.csv`` that silently lacks rows. Both kinds of folder are damaged: an unfinished
run (its ``parts/`` still there) and a finished one (``parts/`` removed, tables recorded
in ``complete.json``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from harness.campaign import CampaignConfig, run_campaign

SMALL = CampaignConfig(
    n_cases=4, seed=3, dtypes=("float64",), engines=("torch:reverse",), schemes=("central",),
    h_grid=(1e-2, 1e-4), corpus=(), n_points=2, max_size=5, case_timeout=60.0,
)
ACTIONS = ("truncate", "empty", "delete", "garble")


def _stop_after(k: int):  # noqa: ANN202 - a hook for run_campaign's on_case
    done: list[int] = []

    def hook(index: int) -> None:
        done.append(index)
        if len(done) >= k:
            raise KeyboardInterrupt

    return hook


@pytest.fixture(scope="module")
def folders() -> Iterator[dict[str, Path]]:
    """The undamaged results, an unfinished run and a finished run of SMALL."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_campaign(SMALL, root / "finished", progress=False)
        with pytest.raises(KeyboardInterrupt):
            run_campaign(SMALL, root / "unfinished", progress=False, on_case=_stop_after(3))
        yield {"finished": root / "finished", "unfinished": root / "unfinished"}


def _damage(path: Path, action: str, where: float) -> None:
    data = path.read_bytes()
    at = int(where * len(data))
    if action == "delete":
        path.unlink()
    elif action == "empty":
        path.write_bytes(b"")
    elif action == "truncate":
        path.write_bytes(data[:at])
    else:
        garbled = bytearray(data or b"\0")
        garbled[min(at, len(garbled) - 1)] ^= 0x5A
        path.write_bytes(bytes(garbled))


@seed(12)
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    kind=st.sampled_from(["unfinished", "finished"]),
    pick=st.floats(0, 1, exclude_max=True),
    action=st.sampled_from(ACTIONS),
    where=st.floats(0, 1, exclude_max=True),
)
def test_resume_after_random_damage_gives_the_same_results_or_an_error_naming_the_file(
    folders: dict[str, Path], kind: str, pick: float, action: str, where: float
) -> None:
    expected = (folders["finished"] / "results.csv").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        shutil.copytree(folders[kind], run_dir)
        files = sorted(p for p in run_dir.rglob("*") if p.is_file())
        victim = files[int(pick * len(files))]
        _damage(victim, action, where)
        try:
            run_campaign(SMALL, run_dir, resume=True, progress=False)
        except (ValueError, FileNotFoundError) as exc:
            assert victim.name in str(exc), f"{action} {victim}: {exc}"
            return
        assert (run_dir / "results.csv").read_bytes() == expected, f"{action} {victim}"
