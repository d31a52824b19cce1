"""vigil.sdk.asgi: the FastAPI example and small Starlette, Litestar and bare ASGI apps, driven in-process through
httpx's ASGITransport, record the right events in a real Vigil server with the real Client."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sdk_support import Tenant
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vigil.model import ACTION_PATTERN
from vigil.sdk import Client
from vigil.sdk.asgi import VigilMiddleware
from vigil.sdk.capture import ANONYMOUS, MAX_BODY, action_name, action_of_operation, normalize_template

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ADA = {"id": "usr_ada", "type": "user", "name": "Ada Lovelace", "email": "ada@example.com"}


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` imported as a module (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location(f"vigil_examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic and dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def server_events(tenant: Tenant) -> list[dict[str, Any]]:
    """Every event of the tenant's log, in log order (all pages of GET /v1/events with its read key)."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"order": "seq", "limit": 1000}
    with httpx.Client(base_url=tenant.url, headers={"Authorization": f"Bearer {tenant.key}"}) as http:
        while True:
            page = http.get("/v1/events", params=params)
            page.raise_for_status()
            body = page.json()
            events.extend(body["data"])
            if not body["next_cursor"]:
                return events
            params["cursor"] = body["next_cursor"]


def delivered(client: Client, tenant: Tenant) -> list[dict[str, Any]]:
    assert client.flush(10), "the client did not deliver within 10 s"
    return server_events(tenant)


@pytest.fixture
def vigil(tenant: Tenant) -> Iterator[Client]:
    client = Client(tenant.url, tenant.key, flush_interval=0.05)
    yield client
    client.close(5)


def drive(app: Any, script: Callable[[httpx.AsyncClient], Awaitable[None]], **transport: Any) -> None:
    """Run ``script`` against ``app`` in-process, as httpx's ASGI transport (client address 127.0.0.1)."""

    async def main() -> None:
        asgi = httpx.ASGITransport(app=app, **transport)
        async with httpx.AsyncClient(transport=asgi, base_url="http://testserver") as http:
            await script(http)

    asyncio.run(main())


# -- the FastAPI example -------------------------------------------------------------------------------------


@pytest.fixture
def fastapi_example(
    tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Client]]:
    """The example app as its users run it: its client made from VIGIL_URL and VIGIL_API_KEY."""
    monkeypatch.setenv("VIGIL_URL", tenant.url)
    monkeypatch.setenv("VIGIL_API_KEY", tenant.key)
    monkeypatch.setenv("EXAMPLE_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    app = load_example("fastapi_app").create_app()
    client: Client = app.state.vigil
    yield app, client
    client.close(5)
    app.state.engine.dispose()


def test_fastapi_example_records_each_mutation_with_actor_targets_context_and_message(
    fastapi_example: tuple[Any, Client], tenant: Tenant
) -> None:
    """The example's POST, PATCH and DELETE requests become events named by operationId, with the signed-in
    user, the outcome of the status, the project as target, the request context, the allow-listed body
    field and the summary as message; GETs and the health check are not recorded."""
    app, client = fastapi_example
    ids: dict[str, Any] = {}

    async def script(http: httpx.AsyncClient) -> None:
        ada = {"Authorization": "Bearer ada", "X-Request-ID": "req-create", "User-Agent": "audit-test/1"}
        r = await http.post("/projects", json={"name": "Apollo", "budget": 100}, headers=ada)
        assert r.status_code == 201, r.text
        pid = ids["project"] = r.json()["id"]
        ada["X-Request-ID"] = "req-member"
        r = await http.post(
            f"/projects/{pid}/members", json={"user_id": "usr_grace", "role": "editor"}, headers=ada
        )
        assert r.status_code == 201, r.text
        del ada["X-Request-ID"]
        assert (await http.patch(f"/projects/{pid}", json={"budget": 250}, headers=ada)).status_code == 200
        assert (await http.get(f"/projects/{pid}", headers=ada)).status_code == 200
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.post("/projects", json={"name": "Sneaky"})).status_code == 401
        assert (await http.post("/projects", json={"budget": 1}, headers=ada)).status_code == 422
        assert (await http.delete("/projects/999", headers=ada)).status_code == 404
        assert (await http.delete(f"/projects/{pid}", headers=ada)).status_code == 204

    drive(app, script)
    events = delivered(client, tenant)
    pid = ids["project"]
    activity = [e for e in events if e["category"] == "activity"]
    assert [(e["action"], e["outcome"], e["context"]["status"]) for e in activity] == [
        ("project.created", "success", 201),
        ("project.member.added", "success", 201),
        ("project.updated", "success", 200),
        ("project.created", "denied", 401),
        ("project.created", "failure", 422),
        ("project.deleted", "failure", 404),
        ("project.deleted", "success", 204),
    ]
    created, member, patched, denied = activity[:4]
    assert created["actor"] == ADA
    assert created["context"] == {
        "ip": "127.0.0.1",
        "user_agent": "audit-test/1",
        "request_id": "req-create",
        "method": "POST",
        "route": "/projects",
        "status": 201,
    }
    assert created["metadata"] == {"name": "Apollo"}  # "budget" is not allow-listed
    assert created["message"] == "Ada Lovelace: Create a project"
    assert created.get("targets", []) == []
    assert member["targets"] == [{"type": "projects", "id": str(pid)}]
    assert member["metadata"] == {"role": "editor"}
    assert member["message"] == "Ada Lovelace: Add a project member"
    assert member["context"]["route"] == "/projects/{project_id}/members"
    assert member["context"]["request_id"] == "req-member"
    assert "request_id" not in patched["context"]
    assert patched["targets"] == [{"type": "projects", "id": str(pid)}]
    assert denied["actor"] == ANONYMOUS
    assert denied["message"] == "anonymous: Create a project"
    assert activity[-1]["context"]["method"] == "DELETE"

    # the SQLAlchemy change history of the same requests, attributed to the same user and request
    changes = [e for e in events if e["category"] == "change"]
    assert [(e["action"], e["targets"]) for e in changes] == [
        ("projects.created", [{"type": "projects", "id": str(pid)}]),
        ("members.created", [{"type": "members", "id": "1"}]),
        ("projects.updated", [{"type": "projects", "id": str(pid)}]),
        ("projects.deleted", [{"type": "projects", "id": str(pid)}]),
    ]
    assert all(e["actor"] == ADA for e in changes)
    assert changes[0]["changes"] == {
        "id": [None, pid],
        "name": [None, "Apollo"],
        "budget": [None, 100],
        "archived": [None, False],
    }
    assert changes[0]["context"]["request_id"] == "req-create"
    assert changes[2]["changes"] == {"budget": [100, 250]}
    assert changes[3]["changes"]["budget"] == [250, None]


