"""One redaction engine for the server's intake and the SDK: key-name rules and credential-shaped values.

Standard library only, so the SDK can run it in the application's process before an event leaves it. Two kinds
of rule, applied to every string of an event (nested ``changes`` values and mapping keys included):

* **Key names.** A metadata key, a change field or a key nested inside a change value that names a secret has
  its value replaced. Keys are normalised first (NFKC, accents and zero-width or other format characters
  dropped, Cyrillic and Greek look-alikes mapped to Latin, case folded, separators dropped), so ``Pass-Word``,
  ``p<Cyrillic a>ssword``, ``pass<U+200B>word`` and ``p4ssw0rd`` all match. Long words match anywhere in the
  key; short ones (``pin``, ``otp``, ``auth``…) only as a word of it, so ``shipping`` and ``author`` stay.
* **Values.** Credential shapes anywhere in a string (AWS, GitHub, Slack, Stripe, Vigil keys, JWTs, PEM
  private keys, card numbers with a valid Luhn check digit, passwords inside URLs, ``Bearer``/``Token``/
  ``Digest`` credentials, ``password=…`` in free text) are replaced where they stand.

Each secret becomes ``[REDACTED:<kind>]``. Matching is broad on purpose: a false positive costs a redacted value,
a false negative leaks a credential into a log that can never be edited. Ordinary identifiers (a session id, a
request id such as ``req_abc123``, a UUID, a git commit hash) have none of these shapes and stay.

Python's regular expressions cost tens of nanoseconds per character scanned, too much for every string of every
event. So each detector carries *triggers*: literal bytes it cannot match without (``AKIA``, ``eyJ``, ``://``,
``bearer `` lower-cased), or a shape found with one ``bytes.translate`` (13 digits once spaces and dashes are
dropped; a run of 40 base64 characters). The strings of an event are joined and checked once (a few microseconds,
all in C); only the detectors whose triggers are there run, and only on the strings that hold them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

REDACTED = "[REDACTED]"
"""The marker older versions wrote; still taken as already redacted."""

_MARKER = re.compile(r"\[REDACTED(?::[a-z0-9_]{1,40})?\]")


def marker(kind: str) -> str:
    """The text that replaces a secret of ``kind``."""
    return f"[REDACTED:{kind}]"


SECRET = marker("secret")

# ---------------------------------------------------------------------------------------------------- key names

SECRET_WORDS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "pwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "privatekey",
    "credential",
    "accesskey",
    "signature",
    "sessionkey",
    "creditcard",
    "cardnumber",
    "ccnumber",
    "cvv",
    "socialsecurity",
)
"""Matched anywhere in the normalised key (``new_password``, ``aws_secret_access_key``)."""

SHORT_WORDS: frozenset[str] = frozenset(
    {"pass", "pin", "auth", "otp", "totp", "hotp", "ssn", "cvc", "cvv2", "cvc2", "mfacode"}
)
"""Matched only as a whole word of the key (``user_pin``, ``pinCode``, ``PIN``), never inside one."""

# Letters that render like Latin ones (from Unicode's confusables.txt: Cyrillic and Greek, the ones an attacker
# reaches for first). Upper case maps to upper case, so camelCase keys still split into words.
_CONFUSABLES = str.maketrans(
    dict(
        zip(
            "аВвгеЕЗзһіІјЈкКмМнНоОпрРсСтТуУхХьѕЅԁԀԛԚԝԜӏӀαΑβΒγεΕΖηΗιΙκΚΜνΝοΟρΡτΤυΥχΧωıɑɡɩ",
            "aBbreE33hiIjJkKmMhHoOnpPcCtTyYxXbsSdDqQwWlIaAbByeEZnHiIkKMvNoOpPtTuYxXwiagi",
            strict=True,
        )
    )
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_DROP = frozenset({"Mn", "Me", "Cf"})  # combining marks, and format characters such as zero-width spaces


def _tokens(key: str) -> list[str]:
    """The words of a key, after undoing look-alike tricks; separators and unknown characters split words."""
    if not key.isascii():
        text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", key))
        key = "".join(c for c in text if unicodedata.category(c) not in _DROP).translate(_CONFUSABLES)
    return [w.casefold() for w in _WORDS.findall(key)]


def _names_secret(words: list[str], long_words: Iterable[str], short: frozenset[str]) -> bool:
    joined = "".join(words)
    return joined in short or any(w in short for w in words) or any(w in joined for w in long_words)


@functools.lru_cache(maxsize=8192)  # apps reuse a few hundred keys; normalising is the costly part
def is_secret_key(key: str) -> bool:
    """True when a metadata or change key names a secret (the built-in words)."""
    return _key_matches(key, SECRET_WORDS, SHORT_WORDS)


def _key_matches(key: str, long_words: tuple[str, ...], short: frozenset[str]) -> bool:
    if _names_secret(_tokens(key), long_words, short):
        return True
    leet = key.translate(_LEET)
    return leet != key and _names_secret(_tokens(leet), long_words, short)


def normalise_key(key: str) -> str:
    """A key as the rules compare it: ``Pass-W<Cyrillic o>rd`` becomes ``password``."""
    return "".join(_tokens(key))


# -------------------------------------------------------------------------------------------------- values

Replace = Callable[[re.Match[str]], str]


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: sets of them are built per event
class Detector:
    """One credential shape: its pattern, its replacement and the cheap triggers it cannot match without."""

    kind: str
    pattern: re.Pattern[str]
    needles: tuple[bytes, ...] = ()  # it cannot match unless one of these is in the lower-cased UTF-8 text
    operator: bool = False  # nor unless the text holds "=" or ":"
    shape: bytes = b""  # or unless this is in the text translated by _SHAPES (runs of digits, of base64)
    replace: Replace | None = None  # None: the whole match becomes the marker

    def sub(self, text: str) -> str:
        return self.pattern.sub(self.replace or self._whole, text)

    def _whole(self, m: re.Match[str]) -> str:
        return marker(self.kind)


def luhn_ok(digits: str) -> bool:
    """True when the last digit of ``digits`` is its Luhn check digit (every payment card number's)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_CARD_SPLIT = re.compile(r"[ -]")


def _card(m: re.Match[str]) -> str:
    """A card number when the digits pass Luhn and are grouped as cards are written (all together, in fours,
    4-6-4 or 4-6-5): not two dates side by side, not a phone number."""
    text = m.group()
    groups = [len(g) for g in _CARD_SPLIT.split(text)]
    digits = text.replace(" ", "").replace("-", "")
    grouped = (
        len(groups) == 1
        or groups in ([4, 6, 4], [4, 6, 5])
        or (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4)
    )
    return marker("card_number") if 13 <= len(digits) <= 19 and grouped and luhn_ok(digits) else text


def _url_credentials(m: re.Match[str]) -> str:
    return (
        "://" + marker("url_credentials") + "@"
    )  # the scheme and the host stay: only the userinfo is secret


_OPERATOR = re.compile(r"[:=][ \t]*")


def _assignment(m: re.Match[str]) -> str:
    """``password=hunter2`` → ``password=[REDACTED:secret]``: the name stays, so the reader knows what was there."""
    text = m.group()
    op = _OPERATOR.search(text)
    head = text[: op.end()] if op else ""
    if _MARKER.fullmatch(text[len(head) :].strip("\"'")):
        return text
    return head + SECRET


def _looks_like_credential(cred: str) -> bool:
    """A credential after ``Token`` mid-sentence, not a word: ``Token expired`` stays, ``Token a1b2c3d4`` not."""
    if len(cred) < 6:
        return False
    if any(c.isdigit() or c in "-._~+/=" for c in cred):
        return True
    return not (cred.islower() or cred.isupper())


def _auth_header(m: re.Match[str]) -> str:
    text = m.group()
    scheme, cred = text.split(None, 1)
    # a value that starts with "Bearer" is a header whatever follows; other schemes ("Token", "Basic") are
    # English words too, so they need a credential-looking word after them
    if (m.start() == 0 and scheme.lower() == "bearer") or _looks_like_credential(cred):
        return marker("auth_header")
    return text


def _words(*words: str) -> str:
    return "|".join(re.escape(w) for w in words)


_ASSIGN_LONG = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "private_key",
    "credential",
    "signature",
    "session_key",
)
_ASSIGN_SHORT = ("pwd", "pass", "pin", "otp", "ssn", "auth", "cvv", "cvc")
# NTLM and Negotiate are left out: Windows-domain schemes that SaaS audit events do not carry, and their
# letters are common enough to slow every scan
_SCHEMES = ("bearer", "basic", "token", "bot", "ssws", "apikey")
_B64 = "A-Za-z0-9/+"


