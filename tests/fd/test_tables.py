"""A case's finite-difference tables (harness/fd/tables.py)."""

from __future__ import annotations

import warnings

import numpy as np

from harness.fd.tables import row_nanmedian


def test_row_medians_match_numpys_nanmedian_nans_and_infinities_included() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        a = rng.standard_normal((5, int(rng.integers(1, 12)))) * 10.0 ** rng.integers(-300, 300)
        a[rng.random(a.shape) < 0.3] = np.nan
        a[rng.random(a.shape) < 0.05] = np.inf
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows warn
            expected = np.nanmedian(a, axis=1)
        assert np.array_equal(row_nanmedian(a), expected, equal_nan=True)
