"""The disk spool: records survive in order, a torn last record is skipped, segments go only once
acknowledged, replays are deduplicated by the server, and one directory has one client."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sdk_support import FakeVigil, Tenant, server_ids, wait_for

from vigil.ids import uuid7_text
from vigil.sdk import Client, SpoolInUse
from vigil.sdk.spool import Spool, frame, unframe


def _event(i: int) -> bytes:
    return json.dumps({"id": uuid7_text(), "action": "user.login", "actor": {"id": f"usr_{i}"}}).encode()


def _segments(spool_dir: Path) -> list[Path]:
    return sorted(spool_dir.glob("*.spool"))


def _read_all(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while batch := spool.read(7, 1 << 20):
        out += [d for _, d in batch]
        spool.settle(n for n, _ in batch)
    return out


def test_a_record_is_a_crc_a_space_and_the_json_on_one_line() -> None:
    """The frame is readable with text tools, and any damage to it is caught."""
    data = b'{"id":"x","action":"user.login"}'
    line = frame(data)
    assert line.endswith(b"\n") and line[8:9] == b" " and line[9:-1] == data
    assert unframe(line[:-1]) == data
    assert unframe(line[:-2]) is None  # torn
    assert unframe(line[:-1].replace(b"login", b"logon")) is None  # garbled
    assert unframe(b"\x00" * 40) is None


def test_records_come_back_in_order_across_segments_and_restarts(tmp_path: Path) -> None:
    """Appends rotate into new segments; a new Spool on the directory reads every record, in order, and
    deletes each segment once its records are settled."""
    spool = Spool(tmp_path, segment_bytes=500)
    written = [_event(i) for i in range(40)]
    for i in range(0, 40, 4):
        spool.append(written[i : i + 4], sync=True)
    assert len(_segments(tmp_path)) > 3
    spool.close()
    again = Spool(tmp_path)
    assert again.backlog()
    assert _read_all(again) == written
    assert not again.backlog() and _segments(tmp_path) == []
    again.close()


def test_segments_are_deleted_only_after_every_record_is_settled(tmp_path: Path) -> None:
    """A segment whose records were read but not all acknowledged stays on disk (a crash replays it)."""
    spool = Spool(tmp_path)
    spool.append([_event(i) for i in range(5)], sync=True)
    batch = spool.read(10, 1 << 20)
    assert len(batch) == 5
    spool.settle(n for n, _ in batch[:4])
    assert len(_segments(tmp_path)) == 1
    spool.append([_event(9)], sync=True)  # the reader caught up: this goes to a new segment
    assert len(_segments(tmp_path)) == 2
    spool.settle([batch[4][0]])
    assert len(_segments(tmp_path)) == 1
    spool.close()


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=12), cut=st.integers(0, 10_000))
def test_a_crash_at_any_byte_loses_only_the_record_being_written(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], cut: int
) -> None:
    """Cut a segment at any byte (what SIGKILL leaves mid-write): every record before the cut is read back,
    the torn one is skipped and counted, nothing else appears."""
    directory = tmp_path_factory.mktemp("spool")
    records = [json.dumps({"i": i, "pad": "x" * n}).encode() for i, n in enumerate(sizes)]
    blob = b"".join(frame(r) for r in records)
    cut = cut % (len(blob) + 1)
    (directory / "0000000001.spool").write_bytes(blob[:cut])
    spool = Spool(directory)
    got = _read_all(spool)
    whole, ends = 0, 0
    for r in records:
        ends += len(frame(r))
        if ends <= cut:
            whole += 1
    assert got == records[:whole]
    assert spool.skipped == (0 if cut in (0, sum(len(frame(r)) for r in records[:whole])) else 1)
    spool.close()


def test_a_torn_last_record_is_skipped_and_the_rest_delivered(spool_dir: Path) -> None:
    """A client started on a spool whose last record is torn sends the whole ones and counts the torn one;
    its own records go to a new segment, never glued to the torn bytes."""
    spool = Spool(spool_dir)
    whole = [_event(i) for i in range(3)]
    spool.append(whole, sync=True)
    spool.close()
    (segment,) = _segments(spool_dir)
    with segment.open("ab") as f:
        f.write(frame(_event(99))[:25])
    with FakeVigil() as fake, Client(fake.url, "vk_test", spool_dir, flush_interval=0.05) as client:
        new = client.record(action="user.logout", actor_id="usr_1")
        assert client.flush(5)
        wait_for(lambda: len(fake.ids) == 4, 5, "the spool's three events and the new one")
        assert client.stats.skipped == 1
        assert client.stats.replayed == 3
    assert fake.ids == [json.loads(w)["id"] for w in whole] + [new]
    assert _segments(spool_dir) == []


def test_a_garbled_record_in_the_middle_is_skipped(spool_dir: Path) -> None:
    """Bytes that fail their CRC (a bad sector, a zero-filled block) cost that record only."""
    spool = Spool(spool_dir)
    records = [_event(i) for i in range(3)]
    spool.append(records, sync=True)
    spool.close()
    (segment,) = _segments(spool_dir)
    blob = segment.read_bytes()
    start = len(frame(records[0]))
    segment.write_bytes(blob[:start] + b"\x00" * 20 + blob[start + 20 :])
    again = Spool(spool_dir)
    assert _read_all(again) == [records[0], records[2]]
    assert again.skipped == 1
    again.close()


def test_two_clients_cannot_share_a_spool_directory(spool_dir: Path) -> None:
    """The second client on a spool directory fails at once with a clear error; after close() it is free."""
    first = Client("http://127.0.0.1:9", "vk_test", spool_dir, flush_interval=60)
    with pytest.raises(SpoolInUse, match=rf"in use by another Vigil client \(pid {os.getpid()}\)"):
        Client("http://127.0.0.1:9", "vk_test", spool_dir, flush_interval=60)
    first.close(1)
    Client("http://127.0.0.1:9", "vk_test", spool_dir, flush_interval=60).close(1)


def test_a_replay_of_acknowledged_events_is_stored_once_and_counted(spool_dir: Path, tenant: Tenant) -> None:
    """Events the server already has (acknowledged just before a crash, so still in the spool) come back as
    duplicates: counted, stored once."""
    with Client(tenant.url, tenant.key, flush_interval=0.05) as client:
        ids = [client.record(action="user.login", actor_id=f"usr_{i}") for i in range(10)]
        assert client.flush(10)
    spool = Spool(spool_dir)
    got = {e["id"]: e for e in _fetch(tenant, ids)}
    spool.append([json.dumps(got[i]).encode() for i in ids[:6]], sync=True)  # the crash left these behind
    spool.close()
    with Client(tenant.url, tenant.key, spool_dir, flush_interval=0.05) as client:
        wait_for(lambda: client.stats.duplicates == 6, 10, "the replay")
        assert client.stats.replayed == 6 and client.stats.stored == 0
    assert server_ids(tenant.url, tenant.key) == ids


def _fetch(tenant: Tenant, ids: list[str]) -> list[dict[str, object]]:
    """The events as an input body: what the client had sent (the stored form less the server's fields)."""
    import httpx

    out = []
    for i in ids:
        ev = httpx.get(
            f"{tenant.url}/v1/events/{i}", headers={"Authorization": f"Bearer {tenant.key}"}
        ).json()
        out.append({k: v for k, v in ev.items() if k not in ("seq", "leaf_hash", "tenant", "received_at")})
    return out


def test_a_replayed_segment_is_deleted_once_its_records_are_settled(tmp_path: Path) -> None:
    """A dead client's segment goes away when its last record is settled, even when the last read took exactly
    the records left (so no further read ever looks at the segment again)."""
    first = Spool(tmp_path)
    first.append([b'{"n": %d}' % i for i in range(100)], sync=True)
    first.close()
    second = Spool(tmp_path)
    try:
        records = second.read(100, 10_000_000)
        assert len(records) == 100
        assert not second.backlog()
        second.settle(n for n, _ in records)
        assert not list(tmp_path.glob("*.spool"))
    finally:
        second.close()
