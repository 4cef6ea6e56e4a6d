"""Replay case files: every case through its engines, dtypes and orders, judged as usual.

A case passes when no entry gets a failing verdict and, if it names an ``expect``ed
verdict, every entry gets exactly that one; each ``[[case.fd]]`` value must be
reproduced by the finite-difference engine within its ``rtol``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.cases import Case, CaseFileError, case_files, load_cases
from harness.check import compare
from harness.engines import engine_from_spec, refuse_unless_builtin
from harness.engines.torch_ad import EAGER_MODES
from harness.fd import FiniteDiffEngine
from harness.limits import TimeLimitExceeded, import_lazy_modules, time_limit
from harness.schema import FAILING

__all__ = ["replay_case", "replay_files"]

DEFAULT_ENGINES: tuple[str, ...] = tuple(f"torch:{m}" for m in EAGER_MODES)


def replay_case(case: Case, engines: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Run one case; returns its rows and a list of problems (empty when it passes).

    ``engines`` (the caller's) override the case's; the case file's own engines may only be
    built in, since a case file may come from anyone (see :func:`refuse_unless_builtin`).
    """
    specs = tuple(engines or case.engines or DEFAULT_ENGINES)
    from_file = not engines and bool(case.engines)
    frames: list[pd.DataFrame] = []
    problems: list[str] = []
    for spec in specs:
        try:
            if from_file:
                refuse_unless_builtin(spec, f"{case.source}:{case.line} (field engines)")
            engine = engine_from_spec(spec)
        except ValueError as exc:
            problems.append(f"{case.id}: {exc}")
            continue
        for dtype in case.dtypes:
            for order in case.orders:
                rows = compare(
                    engine, case.expr, case.points, dtype=dtype, order=order, case_id=case.id, source="corpus"
                )
                frames.append(rows)
                verdicts = set(rows["verdict"])
                bad = verdicts & FAILING
                if case.expect is not None:  # a known finding may expect a failing verdict
                    # a finding: exactly that failing verdict (other entries of the case,
                    # e.g. the rest of a Hessian, may be right); otherwise every entry
                    if case.expect in FAILING:
                        wrong = bad != {case.expect}
                    else:
                        wrong = bool(verdicts - {case.expect, "skipped"})
                    if wrong:
                        problems.append(
                            f"{case.id}: {spec} {dtype} order {order}: expected {case.expect}, "
                            f"got {', '.join(sorted(verdicts))}"
                        )
                elif bad:
                    problems.append(f"{case.id}: {spec} {dtype} order {order}: {', '.join(sorted(bad))}")
    for fd in case.fd:
        engine = FiniteDiffEngine(fd.scheme, fd.h, relative=fd.relative, exact_h=fd.exact_h)
        got = engine.derivatives(case.expr, case.points, dtype=fd.dtype, order=1)
        close = np.abs(got - fd.value) <= fd.rtol * abs(fd.value)
        if not close.all():
            problems.append(
                f"{case.id}: {engine.name} h={fd.h} {fd.dtype}: expected {fd.value!r}, "
                f"got {float(got.ravel()[~close.ravel()][0])!r}"
            )
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, problems


def replay_files(
    paths: Sequence[str | Path], engines: Sequence[str] | None = None, timeout: float | None = None
) -> tuple[str, bool]:
    """Replay every case in ``paths`` (files or folders); returns a report and pass/fail.

    ``timeout`` bounds the seconds of each case: one that runs past fails, and the rest run.
    """
    lines: list[str] = []
    ok = True
    if timeout:
        import_lazy_modules()
    for root in paths:
        files = case_files(root) if Path(root).exists() else []
        if not files:
            lines.append(f"{root}: no case files found")
            ok = False
        for path in files:
            try:
                cases = load_cases(path)
            except CaseFileError as exc:
                lines.append(f"invalid: {exc}")
                ok = False
                continue
            for case in cases:
                try:
                    with time_limit(timeout) if timeout else contextlib.nullcontext():
                        rows, problems = replay_case(case, engines)
                except TimeLimitExceeded:
                    rows, problems = pd.DataFrame(), [f"{case.id}: ran past --timeout {timeout:g} s"]
                counts = rows["verdict"].value_counts().to_dict() if len(rows) else {}
                summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                lines.append(f"{'FAIL' if problems else 'pass'}  {path}:{case.line}  {case.id}  ({summary})")
                lines += [f"      {p}" for p in problems]
                ok = ok and not problems
    return "\n".join(lines), ok
