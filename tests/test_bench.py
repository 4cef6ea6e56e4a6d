"""Benchmarks measure; these tests check what they count and how they summarise it."""

from __future__ import annotations

import numpy as np
import pytest

from harness import bench
from harness.expr import size, variables
from harness.fd import DEFAULT_H_GRID, SCHEMES


def test_summaries_are_in_milliseconds_with_the_90th_percentile_from_the_sorted_list() -> None:
    result = bench.summarise_ms([0.001 * k for k in range(10, 0, -1)])
    assert result["min_ms"] == pytest.approx(1.0) and result["max_ms"] == pytest.approx(10.0)
    assert result["median_ms"] == pytest.approx(5.5) and result["p90_ms"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="durations_s"):
        bench.summarise_ms([])


@pytest.mark.parametrize("n_nodes", [1, 10, 100])
def test_random_trees_have_about_the_size_asked_for_and_a_variable(n_nodes: int) -> None:
    tree = bench.random_tree(n_nodes, seed=n_nodes)
    assert variables(tree)
    assert abs(size(tree) - n_nodes) <= max(1, n_nodes // 5)


def test_the_full_check_judges_every_mode_dtype_scheme_and_step() -> None:
    tree = bench.random_tree(8, seed=1)
    m = len(variables(tree))
    pts = np.random.default_rng(0).uniform(-1, 1, (5, m)).astype(np.float32).astype(np.float64)
    stages: dict[str, float] = {}
    entries = bench.full_check(tree, pts, stages=stages)
    ad_rows = 2 * 2 * 5 * m  # two modes, two dtypes
    fd_entries = 2 * len(SCHEMES) * len(DEFAULT_H_GRID) * 5 * m  # every random tree is analytic
    assert entries == ad_rows + fd_entries
    assert set(stages) == {"truth", "tolerance", "torch", "verdicts", "finite differences"}
    assert all(v >= 0 for v in stages.values())


def test_the_check_table_has_one_row_per_batch_size_with_its_ratio() -> None:
    result = {
        "n_exprs": 2, "size": 10,
        "rows": [
            {"n_points": 32, "full_check_ms_per_point": 2.0, "gradcheck_ms_per_point": 1.0,
             "gradcheck_over_full_check": 0.5, "stages_ms_per_point": {"truth": 1.5}},
            {"n_points": 1024, "full_check_ms_per_point": 0.1, "gradcheck_ms_per_point": 1.0,
             "gradcheck_over_full_check": 10.0, "stages_ms_per_point": {"truth": 0.05}},
        ],
    }
    lines = bench.format_check(result).splitlines()
    assert len(lines) == 4
    assert lines[2].split()[:4] == ["32", "2.000", "1.000", "0.50"]
    assert lines[3].split()[:4] == ["1024", "0.100", "1.000", "10.00"]
    with_fixed = bench.format_check({**result, "truth_compile_ms": 0.4567}).splitlines()
    assert with_fixed[0].endswith("median): 0.46 ms") and with_fixed[1:] == lines
    both = bench.format_check({**result, "truth_compile_ms": 0.4567, "full_check_fixed_ms": 41.26})
    assert both.splitlines()[1] == "fixed cost per expression (its whole check at one point, median): 41.3 ms"
    assert both.splitlines()[2:] == lines

