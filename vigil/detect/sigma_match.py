"""A Sigma detection (pySigma's parsed condition tree) compiled into one Python predicate over a stored event.

pySigma has already applied the modifiers when it parsed the rule, so each leaf of the tree is a field and a typed
value (a string with wildcards, a regular expression, a CIDR network, a comparison …); this module turns each
leaf into a closure and the tree into ``and``/``or``/``not`` over them. Everything it cannot evaluate exactly is
refused with a :class:`RuleError` naming the feature, never approximated.

Semantics (Sigma specification v2.1, and where it is silent, what the pySigma SQLite backend does):

- plain strings compare without case, ``*`` and ``?`` are wildcards, ``cased`` makes them case-sensitive;
  a number or boolean event value is compared by its JSON spelling (``403``, ``true``);
- a field missing from the event matches nothing but ``null`` and ``exists: false``, so ``not`` of it is true;
- a path through a list (``targets.type``) matches when any element matches;
- regular expressions search (they are not anchored) and run on RE2, so no rule can make matching take
  exponential time on attacker-controlled text such as a user agent;
- keyword (fieldless) values search every scalar value of the event as a substring.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaDetection, SigmaRule
from sigma.types import (
    SigmaCasedString,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from vigil.detect.sigma_fields import FieldError, FieldPath, resolve, strings, text, values_of
from vigil.detect.sigma_values import (
    MERGEABLE,
    Pred,
    any_pred,
    plain,
    refuse,
    regex_test,
    string_test,
    value_pred,
)
from vigil.errors import RuleError
from vigil.model import CATEGORIES

__all__ = ["CATEGORIES", "CompiledDetection", "compile_detection", "from_sigma_error", "refuse"]

Matcher = Callable[[dict[str, Any]], bool]

SUPPORTED_MODIFIERS = frozenset(
    (
        "contains",
        "startswith",
        "endswith",
        "all",
        "re",
        "i",
        "ignorecase",
        "m",
        "multiline",
        "s",
        "dotall",
        "cidr",
        "exists",
        "gt",
        "gte",
        "lt",
        "lte",
        "neq",
        "fieldref",
        "windash",
        "base64",
        "base64offset",
        "cased",
    )
)
_WHY_NOT = {
    "expand": "placeholders are filled in by a processing pipeline, and Vigil evaluates rules without one",
    "wide": "Vigil events are JSON text: a UTF-16 encoded value never occurs in them",
    "utf16": "Vigil events are JSON text: a UTF-16 encoded value never occurs in them",
    "utf16be": "Vigil events are JSON text: a UTF-16 encoded value never occurs in them",
    "utf16le": "Vigil events are JSON text: a UTF-16 encoded value never occurs in them",
}
_MODIFIER_NAME = re.compile(r"Unknown modifier '([^']*)'")


def from_sigma_error(err: SigmaError) -> RuleError:
    """pySigma's complaint as a refusal, naming the modifier when that is what it is about."""
    message = str(err.args[0]) if err.args else type(err).__name__
    found = _MODIFIER_NAME.search(message)
    if found:
        return modifier_refusal(found.group(1))
    # SigmaRegularExpressionError -> "regular expression": the part of the rule pySigma objects to
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(err).__name__.removeprefix("Sigma").removesuffix("Error"))
    return refuse(message, words.lower() or "rule")


def modifier_refusal(name: str) -> RuleError:
    """The refusal of a modifier Vigil does not evaluate, with the reason."""
    why = _WHY_NOT.get(name)
    if why is None:
        time_parts = ("minute", "hour", "day", "week", "month", "year")
        why = "time-part modifiers are not supported" if name in time_parts else "unknown to Vigil"
    return refuse(f"modifier '{name}' is not supported ({why})", f"modifier '{name}'")


class CompiledDetection:
    """A rule's detection as one predicate, and the actions it can possibly match (``None``: any)."""

    __slots__ = ("actions", "match")

    def __init__(self, match: Matcher, actions: frozenset[str] | None) -> None:
        self.match = match
        self.actions = actions


def compile_detection(rule: SigmaRule) -> CompiledDetection:
    """The predicate of ``rule``, its logsource included; :class:`RuleError` naming what cannot be evaluated."""
    category = check_logsource(rule)
    for detection in rule.detection.detections.values():
        _check_modifiers(detection)
    try:
        trees = [condition.parsed for condition in rule.detection.parsed_condition]
    except SigmaError as err:
        raise from_sigma_error(err) from err
    nodes: list[Any] = [t for t in trees if t is not None]
    if not nodes:
        raise refuse("the detection has no condition left to evaluate", "condition")
    root: Any = nodes[0] if len(nodes) == 1 else ConditionOR(nodes)
    if category is not None:
        root = ConditionAND([ConditionFieldEqualsValueExpression("category", SigmaString(category)), root])
    match = _compile(root)
    found = _bound(root, "action")
    return CompiledDetection(match, frozenset(found) if found is not None else None)


