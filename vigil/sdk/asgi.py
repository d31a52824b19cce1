"""``VigilMiddleware`` for ASGI apps (Starlette, FastAPI, Litestar): each mutating request becomes an audit event.

    app.add_middleware(VigilMiddleware, client=vigil)                          # Starlette, FastAPI
    Litestar(route_handlers, middleware=[DefineMiddleware(VigilMiddleware, client=vigil)])

Pure ASGI: the status is read from the ``http.response.start`` message the app sends, the route template from
``scope["route"]`` (Starlette, FastAPI) or ``scope["path_template"]`` (Litestar), the user from
``scope["user"]`` (Starlette's ``AuthenticationMiddleware``, Litestar's auth middleware) or
``request.state.user``. No framework is imported. The event is recorded after the response is sent; recording
only queues it (see :class:`vigil.sdk.Client`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from os import PathLike
from typing import Any

from vigil.sdk.aio import AsyncClient
from vigil.sdk.capture import (
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

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def default_actor(scope: Scope) -> dict[str, Any] | None:
    """The actor from ``scope["user"]`` (when authenticated), else from ``request.state.user``."""
    user = scope.get("user")
    if user is None:
        state = scope.get("state")
        if isinstance(state, Mapping):
            user = state.get("user")
    return actor_from_user(user)


class VigilMiddleware:
    """Records the app's mutating requests (POST, PUT, PATCH, DELETE; ``methods=`` to change) with ``client``.

    Give a ``client`` (its key's tenant receives the events), or ``url=``, ``api_key=`` and optionally
    ``spool_dir=`` to have the middleware make one. ``actor_resolver(scope)`` returns the request's actor
    (default: :func:`default_actor`); the other options are those of :class:`vigil.sdk.capture.Capture`.
    """

    def __init__(
        self,
        app: ASGIApp,
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
        self.app = app
        self.owns_client = client is None
        self.client = make_client(client, url, api_key, spool_dir)
        self.capture = Capture(
            self.client,
            methods=methods,
            ignore_paths=ignore_paths,
            actor_resolver=actor_resolver,
            default_resolver=default_actor,
            openapi=openapi,
            body_fields=body_fields,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        capture = self.capture
        method: str = scope["method"]
        root: str = scope.get("root_path", "")
        path: str = scope["path"]
        if root and path.startswith(root):
            path = path[len(root) :]
        if not capture.wants(method, path):
            await self.app(scope, receive, send)
            return
        user_agent = request_id = content_type = None
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        peer = scope.get("client")
        ex = Exchange(scope, method, path, peer[0] if peer else None, user_agent, request_id)
        if capture.wants_body(method, content_type):
            receive = _tee(receive, ex)

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status = message["status"]
            await send(message)

        token = set_current(capture, ex)
        try:
            await self.app(scope, receive, send_status)
        except Exception:
            ex.raised = True
            self._finish(scope, root, ex)
            raise
        finally:
            reset_current(token)
        self._finish(scope, root, ex)

    def _finish(self, scope: Scope, root: str, ex: Exchange) -> None:
        route = scope.get("route")
        template: Any = None
        if route is not None:
            if not hasattr(route, "routes"):  # a Mount or Host that no inner route matched says nothing
                template = getattr(route, "path_format", None) or getattr(route, "path", None)
                mounted = scope.get("root_path", "")[len(root) :]  # the prefixes of the Mounts passed
                if isinstance(template, str) and mounted and not template.startswith(mounted):
                    template = mounted + template
        else:
            template = scope.get("path_template")
        ex.template = template if isinstance(template, str) and template else None
        ex.params = scope.get("path_params")
        ex.actor = self.capture.resolve_actor(scope)
        self.capture.finish(ex)

    def close(self, timeout: float = 10.0) -> bool:
        """Close the client if this middleware made it (from ``url=``); a client given is the app's to close."""
        return self.client.close(timeout) if self.owns_client else True


def _tee(receive: Receive, ex: Exchange) -> Receive:
    """``receive`` that also keeps a copy of the body the app reads (up to MAX_BODY), for allow-listed fields.

    The app reads the body as usual, message by message; nothing is read ahead of it.
    """
    chunks: list[bytes] = []
    size = 0

    async def tee() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request" and size >= 0:
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                size = -1  # too large to parse: keep nothing
                chunks.clear()
            else:
                chunks.append(chunk)
                if not message.get("more_body", False):
                    ex.body = b"".join(chunks)
        return message

    return tee
