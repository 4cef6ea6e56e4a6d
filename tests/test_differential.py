"""vs_eager: a transformed mode's value against its eager mode's, entry by entry."""

from __future__ import annotations

import numpy as np
import pytest

from harness.check import compare
from harness.differential import eager_engine, vs_eager
from harness.engines import engine_from_spec, is_builtin
from harness.engines.base import EngineError
from harness.engines.torch_ad import TorchEngine
from harness.expr import Call, Expr, Var

X = Var("x")
SIN = Call("sin", (X,))
PTS = np.array([[0.5], [1.0], [2.0]])


def test_values_within_tolerance_or_the_same_nan_agree() -> None:
    words = vs_eager(
        np.array([1.0, 1.0 + 1e-9, np.nan, np.inf, 2.0]),
        np.array([1.0, 1.0, np.nan, np.inf, 1.0]),
        np.array(["ok", "ok", "ok", "ok", "ok"], dtype=object),
        np.array([1e-12, 1e-6, 1e-12, 1e-12, 1e-12]),
    )
    assert words.tolist() == ["agrees", "agrees", "agrees", "agrees", "differs"]


def test_a_nan_or_infinity_where_eager_is_finite_differs() -> None:
    words = vs_eager(np.array([np.nan, np.inf]), np.array([1.0, 1.0]),
                     np.array(["ok", "ok"], dtype=object), np.array([1e-12, 1e-12]))
    assert words.tolist() == ["differs", "differs"]


def test_nothing_is_compared_where_eager_is_not_ok() -> None:
    words = vs_eager(np.array([5.0]), np.array([1.0]), np.array(["mismatch"], dtype=object),
                     np.array([1e-12]))
    assert words.tolist() == ["eager-not-ok"]


class ShiftedSin:
    """A 'compiled' engine whose derivative is eager torch's plus ``shift``."""

    name = "shifted"

    def __init__(self, shift: float) -> None:
        self.shift = shift

    def supports(self, op: str) -> bool:
        return True

    def derivatives(self, expr: Expr, points: np.ndarray, *, dtype: str, order: int = 1) -> np.ndarray:
        return TorchEngine().derivatives(expr, points, dtype=dtype, order=order) + self.shift

    def eager(self) -> TorchEngine:
        return TorchEngine("reverse")


def test_compare_says_differs_where_a_transformed_engine_moves_an_eager_ok_value() -> None:
    rows = compare(ShiftedSin(1e-3), SIN, PTS, dtype="float64")
    assert rows["vs_eager"].tolist() == ["differs"] * 3
    assert rows["verdict"].tolist() == ["mismatch"] * 3  # the truth's verdict is kept apart


def test_compare_says_agrees_for_the_same_values_and_nothing_for_an_eager_mode() -> None:
    assert compare(ShiftedSin(0.0), SIN, PTS, dtype="float64")["vs_eager"].tolist() == ["agrees"] * 3
    assert compare(TorchEngine("reverse"), SIN, PTS, dtype="float64")["vs_eager"].tolist() == [""] * 3
    assert eager_engine(TorchEngine("reverse")) is None


def test_a_skipped_row_has_no_comparison() -> None:
    rows = compare(TorchEngine("hessian"), SIN, PTS, dtype="float64", order=1)
    assert rows["verdict"].tolist() == ["skipped"] * 3
    assert rows["vs_eager"].tolist() == [""] * 3


def test_torch_specs_take_a_cuda_device_suffix_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_builtin("torch:jacfwd@cuda") and is_builtin("torch:compile-aot@cuda:1")
    assert not is_builtin("torch:jacfwd@tpu") and not is_builtin("jax:eager@cuda")
    with pytest.raises(ValueError, match="torch:<mode>@cuda"):
        engine_from_spec("jax:eager@cuda")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="torch.cuda.is_available"):
            engine_from_spec("torch:jacfwd@cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    engine = engine_from_spec("torch:jacfwd@cuda")
    assert isinstance(engine, TorchEngine) and engine.mode == "jacfwd" and engine.name == "torch:jacfwd@cuda"
    eager = engine.eager()
    assert eager is not None and eager.name == "torch:forward@cuda"


def test_an_entry_without_a_finite_tolerance_is_not_compared() -> None:
    words = vs_eager(np.array([0.0]), np.array([1e-44]), np.array(["ok"], dtype=object),
                     np.array([np.nan]))
    assert words.tolist() == [""]


def test_a_transformed_mode_judged_after_its_eager_mode_reuses_the_eager_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A campaign judges torch:reverse and then torch:functional on the same request: the
    eager values are computed once, and the words are those of a fresh comparison."""
    from harness.check import _EAGER_CACHE

    _EAGER_CACHE.clear()
    fresh = compare(TorchEngine("functional"), SIN, PTS, dtype="float64")["vs_eager"].tolist()
    _EAGER_CACHE.clear()
    calls: list[str] = []
    real = TorchEngine.derivatives

    def counted(self: TorchEngine, *args: object, **kwargs: object) -> np.ndarray:
        calls.append(self.name)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TorchEngine, "derivatives", counted)
    compare(TorchEngine("reverse"), SIN, PTS, dtype="float64")
    words = compare(TorchEngine("functional"), SIN, PTS, dtype="float64")["vs_eager"].tolist()
    assert calls == ["torch:reverse", "torch:functional"]
    assert words == fresh == ["agrees"] * 3