def check_logsource(rule: SigmaRule) -> str | None:
    """The event category the logsource restricts the rule to, if any; refuses logsources of other products."""
    source = rule.logsource
    for key in ("product", "service", "category"):
        if getattr(source, key) is not None and not isinstance(getattr(source, key), str):
            raise refuse(f"logsource {key} must be text", f"logsource {key}")
    product = source.product
    if product is None:
        raise refuse("logsource has no product (use product: vigil)", "logsource product")
    if product.lower() != "vigil":
        raise refuse(
            f"logsource product '{product}' is not Vigil's (use product: vigil)",
            f"logsource product '{product}'",
        )
    if source.service is not None:
        raise refuse(
            f"logsource service '{source.service}' means nothing to Vigil (leave it out, or filter on a field)",
            f"logsource service '{source.service}'",
        )
    if source.category is None:
        return None
    if source.category not in CATEGORIES:
        raise refuse(
            f"logsource category '{source.category}' is not a Vigil event category (one of {', '.join(CATEGORIES)})",
            f"logsource category '{source.category}'",
        )
    return source.category


def _check_modifiers(detection: SigmaDetection) -> None:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            _check_modifiers(item)
            continue
        for modifier in item.modifiers:
            name = reverse_modifier_mapping.get(modifier.__name__, modifier.__name__)
            if name not in SUPPORTED_MODIFIERS:
                raise modifier_refusal(name)


def check_field(name: str) -> FieldPath:
    """The path of a field named in a rule; refuses names Vigil events never have."""
    try:
        return resolve(name)
    except FieldError as err:
        raise refuse(str(err), f"field '{name}'") from err


# -- the condition tree ------------------------------------------------------------------------------------


