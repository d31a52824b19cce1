"""``VigilMiddleware`` for Django: each mutating request becomes an audit event.

    # settings.py
    MIDDLEWARE = [
        "vigil.sdk.django.VigilMiddleware",
        ...
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        ...
    ]
    VIGIL = {
        "url": "https://vigil.internal:8000",
        "api_key": os.environ["VIGIL_API_KEY"],
        "spool_dir": "/var/spool/myapp-vigil",
        # optional: "methods", "ignore_paths", "actor_resolver" (callable or dotted path),
        # "openapi" (dict, callable or dotted path), "body_fields"; or "client": a Client or its dotted path
    }

One client serves the process (:func:`client`); the app can record its own events with it too. The route comes
from ``request.resolver_match.route``, the user from ``request.user`` when it is authenticated. The middleware
works under WSGI and ASGI (sync and async views).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

try:
    import django  # type: ignore[import-untyped,unused-ignore]  # noqa: F401  # first: a clear message
except ImportError as exc:
    raise ImportError("vigil.sdk.django needs Django: pip install django") from exc
from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings  # type: ignore[import-untyped,unused-ignore]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped,unused-ignore]
from django.core.signals import setting_changed  # type: ignore[import-untyped,unused-ignore]
from django.utils.module_loading import import_string  # type: ignore[import-untyped,unused-ignore]

from vigil.sdk.aio import AsyncClient
from vigil.sdk.capture import (
    MAX_BODY,
    Capture,
    Exchange,
    actor_from_user,
    make_client,
    reset_current,
    set_current,
)
from vigil.sdk.client import Client

SETTINGS = frozenset(
    {
        "client",
        "url",
        "api_key",
        "spool_dir",
        "methods",
        "ignore_paths",
        "actor_resolver",
        "openapi",
        "body_fields",
    }
)

_lock = threading.Lock()
_client: Client | None = None
_owned = False  # the client was made here from url/api_key, so it is closed here when the settings change


def django_actor(request: Any) -> dict[str, Any] | None:
    """``request.user`` when it is authenticated (its pk, full name or username, and email), else None."""
    return actor_from_user(getattr(request, "user", None))


def vigil_settings() -> Mapping[str, Any]:
    """``settings.VIGIL``, checked: a dict of known keys (a misspelt option fails instead of being ignored)."""
    conf = getattr(settings, "VIGIL", None)
    if not isinstance(conf, Mapping):
        raise ImproperlyConfigured(
            "vigil.sdk.django needs settings.VIGIL = {'url': ..., 'api_key': ...} (or {'client': ...})"
        )
    unknown = set(conf) - SETTINGS
    if unknown:
        raise ImproperlyConfigured(
            f"unknown settings.VIGIL keys {sorted(unknown)}; known: {', '.join(sorted(SETTINGS))}"
        )
    return conf


def client() -> Client:
    """The process's client: ``VIGIL["client"]``, or one made once from ``url``, ``api_key`` and ``spool_dir``."""
    global _client, _owned
    found = _client
    if found is not None:
        return found
    with _lock:
        if _client is None:
            conf = vigil_settings()
            given = conf.get("client")
            if isinstance(given, str):
                given = import_string(given)
            if given is not None and not isinstance(given, Client | AsyncClient):
                raise ImproperlyConfigured(
                    f"VIGIL['client'] is a {type(given).__name__}, not a vigil.sdk.Client"
                )
            try:
                _client = make_client(given, conf.get("url"), conf.get("api_key"), conf.get("spool_dir"))
            except ValueError as exc:
                raise ImproperlyConfigured(f"settings.VIGIL: {exc}") from exc
            _owned = given is None
        return _client


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    """``override_settings(VIGIL=...)`` (tests): the next request uses a client made from the new settings."""
    global _client, _owned
    if setting != "VIGIL":
        return
    with _lock:
        old, owned, _client, _owned = _client, _owned, None, False
    if old is not None and owned:
        old.close()


setting_changed.connect(_settings_changed, dispatch_uid="vigil.sdk.django")


def _option(conf: Mapping[str, Any], name: str) -> Any:
    value = conf.get(name)
    return import_string(value) if isinstance(value, str) else value


class VigilMiddleware:
    """Django middleware that records the app's mutating requests with :func:`client`; see the module doc."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        conf = vigil_settings()
        self.custom_resolver = conf.get("actor_resolver") is not None
        self.capture = Capture(
            client(),
            methods=conf.get("methods"),
            ignore_paths=conf.get("ignore_paths"),
            actor_resolver=_option(conf, "actor_resolver"),
            default_resolver=django_actor,
            openapi=_option(conf, "openapi"),
            body_fields=conf.get("body_fields"),
        )
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _start(self, request: Any) -> Exchange | None:
        capture = self.capture
        method: str = request.method
        path: str = request.path_info
        if not capture.wants(method, path):
            return None
        meta = request.META
        ex = Exchange(
            request,
            method,
            path,
            meta.get("REMOTE_ADDR"),
            meta.get("HTTP_USER_AGENT"),
            meta.get("HTTP_X_REQUEST_ID"),
        )
        if capture.wants_body(method, request.content_type):
            try:
                length = int(meta.get("CONTENT_LENGTH") or -1)
            except ValueError:
                length = -1
            if 0 <= length <= MAX_BODY:
                ex.body = request.body  # Django keeps it: the view still reads body, POST or the stream
        return ex

    @staticmethod
    def _route(request: Any, ex: Exchange) -> None:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            ex.template = str(match.route)
            ex.params = match.kwargs

    def __call__(self, request: Any) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        ex = self._start(request)
        if ex is None:
            return self.get_response(request)
        token = set_current(self.capture, ex)
        try:
            response = self.get_response(request)
        except Exception:
            ex.raised = True
            self._finish(request, ex)
            raise
        finally:
            reset_current(token)
        ex.status = response.status_code
        self._finish(request, ex)
        return response

    def _finish(self, request: Any, ex: Exchange) -> None:
        self._route(request, ex)
        ex.actor = self.capture.resolve_actor(request)
        self.capture.finish(ex)

    async def __acall__(self, request: Any) -> Any:
        get_response: Callable[[Any], Awaitable[Any]] = self.get_response
        ex = self._start(request)
        if ex is None:
            return await get_response(request)
        token = set_current(self.capture, ex)
        try:
            response = await get_response(request)
        except Exception:
            ex.raised = True
            await self._afinish(request, ex)
            raise
        finally:
            reset_current(token)
        ex.status = response.status_code
        await self._afinish(request, ex)
        return response

    async def _afinish(self, request: Any, ex: Exchange) -> None:
        """As ``_finish``, without touching the database from the event loop to load ``request.user``."""
        self._route(request, ex)
        if not self.custom_resolver and hasattr(request, "auser"):
            ex.actor = actor_from_user(await request.auser())
        else:
            ex.actor = await sync_to_async(self.capture.resolve_actor)(request)
        self.capture.finish(ex)
