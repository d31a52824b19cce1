"""The README's tour, exactly as written, from a fresh clone in a fresh virtualenv: so it can never drift again.

The test clones the committed HEAD, starts the demo server with the README's own `scripts/demo` line (which makes
the clone's .venv and installs Vigil into it), then runs every shell line of the ```sh blocks under "A five-minute
tour", in order, in one bash session (variables carry from line to line, as in a reader's shell), and checks each:
exit code 0 (curl fails on an HTTP error status: the test's .curlrc adds --fail-with-body), any JSON it prints
parses, each variable a line sets is set, and for the lines below a look at the answer itself. The only things
the test chooses are a free port (VIGIL_PORT, which the README says how to set) and a small demo
(VIGIL_DEMO_EVENTS, likewise).

What it tests is the committed HEAD: commit before running it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vigil.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
TOUR = "A five-minute tour"
START = "Two commands"
SERVER_START_TIMEOUT = (
    300  # seconds: a fresh virtualenv, a pip install (from pip's cache, mostly) and the demo
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("git") is None or shutil.which("curl") is None, reason="needs git and curl"
    ),
]


@dataclass
class Step:
    """One shell command of the README (a line, or several joined by quotes or a trailing backslash)."""

    heading: str
    command: str
    out: str = ""
    err: str = ""
    rc: int | None = None
    var: str | None = None  # the value of the variable the command assigns, if it assigns one


def sh_blocks(readme: str) -> list[tuple[str, list[str]]]:
    """Every ```sh block of ``readme`` as (the ## heading above it, its lines)."""
    blocks: list[tuple[str, list[str]]] = []
    heading, inside, lines = "", False, []
    for line in readme.splitlines():
        if inside:
            if line.strip() == "```":
                blocks.append((heading, lines))
                inside, lines = False, []
            else:
                lines.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
        elif line.strip() == "```sh":
            inside = True
    assert not inside, "README.md has an unclosed ```sh block"
    return blocks


def commands(lines: list[str]) -> list[str]:
    """The commands of a block: comment-only and empty lines dropped, continued lines joined; bash itself
    (``bash -n``) says when a command is complete (closing quotes, trailing backslashes)."""
    out: list[str] = []
    buf: list[str] = []
    for line in lines:
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf.append(line)
        text = "\n".join(buf)
        if line.rstrip().endswith("\\") or not _complete(text):
            continue
        out.append(text)
        buf = []
    assert not buf, f"an unfinished command in README.md: {chr(10).join(buf)}"
    return out


def _complete(text: str) -> bool:
    return subprocess.run(["bash", "-n", "-c", text], capture_output=True, check=False).returncode == 0


def tour_steps(readme: str) -> list[Step]:
    return [Step(h, c) for h, lines in sh_blocks(readme) if h == TOUR for c in commands(lines)]


def _json(step: Step) -> Any:
    return json.loads(step.out)


def _has(*words: str) -> Callable[[Step, list[Step]], None]:
    def check(step: Step, steps: list[Step]) -> None:
        for word in words:
            assert word in step.out, f"{word!r} is not in the answer"

    return check


def _stored_one(step: Step, steps: list[Step]) -> None:
    answer = _json(step)
    assert answer["accepted"] == 1 and answer["results"][0]["status"] == "stored", answer


def _page(step: Step, steps: list[Step]) -> None:
    assert isinstance(_json(step)["data"], list)


def _one_event(step: Step, steps: list[Step]) -> None:
    event = _json(step)
    assert event["id"] == _var(steps, "ID") and event["actor"]["id"] == "usr_42"
    assert event["metadata"]["password"] == "[REDACTED:secret]"
    assert isinstance(event["seq"], int) and len(event["leaf_hash"]) == 64


def _proof(step: Step, steps: list[Step]) -> None:
    proof = _json(step)
    event = next(_json(s) for s in steps if re.search(r'/v1/events/\$ID"$', s.command))
    assert proof["leaf_index"] == event["seq"] and proof["leaf_hash"] == event["leaf_hash"]
    assert proof["checkpoint"], "the export signed a checkpoint covering the event"


def _rules_on(step: Step, steps: list[Step]) -> None:
    """The geo rules run: the demo's own GeoIP map is used while none is given."""
    for rule in ("vigil.impossible_travel", "vigil.new_country"):
        line = next(x for x in step.out.splitlines() if rule in x)
        assert "disabled" not in line, line


def _tenants(step: Step, steps: list[Step]) -> None:
    assert "mycustomer" in {t["slug"] for t in _json(step)}


# (pattern on the command, check of its answer); every command is also checked for exit 0 and parsable JSON
CHECKS: list[tuple[str, Callable[[Step, list[Step]], None]]] = [
    (r"-X POST \"\$VIGIL_URL/v1/events\"", _stored_one),
    (r"^curl .*/v1/events\?", _page),
    (r'/v1/events/\$ID"$', _one_event),
    (r"/proof\"$", _proof),
    (r"openapi\.json", _has('"paths"', "/v1/events")),
    (r"/v1/alerts", _has("vigil.brute_force")),  # acme's planted attacks
    # the demo's two geo attacks fire out of the box (its own GeoIP map), beside the others
    (r"^vigil alerts list", _has("vigil.impossible_travel", "vigil.new_country", "vigil.brute_force")),
    (r"^vigil rules list", _rules_on),
    (r"^vigil verify(\s|$)", _has("complete and unaltered")),
    (r"^vigil verify-bundle", _has("ok  tenant acme")),
    (r"^vigil tenants list --json", _tenants),
    (r"^vigil keys create --tenant mycustomer", _has("cannot show it again")),
]


