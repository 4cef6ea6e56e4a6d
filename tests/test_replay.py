"""Replay: curated cases rerun through their engines; a wrong expectation is a clear FAIL."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.cases import load_cases
from harness.replay import replay_case, replay_files

SEED = Path(__file__).resolve().parents[1] / "cases" / "seed.toml"


def case_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_seed_file_passes() -> None:
    text, ok = replay_files([SEED])
    assert ok, text
    lines = text.splitlines()
    assert len(lines) == 4 and all(line.startswith("pass  ") for line in lines)
    assert f"{SEED}:4  seed-forward-difference" in lines[0]


def test_a_wrong_expected_verdict_fails_with_a_line_naming_case_engine_and_verdicts(
    tmp_path: Path,
) -> None:
    path = case_file(tmp_path, """\
[[case]]
id = "right-rule"
expr = "3*x**2"
points = [{x = 1.0}]
dtypes = ["float64"]
engines = ["torch:reverse"]
expect = "ok"

[[case]]
id = "wrong-expect"
expr = "3*x**2"
points = [{x = 1.0}]
dtypes = ["float64"]
engines = ["torch:reverse"]
expect = "mismatch"
""")
    text, ok = replay_files([path])
    assert not ok
    lines = text.splitlines()
    assert lines[0].startswith("pass  ") and "right-rule" in lines[0]
    assert lines[1].startswith("FAIL  ") and f"{path}:9  wrong-expect" in lines[1]
    assert lines[2].strip() == "wrong-expect: torch:reverse float64 order 1: expected mismatch, got ok"


def test_a_wrong_finite_difference_value_fails_naming_expected_and_got(tmp_path: Path) -> None:
    path = case_file(tmp_path, """\
[[case]]
id = "fd-wrong"
expr = "3*(x + 1)**2"
points = [{x = 1.0}]
dtypes = ["float32"]
engines = ["torch:reverse"]

[[case.fd]]
scheme = "forward"
h = 1e-3
dtype = "float32"
value = 12.0
rtol = 1e-7
exact_h = false
""")
    (case,) = load_cases(path)
    _, problems = replay_case(case)
    assert len(problems) == 1
    assert problems[0].startswith(
        "fd-wrong: fd:forward:nominal-h h=0.001 float32: expected 12.0, got 12.0019"
    )


def test_a_wrong_derivative_engine_fails_the_replay(tmp_path: Path) -> None:
    path = case_file(tmp_path, '[[case]]\nid = "c"\nexpr = "sin(x)"\npoints = [{x = 0.5}]\n'
                     'dtypes = ["float64"]\n')
    (case,) = load_cases(path)
    _, problems = replay_case(case, engines=["fd:forward"])  # h = 1e-6 forward: ~1e-7 off
    assert problems == ["c: fd:forward float64 order 1: mismatch"]


def test_a_missing_file_fails_instead_of_passing_vacuously(tmp_path: Path) -> None:
    text, ok = replay_files([tmp_path / "nothing-here"])
    assert not ok and "no case files found" in text


def torch_float32_forward_difference(f: object, h: float) -> float:
    """The seed's code: (f(x + h) - f(x)) / h on float32 tensors at x = 1."""
    x, step = torch.tensor(1.0), torch.tensor(h)
    return float((f(x + step) - f(x)) / step)  # type: ignore[operator]


def test_the_seeds_finite_difference_expectations_are_the_posts_numbers() -> None:
    cases = {c.id: c for c in load_cases(SEED)}
    square = cases["seed-forward-difference"].fd[0]
    poly = {fd.dtype: fd for fd in cases["seed-tensor-forward-difference"].fd}
    # what the post prints with torch's four decimals: tensor(12.0020) and 1.8120 (= d / 16)
    assert f"{square.value:.4f}" == "12.0020"
    assert f"{poly['float32'].value / 16:.4f}" == "1.8120"
    # and what its code computes, digit for digit
    assert square.value == torch_float32_forward_difference(lambda x: 3 * (x + 1) ** 2, 1e-3)
    assert poly["float32"].value == torch_float32_forward_difference(
        lambda x: x**4 + 3 * x**3 + 8 * x**2 + 3, 1e-5
    )
    # the seed README: in float64 the same difference / 16 is 1.8125144
    assert f"{poly['float64'].value / 16:.7f}" == "1.8125144"


@pytest.mark.parametrize("case_id", ["seed-forward-difference", "seed-tensor-forward-difference"])
def test_replay_reproduces_the_seeds_finite_difference_numbers(case_id: str) -> None:
    (case,) = [c for c in load_cases(SEED) if c.id == case_id]
    assert case.fd, "the seed case lost its finite-difference expectation"
    rows, problems = replay_case(case)
    assert problems == []
    assert set(rows["verdict"]) == {"ok"}


def test_the_seeds_mean_reduced_autograd_gives_the_exact_derivative_29() -> None:
    (case,) = [c for c in load_cases(SEED) if c.id == "seed-tensor-autograd-mean"]
    rows, problems = replay_case(case)
    assert problems == []
    assert len(rows) == 16 and (rows["value"] == 29.0).all() and (rows["truth"] == 29.0).all()


def test_a_known_finding_passes_while_the_engine_still_gets_the_expected_verdict(tmp_path: Path) -> None:
    # a finding kept in cases/ expects the failing verdict the engine gets today; replay
    # fails once the engine changes, not before
    path = tmp_path / "finding.toml"
    path.write_text(
        '[[case]]\nid = "softplus-threshold"\nexpr = "softplus(x)"\npoints = [{x = 21.0}]\n'
        'dtypes = ["float64"]\norders = [1]\nengines = ["torch:reverse"]\nexpect = "mismatch"\n',
        encoding="utf-8",
    )
    text, ok = replay_files([path])
    assert ok and "pass" in text
    path.write_text(path.read_text().replace("21.0", "2.0"), encoding="utf-8")  # right there
    text, ok = replay_files([path])
    assert not ok and "expected mismatch, got ok" in text
