"""Exact arithmetic for agents, parsed with ``ast`` and evaluated over ``Fraction`` (never eval)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction

from agentsim.tools.base import ToolError

MAX_EXPRESSION_CHARS = 500
MAX_RESULT_BITS = 20_000
MAX_EXPONENT = 10_000
_DECIMAL_DIGITS = 15
_FUNCTIONS = ("sqrt", "abs", "round", "min", "max")

_BINARY: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: lambda a, b: Fraction(a // b),
    ast.Mod: operator.mod,
}


def _size_bits(x: Fraction) -> int:
    return x.numerator.bit_length() + x.denominator.bit_length()


def _check_size(x: Fraction) -> Fraction:
    if _size_bits(x) > MAX_RESULT_BITS:
        raise ToolError("number too large")
    return x


def _sqrt(x: Fraction) -> Fraction:
    if x < 0:
        raise ToolError("sqrt of a negative number")
    num, den = math.isqrt(x.numerator), math.isqrt(x.denominator)
    if num * num == x.numerator and den * den == x.denominator:
        return Fraction(num, den)
    return Fraction(math.sqrt(x))


def _round(x: Fraction, ndigits: Fraction | None = None) -> Fraction:
    if ndigits is None:
        return Fraction(round(x))
    if ndigits.denominator != 1 or abs(ndigits) > 100:
        raise ToolError("round() digits must be a whole number between -100 and 100")
    return Fraction(round(x, int(ndigits)))


def _power(base: Fraction, exp: Fraction) -> Fraction:
    if exp.denominator == 1:
        e = int(exp)
        if abs(e) > MAX_EXPONENT or _size_bits(base) * abs(e) > MAX_RESULT_BITS * 2:
            raise ToolError(f"exponent {e} too large")
        if base == 0 and e < 0:
            raise ToolError("division by zero")
        return base**e
    if base < 0:
        raise ToolError("fractional power of a negative number")
    if _size_bits(base) > 2000:
        raise ToolError("number too large")
    root = _sqrt(base) if exp == Fraction(1, 2) else None
    if root is not None and root * root == base:
        return root
    try:
        return Fraction(float(base) ** float(exp))
    except OverflowError as e:
        raise ToolError("number too large") from e


def _evaluate(node: ast.AST) -> Fraction:
    match node:
        case ast.Expression(body=body):
            return _evaluate(body)
        case ast.Constant(value=bool()):
            raise ToolError("booleans are not numbers here")
        case ast.Constant(value=int() | float() as value):
            return Fraction(str(value)) if isinstance(value, float) else Fraction(value)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_evaluate(operand)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _evaluate(operand)
        case ast.BinOp(left=left, op=ast.Pow(), right=right):
            return _check_size(_power(_evaluate(left), _evaluate(right)))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _evaluate(left), _evaluate(right)
            if b == 0 and isinstance(op, ast.Div | ast.FloorDiv | ast.Mod):
                raise ToolError("division by zero")
            return _check_size(_BINARY[type(op)](a, b))
        case ast.Call(func=ast.Name(id=fname), args=args, keywords=[]) if fname in _FUNCTIONS:
            return _call(fname, [_evaluate(a) for a in args])
        case ast.Call(func=ast.Name(id=fname)):
            raise ToolError(f"unknown function {fname!r} (allowed: {', '.join(_FUNCTIONS)})")
    raise ToolError(f"unsupported syntax: {ast.dump(node)[:60]}")


def _call(fname: str, args: list[Fraction]) -> Fraction:
    if fname in ("min", "max"):
        if not args:
            raise ToolError(f"{fname}() needs at least one argument")
        return min(args) if fname == "min" else max(args)
    if fname == "round" and len(args) in (1, 2):
        return _round(*args)
    if fname in ("sqrt", "abs") and len(args) == 1:
        return _sqrt(args[0]) if fname == "sqrt" else abs(args[0])
    raise ToolError(f"{fname}() got {len(args)} arguments")


def format_number(x: Fraction) -> str:
    """An integer as an integer, anything else as a decimal of up to 15 significant digits."""
    if x.denominator == 1:
        return str(x.numerator)
    with localcontext() as ctx:
        ctx.prec = _DECIMAL_DIGITS
        text = format(Decimal(x.numerator) / Decimal(x.denominator), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return the result.

    Supports + - * / // % ** (or ^), parentheses, decimals and the functions sqrt, abs,
    round, min and max.

    Args:
        expression: The arithmetic expression, for example "(3 + 4.5) * 2 / 3".
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    text = expression.replace("^", "**").replace("×", "*").replace("÷", "/").strip()
    if not text:
        raise ToolError("empty expression")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ToolError(f"cannot parse {expression!r}: {e.msg}") from e
    return format_number(_evaluate(tree))
