"""`landscape.expr`: a user's f(x, y) in Python arithmetic, parsed safely into a torch function.

The text is parsed with Python's `ast` module and every node is checked against a whitelist:
numbers, the variables x and y, the constants pi and e, + - * / ** and unary minus/plus, and calls
of a fixed list of functions with one argument. Nothing is ever passed to eval() or compile(): the
checked tree is turned into nested Python closures over torch operations, so `__import__('os')`,
attribute access, subscripts, lambdas and comprehensions are rejected before anything runs.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Callable

from dlrun.errors import ConfigError

KEY = "landscape.expr"
MAX_LENGTH = 1000  # deeply nested text can exhaust the parser's recursion; no real surface is this long
CONSTANTS = {"pi": math.pi, "e": math.e}
FUNCTIONS = ("sin", "cos", "exp", "log", "sqrt", "abs", "tanh")
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
ALLOWED = (f"an expression may use only numbers, x, y, pi, e, + - * / **, unary minus and the functions "
           f"{', '.join(FUNCTIONS)} (one argument each)")

# what a rejected node is, in words a user recognises
_NAMES = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambda",
    ast.ListComp: "comprehensions", ast.SetComp: "comprehensions", ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions", ast.Compare: "comparisons", ast.BoolOp: "and/or",
    ast.IfExp: "if-else", ast.NamedExpr: "the := operator", ast.Starred: "*unpacking",
    ast.List: "lists", ast.Tuple: "tuples", ast.Dict: "dicts", ast.Set: "sets", ast.JoinedStr: "f-strings",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.keyword: "keyword arguments",
}


def _reject(expr: str, what: str):
    raise ConfigError(KEY, repr(expr), f"it uses {what}; {ALLOWED}")


_SYMBOLS = {ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
            ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Not: "not"}


def _describe(node: ast.AST) -> str:
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return f"the operator {_SYMBOLS.get(type(node.op), type(node.op).__name__)}"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    return _NAMES.get(type(node), f"{type(node).__name__} expressions")


def _compile(node: ast.AST, expr: str, torch) -> Callable:
    """A function (x, y) -> tensor for one checked node (children compiled first, bottom-up)."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            _reject(expr, _describe(node))
        value = float(node.value)
        return lambda x, y: value
    if isinstance(node, ast.Name):
        if node.id == "x":
            return lambda x, y: x
        if node.id == "y":
            return lambda x, y: y
        if node.id in CONSTANTS:
            value = CONSTANTS[node.id]
            return lambda x, y: value
        _reject(expr, f"the name {node.id!r}")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op, left, right = _BINARY[type(node.op)], _compile(node.left, expr, torch), _compile(node.right, expr, torch)
        # a number ** number is done in torch too: Python floats raise OverflowError where torch gives inf
        return lambda x, y: op(torch.as_tensor(left(x, y), dtype=x.dtype), right(x, y))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        op, operand = _UNARY[type(node.op)], _compile(node.operand, expr, torch)
        return lambda x, y: op(operand(x, y))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _reject(expr, "a call of an attribute (a.b(...))" if isinstance(node.func, ast.Attribute)
                    else "a call of something other than a listed function")
        name = node.func.id
        if name not in FUNCTIONS:
            _reject(expr, f"a call to {name}()")
        if node.keywords or len(node.args) != 1:
            _reject(expr, f"{name}() with other than exactly one positional argument")
        fn, arg = getattr(torch, name), _compile(node.args[0], expr, torch)
        return lambda x, y: fn(torch.as_tensor(arg(x, y), dtype=x.dtype))
    _reject(expr, _describe(node))


def check(expr) -> ast.Expression:
    """The parsed tree of `expr`, or a ConfigError naming the first thing that is not allowed."""
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(KEY, expr, "landscape=custom needs landscape.expr=\"...\", f(x, y) such as \"x**2 - y**2\"")
    if len(expr) > MAX_LENGTH:
        raise ConfigError(KEY, f"<{len(expr)} characters>", f"at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise ConfigError(KEY, repr(expr), f"it is not valid Python ({e.msg}); {ALLOWED}") from None
    for node in ast.walk(tree):  # every node, so nothing hides below an allowed parent
        if isinstance(node, (ast.Expression, ast.operator, ast.unaryop, ast.Load)):
            continue
        if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
            _reject(expr, _describe(node))
        if isinstance(node, ast.UnaryOp) and type(node.op) not in _UNARY:
            _reject(expr, _describe(node))
        if not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Call)):
            _reject(expr, _describe(node))
    return tree


def parse(expr) -> Callable:
    """f(x, y) on tensors for a whitelisted expression (ConfigError otherwise); x and y broadcast."""
    import torch

    tree = check(expr)
    body = _compile(tree.body, expr, torch)

    def f(x, y):
        # `0 * (x + y)` keeps x and y in the graph, so a constant or one-variable f still has a gradient
        return body(x, y) + 0 * (x + y)

    return f
