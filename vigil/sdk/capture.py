"""What the web middleware of every framework share: which requests to record, and how one becomes an event.

The adapters (:mod:`vigil.sdk.asgi`, :mod:`vigil.sdk.wsgi`, :mod:`vigil.sdk.django`) only read their
framework's request into a :class:`Exchange` and hand it to :meth:`Capture.finish` once the response is known.
Everything that depends on the route alone (the action name, the activity message, which path parameters are
targets, which body fields may be kept) is worked out once per route and cached, so the per-request work is a
few dictionary look-ups and one ``client.record``: no I/O on the request's path.

    POST /projects/{id}/members  -> action "projects.members.create", targets [{type: projects, id: "42"}]
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from os import PathLike
from typing import Any, Final

import msgspec

from vigil.model import ACTOR_TYPES, MAX_METADATA_KEY_LEN, MAX_METADATA_VALUE_LEN, MAX_SAFE_INT
from vigil.sdk.aio import AsyncClient
from vigil.sdk.client import Client
from vigil.sdk.worker import Throttle

log = logging.getLogger("vigil.sdk")

DEFAULT_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# prefixes of whole path segments: "/health" matches /health and /health/db, not /healthcare
DEFAULT_IGNORE_PATHS: Final = (
    "/health",
    "/healthz",
    "/readyz",
    "/livez",
    "/ping",
    "/metrics",
    "/static",
    "/favicon.ico",
    "/robots.txt",
)
VERBS: Final = {
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
    "GET": "view",
    "HEAD": "view",
}
ANONYMOUS: Final = {"id": "anonymous", "type": "anonymous"}
MAX_BODY = 64 * 1024  # request bodies above this are never parsed for allow-listed fields
MAX_ROUTES = 4096  # cached routes; raw paths of apps without templates must not grow the cache without end

ActorResolver = Callable[[Any], Mapping[str, Any] | None]
"""``resolver(request) -> {"id": ..., "name": ..., "email": ..., "type": ...} | None`` (None: anonymous)."""

_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}|[0-9a-fA-F]{24,})$"
)
# route parameters as frameworks write them: Starlette {id} {id:int}, Flask and Django <id> <int:id>
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}|<(?:[^>:]+:)?([^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")  # Django re_path groups, the simple ones
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_LEADING_NON_LETTERS = re.compile(r"^[^a-z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_decode_json = msgspec.json.decode
_encode_json = msgspec.json.encode
_warn = Throttle()


@dataclass(frozen=True, slots=True)
class Route:
    """What one (method, route template) becomes; computed once and cached."""

    template: str  # normalised: "/projects/{id}/members"
    action: str
    summary: str | None  # the OpenAPI operation's summary, for the activity message
    targets: tuple[tuple[int, str, str], ...]  # (path segment index, target type, parameter name)
    body_fields: tuple[str, ...]


class Exchange:
    """One recorded request as the adapter saw it; filled in as the request goes, finished by ``Capture``."""

    __slots__ = (
        "actor",
        "body",
        "ip",
        "method",
        "native",
        "params",
        "path",
        "raised",
        "request_id",
        "status",
        "template",
        "user_agent",
    )

    def __init__(
        self,
        native: Any,
        method: str,
        path: str,
        ip: str | None,
        user_agent: str | None,
        request_id: str | None,
    ) -> None:
        self.native = native  # the framework's request (ASGI scope, WSGI environ, Django HttpRequest)
        self.method = method
        self.path = path
        self.ip = ip
        self.user_agent = user_agent
        self.request_id = request_id
        self.body: bytes | None = None
        self.template: str | None = None  # the framework's route template, when it matched one
        self.params: Mapping[str, Any] | None = None
        self.status: int | None = None
        self.raised = False
        self.actor: Mapping[str, Any] | None = None  # resolved by the adapter (Flask: inside the request)


_current: ContextVar[tuple[Capture, Exchange] | None] = ContextVar("vigil_request", default=None)


def current_actor() -> dict[str, Any] | None:
    """The actor of the request being handled on this thread or task, or None outside a recorded request.

    The middleware sets it for the requests it records, so that code deeper down (the SQLAlchemy change
    tracker of :mod:`vigil.sdk.sqlalchemy`) can say who made a change.
    """
    cur = _current.get()
    if cur is None:
        return None
    capture, ex = cur
    return capture.resolve_actor(ex.native)


def current_context() -> dict[str, Any] | None:
    """``{ip, user_agent, request_id}`` of the request being handled, or None outside a recorded request."""
    cur = _current.get()
    if cur is None:
        return None
    ex = cur[1]
    return _context(ex.ip, ex.user_agent, ex.request_id)


def actor_from_user(user: Any) -> dict[str, Any] | None:
    """An actor from a framework's user object or dict, or None when it is missing or not authenticated.

    Reads what Starlette (``identity``, ``display_name``), Django (``pk``, ``get_full_name``), Flask-Login
    (``get_id``) and plain objects (``id``, ``username``, ``name``, ``email``) usually have.
    """
    if user is None:
        return None
    if isinstance(user, Mapping):
        return clean_actor(user)
    if _attr(user, "is_authenticated") is False:
        return None
    uid = None
    for name in ("identity", "id", "pk", "get_id", "username", "email"):
        uid = _attr(user, name)
        if uid not in (None, ""):
            break
    if uid in (None, ""):
        return None
    actor: dict[str, Any] = {"id": str(uid)[:256], "type": "user"}
    for name in ("display_name", "get_full_name", "full_name", "name", "username"):
        display = _attr(user, name)
        if display not in (None, ""):
            actor["name"] = str(display)[:256]
            break
    email = _attr(user, "email")
    if email:
        actor["email"] = str(email)[:256]
    return actor


def _attr(obj: Any, name: str) -> Any:
    """``obj.name`` (called when it is a method), or None; user objects raise all sorts of things."""
    try:
        value = getattr(obj, name, None)
        return value() if callable(value) else value
    except Exception:
        return None


def clean_actor(actor: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Only the actor fields the server knows, as short strings; None when there is no id."""
    if actor is None:
        return None
    uid = actor.get("id")
    if uid in (None, ""):
        return None
    out: dict[str, Any] = {"id": str(uid)[:256]}
    kind = actor.get("type")
    if kind in ACTOR_TYPES:
        out["type"] = kind
    for key in ("name", "email", "session_id"):
        value = actor.get(key)
        if value not in (None, ""):
            out[key] = str(value)[:256]
    return out


