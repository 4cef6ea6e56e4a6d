"""diffharness: are these derivatives right?

Exact sympy derivatives (certified with ball arithmetic) are the truth; AD engines and
finite differences over a grid of step sizes are checked against them, on expressions
Hypothesis generates and shrinks. The public API:

* trees and text: :class:`Var`, :class:`Const`, :class:`Call`, :func:`parse`,
  :func:`to_text`, :func:`variables`;
* engines: :class:`Engine` (the protocol), :class:`TorchEngine`,
  :class:`FiniteDiffEngine`, :func:`engine_from_spec`; the truth: :class:`SymbolicEngine`;
* checking: :func:`check_engine`, :func:`assert_engine`, :func:`compare`;
* generators: :func:`expressions`, :func:`points` (and ``harness.strategies.cases``);
* campaigns: :class:`CampaignConfig`, :func:`run_campaign`.

The JAX, scipy and numdifftools engines live in ``harness.engines.jax_ad`` and
``harness.engines.peers`` (optional extras).
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names -> the module that defines them. Imported on first use, so that
# ``import harness`` (the command line's --help, a worker process) does not pay for torch,
# sympy and pandas until a name needs them, and a half-built optional piece cannot break
# the whole package. The parser module is ``harness.parser``, not ``harness.parse``: a
# submodule of that name would replace the function ``harness.parse`` once imported.
_EXPORTS: dict[str, str] = {
    "CampaignConfig": "harness.campaign",
    "run_campaign": "harness.campaign",
    "CheckResult": "harness.check",
    "EngineMismatch": "harness.check",
    "assert_engine": "harness.check",
    "check_engine": "harness.check",
    "compare": "harness.check",
    "Engine": "harness.engines",
    "EngineError": "harness.engines",
    "FiniteDiffEngine": "harness.fd",
    "SymbolicEngine": "harness.truth",
    "TorchEngine": "harness.engines",
    "engine_from_spec": "harness.engines",
    "Call": "harness.expr",
    "Const": "harness.expr",
    "Var": "harness.expr",
    "to_text": "harness.expr",
    "variables": "harness.expr",
    "expressions": "harness.strategies",
    "points": "harness.strategies",
    "ParseError": "harness.parser",
    "parse": "harness.parser",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = [  # noqa: F822 - provided lazily by __getattr__
    "CampaignConfig",
    "Call",
    "CheckResult",
    "Const",
    "Engine",
    "EngineError",
    "EngineMismatch",
    "FiniteDiffEngine",
    "ParseError",
    "SymbolicEngine",
    "TorchEngine",
    "Var",
    "assert_engine",
    "check_engine",
    "compare",
    "engine_from_spec",
    "expressions",
    "parse",
    "points",
    "run_campaign",
    "to_text",
    "variables",
]
__version__ = "0.1.0"
