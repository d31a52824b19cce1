"""Per-tenant redaction rules, from the file the ``redaction_rules`` setting names (read once, at start).

The file is JSON, keyed by tenant slug; ``"*"`` applies to every tenant, and a tenant's own entry adds to it::

    {
      "*":    {"keys": ["employee_number"]},
      "acme": {"keys": ["badge"], "patterns": {"acme_token": "ACME-[0-9]{8}"}, "allow": ["metadata.commit_sha"]}
    }

``keys``: more key words (normalised like the built-in ones and matched anywhere in a key); ``patterns``:
``{kind: regex}``, each match stored as ``[REDACTED:<kind>]``; ``allow``: field paths no rule touches
(``metadata.<key>``, ``changes.<field>``, ``message``, ``reason``, ``actor.name``, ``targets.name``,
``context.user_agent``…). A file that cannot be read or holds anything else stops the start (fail closed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vigil.errors import ConfigError
from vigil.ingest.redact import DEFAULT, Redactor

_FIELDS = frozenset({"keys", "patterns", "allow"})


class TenantRedaction:
    """The :class:`Redactor` of each tenant: the built-in rules, plus the file's for it."""

    def __init__(self, rules: dict[str, dict[str, Any]] | None = None) -> None:
        rules = rules or {}
        for slug, entry in rules.items():
            _check(slug, entry)
        base = rules.get("*", {})
        self._default = _redactor("*", base, {}) if base else DEFAULT
        self._by_tenant = {slug: _redactor(slug, base, entry) for slug, entry in rules.items() if slug != "*"}

    @classmethod
    def load(cls, path: str) -> TenantRedaction:
        """The rules of the file at ``path``; no path: the built-in rules for everyone."""
        if not path:
            return cls()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"redaction_rules: cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ConfigError(f"redaction_rules: {path} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"redaction_rules: {path} must hold a JSON object keyed by tenant slug")
        return cls(data)

    def for_tenant(self, slug: str) -> Redactor:
        return self._by_tenant.get(slug, self._default)


def _check(slug: str, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"redaction_rules: the entry of {slug!r} must be an object")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"redaction_rules: {slug!r} has unknown fields {', '.join(unknown)} (known: keys, patterns, allow)"
        )
    for name in ("keys", "allow"):
        value = entry.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"redaction_rules: {slug}.{name} must be a list of strings")
    patterns = entry.get("patterns", {})
    if not isinstance(patterns, dict) or not all(isinstance(v, str) for v in patterns.values()):
        raise ConfigError(f"redaction_rules: {slug}.patterns must map a kind to a regular expression")


def _redactor(slug: str, base: dict[str, Any], entry: dict[str, Any]) -> Redactor:
    try:
        return Redactor(
            keys=[*base.get("keys", []), *entry.get("keys", [])],
            patterns={**base.get("patterns", {}), **entry.get("patterns", {})},
            allow=[*base.get("allow", []), *entry.get("allow", [])],
        )
    except ValueError as exc:
        raise ConfigError(f"redaction_rules: {slug}: {exc}") from None
