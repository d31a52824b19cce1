"""Sigma values (pySigma's typed leaves: strings with wildcards, regular expressions, numbers, CIDR networks,
comparisons) compiled into predicates over one event value, for :mod:`vigil.detect.sigma_match`.

A predicate takes a scalar from the event (a string, number or boolean; never None) and answers whether it
matches. Strings compare without case unless ``cased``; numbers and booleans compare as their JSON spelling
(``403``, ``true``) with a string value, as Sigma values are text. Wildcard patterns are matched without a
backtracking regex, and ``re`` patterns run on RE2, so matching time stays linear in the value's length.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any

from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from vigil.detect.sigma_fields import number, text
from vigil.errors import RuleError

try:  # pySigma's default policy already requires google-re2 to validate |re; fall back only without it
    import re2 as _re2  # type: ignore[import-untyped]

    def _compile_re(pattern: str) -> Any:
        return _re2.compile(pattern)

except ImportError:  # pragma: no cover - pySigma itself refuses to start without re2

    def _compile_re(pattern: str) -> Any:
        return re.compile(pattern)


Pred = Callable[[Any], bool]


def refuse(message: str, feature: str) -> RuleError:
    """A refusal without its source; the loader adds the file."""
    return RuleError(message, feature=feature)


def plain(value: SigmaType) -> str | None:
    """A string value without wildcards, as text; None for anything else."""
    if type(value) not in (SigmaString, SigmaCasedString):
        return None
    parts = value.s  # type: ignore[attr-defined]
    if not all(isinstance(p, str) for p in parts):
        return None
    return "".join(parts)


def value_pred(value: SigmaType) -> Pred:
    """The predicate of one (modified) Sigma value."""
    if isinstance(value, SigmaCasedString):
        return text_pred(string_test(value, cased=True))
    if isinstance(value, SigmaString):
        return string_pred(value)
    if isinstance(value, SigmaTimestampPart):
        raise refuse("time-part modifiers are not supported", "time-part modifier")
    if isinstance(value, SigmaNumber):
        return _number_eq(value.number)
    if isinstance(value, SigmaBool):
        return _bool_eq(bool(value.boolean))
    if isinstance(value, SigmaRegularExpression):
        return text_pred(regex_test(value))
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_pred(value.network)
    if isinstance(value, SigmaCompareExpression):
        return _compare_pred(value.op, value.number.number)
    raise refuse(f"value type {type(value).__name__} is not supported", type(value).__name__)


MERGEABLE = (
    SigmaString,
    SigmaNumber,
    SigmaBool,
    SigmaRegularExpression,
    SigmaCIDRExpression,
    SigmaCompareExpression,
)
"""Value types one predicate can test; an OR of them on one field becomes one :func:`any_pred`."""


def any_pred(values: Sequence[SigmaType]) -> Pred:
    """One predicate for a list of values on one field (an OR): the event value is read and folded once, and
    plain strings are one set lookup, since SaaS rules list many values (``action: [a, b, c]``)."""
    if len(values) == 1:
        return value_pred(values[0])
    eqs: set[str] = set()
    folded: list[Callable[[str], bool]] = []
    others: list[Pred] = []
    for value in values:
        if type(value) is SigmaString:  # not SigmaCasedString: those keep their case
            literal = plain(value)
            if literal is not None:
                eqs.add(literal.lower())
            else:
                folded.append(string_test(value.lower(), cased=True))  # the text is lowered before the test
        else:
            others.append(value_pred(value))
    tests = tuple(folded)
    rest = tuple(others)

    def pred(v: Any) -> bool:
        if eqs or tests:
            s = v if type(v) is str else text(v)
            if s is not None:
                low = s.lower()
                if low in eqs:
                    return True
                for test in tests:
                    if test(low):
                        return True
        for p in rest:  # noqa: SIM110 - a plain loop is cheaper than any() over a generator
            if p(v):
                return True
        return False

    return pred


def string_pred(value: SigmaString) -> Pred:
    """A case-insensitive string value, with its wildcards."""
    literal = plain(value)
    if literal is not None:  # the common case: equality without case
        want = literal.lower()

        def eq(v: Any) -> bool:
            if type(v) is str:
                return v.lower() == want
            s = text(v)
            return s is not None and s == want

        return eq
    return text_pred(string_test(value, cased=False))


def text_pred(test: Callable[[str], bool]) -> Pred:
    """A test of text applied to any scalar, by its spelling."""

    def pred(v: Any) -> bool:
        s = v if type(v) is str else text(v)
        return s is not None and test(s)

    return pred


def string_test(value: SigmaString, *, cased: bool) -> Callable[[str], bool]:
    """A test of text against a Sigma string with wildcards, in linear time (no backtracking regex)."""
    tokens: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise refuse(f"placeholder '%{part.name}%' is not supported", "placeholder")
        if isinstance(part, str) and tokens and isinstance(tokens[-1], str):
            tokens[-1] += part
        else:
            tokens.append(part)
    if SpecialChars.WILDCARD_SINGLE in tokens:
        body = "".join(
            re.escape(t) if isinstance(t, str) else ".*" if t is SpecialChars.WILDCARD_MULTI else "."
            for t in tokens
        )
        rx = _compile_re(("(?s)" if cased else "(?is)") + body)
        return lambda s: rx.fullmatch(s) is not None
    pieces = [""]
    for t in tokens:
        if isinstance(t, str):
            pieces[-1] += t if cased else t.lower()
        else:
            pieces.append("")
    fold: Callable[[str], str] = (lambda s: s) if cased else str.lower
    if len(pieces) == 1:
        (exact,) = pieces
        return lambda s: fold(s) == exact
    head, tail, mids = pieces[0], pieces[-1], [p for p in pieces[1:-1] if p]
    if not mids:
        if not tail:
            return lambda s: fold(s).startswith(head)
        if not head:
            return lambda s: fold(s).endswith(tail)
    elif len(mids) == 1 and not head and not tail:
        (middle,) = mids
        return lambda s: middle in fold(s)
    shortest = len(head) + len(tail) + sum(map(len, mids))

    def glob(s: str) -> bool:
        s = fold(s)
        if len(s) < shortest or not s.startswith(head) or not s.endswith(tail):
            return False
        pos, end = len(head), len(s) - len(tail)
        for m in mids:  # leftmost placement of each piece is optimal when the only wildcard is *
            i = s.find(m, pos, end)
            if i < 0:
                return False
            pos = i + len(m)
        return True

    return glob


_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


def regex_test(value: SigmaRegularExpression) -> Callable[[str], bool]:
    """A search of text for the pattern, with its i/m/s flags, on RE2."""
    flags = "".join(sorted(_RE_FLAGS[f] for f in value.flags))
    pattern = (f"(?{flags})" if flags else "") + str(value.regexp)
    try:
        rx = _compile_re(pattern)
    except Exception as err:  # re2.error and re.error share no base class
        raise refuse(f"regular expression '{pattern}' is invalid: {err}", "regular expression") from err
    return lambda s: rx.search(s) is not None


def _number_eq(n: float) -> Pred:
    def eq(v: Any) -> bool:
        t = type(v)
        if t is int or t is float:
            return bool(v == n)
        if t is str:
            try:
                return float(v) == n
            except ValueError:
                return False
        return False

    return eq


def _bool_eq(b: bool) -> Pred:
    spelled = "true" if b else "false"

    def eq(v: Any) -> bool:
        if type(v) is bool:
            return v is b
        return type(v) is str and v.lower() == spelled

    return eq


@functools.lru_cache(maxsize=16384)
def _ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def _cidr_pred(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Pred:
    version = network.version

    def inside(v: Any) -> bool:
        if type(v) is not str:
            return False
        ip = _ip(v)
        return ip is not None and ip.version == version and ip in network

    return inside


_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
}


def _compare_pred(op: CompareOperators, n: float) -> Pred:
    compare = _COMPARE.get(op)
    if compare is None:
        raise refuse(f"comparison '{op.name.lower()}' is not supported", f"modifier '{op.name.lower()}'")

    def pred(v: Any) -> bool:
        x = number(v)
        return x is not None and compare(x, n)

    return pred