def _d(kind: str, pattern: str, **kw: Any) -> Detector:
    return Detector(kind, re.compile(pattern), **kw)


# In the order they run: where two could match at one place, the more specific shape comes first.
DETECTORS: tuple[Detector, ...] = (
    _d(
        "private_key",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"(?s:.*?)(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",
        needles=(b"-----begin",),
    ),
    _d("jwt", r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", needles=(b"eyj",)),
    _d("aws_access_key_id", r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}", shape=b"U" * 20),
    _d(
        "github_token",
        r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}",
        needles=(b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
    ),
    _d(
        "slack_token",
        r"xox[abeposr]-[A-Za-z0-9-]{10,}|xapp-[0-9]-[A-Za-z0-9-]{10,}",
        needles=(b"xox", b"xapp-"),
    ),
    _d(
        "slack_webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+",
        needles=(b"hooks.slack.com/",),
    ),
    _d(
        "stripe_key",
        r"[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9+/=]{20,}",
        needles=(b"k_live_", b"k_test_", b"whsec_"),
    ),
    _d("vigil_key", r"vk_[0-9a-f]{16}_[A-Za-z0-9_-]{16,}", needles=(b"vk_",)),
    _d(
        "api_key",  # Google, OpenAI and Anthropic, GitLab, npm, PyPI, SendGrid
        r"AIza[0-9A-Za-z_-]{35}|sk-(?:ant-|proj-)?[A-Za-z0-9_-]{32,}|glpat-[A-Za-z0-9_-]{20,}"
        r"|npm_[A-Za-z0-9]{36}|pypi-AgE[A-Za-z0-9_-]{50,}|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
        needles=(b"aiza", b"sk-", b"glpat-", b"npm_", b"pypi-", b"sg."),
    ),
    # scheme://user:pass@host; the password may hold an unescaped @, so the last one before the path ends it
    _d("url_credentials", r"://[^\s/?#@:]*:[^\s/?#]+@", needles=(b"://",), replace=_url_credentials),
    _d(
        "auth_header",
        rf"(?i:\b(?:{_words(*_SCHEMES)})[ \t]+[A-Za-z0-9\-._~+/]+=*)",
        needles=tuple(w.encode() + sep for w in _SCHEMES for sep in (b" ", b"\t")),
        replace=_auth_header,
    ),
    _d(
        "auth_header",  # Digest username="…", nonce="…", response="…": every parameter goes
        r"(?i:\bdigest[ \t]+(?:[a-z_]+[ \t]*=[ \t]*(?:\"[^\"]*\"|[^\s,]+)[ \t]*,?[ \t]*)+)",
        needles=(b"digest ", b"digest\t"),
    ),
    # password=…, "token": "…", pin: 1234 in free text: the value after the operator
    _d(
        "secret",
        rf"(?i:(?:(?:{_words(*_ASSIGN_LONG)})[a-z0-9_-]*|\b(?:{_words(*_ASSIGN_SHORT)})\b)[\"']?[ \t]*[:=][ \t]*"
        r"(?:\"[^\"]*\"|'[^']*'|[^\s,;&\"'<>]+))",
        needles=(
            *(b"pass", b"pwd", b"secret", b"token", b"api", b"access_key", b"private_key", b"credential"),
            *(b"signature", b"session_key", b"pin", b"otp", b"ssn", b"auth", b"cvv", b"cvc"),
        ),
        operator=True,
        replace=_assignment,
    ),
    # 13 to 19 digits (spaces or dashes between them) with a card brand's first digit, not inside a word
    _d(
        "card_number",
        r"(?<![0-9A-Za-z_])[2-6][0-9](?:[ -]?[0-9]){11,17}(?![0-9A-Za-z_])",
        shape=b"0" * 13,
        replace=_card,
    ),
    # an AWS secret access key: exactly 40 base64 characters with both cases (so not a hex digest)
    _d(
        "aws_secret_key",
        rf"(?<![{_B64}])(?=[{_B64}]{{0,39}}[A-Z])(?=[{_B64}]{{0,39}}[a-z])[{_B64}]{{40}}(?![{_B64}=])",
        shape=b"a" * 40,
    ),
)
KINDS: tuple[str, ...] = tuple(dict.fromkeys(d.kind for d in DETECTORS))

# One translation per shape: capitals and digits to "U" (an AWS key id is a run of 20); digits, spaces and dashes
# to "0" (a card number is a run of 13 or more of them); base64 characters to "a" (an AWS secret key: 40).
_SHAPES = {
    b"U" * 20: bytes(85 if chr(i) in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" else 32 for i in range(256)),
    b"0" * 13: bytes(48 if chr(i) in "0123456789 -" else 120 for i in range(256)),
    b"a" * 40: bytes(
        97 if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "/+") else 32 for i in range(256)
    ),
}


# Bytes from rarest to commonest in audit events (measured on the demo's) and English text.
_RARITY = b":@zqj;xyvkgw_-fbhpu/m.cldsnrtoiae"


def _rank(ch: int) -> int:
    i = _RARITY.find(bytes([ch]))
    return len(_RARITY) if i < 0 else i


class _Needles:
    """Finds which of many literal byte strings occur in a text, with one regex scan.

    Python's engine tries a pattern at every position whose byte can start it, so each needle is anchored at
    its rarest byte (the bytes before it become a lookbehind): the scan stops only where ``k``, ``j``, ``x``
    or ``:`` stand, not at every ``e`` and ``a``."""

    def __init__(self, needles: Mapping[bytes, tuple[Detector, ...]]) -> None:
        by_anchor: dict[int, list[tuple[bytes, bytes]]] = {}
        self._found: dict[bytes, list[tuple[int, bytes]]] = {}
        for needle in needles:
            i = min(range(len(needle)), key=lambda k: (_rank(needle[k]), k))
            head, tail = needle[: i + 1], needle[i + 1 :]
            by_anchor.setdefault(needle[i], []).append((head, tail))
            self._found.setdefault(needle[i:], []).append((i, needle))
        alts = []
        for ch, items in sorted(by_anchor.items()):
            inner = [
                (b"(?<=" + re.escape(head) + b")" if len(head) > 1 else b"") + re.escape(tail)
                for head, tail in sorted(items, key=lambda ht: -len(ht[1]))
            ]
            alts.append(re.escape(bytes([ch])) + b"(?:" + b"|".join(inner) + b")")
        self.rx = re.compile(b"|".join(alts))
        self._dets = needles

    def matches(self, low: bytes) -> Iterator[tuple[int, tuple[Detector, ...]]]:
        """``(offset, detectors)`` of each needle found in ``low``."""
        for m in self.rx.finditer(low):
            start, text = m.start(), m.group()
            for i, needle in self._found.get(text, ()):
                if low[start - i : start - i + len(needle)] == needle:
                    yield start - i, self._dets[needle]


def _index(dets: Iterable[Detector]) -> _Needles:
    by_needle: dict[bytes, tuple[Detector, ...]] = {}
    for d in dets:
        for n in d.needles:
            by_needle[n] = (*by_needle.get(n, ()), d)
    return _Needles(by_needle)


_PLAIN = _index(d for d in DETECTORS if d.needles and not d.operator)
_ASSIGN = _index(d for d in DETECTORS if d.operator)
_SHAPED = tuple((d.shape, _SHAPES[d.shape], (d,)) for d in DETECTORS if d.shape)


Hot = Mapping[str, tuple[Detector, ...]]
"""For each string that a detector could match, those detectors (the output of :func:`scan`)."""


def scan(texts: Sequence[str]) -> dict[str, tuple[Detector, ...]]:
    """Which strings of ``texts`` each detector could match (each still has to match): a superset.

    The strings are joined and scanned once, a few passes in C (lower-casing, two regex scans, two
    translations); each hit is traced back to its string by offset, so a clean event costs one scan and a
    dirty one runs its detectors on the strings that need them only."""
    clean = _CLEAN
    fresh = [t for t in texts if t not in clean]
    if not fresh:
        return {}
    found = _scan(fresh)
    if len(clean) > _CLEAN_MAX:
        clean.clear()  # a crude bound: the common strings come back within a few events
    for t in fresh:
        if t not in found and len(t) <= 256:
            clean[t] = None
    return found


# Strings seen clean recently (actor names, user agents, routes, metadata keys and values repeat from event to
# event): the scan skips them. The detectors are deterministic, so a hit here is exactly what a scan would say.
_CLEAN: dict[str, None] = {}
_CLEAN_MAX = 8192


def _scan(texts: Sequence[str]) -> dict[str, tuple[Detector, ...]]:
    joined = "\n".join(texts).encode("utf-8", "surrogatepass")
    low = joined.lower()
    found: list[tuple[int, tuple[Detector, ...]]] = []
    if _PLAIN.rx.search(low) is not None:  # almost never: the generator below only runs then
        found.extend(_PLAIN.matches(low))
    if (b"=" in joined or b":" in joined) and _ASSIGN.rx.search(low) is not None:
        found.extend(_ASSIGN.matches(low))
    for shape, table, det in _SHAPED:
        shaped = joined.translate(table)
        at = shaped.find(shape)
        while at >= 0:
            found.append((at, det))
            nl = joined.find(b"\n", at)  # the next string: one hit per string is enough
            at = shaped.find(shape, nl) if nl >= 0 else -1
    if not found:
        return {}
    # trace each hit back to its string (shapes and needles never cross the newline between two strings)
    raws = [t.encode("utf-8", "surrogatepass") for t in texts]
    starts = list(accumulate((len(r) + 1 for r in raws[:-1]), initial=0))
    hits: dict[int, set[Detector]] = {}
    for pos, dets in found:
        i = bisect_right(starts, pos) - 1
        if dets[0].operator and b"=" not in raws[i] and b":" not in raws[i]:
            continue  # password=… needs its operator in the same string
        hits.setdefault(i, set()).update(dets)
    return {texts[i]: tuple(d for d in DETECTORS if d in got) for i, got in hits.items()}


def triggered(text: str) -> tuple[Detector, ...]:
    """The detectors that could match somewhere in ``text``."""
    return scan((text,)).get(text, ())


class Redactor:
    """The rules for one tenant: the built-in ones plus its own key words and patterns, minus allowed fields.

    ``keys``: more key words (matched like the long built-in words, anywhere in the normalised key);
    ``patterns``: ``{kind: regex}`` of values to redact as ``[REDACTED:<kind>]``; ``allow``: field paths left
    alone (``metadata.commit_sha``, ``context.user_agent``, ``changes.token_count``, ``targets.name``).
    """

    def __init__(
        self,
        keys: Iterable[str] = (),
        patterns: Mapping[str, str] | None = None,
        allow: Iterable[str] = (),
    ) -> None:
        extra = tuple(normalise_key(k) for k in keys)
        if any(not k for k in extra):
            raise ValueError("a redaction key word must hold letters or digits")
        self.keys = extra
        self.allow = frozenset(allow)
        self.patterns: list[tuple[str, re.Pattern[str]]] = []
        for kind, src in (patterns or {}).items():
            if not re.fullmatch(r"[a-z0-9_]{1,40}", kind):
                raise ValueError(f"a pattern's kind is 1 to 40 of a-z, 0-9 and _; got {kind!r}")
            try:
                self.patterns.append((kind, re.compile(src)))
            except re.error as exc:
                raise ValueError(f"pattern {kind}: {exc}") from None
        self._extra_cache: dict[str, bool] = {}

    def secret_key(self, key: str) -> bool:
        """True when ``key`` names a secret under this tenant's rules."""
        if is_secret_key(key):
            return True
        if not self.keys:
            return False
        hit = self._extra_cache.get(key)
        if hit is None:
            hit = _key_matches(key, self.keys, frozenset())
            if len(self._extra_cache) < 8192:
                self._extra_cache[key] = hit
        return hit

    def scan(self, texts: Sequence[str]) -> dict[str, tuple[Detector, ...]]:
        """:func:`scan` (the strings of one event at once)."""
        return scan(texts)

    def text(self, value: str, limit: int | None = None, hot: Hot | None = None) -> str:
        """``value`` with every credential replaced, cut to ``limit`` characters if the markers made it longer.

        ``hot``: what :meth:`scan` found for the whole event (a string it did not list is clean)."""
        out = value
        for d in (scan((value,)) if hot is None else hot).get(value, ()):
            out = d.sub(out)
        for kind, rx in self.patterns:
            out = rx.sub(marker(kind), out)
        if out == value:
            return value
        if limit is not None and len(out) > limit >= len(value):
            out = out[:limit]
        return out

    def first_kind(self, value: str) -> str | None:
        """The kind of the first secret found in ``value``, or None (for a field to refuse rather than change)."""
        for d in triggered(value):
            if d.sub(value) != value:
                return d.kind
        return next((kind for kind, rx in self.patterns if rx.search(value)), None)

    def scalar(
        self,
        key: str,
        value: Any,
        path: str = "",
        hot: Hot | None = None,
        limit: int | None = None,
    ) -> Any:
        """A mapping value, given its key: replaced when the key names a secret, else its strings scanned."""
        if path and path in self.allow:
            return value
        if value is None or value is True or value is False:
            return value  # nothing to hide in a flag or an absent value
        if self.secret_key(key):
            if type(value) is str and _MARKER.fullmatch(value):
                return value
            return SECRET
        if limit is not None and type(value) is str:
            return self.text(value, limit, hot)
        return self.nested(value, hot)

    def nested(self, value: Any, hot: Hot | None = None) -> Any:
        """Any JSON value with credentials redacted: strings scanned, dict keys judged, lists walked."""
        kind = type(value)
        if kind is str:
            return self.text(value, None, hot)
        if kind is int:
            return _card_int(value)
        if kind is list:
            out = [self.nested(v, hot) for v in value]
            return value if all(a is b for a, b in zip(out, value, strict=True)) else out
        if kind is dict:
            return self.mapping(value, "", hot)
        return value

    def mapping(
        self,
        value: dict[str, Any],
        prefix: str = "",
        hot: Hot | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """A map (metadata, or a dict inside a change) with secret keys' values and credentials redacted.

        The same object when nothing changes. A key that is itself a credential is renamed to its marker."""
        out: dict[str, Any] | None = None
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix and self.allow else ""
            if path and path in self.allow:
                continue
            new = self.scalar(key, item, "", hot, limit)
            new_key = self.text(key, None, hot)
            if new is not item or new_key is not key:
                out = _put(out, value, key, new_key, new)
        return value if out is None else out

    def changes(
        self, changes: dict[str, Any], prefix: str = "changes", hot: Hot | None = None
    ) -> dict[str, Any]:
        """A change map: both sides of a secret field are replaced (a null or a flag stays), the rest walked."""
        out: dict[str, Any] | None = None
        for key, pair in changes.items():
            if self.allow and f"{prefix}.{key}" in self.allow:
                continue
            if self.secret_key(key) and type(pair) is list:
                new: Any = [self.scalar(key, v) for v in pair]
                if new == pair:
                    new = pair
            else:
                new = self.nested(pair, hot)
            new_key = self.text(key, None, hot)
            if new is not pair or new_key is not key:
                out = _put(out, changes, key, new_key, new)
        return changes if out is None else out

    def event(self, ev: dict[str, Any], limits: Mapping[str, int] | None = None) -> dict[str, Any]:
        """A whole event as a dict (the SDK's form) with every string redacted; ``limits``: field → max length.

        The action is left for the caller to refuse (:meth:`first_kind`): an identifier is not rewritten."""
        limits = limits or {}
        parts = [
            ev.get(k) for k in ("message", "reason", "actor", "context", "targets", "metadata", "changes")
        ]
        found = scan([s for p in parts if p for s in strings(p)])
        out = dict(ev)
        if found or self.patterns:
            for name in ("message", "reason"):
                if type(out.get(name)) is str and name not in self.allow:
                    out[name] = self.text(out[name], limits.get(name), found)
            for name in ("actor", "context"):
                part = out.get(name)
                if isinstance(part, Mapping):
                    out[name] = self._fields(dict(part), name, limits, found)
            targets = out.get("targets")
            if targets:
                out["targets"] = [
                    self._fields(dict(t), "targets", limits, found) if isinstance(t, Mapping) else t
                    for t in targets
                ]
        if out.get("metadata"):
            out["metadata"] = self.mapping(dict(out["metadata"]), "metadata", found, limits.get("metadata"))
        if out.get("changes"):
            out["changes"] = self.changes(dict(out["changes"]), "changes", found)
        return out

    def _fields(
        self, part: dict[str, Any], prefix: str, limits: Mapping[str, int], found: Hot
    ) -> dict[str, Any]:
        for k, v in part.items():
            path = f"{prefix}.{k}"
            if type(v) is str and path not in self.allow:
                part[k] = self.text(v, limits.get(path), found)
            elif k == "metadata" and isinstance(v, Mapping):  # WorkOS's actor and target metadata
                part[k] = self.mapping(dict(v), path, found, limits.get("metadata"))
        return part


def _put(out: dict[str, Any] | None, src: dict[str, Any], key: str, new_key: str, new: Any) -> dict[str, Any]:
    if out is None:
        out = dict(src)
    if new_key is not key:
        del out[key]
        while new_key in out:  # two keys redacted to one marker: keep both values
            new_key += "~"
    out[new_key] = new
    return out


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value, mapping keys included."""
    kind = type(value)
    if kind is str:
        yield value
    elif kind is dict or isinstance(value, Mapping):
        for k, v in value.items():
            if type(k) is str:
                yield k
            yield from strings(v)
    elif kind is list or kind is tuple:
        for v in value:
            yield from strings(v)


def _card_int(value: int) -> Any:
    """A card number sent as a JSON number is still a card number."""
    if 10**12 <= value < 10**19:
        digits = str(value)
        if digits[0] in "23456" and luhn_ok(digits):
            return marker("card_number")
    return value


DEFAULT = Redactor()
"""The built-in rules alone: what the SDK applies, and the server for a tenant with no rules of its own."""


def is_secret_value(value: Any) -> bool:
    """True when a string holds a credential anywhere in it."""
    return type(value) is str and DEFAULT.text(value) != value


def redact_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A copy of a flat metadata map with secrets replaced (the same object when nothing changes)."""
    return DEFAULT.mapping(metadata, "metadata")


def redact_changes(changes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """A copy of a change map with secrets replaced, nested values included."""
    return DEFAULT.changes(changes)
