"""Certification helpers (harness/truth/certify.py) not covered through the engine."""

from __future__ import annotations

import numpy as np

from harness.truth.certify import grouped_rows


def test_rows_are_grouped_by_their_distinct_point_in_order() -> None:
    pts = np.array([[1.0, 2.0], [0.5, 0.0], [1.0, 2.0], [0.5, 0.0], [3.0, 3.0], [1.0, 2.0]])
    uniq, groups = grouped_rows(pts)
    assert [row.tolist() for row in uniq] == [[0.5, 0.0], [1.0, 2.0], [3.0, 3.0]]
    assert [g.tolist() for g in groups] == [[1, 3], [0, 2, 5], [4]]