def test_fastapi_example_bulk_archive_records_one_change_per_row(
    fastapi_example: tuple[Any, Client], tenant: Tenant
) -> None:
    """One request whose bulk UPDATE changes three rows: one activity event and three change events."""
    app, client = fastapi_example

    async def script(http: httpx.AsyncClient) -> None:
        grace = {"Authorization": "Bearer grace"}
        for name in ("Gemini", "Mercury", "Apollo"):
            assert (await http.post("/projects", json={"name": name}, headers=grace)).status_code == 201
        r = await http.post("/projects/archive", headers=grace)
        assert r.json() == {"archived": 3}

    drive(app, script)
    events = delivered(client, tenant)
    archived = [e for e in events if e["action"] == "projects.updated"]
    assert sorted(e["targets"][0]["id"] for e in archived) == ["1", "2", "3"]
    assert all(e["changes"] == {"archived": [False, True]} for e in archived)
    assert all(e["actor"]["id"] == "usr_grace" for e in archived)
    [activity] = [e for e in events if e["action"] == "projects.archived"]
    assert activity["message"] == "Grace Hopper: Archive every project"
    assert activity["context"]["route"] == "/projects/archive"


# -- naming, outcomes, actors and bodies on small apps -------------------------------------------------------


async def _ok(request: Request) -> Response:
    return JSONResponse({"ok": True}, status_code=int(request.query_params.get("status", "200")))


async def _boom(request: Request) -> Response:
    raise RuntimeError("the handler failed")


async def _echo(request: Request) -> Response:
    return Response(await request.body(), media_type=request.headers.get("content-type"))


def starlette_app(client: Client, **options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/projects/{id:int}/members", _ok, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/projects", _echo, methods=["POST"]),
            Route("/boom", _boom, methods=["POST"]),
            Route("/health", _ok, methods=["POST"]),
            Route("/healthcare/plans", _ok, methods=["POST"]),
            Route("/static/app.css", _ok, methods=["POST"]),
        ]
    )
    app.add_middleware(VigilMiddleware, client=client, **options)
    return app


def test_actions_are_named_from_the_route_template_and_the_method(vigil: Client, tenant: Tenant) -> None:
    """POST/PUT/PATCH/DELETE/GET on /projects/{id:int}/members name projects.members.create/update/update/
    delete/view (GET only when opted in), with the path parameter as the target."""
    app = starlette_app(vigil, methods=["POST", "PUT", "PATCH", "DELETE", "GET"])

    async def script(http: httpx.AsyncClient) -> None:
        for method in ("POST", "PUT", "PATCH", "DELETE", "GET"):
            assert (await http.request(method, "/projects/42/members")).status_code == 200

    drive(app, script)
    events = delivered(vigil, tenant)
    assert [e["action"] for e in events] == [
        "projects.members.create",
        "projects.members.update",
        "projects.members.update",
        "projects.members.delete",
        "projects.members.view",
    ]
    assert all(e["targets"] == [{"type": "projects", "id": "42"}] for e in events)
    assert all(e["context"]["route"] == "/projects/{id}/members" for e in events)
    assert events[0]["actor"] == ANONYMOUS


