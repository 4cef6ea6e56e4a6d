"""Time to detection (harness/detection.py): each contestant against a right and wrong rules."""

from __future__ import annotations

import math

from harness.detection import RULES, detect, format_detect


def _rule(name: str):  # type: ignore[no-untyped-def]
    return next(r for r in RULES if r.name == name)


def test_a_right_rule_passes_every_contestant_and_wrong_ones_are_caught_by_diffharness() -> None:
    rules = (_rule("correct"), _rule("wrong constant"), _rule("only at 0"))
    rows = detect(budget=2.0, rules=rules)
    right, constant, at_zero = rows
    assert all(math.isnan(right[c]) for c in ("diffharness", "gradcheck", "gradcheck-fast", "gradgradcheck"))
    assert constant["diffharness"] <= 2.0 and constant["gradcheck"] <= 2.0  # both see a 1% error
    # gradcheck's random inputs are never exactly 0; the edge phase puts sin there first
    assert at_zero["diffharness"] <= 2.0 and math.isnan(at_zero["gradcheck"])
    table = format_detect(rows, 2.0)
    assert "only at 0" in table and table.count("\n") == len(rows) + 1
