"""The SDK's reads against the real server: search over every page with the API's filters, get one event, its
proof, a verify that proves it under a signed checkpoint, and exports streamed to a file; sync and async."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sdk_support import Tenant
from support import Keys

from vigil.auth import create_key
from vigil.errors import Forbidden, InvalidRequest, NotFound, RateLimited, Unauthorized
from vigil.ledger.note import vkey as make_vkey
from vigil.sdk import AsyncClient, AsyncReader, Client, Reader, StoredEvent, VerificationError
from vigil.sdk.api import check_proof
from vigil.settings import Settings
from vigil.store import Store
from vigil.web import create_app


def _record(tenant: Tenant, n: int, **fields: object) -> list[str]:
    with Client(tenant.url, tenant.key, flush_interval=0.05) as client:
        ids = [
            client.record(
                action="user.login" if i % 2 else "user.logout",
                actor_id=f"usr_{i % 3}",
                **fields,  # type: ignore[arg-type]
            )
            for i in range(n)
        ]
        assert client.flush(10)
    return ids


def _checkpoint(tenant: Tenant, store: Store) -> None:
    """Sign a checkpoint of the tenant's log now, with an admin key (as an operator's schedule would)."""
    admin = create_key(store, store.get_tenant(tenant.slug), frozenset({"admin"}))[1]
    r = httpx.post(f"{tenant.url}/v1/checkpoints", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 201, r.text


def test_search_follows_every_page(tenant: Tenant) -> None:
    """search() yields every matching event across pages (here 3 pages of 10), in the server's order, as
    typed events; search_pages() gives the pages themselves."""
    ids = _record(tenant, 25)
    with Reader(tenant.url, tenant.key) as log:
        events = list(log.search(order="seq", limit=10))
        pages = list(log.search_pages(order="seq", limit=10))
    assert [e.id for e in events] == ids
    assert all(isinstance(e, StoredEvent) for e in events)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert [len(p.data) for p in pages] == [10, 10, 5] and pages[-1].next_cursor is None


def test_filters_are_passed_through_and_datetimes_sent_as_rfc3339(tenant: Tenant) -> None:
    """Filters go to the server by name: action prefixes, actors, and aware datetimes (sent as RFC 3339)."""
    ids = _record(tenant, 12)
    with Client(tenant.url, tenant.key) as client:
        logins = [e.id for e in client.search(action="user.login", order="seq")]
        assert logins == ids[1::2]
        assert {e.actor.id for e in client.search(actor_id="usr_1")} == {"usr_1"}
        hour = timedelta(hours=1)
        now = datetime.now(UTC)
        assert len(list(client.search(since=now - hour, until=now + hour))) == 12
        later = datetime.now(UTC).astimezone(ZoneInfo("Asia/Tokyo")) + hour
        assert list(client.search(since=later)) == []  # another zone, converted: still an hour ahead
        assert len(list(client.search(action=None, order="seq"))) == 12  # None: the filter is left out


def test_filters_the_server_does_not_know_are_its_400(tenant: Tenant) -> None:
    """An unknown filter is never ignored: the server's 400 is raised as InvalidRequest; values that have no
    query form are refused before anything is sent."""
    with Client(tenant.url, tenant.key) as client:
        with pytest.raises(InvalidRequest):
            list(client.search(colour="red"))
        with pytest.raises(InvalidRequest):
            list(client.search(order="sideways"))
        with pytest.raises(TypeError, match="action="):
            client.search(action=["user.login"])
        with pytest.raises(ValueError, match="timezone-aware"):
            client.search(since=datetime(2026, 1, 1))


def test_get_one_event_and_not_found(tenant: Tenant) -> None:
    """get() returns the stored event with its seq and leaf hash; an unknown id is NotFound."""
    (eid,) = _record(tenant, 1, metadata={"plan": "pro"})
    with Reader(tenant.url, tenant.key) as log:
        ev = log.get(eid)
        assert (ev.id, ev.tenant, ev.metadata) == (eid, tenant.slug, {"plan": "pro"})
        assert len(ev.leaf_hash) == 64
        with pytest.raises(NotFound, match="no event"):
            log.get("0190b6c8-0000-7000-8000-000000000000")


def test_errors_map_to_the_exception_tree(tenant: Tenant, server_store: Store) -> None:
    """A key without the read scope is Forbidden; an unknown key Unauthorized (the server's message kept)."""
    ingest_only = create_key(server_store, server_store.get_tenant(tenant.slug), frozenset({"ingest"}))[1]
    with Reader(tenant.url, ingest_only) as log, pytest.raises(Forbidden, match="read"):
        log.get("anything")
    unknown = ingest_only[:-4] + ("aaaa" if not ingest_only.endswith("aaaa") else "bbbb")
    with Reader(tenant.url, unknown) as log, pytest.raises(Unauthorized):
        log.get("anything")


def test_verify_proves_an_event_under_the_signed_checkpoint(tenant: Tenant, server_store: Store) -> None:
    """verify() checks the event's content hashes to its leaf, the proof leads to the root, and the checkpoint
    is signed by the log's key for this tenant; pinning the served key says so in the result."""
    ids = _record(tenant, 7)
    _checkpoint(tenant, server_store)
    with Client(tenant.url, tenant.key) as client:
        proof = client.proof(ids[3])
        assert (proof.leaf_index, proof.tree_size) == (client.get(ids[3]).seq, 7)
        verified = client.verify(ids[3])
        assert (verified.seq, verified.tree_size, verified.key_pinned) == (proof.leaf_index, 7, False)
        assert verified.event.id == ids[3] and verified.checkpoint == proof.checkpoint
        served = client.reader.verifier_key()
    with Reader(tenant.url, tenant.key, vkey=served) as log:
        assert log.verify(ids[0]).key_pinned


def test_verify_fails_closed(tenant: Tenant, server_store: Store) -> None:
    """Another key, an event no checkpoint covers yet, or a tampered event or proof: VerificationError."""
    ids = _record(tenant, 4)
    _checkpoint(tenant, server_store)
    (late,) = _record(tenant, 1)
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    with Reader(tenant.url, tenant.key) as log:
        name = log.verifier_key().split("+")[0]
        with pytest.raises(VerificationError, match="no signature by the trusted key"):
            log.verify(ids[1], vkey=make_vkey(name, other))
        with pytest.raises(VerificationError, match="no signed checkpoint covers"):
            log.verify(late)
        raw = httpx.get(
            f"{tenant.url}/v1/events/{ids[1]}", headers={"Authorization": f"Bearer {tenant.key}"}
        ).content
        proof, key = log.proof(ids[1]), log.verifier_key()
    check_proof(raw, proof, key, key_pinned=True, event_id=ids[1])  # the untouched pair verifies
    with pytest.raises(VerificationError, match="does not hash to the leaf"):
        check_proof(raw.replace(b"usr_1", b"usr_9"), proof, key, key_pinned=True, event_id=ids[1])
    bent = msgspec.structs.replace(proof, audit_path=[proof.audit_path[0][::-1], *proof.audit_path[1:]])
    with pytest.raises(VerificationError, match="does not lead to the root"):
        check_proof(raw, bent, key, key_pinned=True, event_id=ids[1])
    with pytest.raises(VerificationError, match="another leaf"):
        check_proof(raw, msgspec.structs.replace(proof, leaf_index=0), key, key_pinned=True, event_id=ids[1])


def test_export_streams_to_a_path_or_a_file(tenant: Tenant, tmp_path: Path) -> None:
    """export() writes the server's NDJSON (or bundle) to a path, whole, or to a binary file; the format and
    the filters pass through to the export route (one it does not take is its 400); a refused export leaves
    no file behind."""
    ids = _record(tenant, 9)
    target = tmp_path / "trail.ndjson"
    with Client(tenant.url, tenant.key) as client:
        done = client.export(target, format="ndjson")
        lines = [json.loads(line) for line in target.read_bytes().splitlines()]
        assert [e["id"] for e in lines] == ids
        assert (done.bytes, done.path, done.format) == (target.stat().st_size, str(target), "ndjson")
        buf = io.BytesIO()
        assert client.export(buf, format="ndjson").path is None
        assert buf.getvalue() == target.read_bytes()
        bundle = tmp_path / "trail.zip"
        client.export(bundle, format="bundle")
        assert "events.ndjson" in zipfile.ZipFile(bundle).namelist()
        with pytest.raises(InvalidRequest, match="colour"):  # a filter the route does not take: its 400
            client.export(tmp_path / "refused.ndjson", format="ndjson", colour="red")
        with pytest.raises(InvalidRequest):
            client.export(tmp_path / "refused.ndjson", format="sideways")
        with pytest.raises(TypeError, match="binary mode"):
            client.export(io.StringIO(), format="ndjson")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trail.ndjson", "trail.zip"]


def test_async_reads(tenant: Tenant, server_store: Store, tmp_path: Path) -> None:
    """AsyncClient: ``async for`` over every page, and awaited get, proof, verify and export; set_key()
    changes the key the reads use."""
    ids = _record(tenant, 12)
    _checkpoint(tenant, server_store)

    async def main() -> None:
        async with AsyncClient(tenant.url, tenant.key, flush_interval=0.05) as client:
            got = [e.id async for e in client.search(order="seq", limit=5)]
            assert got == ids
            assert len([p async for p in client.search_pages(order="seq", limit=5)]) == 3
            assert (await client.get(ids[4])).id == ids[4]
            assert (await client.proof(ids[4])).tree_size == 12
            assert (await client.verify(ids[4])).seq == (await client.get(ids[4])).seq
            done = await client.export(tmp_path / "a.ndjson", format="ndjson")
            assert done.bytes == (tmp_path / "a.ndjson").stat().st_size > 0
            with pytest.raises(NotFound):
                await client.get("nope")
            client.set_key(ingest_only)  # the reads switch keys too
            with pytest.raises(Forbidden):
                await client.get(ids[0])

    ingest_only = create_key(server_store, server_store.get_tenant(tenant.slug), frozenset({"ingest"}))[1]
    asyncio.run(main())


def test_a_closed_client_does_not_read(tenant: Tenant) -> None:
    """Reads after close() raise at once instead of opening connections again."""
    client = Client(tenant.url, tenant.key)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get("x")


@pytest.mark.settings(search_rate_limit="1", search_rate_burst="2")
def test_reads_wait_out_the_read_limit_in_process(settings: Settings, store: Store, keys: Keys) -> None:
    """Through httpx's ASGITransport on the real app: reads over the key's read rate (429 with Retry-After)
    wait and try again, and succeed; a reader that may not wait that long raises RateLimited with the wait."""
    asgi = create_app(settings, store)

    async def main() -> None:
        async with asgi.lifespan():
            transport = httpx.ASGITransport(app=asgi)
            async with AsyncReader("http://vigil.test", keys.read, transport=transport, max_wait=5) as log:
                for _ in range(4):
                    assert [e async for e in log.search(order="seq")] == []
            async with AsyncReader("http://vigil.test", keys.read, transport=transport, max_wait=0) as hasty:
                with pytest.raises(RateLimited) as refused:
                    for _ in range(3):
                        [e async for e in hasty.search(order="seq")]
                assert refused.value.retry_after >= 1

    asyncio.run(main())