class Capture:
    """The configuration of one middleware, and the work of turning a finished request into an event.

    ``client`` records; ``methods`` are the HTTP methods recorded (default: POST, PUT, PATCH, DELETE);
    ``ignore_paths`` are path prefixes never recorded (whole segments); ``actor_resolver(request)`` returns the
    actor of a request, else ``default_resolver`` (the adapter's) is used, and without an actor the event's
    actor is ``anonymous``; ``openapi`` is the app's OpenAPI document (or a callable returning it, read at the
    first request) whose ``operationId`` names the action and whose ``summary`` makes the message;
    ``body_fields`` maps ``"METHOD /template"`` to the top-level JSON body fields kept as metadata.
    """

    def __init__(
        self,
        client: Client | AsyncClient,
        *,
        methods: Iterable[str] | None = None,
        ignore_paths: Iterable[str] | None = None,
        actor_resolver: ActorResolver | None = None,
        default_resolver: Callable[[Any], dict[str, Any] | None] | None = None,
        openapi: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        body_fields: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        if isinstance(client, AsyncClient):
            client = client.client  # its record() is the threaded client's; skip one call
        if not isinstance(client, Client):
            raise TypeError(f"client must be a vigil.sdk.Client or AsyncClient; got {type(client).__name__}")
        self.client = client
        self.methods = frozenset(m.upper() for m in (DEFAULT_METHODS if methods is None else methods))
        if not self.methods:
            raise ValueError("methods= is empty: the middleware would record nothing")
        prefixes = DEFAULT_IGNORE_PATHS if ignore_paths is None else tuple(ignore_paths)
        self._ignore_exact = frozenset(p.rstrip("/") or "/" for p in prefixes)
        self._ignore_under = tuple(p.rstrip("/") + "/" for p in prefixes)
        self.actor_resolver = actor_resolver
        self.default_resolver = default_resolver
        self._openapi_source = openapi
        self._operations: dict[tuple[str, str], tuple[str | None, str | None]] | None = None
        self._operation_paths: list[tuple[re.Pattern[str], str]] = []
        self._body_fields: dict[tuple[str, str], tuple[str, ...]] = {}
        for key, names in (body_fields or {}).items():
            method, _, template = key.strip().partition(" ")
            if not template.strip().startswith("/"):
                raise ValueError(f"body_fields key {key!r} is not 'METHOD /route/template'")
            if isinstance(names, str):
                raise ValueError(f"body_fields[{key!r}] must be a list of field names, not a string")
            self._body_fields[(method.upper(), _shape(normalize_template(template.strip())))] = tuple(names)
        self.body_methods = frozenset(m for m, _ in self._body_fields)
        self._routes: dict[tuple[str, str], Route] = {}
        self._raw_routes: dict[tuple[str, str], Route] = {}

    # -- per request: is it recorded? --------------------------------------------------------------------

    def wants(self, method: str, path: str) -> bool:
        """True when a request with this method and path is recorded."""
        if method not in self.methods:
            return False
        return path not in self._ignore_exact and not path.startswith(self._ignore_under)

    def wants_body(self, method: str, content_type: str | None) -> bool:
        """True when the adapter should keep the body of this request (an allow-list names JSON fields)."""
        return (
            method in self.body_methods
            and content_type is not None
            and ("/json" in content_type or "+json" in content_type)
        )

    # -- per request: the event -------------------------------------------------------------------------

    def resolve_actor(self, native: Any) -> dict[str, Any] | None:
        """The app's resolver, else the adapter's default; None (anonymous) when neither knows the actor."""
        try:
            if self.actor_resolver is not None:
                return clean_actor(self.actor_resolver(native))
            if self.default_resolver is not None:
                return self.default_resolver(native)  # the adapters' defaults return clean actors
            return None
        except Exception:
            if _warn.ready():
                log.exception("vigil: the actor resolver failed; recording the request as anonymous")
            return None

    def finish(self, ex: Exchange) -> None:
        """Record the event of a finished request. Never raises: the app's response must not depend on it."""
        try:
            self._record(ex)
        except Exception:
            if _warn.ready():
                log.exception("vigil: could not record %s %s", ex.method, ex.path)

    def _record(self, ex: Exchange) -> None:
        route = self.route(ex.method, ex.template, ex.path)
        status = ex.status
        if ex.raised and status is None:
            status = 500  # the server answers the exception with a 500
        if ex.raised or status is None or status >= 500:
            outcome = "error"
        elif status in (401, 403):
            outcome = "denied"
        elif status >= 400:
            outcome = "failure"
        else:
            outcome = "success"
        context = _context(ex.ip, ex.user_agent, ex.request_id)
        context["method"] = ex.method
        context["route"] = route.template[:1024]
        if status is not None and 100 <= status <= 599:
            context["status"] = status
        actor = ex.actor or ANONYMOUS
        message = None
        if route.summary:
            who = actor.get("name") or actor.get("email") or actor["id"]
            message = f"{who}: {route.summary}"[:2000]
        self.client.record(
            route.action,
            actor=actor,
            targets=self._targets(route, ex) or None,
            outcome=outcome,
            context=context,
            metadata=self._metadata(route, ex.body) if route.body_fields and ex.body else None,
            message=message,
        )

    def _targets(self, route: Route, ex: Exchange) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        params = ex.params
        segments: list[str] | None = None
        for index, kind, name in route.targets:
            value: Any = None
            if params:
                value = params.get(name)
            if value is None:
                if segments is None:
                    segments = ex.path.split("/")
                    if len(segments) != route.template.count("/") + 1:
                        segments = []  # a path converter spans segments: the raw path says nothing
                if index < len(segments):
                    value = segments[index]
            if value is not None and value != "":
                out.append({"type": kind, "id": str(value)[:256]})
        return out

    @staticmethod
    def _metadata(route: Route, body: bytes) -> dict[str, Any] | None:
        if len(body) > MAX_BODY:
            return None
        try:
            doc = _decode_json(body)
        except msgspec.DecodeError:
            return None
        if not isinstance(doc, dict):
            return None
        out: dict[str, Any] = {}
        for name in route.body_fields:
            if name in doc:
                out[name[:MAX_METADATA_KEY_LEN]] = _scalar(doc[name])
        return out or None

    # -- per route, cached -------------------------------------------------------------------------------

    def route(self, method: str, template: str | None, path: str) -> Route:
        """The :class:`Route` of a request: from the framework's template when it has one, else from the path
        (numeric and UUID segments become ``{id}``)."""
        if template is not None:
            key = (method, template)
            found = self._routes.get(key)
            if found is None:
                found = self._build(method, normalize_template(template))
                if len(self._routes) < MAX_ROUTES:
                    self._routes[key] = found
            return found
        key = (method, path)
        found = self._raw_routes.get(key)
        if found is None:
            found = self._build(method, self._template_of_path(path))
            if len(self._raw_routes) < MAX_ROUTES:
                self._raw_routes[key] = found
        return found

    def _template_of_path(self, path: str) -> str:
        self._load_openapi()
        for pattern, template in self._operation_paths:
            if pattern.match(path):
                return template
        return "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/")) or "/"

    def _build(self, method: str, template: str) -> Route:
        self._load_openapi()
        shape = _shape(template)
        operation_id, summary = (self._operations or {}).get((method, shape), (None, None))
        action = action_of_operation(operation_id) if operation_id else None
        targets: list[tuple[int, str, str]] = []
        previous = ""
        for index, segment in enumerate(template.split("/")):
            m = _PARAM.fullmatch(segment)
            if m:
                name = m.group(1) or m.group(2)
                targets.append((index, (previous or name)[:64], name))
                previous = ""
            elif segment:
                previous = segment
        return Route(
            template=template,
            action=action or action_name(method, template),
            summary=summary,
            targets=tuple(targets),
            body_fields=self._body_fields.get((method, shape), ()),
        )

    def _load_openapi(self) -> None:
        if self._operations is not None:
            return
        source = self._openapi_source
        doc = source() if callable(source) else source
        operations: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        paths: list[tuple[re.Pattern[str], str]] = []
        for raw, item in ((doc or {}).get("paths") or {}).items():
            if not isinstance(item, Mapping):
                continue
            template = normalize_template(str(raw))
            for method, op in item.items():
                if not isinstance(op, Mapping) or method.lower() not in _OPENAPI_METHODS:
                    continue
                summary = op.get("summary")
                operations[(method.upper(), _shape(template))] = (
                    op.get("operationId"),
                    str(summary) if summary else None,
                )
            if "{" in template:
                regex = "".join(
                    "[^/]+" if _PARAM.fullmatch(part) else re.escape(part)
                    for part in re.split(r"(\{[^}]+\})", template)
                )
                paths.append((re.compile(regex + "$"), template))
        self._operation_paths = paths
        self._operations = operations


