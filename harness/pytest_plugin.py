"""pytest plugin (entry point ``pytest11``): Hypothesis profiles for diffharness suites.

Profiles, chosen with ``--hypothesis-profile NAME`` or the ``DIFFHARNESS_PROFILE``
environment variable:

* ``dev``: few examples, fast feedback while editing;
* ``ci``: derandomised, so a CI run is repeatable, with a moderate example budget;
* ``thorough``: many examples, for overnight runs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["PROFILES"]

PROFILES = {
    "dev": dict(max_examples=20, deadline=None),
    "ci": dict(max_examples=60, deadline=None, derandomize=True, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow]),
    "thorough": dict(max_examples=2000, deadline=None),
}

for _name, _kwargs in PROFILES.items():
    settings.register_profile(f"diffharness-{_name}", **_kwargs)  # type: ignore[arg-type]

_chosen = os.environ.get("DIFFHARNESS_PROFILE")
if _chosen:
    if _chosen not in PROFILES:
        raise ValueError(
            f"DIFFHARNESS_PROFILE={_chosen!r} is not a profile; expected one of {sorted(PROFILES)}"
        )
    settings.load_profile(f"diffharness-{_chosen}")
