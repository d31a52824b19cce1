"""vigil.sdk.wsgi: the Flask example and small Flask and plain WSGI apps, driven through their test clients,
record the right events in a real Vigil server with the real Client."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask, g
from sdk_support import Tenant
from test_asgi import ADA, delivered, load_example
from werkzeug.test import Client as WerkzeugClient

from vigil.sdk import Client
from vigil.sdk.capture import ANONYMOUS
from vigil.sdk.wsgi import VigilMiddleware


@pytest.fixture
def vigil(tenant: Tenant) -> Iterator[Client]:
    client = Client(tenant.url, tenant.key, flush_interval=0.05)
    yield client
    client.close(5)


def test_flask_example_records_each_mutation_with_actor_targets_and_context(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example as its users run it (client made by the middleware from VIGIL_URL and VIGIL_API_KEY):
    POST, PATCH and DELETE become events named from the Flask rule and the method, with g.user as actor,
    the project as target, the request context and the allow-listed body field; GETs are not recorded."""
    monkeypatch.setenv("VIGIL_URL", tenant.url)
    monkeypatch.setenv("VIGIL_API_KEY", tenant.key)
    app = load_example("flask_app").create_app()
    middleware: VigilMiddleware = app.extensions["vigil"]
    assert middleware.owns_client
    try:
        http = app.test_client()
        ada = {"Authorization": "Bearer ada", "X-Request-ID": "req-1", "User-Agent": "audit-test/1"}
        r = http.post("/projects", json={"name": "Apollo", "budget": 5}, headers=ada)
        assert r.status_code == 201
        pid = r.json["id"]
        r = http.post(f"/projects/{pid}/members", json={"user_id": "u2", "role": "owner"}, headers=ada)
        assert r.status_code == 201
        assert http.patch(f"/projects/{pid}", json={"name": "Apollo 11"}, headers=ada).status_code == 200
        assert http.get(f"/projects/{pid}", headers=ada).status_code == 200
        assert http.get("/healthz").status_code == 200
        assert http.post("/projects", json={"name": "Sneaky"}).status_code == 401
        assert http.post("/projects", json={"nom": "?"}, headers=ada).status_code == 400
        assert http.delete("/projects/999", headers=ada).status_code == 404
        assert http.delete(f"/projects/{pid}", headers=ada).status_code == 204
        events = delivered(middleware.client, tenant)
    finally:
        assert middleware.close(5)
    assert [(e["action"], e["outcome"], e["context"]["status"]) for e in events] == [
        ("projects.create", "success", 201),
        ("projects.members.create", "success", 201),
        ("projects.update", "success", 200),
        ("projects.create", "denied", 401),
        ("projects.create", "failure", 400),
        ("projects.delete", "failure", 404),
        ("projects.delete", "success", 204),
    ]
    created, member, patched, denied = events[:4]
    assert created["actor"] == ADA
    assert created["context"] == {
        "ip": "127.0.0.1",
        "user_agent": "audit-test/1",
        "request_id": "req-1",
        "method": "POST",
        "route": "/projects",
        "status": 201,
    }
    assert created["metadata"] == {"name": "Apollo"}
    assert member["targets"] == [{"type": "projects", "id": str(pid)}]
    assert member["metadata"] == {"role": "owner"}
    assert member["context"]["route"] == "/projects/{project_id}/members"
    assert patched["targets"] == [{"type": "projects", "id": str(pid)}]
    assert "metadata" not in patched
    assert denied["actor"] == ANONYMOUS
    assert events[5]["targets"] == [{"type": "projects", "id": "999"}]


def test_a_flask_exception_is_recorded_as_an_error(vigil: Client, tenant: Tenant) -> None:
    """An exception in a view is an ``error`` event: as the 500 Flask answers, and when Flask propagates it
    (testing mode) it still reaches the caller."""
    app = Flask(__name__)

    @app.post("/jobs/<int:job_id>/run")
    def run(job_id: int) -> str:
        raise RuntimeError("the job failed")

    VigilMiddleware(app, vigil)
    assert app.test_client().post("/jobs/3/run").status_code == 500
    app.testing = True
    with pytest.raises(RuntimeError, match="the job failed"):
        app.test_client().post("/jobs/4/run")
    events = delivered(vigil, tenant)
    assert [(e["action"], e["outcome"], e["context"]["status"], e["targets"][0]["id"]) for e in events] == [
        ("jobs.run.create", "error", 500, "3"),
        ("jobs.run.create", "error", 500, "4"),
    ]


def test_flask_actor_from_g_user_dict_or_the_apps_resolver(vigil: Client, tenant: Tenant) -> None:
    """g.user may be a dict; an ``actor_resolver`` gets flask.request and replaces the default."""

    def make(**options: Any) -> Flask:
        app = Flask(__name__)

        @app.before_request
        def sign_in() -> None:
            g.user = {"id": "usr_dict", "name": "Dee"}

        @app.put("/settings")
        def settings() -> str:
            return "ok"

        VigilMiddleware(app, vigil, **options)
        return app

    make().test_client().put("/settings")
    resolver = make(actor_resolver=lambda req: {"id": req.headers["X-Operator"], "type": "operator"})
    resolver.test_client().put("/settings", headers={"X-Operator": "op_1"})
    events = delivered(vigil, tenant)
    assert [e["actor"] for e in events] == [
        {"id": "usr_dict", "type": "user", "name": "Dee"},
        {"id": "op_1", "type": "operator"},
    ]
    assert events[0]["action"] == "settings.update"


def test_a_plain_wsgi_app_keeps_its_body_and_gets_remote_user_and_path_naming(
    vigil: Client, tenant: Tenant
) -> None:
    """Any WSGI callable: REMOTE_USER is the actor, numeric segments become {id}, the app reads the body
    unchanged, and an app that starts its response lazily (a generator) is recorded when the body closes."""
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        seen.append(environ["wsgi.input"].read(length))
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [b"ok"]

    def lazy(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("409 Conflict", [("Content-Type", "text/plain")])
        yield b"taken"

    body = b'{"title": "Q3 plan", "secret": "s3cr3t"}'
    http = WerkzeugClient(VigilMiddleware(app, vigil, body_fields={"POST /docs/{id}/comments": ["title"]}))
    r = http.post(
        "/docs/17/comments",
        data=body,
        content_type="application/json",
        environ_base={"REMOTE_USER": "alice", "REMOTE_ADDR": "203.0.113.9"},
    )
    assert r.status_code == 202
    assert seen == [body]
    r = WerkzeugClient(VigilMiddleware(lazy, vigil)).delete("/docs/17", buffered=True)
    assert r.status_code == 409
    first, second = delivered(vigil, tenant)
    assert first["action"] == "docs.comments.create"
    assert first["actor"] == {"id": "alice", "type": "user"}
    assert first["targets"] == [{"type": "docs", "id": "17"}]
    assert first["metadata"] == {"title": "Q3 plan"}
    assert first["context"]["ip"] == "203.0.113.9"
    assert first["context"]["route"] == "/docs/{id}/comments"
    assert (second["action"], second["outcome"], second["actor"]) == ("docs.delete", "failure", ANONYMOUS)
