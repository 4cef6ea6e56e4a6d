"""Engines under test behind one protocol, and the names ``--engine`` understands.

Built-in names (``BUILTIN_ENGINES``): ``sympy`` (the truth, from :mod:`harness.truth`),
``torch:<mode>`` for every mode of :data:`harness.engines.torch_ad.MODES` (eager
reverse, forward, functional; the torch.func transforms jacrev, jacfwd, hessian,
autograd-functional; torch.compile's compile-aot and compile-inductor), ``torch:reverse+mean``
(the seed's ``.mean().backward()`` form), ``fd:<scheme>`` for every finite-difference
scheme, ``jax:<mode>`` for every mode of :data:`harness.engines.jax_ad.MODES` (optional
extra), ``scipy:derivative`` and
``numdifftools:<central|forward|backward|complex>`` (optional extra). Anything else is
``package.module:attr``,
where ``attr`` is an Engine instance or a callable returning one (a class with no
required arguments, say), imported the way pytest imports plugins. A torch name may end in
``@cuda`` or ``@cuda:N`` (``torch:jacfwd@cuda``): the same mode on that GPU
(:func:`is_builtin` accepts it; building it on a machine without one is an
:class:`EngineError`).

Only the person running diffharness may name a ``package.module:attr`` engine (on the
command line or through the Python API): importing it runs its code. Data files (case
files, a run folder's ``config.json``) may come from anyone, so the engines they name go
through :func:`refuse_unless_builtin` first, which never imports anything.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType

from harness.engines.base import Engine, EngineError
from harness.engines.jax_ad import MODES as JAX_MODES
from harness.engines.torch_ad import MODES, TorchEngine
from harness.fd.stencils import SCHEMES

__all__ = [  # noqa: F822 - FiniteDiffEngine is provided lazily by __getattr__
    "BUILTIN_ENGINES",
    "Engine",
    "EngineError",
    "FiniteDiffEngine",
    "TorchEngine",
    "engine_from_spec",
    "is_builtin",
    "refuse_unless_builtin",
]


def __getattr__(name: str) -> object:
    if name == "FiniteDiffEngine":  # lives in harness.fd, which imports this package
        from harness.fd.engine import FiniteDiffEngine

        return FiniteDiffEngine
    raise AttributeError(f"module 'harness.engines' has no attribute {name!r}")


def _symbolic() -> Engine:
    # The truth (harness.truth) needs python-flint; import it on first use so that the
    # AD engines (on a GPU box, say) work without it.
    from harness.truth import truth_engine

    return truth_engine()


def _jax(mode: str) -> Callable[[], Engine]:
    def make() -> Engine:
        from harness.engines.jax_ad import JaxEngine

        return JaxEngine(mode)

    return make


def _scipy() -> Engine:
    from harness.engines.peers import ScipyDerivativeEngine

    return ScipyDerivativeEngine()


def _numdifftools(method: str) -> Callable[[], Engine]:
    def make() -> Engine:
        from harness.engines.peers import NumdifftoolsEngine

        return NumdifftoolsEngine(method)

    return make


def _fd(scheme: str) -> Callable[[], Engine]:
    def make() -> Engine:
        from harness.fd.engine import FiniteDiffEngine

        return FiniteDiffEngine(scheme)

    return make


def _torch(mode: str, reduction: str = "sum") -> Callable[[], Engine]:
    return lambda: TorchEngine(mode, reduction=reduction)


BUILTIN_ENGINES: Mapping[str, Callable[[], Engine]] = MappingProxyType(
    {
        "sympy": _symbolic,
        **{f"torch:{m}": _torch(m) for m in MODES},
        "torch:reverse+mean": _torch("reverse", "mean"),
        **{f"fd:{s}": _fd(s) for s in SCHEMES},
        **{f"jax:{m}": _jax(m) for m in JAX_MODES},
        "scipy:derivative": _scipy,
        **{f"numdifftools:{m}": _numdifftools(m) for m in ("central", "forward", "backward", "complex")},
    }
)


_DEVICE = re.compile(r"^cuda(:[0-9]{1,2})?$")


def _on_device(spec: str) -> tuple[str, str] | None:
    """``(base spec, device)`` for a ``torch:<mode>@<device>`` name, else None."""
    base, at, device = spec.partition("@")
    if at and base.startswith("torch:") and base in BUILTIN_ENGINES and _DEVICE.match(device):
        return base, device
    return None


def is_builtin(spec: str) -> bool:
    """True for a built-in engine name, with or without a torch ``@cuda[:N]`` device."""
    return spec in BUILTIN_ENGINES or _on_device(spec) is not None


def refuse_unless_builtin(spec: str, where: str) -> None:
    """Raise ``ValueError`` unless ``spec`` is a built-in engine name; imports nothing.

    For engine names read from a data file (``where`` names it): a case file or run folder
    may come from anyone, and a ``package.module:attr`` spec imports and calls code.
    """
    if not is_builtin(spec):
        raise ValueError(
            f"engine={spec!r} in {where} is refused: data files may name only built-in "
            "engines; a user engine (package.module:attr) is named only on the command line "
            f"(--engine, --engines) or through the Python API. Built-in: {', '.join(BUILTIN_ENGINES)}"
        )


def engine_from_spec(spec: str) -> Engine:
    """Build an engine from a built-in name or ``package.module:attr``.

    Imports and calls user code for a ``package.module:attr`` spec: call it only with a
    spec the user gave (see :func:`refuse_unless_builtin` for specs read from files).
    Raises ``ValueError`` naming the spec and what was expected.
    """
    if spec in BUILTIN_ENGINES:
        return BUILTIN_ENGINES[spec]()
    on_device = _on_device(spec)
    if on_device is not None:
        base, device = on_device
        on_cpu = BUILTIN_ENGINES[base]()
        assert isinstance(on_cpu, TorchEngine)
        return TorchEngine(on_cpu.mode, device=device, reduction=on_cpu.reduction)
    if "@" in spec:
        raise ValueError(
            f"engine={spec!r}: a device suffix goes on a built-in torch engine as "
            "torch:<mode>@cuda or torch:<mode>@cuda:N (e.g. torch:reverse@cuda)"
        )
    if ":" not in spec or spec.count(":") != 1:
        raise ValueError(
            f"engine={spec!r} is neither a built-in engine ({', '.join(BUILTIN_ENGINES)}) "
            "nor of the form package.module:attr"
        )
    module_name, attr = spec.split(":")
    family = [name for name in BUILTIN_ENGINES if name.split(":")[0] == module_name]
    if family:  # torch:sideways is a misspelt built-in, not the attribute of a module
        raise ValueError(
            f"engine={spec!r} is not a built-in engine; the {module_name} engines are {', '.join(family)}"
        )
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        # as pytest puts the project's folder on the path: `--engine mymodule:attr` run
        # from the folder holding mymodule.py finds it (only for specs the user typed)
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"engine={spec!r}: cannot import {module_name!r}: {exc}") from None
    target = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"engine={spec!r}: {module_name!r} has no attribute {attr!r}") from None
    # A class satisfies the runtime protocol check too: instantiate classes and factories.
    engine = target if isinstance(target, Engine) and not isinstance(target, type) else None
    if engine is None and callable(target):
        try:
            engine = target()
        except Exception as exc:  # noqa: BLE001 - whatever the user's factory raises
            raise ValueError(
                f"engine={spec!r}: calling {attr}() failed: {type(exc).__name__}: {exc}"
            ) from None
    if not isinstance(engine, Engine):
        raise ValueError(
            f"engine={spec!r} gave {type(engine).__name__}, which is not an Engine: expected "
            "an object with name, supports(op) and derivatives(expr, points, *, dtype, order)"
        )
    return engine
