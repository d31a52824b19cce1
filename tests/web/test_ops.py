"""Health and readiness for process managers and load balancers."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from vigil.settings import Settings
from vigil.store import open_store
from vigil.web import create_app


def test_healthz_and_readyz(client: TestClient[Any]) -> None:
    """Both answer 200 without a key while the store works."""
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["status"] == "ready"


def test_readyz_is_503_when_the_store_is_gone(settings: Settings) -> None:
    """A closed store makes the instance not ready, in the one error shape."""
    store = open_store(settings.database, settings)
    with TestClient(app=create_app(settings, store)) as c:
        store.close()
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"]["type"] == "storage_unavailable"
        assert c.get("/healthz").status_code == 200


def test_openapi_describes_every_route_and_the_ingest_body(client: TestClient[Any]) -> None:
    """The served document has every route, the event body schema with its limits, and bearer auth."""
    doc = client.get("/schema/openapi.json").json()
    assert {"/v1/events", "/v1/events/{event_id}", "/healthz", "/readyz"} <= set(doc["paths"])
    body = doc["paths"]["/v1/events"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    array, *one = schema["anyOf"]  # an array of events, one event, or WorkOS's {organization_id, event}
    assert array["maxItems"] == 1000 and array["items"]["$ref"].endswith("/EventIn")
    assert [s["$ref"].rsplit("/", 1)[1] for s in one] == ["EventIn", "WorkOSEnvelope"]
    assert doc["components"]["schemas"]["EventIn"]["properties"]["metadata"]["$ref"].endswith("/Metadata")
    meta = doc["components"]["schemas"]["Metadata"]["anyOf"][0]
    assert meta["maxProperties"] == 50 and meta["propertyNames"]["maxLength"] == 40
    assert doc["paths"]["/v1/events"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_openapi_unions_are_not_exclusive(client: TestClient[Any]) -> None:
    """No union in the document is a oneOf: an integer metadata value is also a number, and a stored event
    holding one must still match the schema of the event it is."""
    text = client.get("/schema/openapi.json").text
    assert '"oneOf"' not in text
    doc = client.get("/schema/openapi.json").json()
    stored = doc["components"]["schemas"]["StoredEvent"]["properties"]["metadata"]
    assert "anyOf" in stored
