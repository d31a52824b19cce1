"""Reading Sigma rule files into checked, resolved rule descriptions (for :mod:`vigil.detect.sigma`).

Every YAML document becomes an :class:`Entry` carrying either its parsed rule, compiled detection and
:class:`~vigil.detect.rules.RuleInfo`, or the :class:`RuleError` that refuses it. Nothing here raises for what a
file contains: a file that cannot be read, is not YAML or is not a rule is one refused entry, so lint can report
every file and loading can refuse with the first reason.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.correlations import SigmaCorrelationRule, SigmaExtendedCorrelationCondition
from sigma.exceptions import SigmaCollectionError, SigmaError
from sigma.rule import SigmaRule
from sigma.rule.base import SigmaYAMLLoader, check_alias_expansion

from vigil.detect.rules import REVOKED_TECHNIQUES, SIGMA_LEVELS, Examples, RuleInfo, Severity
from vigil.detect.sigma_correlate import KINDS
from vigil.detect.sigma_fields import FieldError, resolve
from vigil.detect.sigma_match import CompiledDetection, compile_detection, from_sigma_error, refuse
from vigil.errors import RuleError

Source = Path | tuple[str, str]
"""A rule file, a directory searched recursively for ``*.yml`` / ``*.yaml``, or ``(name, yaml_text)``."""

_KNOWN_EXTRAS = frozenset(("examples", "runbook", "correlation", "generate"))
_TECHNIQUE = re.compile(r"t\d{4}(\.\d{3})?", re.IGNORECASE)


@dataclass(frozen=True)
class Resolved:
    """A correlation with its references resolved to the entries they name."""

    kind: str
    targets: list[Entry]
    ops: list[tuple[str, float]]
    group_by: list[str]
    aliases: dict[str, dict[int, str]]  # alias -> {index of the target: its field}
    field: str | None  # value_count's field
    span_us: int


@dataclass(eq=False)
class Entry:
    """One YAML document of a rule source, and what became of it."""

    source: str
    label: str | None
    document: int = 0  # its place in a multi-document file (1, 2 …); 0 when the file holds one
    parsed: SigmaRule | SigmaCorrelationRule | None = None
    error: RuleError | None = None
    notes: list[str] = field(default_factory=list)
    detection: CompiledDetection | None = None
    info: RuleInfo | None = None
    ranges: list[tuple[str, float]] | None = None  # a correlation condition with several bounds
    generate: bool = False  # for a correlation: do the rules it refers to still alert on their own?
    referrers: list[bool] = field(default_factory=list)  # the generate flag of each correlation using it
    window_us: int = 0
    correlation: Resolved | None = None  # what a correlation's references were resolved to

    def refuse(self, err: RuleError) -> None:
        """Record the first reason this document is refused, naming the document in a multi-rule file."""
        if self.error is None:
            where = ""
            if self.document:
                where = f"document {self.document}" + (f" ('{self.label}')" if self.label else "") + ": "
            self.error = RuleError(where + err.message, source=self.source, feature=err.feature)


def entries(sources: list[Source]) -> tuple[list[Entry], list[Entry]]:
    """Every document of ``sources`` checked and resolved, and the accepted correlations children first."""
    found: list[Entry] = []
    for name, content in _read(sources):
        found.extend(_split(name, content))
    for entry in found:
        if entry.error is None and isinstance(entry.parsed, SigmaRule):
            with _judging(entry):
                entry.detection = compile_detection(entry.parsed)
    order = _resolve_correlations(found, _identities(found))
    for entry in found:
        if entry.error is None and entry.parsed is not None:
            with _judging(entry):
                entry.info = _info(entry, entry.parsed)
    return found, order


@contextmanager
def _judging(entry: Entry) -> Iterator[None]:
    """Any failure on a rule's content refuses that rule: pySigma parses parts of a rule lazily (the
    condition, on first use) and does not type-check every value, so what it lets through may still break
    later. Lint and the loader must give a verdict on every document, never crash on one."""
    try:
        yield
    except RuleError as err:
        entry.refuse(err)
    except SigmaError as err:
        entry.refuse(from_sigma_error(err))
    except Exception as err:
        entry.refuse(refuse(f"malformed rule ({type(err).__name__}: {err})", "malformed rule"))


def _read(sources: list[Source]) -> Iterable[tuple[str, str | RuleError]]:
    for source in sources:
        if isinstance(source, tuple):
            name, content = source
            yield name, content
            continue
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
            if not files:
                yield str(path), refuse("the directory holds no .yml or .yaml file", "empty directory")
            for p in files:
                yield str(p), _text(p)
        else:
            yield str(path), _text(path)


def _text(path: Path) -> str | RuleError:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        return refuse(f"the file is not UTF-8 text ({err.reason})", "encoding")
    except OSError as err:
        return refuse(f"cannot read the file: {err.strerror or err}", "unreadable file")


def _split(source: str, content: str | RuleError) -> list[Entry]:
    if isinstance(content, RuleError):
        entry = Entry(source, None)
        entry.refuse(content)
        return [entry]
    try:
        docs = list(yaml.load_all(content, Loader=SigmaYAMLLoader))
    except yaml.YAMLError as err:
        entry = Entry(source, None)
        entry.refuse(refuse(f"not valid YAML: {' '.join(str(err).split())}", "YAML"))
        return [entry]
    entries = []
    for n, doc in enumerate(docs, 1):
        if doc is None:
            continue
        label = _label(doc)
        entry = Entry(source, label, n if len(docs) > 1 else 0)
        with _judging(entry):
            entry.parsed, entry.ranges, entry.generate = _parse(doc)
            entry.notes.extend(_notes(entry.parsed))
        entries.append(entry)
    if not entries:
        entry = Entry(source, None)
        entry.refuse(refuse("the file holds no YAML document", "empty file"))
        entries.append(entry)
    return entries


def _label(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    for key in ("title", "name", "id"):
        if isinstance(doc.get(key), str) and doc[key]:
            return str(doc[key])
    return None


def _parse(doc: Any) -> tuple[SigmaRule | SigmaCorrelationRule, list[tuple[str, float]] | None, bool]:
    if not isinstance(doc, dict):
        raise refuse(f"the document is a {type(doc).__name__}, not a Sigma rule (a mapping)", "not a rule")
    if "action" in doc:
        raise refuse(
            f"collection action '{doc['action']}' is not supported: write each rule out in full",
            "collection action",
        )
    if "filter" in doc:
        raise refuse("Sigma filters are not supported", "filter")
    check_alias_expansion(doc, SigmaCollectionError)
    if "correlation" not in doc:
        if "detection" not in doc and "logsource" not in doc:
            raise refuse("not a Sigma rule: it has neither detection nor correlation", "not a rule")
        return SigmaRule.from_dict(doc), None, False
    doc, ranges, generate = _prepare_correlation(doc)
    return SigmaCorrelationRule.from_dict(doc), ranges, generate


def _prepare_correlation(doc: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, float]] | None, bool]:
    """Accept what pySigma does not read but the specification allows: a range condition (``gt`` and
    ``lte`` together) and ``generate`` at the top level (the JSON schema's place) as well as in the section."""
    section = doc.get("correlation")
    if not isinstance(section, dict):
        return doc, None, False
    section = dict(section)
    doc = {**doc, "correlation": section}
    top, inner = doc.get("generate"), section.get("generate")
    for value in (top, inner):
        if value is not None and not isinstance(value, bool):
            raise refuse("correlation 'generate' must be true or false", "generate")
    if top is not None and inner is not None and top != inner:
        raise refuse("'generate' is set twice with different values", "generate")
    generate = bool(top if top is not None else inner)
    ranges = None
    condition = section.get("condition")
    if isinstance(condition, dict):
        ops = [k for k in condition if k in ("gt", "gte", "lt", "lte", "eq", "neq")]
        if len(ops) > 1:
            for op in ops:
                if not isinstance(condition[op], int | float) or isinstance(condition[op], bool):
                    raise refuse(f"correlation condition '{op}' must be a number", "correlation condition")
            ranges = [(op, float(condition[op])) for op in ops]
            section["condition"] = {k: v for k, v in condition.items() if k not in ops[1:]}
    return doc, ranges, generate


def _notes(rule: SigmaRule | SigmaCorrelationRule) -> list[str]:
    known = (
        _KNOWN_EXTRAS
        if isinstance(rule, SigmaCorrelationRule)
        else _KNOWN_EXTRAS - {"correlation", "generate"}
    )
    extra = sorted(set(map(str, rule.custom_attributes)) - known)
    return [f"unknown attribute{'s' if len(extra) > 1 else ''} ignored: {', '.join(extra)}"] if extra else []


def _identities(entries: list[Entry]) -> dict[str, Entry]:
    """Rules by id and by name, for correlation references; a second rule with a taken key is refused.

    Refused rules keep their keys, so a correlation naming one says why it cannot run.
    """
    by_key: dict[str, Entry] = {}
    ids: dict[str, Entry] = {}
    for entry in entries:
        rule = entry.parsed
        if rule is None:
            continue
        keys = [k for k in (str(rule.id) if rule.id else None, rule.name) if k]
        rid = _rule_id(rule)
        taken = [(k, by_key[k]) for k in keys if k in by_key] + ([(rid, ids[rid])] if rid in ids else [])
        if taken:
            key, other = taken[0]
            entry.refuse(refuse(f"'{key}' also names a rule in {other.source}", "duplicate rule id"))
            continue
        ids[rid] = entry
        for key in keys:
            by_key[key] = entry
    return by_key


def _rule_id(rule: SigmaRule | SigmaCorrelationRule) -> str:
    return str(rule.id) if rule.id else rule.name or rule.title


def _lookup(ref: str, by_key: dict[str, Entry]) -> Entry | None:
    try:
        return by_key.get(str(uuid.UUID(ref))) or by_key.get(ref)
    except ValueError:
        return by_key.get(ref)


def _resolve_correlations(entries: list[Entry], by_key: dict[str, Entry]) -> list[Entry]:
    """Resolve correlation references depth first; returns the correlations children first."""
    order: list[Entry] = []
    state: dict[int, str] = {}

    def visit(entry: Entry) -> None:
        state[id(entry)] = "active"
        with _judging(entry):
            _resolve(entry, by_key, visit, state)
        state[id(entry)] = "done"
        if entry.error is None:
            order.append(entry)

    for entry in entries:
        if isinstance(entry.parsed, SigmaCorrelationRule) and id(entry) not in state:
            visit(entry)
    for entry in order:  # only now is every correlation's own generate flag known to hold
        for target in entry.correlation.targets if entry.correlation else ():
            target.referrers.append(entry.generate)
    return order


def _resolve(
    entry: Entry, by_key: dict[str, Entry], visit: Callable[[Entry], None], state: dict[int, str]
) -> None:
    if entry.error is not None:
        return
    rule = entry.parsed
    if not isinstance(rule, SigmaCorrelationRule):
        return
    kind = str(rule.type.name).lower()
    if kind not in KINDS:
        raise refuse(
            f"correlation type '{kind}' is not supported (Vigil runs {', '.join(KINDS)})",
            f"correlation type '{kind}'",
        )
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition) or rule.rules is None:
        raise refuse(
            "boolean correlation conditions are not supported; list the rules", "correlation condition"
        )
    targets: list[Entry] = []
    for ref in rule.rules:
        target = _lookup(ref.reference, by_key)
        if target is None:
            raise refuse(f"refers to rule '{ref.reference}', which is not loaded", "rule reference")
        if state.get(id(target)) == "active":
            raise refuse(
                f"the correlation chain through '{ref.reference}' loops back on itself", "rule reference"
            )
        if isinstance(target.parsed, SigmaCorrelationRule) and id(target) not in state:
            visit(target)
        if target.error is not None:
            why = target.error.message.removeprefix(f"{target.source}: ")
            raise refuse(f"refers to rule '{ref.reference}', which is refused ({why})", "rule reference")
        if target in targets:
            raise refuse(f"refers to rule '{ref.reference}' twice", "rule reference")
        targets.append(target)
    ops = entry.ranges or [(rule.condition.op.name.lower(), float(rule.condition.count))]
    if kind == "temporal_ordered" and any(op not in ("gt", "gte") for op, _ in ops):
        raise refuse("temporal_ordered supports only gt and gte conditions", "correlation condition")
    aliases: dict[str, dict[int, str]] = {}
    for alias in rule.aliases:
        mapping: dict[int, str] = {}
        for ref, name in alias.mapping.items():
            target = _lookup(ref.reference, by_key)
            if target is None or target not in targets:
                raise refuse(
                    f"alias '{alias.alias}' names rule '{ref.reference}', which the correlation does not list",
                    "aliases",
                )
            mapping[targets.index(target)] = str(name)
        aliases[alias.alias] = mapping
    field_name: str | None = None
    if kind == "value_count":
        if not isinstance(rule.condition.fieldref, str):
            raise refuse(
                "value_count needs exactly one field in its condition", "correlation condition field"
            )
        field_name = rule.condition.fieldref
    resolved = Resolved(
        kind=kind,
        targets=targets,
        ops=ops,
        group_by=list(rule.group_by or []),
        aliases=aliases,
        field=field_name,
        span_us=rule.timespan.seconds * 1_000_000,
    )
    for i, target in enumerate(targets):  # check every field each target is read through, now
        for name in resolved.group_by + ([resolved.field] if resolved.field else []):
            slot_field(name, aliases, i, target)
    entry.correlation = resolved
    # a restart replays window_us of history: a chain needs its own span on top of its children's
    entry.window_us = resolved.span_us + max((t.window_us for t in targets), default=0)