def normalize_template(template: str) -> str:
    """A route template in one syntax, ``/a/{name}/b``: Flask's and Django's ``<int:name>``, Starlette's
    ``{name:int}`` and Django's simple regex routes all become ``{name}``; always with a leading slash."""
    if template.startswith("^") or template.endswith("$") or "(?P<" in template:
        template = _REGEX_GROUP.sub(r"{\1}", template.lstrip("^").rstrip("$"))
    template = _PARAM.sub(lambda m: "{" + (m.group(1) or m.group(2)) + "}", template)
    return template if template.startswith("/") else "/" + template


def action_name(method: str, template: str) -> str:
    """``POST /projects/{id}/members`` -> ``projects.members.create`` (PUT/PATCH ``update``, DELETE
    ``delete``, GET ``view``, others the method's name)."""
    parts = [action_part(s) for s in template.split("/") if s and not _PARAM.fullmatch(s)]
    parts = [p for p in parts if p] or ["root"]
    verb = VERBS.get(method) or action_part(method) or "request"
    while len(".".join(parts)) + len(verb) + 1 > 128 and len(parts) > 1:
        parts.pop(0)  # the end of a long path says most about it
    return _LEADING_NON_LETTERS.sub("", ".".join([*parts, verb])[-128:])


def action_of_operation(operation_id: str) -> str | None:
    """An OpenAPI ``operationId`` as an action: ``addProjectMember`` -> ``add_project_member``, dotted ids kept
    (``projects.members.add``). None when nothing usable is left."""
    parts = [action_part(_CAMEL.sub("_", p)) for p in str(operation_id).split(".")]
    parts = [p for p in parts if p]
    action = ".".join(parts)[:128].rstrip(".")
    return action or None