def _var(steps: list[Step], name: str) -> str:
    return next(s.var for s in steps if s.command.startswith(f"{name}=") and s.var)


def _clean_env(tmp: Path, port: int) -> dict[str, str]:
    """This machine's environment without the test run's own virtualenv and VIGIL_* settings, plus the test's
    port and demo size, a state directory of its own, and a .curlrc that makes curl fail on HTTP errors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CURL_HOME"):
        env.pop(name, None)
    if sys.prefix != sys.base_prefix:  # running inside a virtualenv: the tour must not use it
        ours = str(Path(sys.prefix) / "bin")
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    (tmp / "curl").mkdir()
    (tmp / "curl" / ".curlrc").write_text("fail-with-body\nshow-error\n")
    env.update(
        VIGIL_PORT=str(port),
        VIGIL_DEMO_EVENTS="2000",
        XDG_STATE_HOME=str(tmp / "state"),
        CURL_HOME=str(tmp / "curl"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def _clone(dest: Path) -> Path:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", head], check=True)
    return dest


def _script(steps: list[Step], work: Path) -> str:
    """One bash script running the steps in order, each with its output in files, stopping at the first that
    fails (what follows would fail for its sake)."""
    parts = ["set -o pipefail"]
    for i, step in enumerate(steps):
        parts.append(f"{{\n{step.command}\n}} >'{work}/{i}.out' 2>'{work}/{i}.err'")
        parts.append(f"rc=$?; echo $rc >'{work}/{i}.rc'")
        assigned = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=", step.command)
        if assigned:
            parts.append(f"printf '%s' \"${{{assigned.group(1)}-}}\" >'{work}/{i}.var'")
        parts.append('[ "$rc" = 0 ] || exit 3')
    return "\n".join(parts) + "\n"


def _start_server(clone: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Run the README's `scripts/demo` line in the background; return it and the URL it says it serves on."""
    start = [
        c for h, lines in sh_blocks((clone / "README.md").read_text()) if h == START for c in commands(lines)
    ]
    demo = next(c for c in start if c.startswith("scripts/demo"))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", demo], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(r": serving \S+ on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    _stop(proc)
    raise AssertionError(f"`{demo}` did not start serving:\n{log.read_text(errors='replace')[-5000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the demo script and the server it exec'd
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    """Every shell line of the README's tour runs, in order, against the demo server started the README's way,
    in a fresh clone and virtualenv, and answers what the README says."""
    clone = _clone(tmp_path / "clone")
    steps = tour_steps((clone / "README.md").read_text())
    assert len(steps) >= 10, steps
    port = free_port()
    env = _clean_env(tmp_path, port)
    proc, url = _start_server(clone, env, tmp_path / "demo.log")
    try:
        assert url == f"http://127.0.0.1:{port}", url
        work = tmp_path / "steps"
        work.mkdir()
        (tmp_path / "tour.sh").write_text(_script(steps, work))
        subprocess.run(
            ["bash", "--noprofile", "--norc", str(tmp_path / "tour.sh")],
            cwd=clone, env=env, stdin=subprocess.DEVNULL, timeout=240, check=False,
        )  # fmt: skip
        for i, step in enumerate(steps):
            rc_file = work / f"{i}.rc"
            step.rc = int(rc_file.read_text()) if rc_file.exists() else None
            step.out = (work / f"{i}.out").read_text() if rc_file.exists() else ""
            step.err = (work / f"{i}.err").read_text() if rc_file.exists() else ""
            var_file = work / f"{i}.var"
            step.var = var_file.read_text() if var_file.exists() else None
        # also the other way the README offers: scripts/vigil, from a shell that never activated .venv
        plain = subprocess.run(
            ["scripts/vigil", "tenants", "list", "--json"], cwd=clone, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
    finally:
        _stop(proc)
    demo_log = (tmp_path / "demo.log").read_text(errors="replace")
    for i, step in enumerate(steps):
        where = (
            f"README step {i} (under {step.heading!r}):\n{step.command}\n"
            f"--- stdout:\n{step.out[-3000:]}\n--- stderr:\n{step.err[-3000:]}"
        )
        assert step.rc == 0, f"exit code {step.rc} of {where}\n--- server:\n{demo_log[-3000:]}"
        if step.out.lstrip().startswith(("{", "[")):
            try:
                json.loads(step.out)
            except ValueError as exc:
                raise AssertionError(f"not JSON ({exc}): {where}") from None
        if step.var is not None:
            assert step.var and step.var != "None", f"the variable is empty: {where}"
        for pattern, check in CHECKS:
            if re.search(pattern, step.command, re.MULTILINE):
                try:
                    check(step, steps)
                except (AssertionError, KeyError, IndexError, TypeError, ValueError, StopIteration) as exc:
                    raise AssertionError(f"{type(exc).__name__} {exc}: {where}") from None
    assert plain.returncode == 0 and json.loads(plain.stdout), plain.stderr
    # what scripts/demo installed: the package and the demo's extra, none of the development tools
    assert "== installing Vigil" in demo_log and "planted: impossible_travel" in demo_log, demo_log[-3000:]
    for tool in ("mypy", "ruff", "pytest"):
        assert not (clone / ".venv" / "bin" / tool).exists(), f"scripts/demo installed {tool}"
    version = subprocess.run(
        [str(clone / ".venv/bin/python"), "-c",
         "import importlib.metadata as m, vigil; print(m.version('vigil-audit'), vigil.__version__)"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.split()  # fmt: skip
    assert version[0] == version[1], version
