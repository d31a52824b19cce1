"""Hypothesis strategies for credentials of every kind the redaction engine knows, shared by its tests.

Each strategy draws ``(kind, text, core)``: the text as it would appear in an event and the part of it that must
never be stored (for a URL, the password, not the host).
"""

from __future__ import annotations

import base64
import string

from hypothesis import strategies as st

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def _luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it pass Luhn."""
    for d in "0123456789":
        digits = body + d
        total = 0
        for i, ch in enumerate(reversed(digits)):
            n = int(ch)
            if i % 2:
                n = n * 2 - 9 if n > 4 else n * 2
            total += n
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def _text(alphabet: str, n: int, most: int | None = None) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=most or n)


def _mixed(alphabet: str, n: int) -> st.SearchStrategy[str]:
    """``n`` characters of ``alphabet`` with at least one upper- and one lower-case letter, as random keys have."""
    return st.tuples(_text(alphabet, n - 2), st.sampled_from("ABCXYZ"), st.sampled_from("abcxyz")).map(
        lambda t: t[1] + t[0] + t[2]
    )


def _jwt(header: str, payload: str, sig: str) -> str:
    def b64(s: str) -> str:
        return base64.urlsafe_b64encode(s.encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(payload)}.{sig}"


aws_key_id = st.builds(
    lambda p, s: p + s, st.sampled_from(["AKIA", "ASIA"]), _text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
)
aws_secret = _mixed(B64, 40)
github = st.one_of(
    st.builds(lambda p, s: p + s, st.sampled_from(["ghp_", "gho_", "ghs_", "ghu_"]), _text(ALNUM, 36)),
    st.builds(lambda a, b: f"github_pat_{a}_{b}", _text(ALNUM, 22), _text(ALNUM, 59)),
)
slack = st.builds(
    lambda p, a, b, c: f"{p}-{a}-{b}-{c}",
    st.sampled_from(["xoxb", "xoxp"]),
    _text(string.digits, 12),
    _text(string.digits, 13),
    _text(ALNUM, 24),
)
stripe = st.builds(
    lambda p, s: p + s, st.sampled_from(["sk_live_", "rk_live_", "sk_test_"]), _text(ALNUM, 24, 40)
)
vigil = st.builds(lambda i, s: f"vk_{i}_{s}", _text("0123456789abcdef", 16), _text(URLSAFE, 43))
jwt = st.builds(
    lambda sub, sig: _jwt('{"alg":"HS256","typ":"JWT"}', '{"sub":"' + sub + '"}', sig),
    _text(ALNUM, 4, 12),
    _text(URLSAFE, 43),
)
card_digits = st.builds(
    lambda first, rest: _luhn_complete(first + rest), st.sampled_from("3456"), _text(string.digits, 14)
)
card = st.one_of(card_digits, card_digits.map(lambda d: " ".join(d[i : i + 4] for i in range(0, 16, 4))))
password = _mixed(ALNUM, 12)

# (kind, text, core)
SECRETS: st.SearchStrategy[tuple[str, str, str]] = st.one_of(
    aws_key_id.map(lambda s: ("aws_access_key_id", s, s)),
    aws_secret.map(lambda s: ("aws_secret_key", s, s)),
    github.map(lambda s: ("github_token", s, s)),
    slack.map(lambda s: ("slack_token", s, s)),
    stripe.map(lambda s: ("stripe_key", s, s)),
    vigil.map(lambda s: ("vigil_key", s, s)),
    jwt.map(lambda s: ("jwt", s, s)),
    card.map(lambda s: ("card_number", s, s)),
    st.builds(
        lambda b: ("private_key", f"-----BEGIN PRIVATE KEY-----\n{b}\n-----END PRIVATE KEY-----", b),
        _mixed(B64, 64),
    ),
    password.map(lambda p: ("url_credentials", f"https://deploy:{p}@git.example.com/repo.git", p)),
    st.builds(
        lambda scheme, cred: ("auth_header", f"{scheme} {cred}", cred),
        st.sampled_from(["Bearer", "Token", "Basic", "bearer"]),
        password,
    ),
    password.map(
        lambda p: ("auth_header", f'Digest username="ops", realm="x", nonce="{p}", response="{p[::-1]}"', p)
    ),
    st.builds(
        lambda name, p: ("secret", f"{name}={p}", p),
        st.sampled_from(["password", "client_secret", "api_key", "pwd", "access_token"]),
        password,
    ),
)
SEPARATORS = st.sampled_from([" ", "\n", ", ", "(", ")", "'", '"', "; ", " | ", "\t"])
WORDS = st.sampled_from(["", "login from", "deploy used", "note:", "retry with", "Ada Lovelace"])


@st.composite
def embedded(draw: st.DrawFn) -> tuple[str, str, str]:
    """A secret inside ordinary text: ``(kind, text, core)``."""
    kind, secret, core = draw(SECRETS)
    before, after = draw(WORDS), draw(WORDS)
    text = (
        before + (draw(SEPARATORS) if before else "") + secret + (draw(SEPARATORS) if after else "") + after
    )
    return kind, text, core
