"""``-k`` / ``-m`` expressions as pytest reads them, for commands that select cells outside pytest.

``radbench plan -k "dinov2 and not amos"`` must keep the cells ``pytest -k`` would keep. pytest's
matcher is private (``_pytest``), so the library carries its own reader of the same grammar:

    expr     := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | "(" expr ")" | identifier

An identifier is matched by a predicate the caller gives (substring of the cell id for ``-k``,
membership in the cell's markers for ``-m``). tests/test_selection.py checks it against pytest's own.
"""

from __future__ import annotations

import re
from typing import Callable

from radbench_core.core.errors import ConfigError

_TOKEN = re.compile(r"\s*(\(|\)|(?:\w|:|\+|-|\.|\[|\]|\\|/)+)")
_KEYWORDS = ("and", "or", "not")


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ConfigError(f"selection expression {text!r}", f"unexpected character at column {pos + 1}",
                              "use identifiers joined by 'and', 'or', 'not' and parentheses, as pytest -k/-m")
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


def matches(expression: str, predicate: Callable[[str], bool]) -> bool:
    """Whether ``expression`` holds when each identifier ``x`` is ``predicate(x)``; empty -> True."""
    tokens = _tokens(expression)
    if not tokens:
        return True
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        tok = peek()
        if tok is None or (expected is not None and tok != expected):
            raise ConfigError(f"selection expression {expression!r}",
                              f"expected {expected or 'an identifier'} but found {tok or 'the end'}",
                              "check the parentheses and the and/or/not between identifiers")
        pos += 1
        return tok

    def chain(keyword: str, operand: Callable[[], bool]) -> bool:
        """``operand (keyword operand)*``; every operand is parsed (no short-circuit of the syntax)."""
        values = [operand()]
        while peek() == keyword:
            take()
            values.append(operand())
        return any(values) if keyword == "or" else all(values)

    def expr() -> bool:
        return chain("or", lambda: chain("and", not_expr))

    def not_expr() -> bool:
        tok = peek()
        if tok == "not":
            take()
            return not not_expr()
        if tok == "(":
            take("(")
            value = expr()
            take(")")
            return value
        ident = take()
        if ident in _KEYWORDS or ident == ")":
            raise ConfigError(f"selection expression {expression!r}", f"unexpected {ident!r}",
                              "put an identifier before and after 'and' / 'or'")
        return bool(predicate(ident))

    value = expr()
    if pos != len(tokens):
        raise ConfigError(f"selection expression {expression!r}", f"unexpected {tokens[pos]!r}",
                          "join identifiers with 'and' / 'or'")
    return value
