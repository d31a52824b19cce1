"""``VigilMiddleware`` for WSGI apps (Flask, or any WSGI callable): each mutating request becomes an audit event.

    app = Flask(__name__)
    VigilMiddleware(app, client=vigil)         # Flask: wraps app.wsgi_app in place

    application = VigilMiddleware(wsgi_app, client=vigil)   # any other WSGI app

Given a Flask app, the middleware wraps ``app.wsgi_app`` and adds a ``teardown_request`` function that reads,
while the request context still exists, the route template (``request.url_rule.rule``), its arguments and the
user (``flask.g.user``, else Flask-Login's ``current_user`` when it is installed). For other WSGI apps the
route comes from the path (numeric and UUID segments become ``{id}``) and the user from ``REMOTE_USER``.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from os import PathLike
from types import TracebackType
from typing import Any

from vigil.sdk.aio import AsyncClient
from vigil.sdk.capture import (
    ANONYMOUS,
    MAX_BODY,
    ActorResolver,
    Capture,
    Exchange,
    actor_from_user,
    make_client,
    reset_current,
    set_current,
)
from vigil.sdk.client import Client

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_KEY = "vigil.exchange"  # the environ key under which a recorded request's Exchange travels


def environ_actor(environ: Mapping[str, Any]) -> dict[str, Any] | None:
    """The actor of a plain WSGI request: ``REMOTE_USER``, when the server or an outer middleware set it."""
    user = environ.get("REMOTE_USER")
    return {"id": str(user)[:256], "type": "user"} if user else None


def flask_actor(request: Any = None) -> dict[str, Any] | None:
    """The actor of a Flask request: ``flask.g.user`` (an object or a dict), else Flask-Login's
    ``current_user`` when Flask-Login is installed and set up; None when anonymous."""
    from flask import current_app, g, has_request_context

    if not has_request_context():
        return None
    user = g.get("user")
    if user is None and hasattr(current_app, "login_manager"):
        try:
            user = importlib.import_module("flask_login").current_user
        except ImportError:
            return None
    return actor_from_user(user)


class VigilMiddleware:
    """Records the app's mutating requests (POST, PUT, PATCH, DELETE; ``methods=`` to change) with ``client``.

    Give a ``client``, or ``url=``, ``api_key=`` and optionally ``spool_dir=`` to have the middleware make one.
    ``actor_resolver(request)`` gets ``flask.request`` for a Flask app and the WSGI ``environ`` otherwise; the
    other options are those of :class:`vigil.sdk.capture.Capture`.
    """

    def __init__(
        self,
        app: Any,
        client: Client | AsyncClient | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        spool_dir: str | PathLike[str] | None = None,
        methods: Collection[str] | None = None,
        ignore_paths: Collection[str] | None = None,
        actor_resolver: ActorResolver | None = None,
        openapi: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        body_fields: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.owns_client = client is None
        self.client = make_client(client, url, api_key, spool_dir)
        self.flask_app = app if _is_flask(app) else None
        resolver: ActorResolver | None = None
        if self.flask_app is not None and actor_resolver is not None:
            given = actor_resolver

            def resolver(environ: Any) -> Mapping[str, Any] | None:
                from flask import has_request_context, request

                return given(request) if has_request_context() else None
        else:
            resolver = actor_resolver
        self.capture = Capture(
            self.client,
            methods=methods,
            ignore_paths=ignore_paths,
            actor_resolver=resolver,
            default_resolver=flask_actor if self.flask_app is not None else environ_actor,
            openapi=openapi,
            body_fields=body_fields,
        )
        if self.flask_app is not None:
            self.app: WSGIApp = self.flask_app.wsgi_app
            self.flask_app.wsgi_app = self
            self.flask_app.teardown_request(self._teardown)
        else:
            self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        capture = self.capture
        method: str = environ["REQUEST_METHOD"]
        path: str = environ.get("PATH_INFO") or "/"
        if not capture.wants(method, path):
            return self.app(environ, start_response)
        ex = Exchange(
            environ,
            method,
            path,
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_USER_AGENT"),
            environ.get("HTTP_X_REQUEST_ID"),
        )
        if capture.wants_body(method, environ.get("CONTENT_TYPE")):
            _keep_body(environ, ex)
        environ[_KEY] = ex

        def start(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
            try:
                ex.status = int(status[:3])
            except ValueError:
                ex.status = None
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        token = set_current(capture, ex)
        try:
            body = self.app(environ, start)
        except Exception:
            ex.raised = True
            self._finish(ex)
            raise
        finally:
            reset_current(token)
        if ex.status is not None:
            self._finish(ex)
            return body
        return _OnClose(body, lambda: self._finish(ex))  # the app starts its response lazily

    def _finish(self, ex: Exchange) -> None:
        if ex.actor is None:  # not a Flask app, or its teardown did not run
            ex.actor = self.capture.resolve_actor(ex.native)
        self.capture.finish(ex)

    def _teardown(self, exc: BaseException | None) -> None:
        """Flask's ``teardown_request``: read the route and the user while the request context exists."""
        from flask import request

        ex = request.environ.get(_KEY)
        if not isinstance(ex, Exchange):
            return
        rule = request.url_rule
        ex.template = rule.rule if rule is not None else None
        ex.params = request.view_args
        ex.actor = self.capture.resolve_actor(request) or ANONYMOUS

    def close(self, timeout: float = 10.0) -> bool:
        """Close the client if this middleware made it (from ``url=``); a client given is the app's to close."""
        return self.client.close(timeout) if self.owns_client else True


def _is_flask(app: Any) -> bool:
    return all(hasattr(app, name) for name in ("wsgi_app", "teardown_request", "url_map"))


def _keep_body(environ: dict[str, Any], ex: Exchange) -> None:
    """Read a small JSON body for the allow-listed fields, and put it back for the app as an equal stream."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return
    if not 0 <= length <= MAX_BODY:
        return
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    ex.body = body


class _OnClose:
    """A response body that calls ``callback`` once the server closes it (the status is known by then)."""

    def __init__(self, body: Iterable[bytes], callback: Callable[[], None]) -> None:
        self.body = body
        self.callback = callback

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.callback()
