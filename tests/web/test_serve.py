"""`vigil serve` as a process: it says "serving" only once it listens, and a port in use is one clear line."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from vigil.testing import HOST, vigil_command


def _serve(database: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        vigil_command("serve", "--database", str(database), "--host", HOST, "--port", str(port)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_port_in_use_is_one_clear_line_and_a_failing_exit(tmp_path: Path) -> None:
    """With the port held by another socket, serve exits non-zero at once with one line naming the port and
    how to choose another, no traceback, and never claims to be serving."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = _serve(tmp_path / "vigil.db", port)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("Error: "), lines
    assert f"port {port} on {HOST} is already in use" in lines[0]
    assert "--port" in lines[0] and "VIGIL_PORT=" in lines[0]
    assert "Traceback" not in err and "serving" not in err
    assert not (tmp_path / "vigil.db").exists(), "nothing was started: the bind comes first"


def test_serving_is_said_once_the_server_answers(tmp_path: Path) -> None:
    """The "serving on URL" line comes once the socket is bound and the app started: a request sent the moment
    it appears is answered. Port 0 lets the kernel choose, and the line gives the real port."""
    proc = _serve(tmp_path / "vigil.db", 0)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        found = None
        while found is None:
            assert time.monotonic() < deadline and proc.poll() is None
            found = re.search(r": serving \S+ on (http://127\.0\.0\.1:(\d+)) ", proc.stderr.readline())
        assert int(found.group(2)) != 0
        with urllib.request.urlopen(found.group(1) + "/healthz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
