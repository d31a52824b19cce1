"""vigil.sdk.django: the Django example, driven through Django's test clients (WSGI and ASGI), records the right
events in a real Vigil server with the real Client; settings.VIGIL is checked."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from typing import Any

import django
import pytest
from asgiref.sync import markcoroutinefunction
from django.conf import settings
from sdk_support import Tenant
from test_asgi import EXAMPLES, server_events

from vigil.sdk import Client
from vigil.sdk.capture import ANONYMOUS

sys.path.insert(0, str(EXAMPLES / "django_app"))  # the example project, as its manage.py sees it
if not settings.configured:
    example = importlib.import_module("vigil_example.settings")
    settings.configure(**{name: getattr(example, name) for name in dir(example) if name.isupper()})
    django.setup()

from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, override_settings
from django.test import Client as DjangoClient
from django.urls import path
from vigil_example.auth import USERS, AnonymousUser

from vigil.sdk import django as vigil_django

ADA = {"id": "usr_ada", "type": "user", "name": "Ada Lovelace", "email": "ada@example.com"}


def _boom(request: Any, job_id: int) -> Any:
    raise RuntimeError("the job failed")


urlpatterns = [path("jobs/<int:job_id>/run", _boom)]  # ROOT_URLCONF=__name__ in the test that needs it


def for_tenant(tenant: Tenant, **extra: Any) -> override_settings:
    """The example's VIGIL settings, pointed at this test's tenant."""
    return override_settings(VIGIL={**settings.VIGIL, "url": tenant.url, "api_key": tenant.key, **extra})


def delivered(tenant: Tenant) -> list[dict[str, Any]]:
    assert vigil_django.client().flush(10), "the client did not deliver within 10 s"
    return server_events(tenant)


def _json(body: dict[str, Any]) -> dict[str, Any]:
    return {"data": json.dumps(body), "content_type": "application/json"}


def test_django_example_records_each_mutation_with_actor_targets_and_context(tenant: Tenant) -> None:
    """POST, PATCH and DELETE on the example become events named from resolver_match.route and the method,
    with request.user as actor, the project as target, the request context and the allow-listed body
    field; GETs and the health check are not recorded."""
    with for_tenant(tenant):
        http = DjangoClient(headers={"Authorization": "Bearer ada", "User-Agent": "audit-test/1"})
        r = http.post("/projects/", **_json({"name": "Apollo", "budget": 3}), headers={"X-Request-ID": "r-1"})
        assert r.status_code == 201
        pid = r.json()["id"]
        assert (
            http.post(f"/projects/{pid}/members/", **_json({"user_id": "u2", "role": "owner"})).status_code
            == 201
        )
        assert http.patch(f"/projects/{pid}/", **_json({"name": "Apollo 11"})).status_code == 200
        assert http.get(f"/projects/{pid}/").status_code == 200
        assert http.get("/healthz").status_code == 200
        assert DjangoClient().post("/projects/", **_json({"name": "Sneaky"})).status_code == 401
        assert http.post("/projects/", **_json({"nom": "?"})).status_code == 400
        assert http.delete("/projects/999/").status_code == 404
        assert http.delete(f"/projects/{pid}/").status_code == 204
        events = delivered(tenant)
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
        "request_id": "r-1",
        "method": "POST",
        "route": "/projects/",
        "status": 201,
    }
    assert created["metadata"] == {"name": "Apollo"}
    assert member["targets"] == [{"type": "projects", "id": str(pid)}]
    assert member["metadata"] == {"role": "owner"}
    assert member["context"]["route"] == "/projects/{project_id}/members/"
    assert patched["targets"] == [{"type": "projects", "id": str(pid)}]
    assert denied["actor"] == ANONYMOUS


class AsyncBearer:
    """The example's stub login as an async-only middleware, so that the whole chain runs as coroutines."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: Any) -> Any:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        request.user = USERS.get(token, AnonymousUser())
        return await self.get_response(request)


def test_django_async_requests_are_recorded_too(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ASGI with async middleware (Django's AsyncClient), the middleware runs as a coroutine, resolves
    request.user off the event loop, and records the same event."""
    finished: list[Any] = []
    real = vigil_django.VigilMiddleware._afinish

    async def spy(self: Any, request: Any, ex: Any) -> None:
        finished.append(ex.method)
        await real(self, request, ex)

    monkeypatch.setattr(vigil_django.VigilMiddleware, "_afinish", spy)

    async def main() -> int:
        r = await AsyncClient().post(
            "/projects/", **_json({"name": "Async"}), headers={"Authorization": "Bearer ada"}
        )
        return r.status_code

    middleware = ["vigil.sdk.django.VigilMiddleware", f"{__name__}.AsyncBearer"]
    with for_tenant(tenant), override_settings(MIDDLEWARE=middleware):
        assert asyncio.run(main()) == 201
        [event] = delivered(tenant)
    assert finished == ["POST"]
    assert (event["action"], event["actor"], event["metadata"]) == ("projects.create", ADA, {"name": "Async"})


def test_a_django_view_exception_is_recorded_as_an_error(tenant: Tenant) -> None:
    """A view that raises gives an ``error`` event with status 500; the test client still sees the exception."""
    with for_tenant(tenant), override_settings(ROOT_URLCONF=__name__):
        with pytest.raises(RuntimeError, match="the job failed"):
            DjangoClient().post("/jobs/8/run")
        [event] = delivered(tenant)
    assert (event["action"], event["outcome"], event["context"]["status"]) == (
        "jobs.run.create",
        "error",
        500,
    )
    assert event["targets"] == [{"type": "jobs", "id": "8"}]


def test_settings_vigil_is_checked_and_may_hold_the_client(tenant: Tenant) -> None:
    """No url and key, or an unknown key, is ImproperlyConfigured; VIGIL["client"] is used as it is."""
    with override_settings(VIGIL={"url": tenant.url}), pytest.raises(ImproperlyConfigured, match="api_key"):
        DjangoClient().post("/projects/", **_json({"name": "x"}))
    with for_tenant(tenant, method=["GET"]), pytest.raises(ImproperlyConfigured, match="unknown"):
        DjangoClient().post("/projects/", **_json({"name": "x"}))
    own = Client(tenant.url, tenant.key, flush_interval=0.05)
    try:
        with override_settings(VIGIL={"client": own, "methods": ["GET"]}):
            assert vigil_django.client() is own
            assert DjangoClient().get("/projects/").status_code == 200
            assert DjangoClient().post("/projects/", **_json({"name": "not recorded"})).status_code == 401
            assert own.flush(10)
        assert [e["action"] for e in server_events(tenant)] == ["projects.view"]
    finally:
        own.close(5)