def test_outcome_follows_the_status(vigil: Client, tenant: Tenant) -> None:
    """2xx and 3xx success, 401 and 403 denied, other 4xx failure, 5xx error; GET is not recorded by default."""
    app = starlette_app(vigil)
    statuses = [200, 201, 302, 400, 401, 403, 404, 409, 500, 503]

    async def script(http: httpx.AsyncClient) -> None:
        for status in statuses:
            await http.post(f"/projects/7/members?status={status}")
        await http.get("/projects/7/members")

    drive(app, script)
    events = delivered(vigil, tenant)
    assert [(e["context"]["status"], e["outcome"]) for e in events] == [
        (200, "success"),
        (201, "success"),
        (302, "success"),
        (400, "failure"),
        (401, "denied"),
        (403, "denied"),
        (404, "failure"),
        (409, "failure"),
        (500, "error"),
        (503, "error"),
    ]


def test_an_exception_is_recorded_as_an_error_and_raised_again(vigil: Client, tenant: Tenant) -> None:
    """A handler that raises gives an ``error`` event with status 500, and the exception still reaches the
    server (the middleware re-raises it)."""
    app = starlette_app(vigil)

    async def script(http: httpx.AsyncClient) -> None:
        with pytest.raises(RuntimeError, match="the handler failed"):
            await http.post("/boom")

    drive(app, script)
    [event] = delivered(vigil, tenant)
    assert (event["action"], event["outcome"], event["context"]["status"]) == ("boom.create", "error", 500)


def test_ignored_paths_are_whole_segment_prefixes(vigil: Client, tenant: Tenant) -> None:
    """/health and /static/... are not recorded by default; /healthcare/plans is (a prefix matches whole
    segments); ``ignore_paths=`` replaces the defaults."""
    app = starlette_app(vigil)
    custom = starlette_app(vigil, ignore_paths=["/healthcare"])

    async def script(http: httpx.AsyncClient) -> None:
        for path in ("/health", "/static/app.css", "/healthcare/plans"):
            assert (await http.post(path)).status_code == 200

    drive(app, script)
    drive(custom, script)
    assert [e["action"] for e in delivered(vigil, tenant)] == [
        "healthcare.plans.create",
        "health.create",
        "static.app_css.create",
    ]


def test_the_body_reaches_the_app_intact_and_only_allow_listed_fields_are_kept(
    vigil: Client, tenant: Tenant
) -> None:
    """With ``body_fields``, the named top-level fields of a JSON body become metadata; the app still reads
    the whole body; other fields, non-JSON bodies and bodies over the size cap are never kept."""
    app = starlette_app(vigil, body_fields={"POST /projects": ["name", "tags", "password"]})
    doc = b'{"name": "Apollo", "tags": ["a", "b"], "password": "hunter2", "budget": 9}'
    big = b'{"name": "Big", "pad": "' + b"x" * MAX_BODY + b'"}'

    async def script(http: httpx.AsyncClient) -> None:
        for body, ctype in ((doc, "application/json"), (doc, "text/plain"), (big, "application/json")):
            r = await http.post("/projects", content=body, headers={"Content-Type": ctype})
            assert r.content == body

    drive(app, script)
    events = delivered(vigil, tenant)
    assert events[0]["metadata"] == {"name": "Apollo", "tags": '["a","b"]', "password": "[REDACTED:secret]"}
    assert "metadata" not in events[1]
    assert "metadata" not in events[2]


def test_a_bare_asgi_app_is_named_from_its_path(vigil: Client, tenant: Tenant) -> None:
    """Without a router's template, numeric and UUID segments become {id} and the segment before each is the
    target's type."""

    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    uuid = "0190a0e4-3d5f-7c1a-9b2e-1f2a3b4c5d6e"
    app = VigilMiddleware(bare, vigil)

    async def script(http: httpx.AsyncClient) -> None:
        await http.post("/orders/123/items")
        await http.delete(f"/orders/{uuid}")

    drive(app, script)
    first, second = delivered(vigil, tenant)
    assert (first["action"], first["context"]["route"]) == ("orders.items.create", "/orders/{id}/items")
    assert first["targets"] == [{"type": "orders", "id": "123"}]
    assert (second["action"], second["targets"]) == ("orders.delete", [{"type": "orders", "id": uuid}])


