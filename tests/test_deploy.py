"""deploy/: the systemd units name real settings with valid values, keep their hardening, and pass
`systemd-analyze verify`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import unavailable

from vigil.settings import BY_NAME, Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = ["vigil.service", "vigil-backup.service", "vigil-backup.timer"]


def _directives(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / unit).read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            name, _, value = line.partition("=")
            out.setdefault(name, []).append(value)
    return out


def test_the_units_environment_is_real_settings_with_valid_values() -> None:
    """Every VIGIL_* the units set is a setting, and together they load (a renamed setting fails here)."""
    for unit in ("vigil.service", "vigil-backup.service"):
        env = dict(e.split("=", 1) for e in _directives(unit).get("Environment", []))
        names = {v.removeprefix("VIGIL_").lower() for v in env}
        assert names <= set(BY_NAME), names - set(BY_NAME)
        settings = Settings.load(environ=env)
        assert settings.database == "/var/lib/vigil/vigil.db"


def test_the_service_is_hardened_and_keeps_its_files_in_its_state_directory() -> None:
    """The server runs as its own user with nothing writable but /var/lib/vigil, behind a loopback port."""
    d = {k: v[-1] for k, v in _directives("vigil.service").items()}
    for name, value in {
        "DynamicUser": "yes",
        "StateDirectory": "vigil",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }.items():
        assert d.get(name) == value, name
    assert d["ExecStart"].endswith("/vigil serve")
    env = dict(e.split("=", 1) for e in _directives("vigil.service")["Environment"])
    assert env["VIGIL_HOST"] == "127.0.0.1" and env["VIGIL_DATABASE"].startswith("/var/lib/vigil/")
    backup = _directives("vigil-backup.service")
    assert re.search(r"vigil backup --force ", backup["ExecStart"][0])
    assert backup["User"] == ["vigil"] and "vigil" in backup["StateDirectory"][0].split()


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    """systemd's own checker accepts the units (their program path pointed at this interpreter's vigil)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze (the systemd package)")
    vigil = Path(sys.executable).with_name("vigil")
    if not vigil.exists():
        pytest.fail(f"no vigil command beside {sys.executable}: install the package")
    for unit in UNITS:
        text = (DEPLOY / unit).read_text().replace("/opt/vigil/bin/vigil", str(vigil))
        (tmp_path / unit).write_text(text)
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / u) for u in UNITS)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        # the machine running the tests need not boot with systemd; only the units' own lines count
        if any(u in line for u in UNITS)
    ]
    assert done.returncode == 0 or not problems, done.stdout + done.stderr
    assert not problems, problems


def test_systemd_rates_the_units_exposure_low(tmp_path: Path) -> None:
    """`systemd-analyze security` scores both services' exposure under 2 of 10 ("OK"), so a loosened unit fails."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze (the systemd package)")
    for unit in ("vigil.service", "vigil-backup.service"):
        (tmp_path / unit).write_text((DEPLOY / unit).read_text())
        done = subprocess.run(
            [analyze, "security", "--offline=yes", str(tmp_path / unit)],
            capture_output=True,
            text=True,
            check=False,
        )
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
        assert found, done.stdout + done.stderr
        assert float(found.group(1)) < 2.0, (unit, found.group(1))
