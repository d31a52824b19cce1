"""The access log and the one log format: a line per request with the key's tenant and id, never a secret."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from support import Keys, auth, event

from vigil.logs import Formatter, configure
from vigil.settings import Settings

Client = TestClient[Any]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything the process logs, at DEBUG, through the one handler, in JSON; the old handlers come back after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    quiet = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    out = io.StringIO()
    configure("debug", "json", out)
    yield out
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _access(out: io.StringIO) -> list[dict[str, Any]]:
    return [r for r in _lines(out) if r["logger"] == "vigil.access"]


def test_a_request_makes_one_access_line(client: Client, keys: Keys, captured: io.StringIO) -> None:
    """One search is one access line: method, path, harmless query values, status, duration, tenant, key id."""
    captured.truncate(0)
    captured.seek(0)
    r = client.get("/v1/events?limit=5&order=seq&q=salary+review", headers=auth(keys.read))
    assert r.status_code == 200
    (line,) = _access(captured)
    key_id = keys.read.split("_")[1]
    assert line["level"] == "info" and line["method"] == "GET" and line["status"] == 200
    assert line["path"] == "/v1/events?limit=5&order=seq&q=***"  # search words say what someone looked for
    assert line["tenant"] == "acme" and line["key_id"] == key_id
    assert line["client"] == "testclient" and 0 <= line["duration_ms"] < 10_000
    assert line["message"] == "GET /v1/events?limit=5&order=seq&q=*** 200"


def test_unmatched_and_refused_requests_are_logged_too(
    client: Client, keys: Keys, captured: io.StringIO
) -> None:
    """A path no route has, a request without a key and a wrong scope each get their line and status."""
    captured.truncate(0)
    captured.seek(0)
    client.get("/nowhere")
    client.get("/v1/events")
    client.post("/v1/events", json=[event()], headers=auth(keys.read))
    got = [(line["path"], line["status"], line["tenant"]) for line in _access(captured)]
    assert got == [("/nowhere", 404, None), ("/v1/events", 401, None), ("/v1/events", 403, "acme")]


def test_a_key_never_reaches_the_log(client: Client, keys: Keys, captured: io.StringIO) -> None:
    """Keys sent the right way, the wrong way, pasted into a query or a path: no secret is in any log line, at
    any level, from any logger (uvicorn's and the framework's included)."""
    secret_of = {k: k.split("_", 2)[2] for k in (keys.read, keys.ingest)}
    wrong = keys.read[:-6] + "AAAAAA"
    client.post("/v1/events", json=[event(), {"bad": 1}], headers=auth(keys.ingest))
    client.get("/v1/events?limit=1", headers=auth(keys.read))
    client.get("/v1/events", headers=auth(wrong))
    client.get("/v1/events", headers={"Authorization": keys.read})  # no "Bearer"
    client.get(f"/v1/events?api_key={keys.read}", headers=auth(keys.read))
    client.get(f"/v1/events?action={keys.read}", headers=auth(keys.read))  # a logged parameter's value
    client.get(f"/v1/{keys.read}")
    text = captured.getvalue()
    assert len(_access(captured)) == 7
    for secret in [*secret_of.values(), wrong.split("_", 2)[2]]:
        assert secret not in text
    assert "Bearer" not in text and "authorization" not in text.lower()
    assert f"vk_{keys.read.split('_')[1]}_***" in text  # the key's public id stays, for the operator


def test_json_lines_parse_and_text_lines_are_one_line() -> None:
    """The JSON format is one object per line, fields as keys; the text format keeps a hostile message on one
    line and quotes values that hold spaces."""
    record = logging.LogRecord("vigil.web", logging.WARNING, __file__, 1, "refused %s", ("x",), None)
    record.__dict__.update({"tenant": "acme", "note": "two words\nand a break"})
    doc = json.loads(Formatter("json").format(record))
    assert doc["level"] == "warning" and doc["logger"] == "vigil.web" and doc["message"] == "refused x"
    assert doc["tenant"] == "acme" and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", doc["time"])
    text = Formatter("text").format(record)
    assert "\n" not in text and text.endswith(
        'WARNING vigil.web refused x tenant=acme note="two words\\nand a break"'
    )


def test_uvicorn_and_warnings_go_through_the_one_handler(captured: io.StringIO) -> None:
    """uvicorn's loggers and Python warnings print in the same format as Vigil's own lines."""
    import warnings

    logging.getLogger("uvicorn.error").info("Started server process")
    warnings.warn("an old thing", UserWarning, stacklevel=1)
    names = [r["logger"] for r in _lines(captured)]
    assert names == ["uvicorn.error", "py.warnings"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow
def test_serve_prints_only_json_lines_with_log_format_json(tmp_path: Path) -> None:
    """`vigil serve --log-format json`, run for real: every line it prints, uvicorn's start-up and the access log
    included, is a JSON object, and a request is one access line."""
    port = _free_port()
    env = {
        **os.environ,
        "VIGIL_LOG_FORMAT": "json",
        "VIGIL_DETECT": "false",
        "VIGIL_CHECKPOINT_INTERVAL": "0",
    }
    cmd = [
        sys.executable,
        "-m",
        "vigil.cli",
        "serve",
        "--database",
        str(tmp_path / "v.db"),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/events?limit=1").status_code == 401
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # each line parses, or this fails
    loggers = {line["logger"] for line in lines}
    assert {"vigil.serve", "uvicorn.error", "vigil.access"} <= loggers
    access = [line for line in lines if line["logger"] == "vigil.access"]
    assert [(a["path"], a["status"]) for a in access][-1] == ("/v1/events?limit=1", 401)


def test_log_format_is_a_setting() -> None:
    """--log-format and VIGIL_LOG_FORMAT take text or json, nothing else."""
    assert Settings.load(environ={"VIGIL_LOG_FORMAT": "JSON"}).log_format == "json"
    assert Settings.load(environ={}).log_format == "text"
    with pytest.raises(Exception, match="not one of text, json"):
        Settings.load({"log_format": "xml"}, environ={})
