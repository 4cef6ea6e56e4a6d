"""The one tree compiler (harness/compile.py): a tree and a namespace become a function."""

from __future__ import annotations

from fractions import Fraction
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
import torch

from harness.compile import Namespace, compile_tree, kernel_key, torch_namespace
from harness.expr import Call, Const, Var, walk
from harness.parser import parse


def _numpy_namespace(calls: list[tuple[str, tuple[Any, ...]]]) -> Namespace:
    def record(name: str, fn: Any) -> Any:
        def kernel(*args: Any) -> Any:
            calls.append((name, args))
            return fn(*args)
        return kernel

    kernels = {"add": record("add", np.add), "mul": record("mul", np.multiply),
               "sin": record("sin", np.sin), "pow": record("pow", np.power)}
    return Namespace("numpy", MappingProxyType(kernels), lambda v, like: np.asarray(v, like.dtype),
                     lambda: np.zeros((), np.float64))


def test_a_compiled_tree_computes_each_shared_node_once_children_first() -> None:
    calls: list[tuple[str, tuple[Any, ...]]] = []
    s = Call("sin", (Var("x"),))
    expr = Call("add", (Call("mul", (s, s)), Var("y")))  # sin(x) appears twice, computed once
    run = compile_tree(expr, _numpy_namespace(calls))
    x, y = np.array([0.5, 1.5]), np.array([2.0, -1.0])
    assert run([x, y]).tolist() == (np.sin(x) * np.sin(x) + y).tolist()
    assert [name for name, _ in calls] == ["sin", "mul", "add"]


def test_every_node_gives_the_values_in_walk_order() -> None:
    expr = parse("sin(x) * 3 + x")
    x = np.array([0.25, 2.0])
    values = compile_tree(expr, _numpy_namespace([]), every_node=True)([x])
    nodes = list(walk(expr))
    assert len(values) == len(nodes)
    for node, value in zip(nodes, values, strict=True):
        if isinstance(node, Var):
            assert value is x
        if node == expr:
            assert value.tolist() == (np.sin(x) * 3 + x).tolist()


def test_constants_take_the_dtype_of_the_inputs_or_of_like() -> None:
    run = compile_tree(parse("x * 0.375"), torch_namespace())
    assert run([torch.tensor([2.0], dtype=torch.float16)]).dtype == torch.float16
    constant_only = compile_tree(Call("sin", (Const(Fraction(1, 2)),)), torch_namespace())
    assert constant_only([]).dtype == torch.float64
    assert constant_only([], torch.zeros((), dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_torch_gets_pows_constant_exponent_as_a_python_number() -> None:
    seen: list[Any] = []

    def pow_kernel(a: Any, b: Any) -> Any:
        seen.append(b)
        return torch.pow(a, b)

    run = compile_tree(parse("x ** 3"), torch_namespace({"pow": pow_kernel}))
    assert run([torch.tensor([2.0])]).tolist() == [8.0]
    assert seen == [3.0] and isinstance(seen[0], float)
    # a namespace without scalar parameters gets the constant as an array
    calls: list[tuple[str, tuple[Any, ...]]] = []
    compile_tree(parse("x ** 3"), _numpy_namespace(calls))([np.array([2.0])])
    assert isinstance(calls[-1][1][1], np.ndarray)


def test_an_op_without_a_kernel_is_named() -> None:
    with pytest.raises(KeyError, match=r"\['exp'\] have no numpy kernel"):
        compile_tree(parse("exp(x) + x"), _numpy_namespace([]))


def test_inputs_must_match_the_variables() -> None:
    run = compile_tree(parse("x + y"), torch_namespace())
    with pytest.raises(ValueError, match=r"expected 2 inputs for variables \('x', 'y'\), got 1"):
        run([torch.tensor([1.0])])


def test_overrides_replace_kernels_and_an_unknown_op_is_refused() -> None:
    doubled = torch_namespace({"sin": lambda u: 2 * torch.sin(u)})
    out = compile_tree(parse("sin(x)"), doubled)([torch.tensor([0.5], dtype=torch.float64)])
    assert out.item() == pytest.approx(2 * np.sin(0.5))
    with pytest.raises(ValueError, match="unknown ops \\['sine'\\]"):
        torch_namespace({"sine": torch.sin})


def test_the_kernel_key_changes_with_an_overridden_kernel() -> None:
    expr = parse("sin(x) + x")
    assert kernel_key(expr, torch_namespace()) == kernel_key(expr, torch_namespace())
    other = torch_namespace({"sin": lambda u: torch.sin(u)})
    assert kernel_key(expr, other) != kernel_key(expr, torch_namespace())
