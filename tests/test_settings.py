"""One settings table drives flags, environment variables and docs/settings.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.errors import ConfigError
from vigil.settings import SETTINGS, Settings, markdown_table

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def test_every_setting_is_documented() -> None:
    """docs/settings.md holds exactly the table the code generates."""
    assert markdown_table() in DOCS.read_text(encoding="utf-8")


def test_flag_beats_environment_beats_default() -> None:
    """Precedence: CLI flag, then VIGIL_* variable, then the default."""
    env = {"VIGIL_PORT": "9000", "VIGIL_DATABASE": "/data/v.db"}
    assert Settings.load({}, environ={}).port == 8000
    assert Settings.load({}, environ=env).port == 9000
    assert Settings.load({"port": "9100"}, environ=env).port == 9100
    assert Settings.load({}, environ=env).database == "/data/v.db"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("port", "99999", "VIGIL_PORT"),
        ("rate_limit", "-1", "VIGIL_RATE_LIMIT"),
        ("sqlite_synchronous", "OFF", "not one of"),
        ("port", "eighty", "VIGIL_PORT"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str, words: str) -> None:
    """A bad value fails at start, naming where it came from."""
    env = {f"VIGIL_{name.upper()}": value}
    with pytest.raises(ConfigError, match=words):
        Settings.load({}, environ=env)


def test_choices_are_case_insensitive() -> None:
    """normal and NORMAL are the same choice."""
    assert Settings.load({"sqlite_synchronous": "normal"}, environ={}).sqlite_synchronous == "NORMAL"


def test_unknown_setting_is_refused() -> None:
    """A typo in a setting name is an error, never ignored."""
    with pytest.raises(ConfigError, match="unknown"):
        Settings.load({"prot": 1}, environ={})


def test_settings_have_help_and_env_names() -> None:
    """Every setting explains itself."""
    for s in SETTINGS:
        assert s.help and s.env.startswith("VIGIL_") and s.flag.startswith("--")