def slot_field(name: str, aliases: dict[str, dict[int, str]], index: int, target: Entry) -> tuple[str, Any]:
    """The field ``name`` (a group-by field or alias) stands for in events of the ``index``-th target."""
    actual = aliases.get(name, {}).get(index, name)
    if name in aliases and index not in aliases[name]:
        try:
            resolve(name)
        except FieldError:
            raise refuse(
                f"group-by alias '{name}' names no field for rule '{target.label}' (add it under aliases)",
                f"field '{name}'",
            ) from None
    try:
        return actual, resolve(actual)
    except FieldError as err:
        own = target.correlation.group_by if target.correlation else []
        if actual in own:
            return actual, None  # a group-by value handed on by a chained correlation
        where = f" (for rule '{target.label}' through aliases)" if actual != name else ""
        raise refuse(f"{err}{where}", f"field '{actual}'") from err


def _info(entry: Entry, rule: SigmaRule | SigmaCorrelationRule) -> RuleInfo:
    level = str(rule.level) if rule.level is not None else None
    severity: Severity = SIGMA_LEVELS.get(level, "P2") if level else "P2"
    extras = rule.custom_attributes
    examples = _examples(extras["examples"]) if "examples" in extras else None
    runbook = extras.get("runbook")
    if runbook is not None and not isinstance(runbook, str):
        raise refuse("'runbook' must be text", "runbook")
    generates = not entry.referrers or any(entry.referrers)
    if examples is not None and not generates:
        entry.notes.append("its examples cannot fire: the rule only feeds a correlation (generate: false)")
    span = entry.correlation.span_us if entry.correlation else 0
    return RuleInfo(
        id=_rule_id(rule),
        title=rule.title,
        severity=severity,
        techniques=_techniques(str(tag) for tag in rule.tags),
        description=rule.description or "",
        source=entry.source,
        window_us=entry.window_us,
        suppress_us=span if entry.correlation else RuleInfo.suppress_us,
        runbook=runbook or "",
        examples=examples,
        generates=generates,
    )