def _compile(node: Any) -> Matcher:
    if isinstance(node, ConditionAND):
        return _all([_compile(arg) for arg in _flatten(node, ConditionAND)])
    if isinstance(node, ConditionOR):
        # values listed for one field (action: [a, b, c]) become one leaf reading the field once
        # and keywords (keywords: [a, b]) one walk over the event's values
        same_field: dict[str, list[SigmaType]] = {}
        keywords: list[SigmaType] = []
        rest: list[Matcher] = []
        for arg in _flatten(node, ConditionOR):
            if isinstance(arg, ConditionFieldEqualsValueExpression) and _mergeable(arg.value):
                same_field.setdefault(arg.field, []).extend(_expanded(arg.value))
            elif isinstance(arg, ConditionValueExpression):
                keywords.append(arg.value)
            else:
                rest.append(_compile(arg))
        merged = [_values_leaf(field, values) for field, values in same_field.items()]
        return _any(merged + ([_keyword_leaf(keywords)] if keywords else []) + rest)
    if isinstance(node, ConditionNOT):
        inner = _compile(node.args[0])
        return lambda doc: not inner(doc)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_leaf(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _keyword_leaf([node.value])
    raise refuse(f"condition element {type(node).__name__} is not supported", type(node).__name__)


def _flatten(node: Any, kind: type) -> list[Any]:
    out: list[Any] = []
    for arg in node.args:
        if arg is None:
            continue
        if isinstance(arg, kind):
            out.extend(_flatten(arg, kind))
        else:
            out.append(arg)
    return out


def _all(ms: Sequence[Matcher]) -> Matcher:
    if len(ms) == 1:
        return ms[0]
    if len(ms) == 2:
        a, b = ms
        return lambda doc: a(doc) and b(doc)
    if len(ms) == 3:
        a, b, c = ms
        return lambda doc: a(doc) and b(doc) and c(doc)
    fixed = tuple(ms)

    def every(doc: dict[str, Any]) -> bool:
        for m in fixed:  # noqa: SIM110 - a plain loop is cheaper than all() over a generator, per event
            if not m(doc):
                return False
        return True

    return every


def _any(ms: Sequence[Matcher]) -> Matcher:
    if len(ms) == 1:
        return ms[0]
    if len(ms) == 2:
        a, b = ms
        return lambda doc: a(doc) or b(doc)
    fixed = tuple(ms)

    def some(doc: dict[str, Any]) -> bool:
        for m in fixed:  # noqa: SIM110 - a plain loop is cheaper than any() over a generator, per event
            if m(doc):
                return True
        return False

    return some


def _bound(node: Any, field: str) -> set[str] | None:
    """Values ``field`` must take (lowercased) for ``node`` to match, or None when any value may.

    Used to index rules by action: a wrong bound would silently drop detections, so every doubt answers None.
    """
    if isinstance(node, ConditionFieldEqualsValueExpression):
        try:
            if resolve(node.field).name != field:
                return None
        except FieldError:
            return None
        values = node.value.values if isinstance(node.value, SigmaExpansion) else [node.value]
        found: set[str] = set()
        for value in values:
            literal = plain(value)
            if literal is None:
                return None
            found.add(literal.lower())
        return found
    if isinstance(node, ConditionAND):
        bounds = [b for b in (_bound(arg, field) for arg in node.args if arg is not None) if b is not None]
        return set.intersection(*bounds) if bounds else None
    if isinstance(node, ConditionOR):
        union: set[str] = set()
        for arg in node.args:
            if arg is None:
                continue
            b = _bound(arg, field)
            if b is None:
                return None
            union |= b
        return union
    return None


# -- leaves ------------------------------------------------------------------------------------------------


def _mergeable(value: SigmaType) -> bool:
    if isinstance(value, SigmaExpansion):
        return all(_mergeable(v) for v in value.values)
    return isinstance(value, MERGEABLE) and not isinstance(value, SigmaTimestampPart)


def _expanded(value: SigmaType) -> list[SigmaType]:
    return (
        [v for inner in value.values for v in _expanded(inner)]
        if isinstance(value, SigmaExpansion)
        else [value]
    )


def _values_leaf(field: str, values: list[SigmaType]) -> Matcher:
    """Any of ``values`` (see :data:`MERGEABLE`) on ``field``."""
    path = check_field(field)
    if path.container:
        raise refuse(
            f"field '{field}' is an object: only exists and null apply to it; name one of its fields",
            f"field '{field}'",
        )
    return _leaf(path, any_pred(values))


def _field_leaf(field: str, value: SigmaType) -> Matcher:
    path = check_field(field)
    if _mergeable(value):
        return _values_leaf(field, _expanded(value))
    if isinstance(value, SigmaExpansion):
        return _any([_field_leaf(field, v) for v in value.values])
    if isinstance(value, SigmaNull):
        values = values_of(path)
        return lambda doc: not (vs := values(doc)) or any(v is None for v in vs)
    if isinstance(value, SigmaExists):
        values = values_of(path)
        wanted = bool(value.exists)
        return lambda doc: bool(values(doc)) is wanted
    if path.container:
        raise refuse(
            f"field '{field}' is an object: only exists and null apply to it; name one of its fields",
            f"field '{field}'",
        )
    if isinstance(value, SigmaFieldReference):
        return _fieldref_leaf(path, value)
    return _leaf(path, value_pred(value))  # whatever value_pred makes of it (it refuses what it cannot test)


def _leaf(path: FieldPath, pred: Pred) -> Matcher:
    keys = path.keys
    if path.simple:
        k = str(keys[0])

        def top(doc: dict[str, Any]) -> bool:
            v = doc.get(k)
            return v is not None and pred(v)

        return top
    if len(keys) == 2 and keys[0] in ("actor", "context", "metadata"):
        k0, k1 = str(keys[0]), str(keys[1])

        def nested(doc: dict[str, Any]) -> bool:
            o = doc.get(k0)
            if type(o) is not dict:
                return False
            v = o.get(k1)
            return v is not None and pred(v)

        return nested
    values = values_of(path)

    def through(doc: dict[str, Any]) -> bool:
        for v in values(doc):  # noqa: SIM110 - a plain loop is cheaper than any() over a generator
            if pred(v):
                return True
        return False

    return through


def _fieldref_leaf(path: FieldPath, ref: SigmaFieldReference) -> Matcher:
    other = check_field(ref.field)
    if other.container:
        raise refuse(f"fieldref names the object '{ref.field}'", f"field '{ref.field}'")
    left, right = values_of(path), values_of(other)
    relate: Callable[[str, str], bool]
    if ref.starts_with and ref.ends_with:
        relate = str.__contains__
    elif ref.starts_with:
        relate = str.startswith
    elif ref.ends_with:
        relate = str.endswith
    else:
        relate = str.__eq__

    def leaf(doc: dict[str, Any]) -> bool:
        bs = [s.lower() for s in map(text, right(doc)) if s is not None]
        if not bs:
            return False
        for a in left(doc):
            sa = text(a)
            if sa is None:
                continue
            sa = sa.lower()
            if any(relate(sa, b) for b in bs):
                return True
        return False

    return leaf


def _keyword_leaf(values: Sequence[SigmaType]) -> Matcher:
    """Any of ``values`` somewhere in the event: one walk over its values for the whole list."""
    tests = tuple(t for value in values for t in _keyword_tests(value))

    def leaf(doc: dict[str, Any]) -> bool:
        for s in strings(doc):
            for test in tests:
                if test(s):
                    return True
        return False

    return leaf


def _keyword_tests(value: SigmaType) -> list[Callable[[str], bool]]:
    if isinstance(value, SigmaExpansion):
        return [t for v in value.values for t in _keyword_tests(v)]
    if isinstance(value, SigmaString):
        return [string_test(_surround(value), cased=isinstance(value, SigmaCasedString))]
    if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
        spelled = str(value.number)
        return [lambda s: spelled in s]
    if isinstance(value, SigmaRegularExpression):
        return [regex_test(value)]
    raise refuse(f"keyword value of type {type(value).__name__} is not supported", "keyword value")


def _surround(value: SigmaString) -> SigmaString:
    """A keyword matches anywhere in a value, as full-text search does: ``*value*``."""
    parts: list[Any] = list(value.s)
    if not parts or parts[0] is not SpecialChars.WILDCARD_MULTI:
        parts.insert(0, SpecialChars.WILDCARD_MULTI)
    if parts[-1] is not SpecialChars.WILDCARD_MULTI:
        parts.append(SpecialChars.WILDCARD_MULTI)
    out = SigmaCasedString() if isinstance(value, SigmaCasedString) else SigmaString()
    out.s = parts
    return out
