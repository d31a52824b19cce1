"""How the ``vigil`` commands take their options: flags generated from the settings table (typed, with their
environment variable and default in ``--help``), ``--json``, and progress bars that ``--json`` silences."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from vigil.settings import BY_NAME, Setting

F = TypeVar("F", bound=Callable[..., Any])


if TYPE_CHECKING:  # click 8.2+ types ParamType as a generic; 8.1, which we still support, does not
    _ParamType = click.ParamType[Any, Any]
else:
    _ParamType = click.ParamType


class SettingType(_ParamType):
    """A setting's value on the command line, parsed exactly as its environment variable is, so ``--detect off``
    and ``VIGIL_DETECT=off`` mean the same and a bad value is refused with what the setting allows."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.name = setting.kind.lower()

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        if self.setting.kind == "BOOLEAN":
            return "true|false"
        return self.setting.metavar or self.setting.kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.setting.type(value)
        except ValueError as exc:
            self.fail(f"{value!r} is not valid: {exc}", param, ctx)


def setting_help(s: Setting) -> str:
    """A setting's --help text: what it does, its environment variable and its default (when it has one)."""
    default = f"; default: {s.shown_default}" if s.shown_default else ""
    return f"{s.help} [env: {s.env}{default}]"


def setting_options(*names: str) -> Callable[[F], F]:
    """Click options generated from the settings table: flag, typed value, help with env var and default."""

    def decorate(fn: F) -> F:
        for name in reversed(names):
            s = BY_NAME[name]
            kind: _ParamType = click.Choice(s.choices, case_sensitive=False) if s.choices else SettingType(s)
            fn = click.option(s.flag, s.name, type=kind, default=None, help=setting_help(s))(fn)
        return fn

    return decorate


def json_option(fn: F) -> F:
    """The ``--json`` flag: the answer as one JSON document on standard output, and nothing else there."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON for scripts (and nothing else on standard output).",
    )(fn)


class _Quiet:
    def update(self, n: int) -> None:
        pass


@contextmanager
def progress(length: int, label: str, quiet: bool = False) -> Iterator[Any]:
    """A progress bar on standard error; none at all when ``quiet`` (``--json``: only the answer is printed)."""
    if quiet:
        yield _Quiet()
        return
    with click.progressbar(length=length, label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar


__all__ = ["SettingType", "json_option", "progress", "setting_help", "setting_options"]