def _techniques(tags: Iterable[str]) -> tuple[str, ...]:
    """ATT&CK ids from ``attack.tNNNN[.NNN]`` tags, current ids first (a revoked one after its successor)."""
    current: list[str] = []
    revoked: list[str] = []
    for tag in tags:
        namespace, _, name = tag.partition(".")
        if namespace.lower() != "attack" or not _TECHNIQUE.fullmatch(name):
            continue
        tid = name.upper()
        if tid in REVOKED_TECHNIQUES:
            current.append(REVOKED_TECHNIQUES[tid])
            revoked.append(tid)
        else:
            current.append(tid)
    return tuple(dict.fromkeys(current + revoked))


def _examples(raw: Any) -> Examples:
    """The ``examples:`` attribute: ``fire`` and ``quiet`` lists of event sequences (a single event may stand
    for a sequence of one)."""
    if not isinstance(raw, dict) or not raw or set(raw) - {"fire", "quiet"}:
        raise refuse("'examples' must be a mapping with 'fire' and/or 'quiet' lists", "examples")
    out: dict[str, tuple[list[dict[str, Any]], ...]] = {}
    for key in ("fire", "quiet"):
        items = raw.get(key) or []
        if not isinstance(items, list):
            raise refuse(f"examples '{key}' must be a list of event sequences", "examples")
        sequences = []
        for n, item in enumerate(items, 1):
            seq = [item] if isinstance(item, dict) else item
            if not isinstance(seq, list) or not seq or not all(isinstance(e, dict) for e in seq):
                raise refuse(f"examples '{key}' item {n} must be an event or a list of events", "examples")
            sequences.append([dict(e) for e in seq])
        out[key] = tuple(sequences)
    return Examples(fire=out["fire"], quiet=out["quiet"])