def test_the_actor_comes_from_scope_user_or_the_apps_resolver(vigil: Client, tenant: Tenant) -> None:
    """scope["user"] (Starlette's AuthenticationMiddleware) gives the actor by default; ``actor_resolver``
    replaces it; a resolver that raises leaves the request anonymous and the response unharmed."""

    class Person:
        is_authenticated = True
        identity = "usr_7"
        display_name = "Seven"
        email = "seven@example.com"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["user"] = Person()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def from_header(scope: dict[str, Any]) -> dict[str, Any] | None:
        headers = dict(scope["headers"])
        if b"x-fail" in headers:
            raise KeyError("no such session")
        return {"id": headers[b"x-service"].decode(), "type": "service", "extra": "dropped"}

    async def script(http: httpx.AsyncClient) -> None:
        await http.post("/a")

    async def script2(http: httpx.AsyncClient) -> None:
        await http.post("/a", headers={"X-Service": "svc_billing"})
        assert (await http.post("/a", headers={"X-Fail": "1"})).status_code == 200

    drive(VigilMiddleware(app, vigil), script)
    drive(VigilMiddleware(app, vigil, actor_resolver=from_header), script2)
    events = delivered(vigil, tenant)
    assert [e["actor"] for e in events] == [
        {"id": "usr_7", "type": "user", "name": "Seven", "email": "seven@example.com"},
        {"id": "svc_billing", "type": "service"},
        ANONYMOUS,
    ]


def test_litestar_routes_are_named_from_the_path_template(vigil: Client, tenant: Tenant) -> None:
    """Litestar's scope["path_template"] names the action and gives the targets."""
    litestar = pytest.importorskip("litestar")
    from litestar.middleware import DefineMiddleware

    @litestar.post("/projects/{project_id:int}/members", status_code=201)
    async def add_member() -> None:
        return None

    app = litestar.Litestar([add_member], middleware=[DefineMiddleware(VigilMiddleware, client=vigil)])

    async def script(http: httpx.AsyncClient) -> None:
        assert (await http.post("/projects/5/members")).status_code == 201

    drive(app, script)
    [event] = delivered(vigil, tenant)
    assert event["action"] == "projects.members.create"
    assert event["targets"] == [{"type": "projects", "id": "5"}]
    assert event["context"]["route"] == "/projects/{project_id}/members"


def test_the_middleware_needs_a_client_or_its_settings() -> None:
    """Neither a client nor url/api_key, or both, is a configuration error; so is an empty method list."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(ValueError, match="client="):
        VigilMiddleware(app)
    given = Client("http://127.0.0.1:9", "vk_x")
    try:
        with pytest.raises(ValueError, match="not both"):
            VigilMiddleware(app, given, url="http://127.0.0.1:9", api_key="vk_x")
    finally:
        given.close(0.1)
    own = VigilMiddleware(app, url="http://127.0.0.1:9", api_key="vk_x")
    try:
        assert own.owns_client
        with pytest.raises(ValueError, match="methods"):
            VigilMiddleware(app, own.client, methods=[])
    finally:
        own.close(0.1)


# -- naming, as pure functions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "template", "action"),
    [
        ("POST", "/projects/{id}/members", "projects.members.create"),
        ("PATCH", "/projects/<int:project_id>", "projects.update"),
        ("DELETE", "api-keys/<str:key>/", "api_keys.delete"),
        ("GET", "/v2/Reports/{id:uuid}/export.csv", "v2.reports.export_csv.view"),
        ("POST", "/", "root.create"),
        ("OPTIONS", "/2fa/{x}", "n2fa.options"),
        ("POST", "^articles/(?P<year>[0-9]{4})/$", "articles.create"),
    ],
)
def test_action_name(method: str, template: str, action: str) -> None:
    """Route templates of every framework's syntax name the same kind of action."""
    assert action_name(method, normalize_template(template)) == action


@pytest.mark.parametrize(
    ("operation_id", "action"),
    [
        ("addProjectMember", "add_project_member"),
        ("project.member.added", "project.member.added"),
        ("create_project_projects_post", "create_project_projects_post"),
        ("Projects.Export-CSV", "projects.export_csv"),
        ("--", None),
    ],
)
def test_action_of_operation(operation_id: str, action: str | None) -> None:
    """OpenAPI operationIds become actions: camelCase to snake_case, dots kept, nothing usable gives None."""
    assert action_of_operation(operation_id) == action


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]) | st.text(max_size=10), st.text(max_size=300)
)
def test_every_action_name_is_one_the_server_accepts(method: str, template: str) -> None:
    """Whatever the path or operationId, the action matches the server's pattern and length limit."""
    for action in (action_name(method, normalize_template(template)), action_of_operation(template)):
        if action is not None:
            assert len(action) <= 128 and re.fullmatch(ACTION_PATTERN, action), action
