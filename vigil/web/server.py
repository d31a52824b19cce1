"""Run the app under uvicorn on a socket Vigil binds itself.

Binding first, before the store or the app start, makes a port in use one clear line (which port, how to pick
another) instead of uvicorn's bind error after the app has started; and "serving on ..." is said only once the
server really listens, so a script that waits for it can connect at once.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from vigil.errors import ConfigError

BACKLOG = 2048  # uvicorn's default


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: the kernel picks one); ConfigError says why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on host {host!r} (--host, VIGIL_HOST): {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    # as uvicorn does: a restarted server need not wait for the old connections' TIME_WAIT. It never lets two
    # servers listen on one port (that is SO_REUSEPORT).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        other = port + 1 if 0 < port < 65535 else 8080
        choose = f"choose another port with --port {other} (or VIGIL_PORT={other})"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use: stop what holds it, or {choose}"
            ) from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"not allowed to listen on port {port} of {host}: {choose}") from None
        raise ConfigError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """The http:// URL a bound socket answers on (the real port, also when 0 was asked for)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, saying so once its startup is complete (the app started, the socket served)."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._announce()


def run(app: Any, sock: socket.socket, announce: Callable[[], None], **config: Any) -> None:
    """Serve ``app`` on ``sock`` until a signal stops it; ``announce`` is called once it is serving.

    ``config`` goes to ``uvicorn.Config`` (log_level, access_log, ...)."""
    host, port = sock.getsockname()[:2]
    _Server(uvicorn.Config(app, host=host, port=port, **config), announce).run(sockets=[sock])