def action_part(segment: str) -> str:
    """A path segment or name as a part of an action: lower case, ``[a-z0-9_]``, starting with a letter."""
    word = _NOT_WORD.sub("_", segment.lower()).strip("_")
    if word and not word[0].isalpha():
        word = "n" + word
    return word


def _shape(template: str) -> str:
    """A template with its parameter names left out, to match routes whose parameters are named differently."""
    return _PARAM.sub("{}", template).rstrip("/") or "/"


def _context(ip: str | None, user_agent: str | None, request_id: str | None) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if ip:
        context["ip"] = ip[:64]
    if user_agent:
        context["user_agent"] = user_agent[:1024]
    if request_id:
        context["request_id"] = request_id[:256]
    return context


def _scalar(value: Any) -> Any:
    """A JSON body value as a metadata value: scalars as they are, strings cut to the limit, the rest as JSON."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if not isinstance(value, str):
        value = _encode_json(value).decode()
    return value[:MAX_METADATA_VALUE_LEN]


def make_client(
    client: Client | AsyncClient | None,
    url: str | None,
    api_key: str | None,
    spool_dir: str | PathLike[str] | None,
) -> Client:
    """The client given, or one made from ``url``, ``api_key`` and ``spool_dir``; not both, not neither."""
    if client is not None:
        if url is not None or api_key is not None or spool_dir is not None:
            raise ValueError("give either client= or url=, api_key= and spool_dir=, not both")
        return client.client if isinstance(client, AsyncClient) else client
    if url is None or api_key is None:
        raise ValueError("the middleware needs client=, or url= and api_key= to make one")
    return Client(url, api_key, spool_dir)


def set_current(capture: Capture, ex: Exchange) -> Any:
    """Make ``ex`` the current request (see :func:`current_actor`); returns the token for :func:`reset_current`."""
    return _current.set((capture, ex))


def reset_current(token: Any) -> None:
    _current.reset(token)
