"""Every `vigil … --help` is precise: typed values, real defaults, whole short sentences, help on every option;
setting flags parse exactly as their environment variables do; scopes are explained where keys are made."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.cli_keys import SCOPE_HELP
from vigil.settings import BY_NAME
from vigil.store.base import SCOPES

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _walk(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(main))
LEAVES = [(path, cmd) for path, cmd in COMMANDS if not isinstance(cmd, click.Group)]


def _help(path: tuple[str, ...], width: int = 100) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], catch_exceptions=False, terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def _option_text(text: str, flag: str) -> str:
    """The lines --help gives ``flag``: its own line and the wrapped help lines under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\s+(-\w, )?{re.escape(flag)}\b", line))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if re.match(r"\s+-", line) or not line.startswith(" " * 6):
            break
        block.append(line)
    return "\n".join(block)


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_help_is_precise(path: tuple[str, ...], cmd: click.Command) -> None:
    """No TEXT for a number or a boolean, no `[default: ]` or `[default: True]`, help on every option."""
    text = _help(path)
    assert "[default: ]" not in text and "default: ;" not in text
    assert not re.search(r"default: (True|False)\b", text), text
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        assert param.help, f"vigil {' '.join(path)} {param.opts[0]} has no help text"
        setting = BY_NAME.get(param.name or "")
        if setting is not None and setting.flag in param.opts and setting.kind != "TEXT":
            shown = _option_text(text, setting.flag)
            assert "TEXT" not in shown.splitlines()[0], shown
            expected = "true|false" if setting.kind == "BOOLEAN" else setting.kind
            assert expected in shown.splitlines()[0], shown


@pytest.mark.parametrize("width", [60, 100])
def test_command_lists_never_cut_a_description(width: int) -> None:
    """Every group lists its commands with a whole short sentence, at any terminal width."""
    for path, cmd in COMMANDS:
        if not isinstance(cmd, click.Group):
            continue
        listing = _help(path, width).split("Commands:", 1)[1]
        assert "..." not in listing, listing
        for name, sub in cmd.commands.items():
            short = sub.get_short_help_str(limit=30)
            assert short.endswith(".") and not short.endswith("..."), f"{name}: {short!r}"


def test_every_command_that_prints_data_takes_json() -> None:
    """`--json` everywhere data is printed: every command but the server itself."""
    missing = [" ".join(p) for p, cmd in LEAVES if p != ("serve",) and "--json" not in _help(p)]
    assert missing == []


def test_database_help_names_postgresql() -> None:
    """--database says a PostgreSQL URL works too, in every command and at the top."""
    assert "PostgreSQL URL" in _help(())
    for path, cmd in LEAVES:
        if any(p.name == "database" for p in cmd.params):
            assert "postgresql://" in _option_text(_help(path), "--database"), path


def test_setting_flags_parse_like_their_variables() -> None:
    """--detect off and VIGIL_DETECT=off mean the same; a bad value is refused with what is allowed."""
    serve = main.commands["serve"]
    assert serve.make_context("serve", ["--detect", "off"]).params["detect"] is False
    assert serve.make_context("serve", ["--detect", "TRUE"]).params["detect"] is True
    assert serve.make_context("serve", ["--port", "9000"]).params["port"] == 9000
    for args, words in (
        (
            ["--detect", "nope"],
            "'nope' is not valid: must be true or false (on/off, yes/no and 1/0 work too)",
        ),
        (["--port", "99999"], "must be a TCP port, 0 to 65535"),
        (["--port", "eighty"], "must be a TCP port, 0 to 65535"),
        (["--rate-limit", "-5"], "must be a whole number, 0 or more"),
        (["--sqlite-synchronous", "OFF"], "'OFF' is not one of 'full', 'normal'"),
    ):
        result = CliRunner().invoke(main, ["serve", *args])
        assert result.exit_code == 2, result.output
        assert words in result.output, result.output


def test_defaults_are_shown_as_typed() -> None:
    """A boolean's default reads `true`; an empty default is not shown at all."""
    serve = _help(("serve",))
    assert "[env: VIGIL_DETECT; default: true]" in re.sub(r"\s+", " ", _option_text(serve, "--detect"))
    signing = re.sub(r"\s+", " ", _option_text(serve, "--signing-key"))
    assert "[env: VIGIL_SIGNING_KEY]" in signing and "default" not in signing.split("[env:")[1]


def test_keys_create_explains_every_scope_as_the_docs_do() -> None:
    """`keys create --help` says what each scope allows; docs/keys.md has the same table."""
    assert set(SCOPE_HELP) == set(SCOPES)
    text = re.sub(r"\s+", " ", _help(("keys", "create"), width=200))
    docs = (DOCS / "keys.md").read_text(encoding="utf-8")
    for scope, what in SCOPE_HELP.items():
        assert f"{scope} {what}" in text
        assert f"| `{scope}` | {what} |" in docs
