"""An attacker who rewrites the indexes searches answer from, and leaves the ledger alone, is caught by
``vigil verify`` (tenant and seq named) and undone by ``vigil reindex``, on SQLite and PostgreSQL.

Each test fills acme with 1,000 demo events (three complete time blocks) and globex as a bystander, closes the
store, then edits derived rows as anyone holding the database can: on SQLite through the plain ``sqlite3``
module with the append-only triggers dropped and put back afterwards, on PostgreSQL as the owning superuser with
the triggers disabled and enabled again.
"""

from __future__ import annotations

import json
import sqlite3
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import database_args

from vigil import demo
from vigil.cli import main
from vigil.ingest.intake import Prepared, prepare_event
from vigil.model import EventIn
from vigil.settings import Settings
from vigil.store import Store, open_store
from vigil.store.base import SearchQuery
from vigil.store.indexcheck import check_indexes, tokens
from vigil.store.search import ip_key

SEQ = 5
"""The event each tampering aims at."""


@dataclass(frozen=True)
class Filled:
    settings: Settings
    acme: int
    globex: int
    events: list[Prepared]


def events(slug: str, count: int, seed: int = 1) -> list[Prepared]:
    """``count`` demo events of tenant ``slug``, validated and canonicalised as the intake does it."""
    raw, _ = demo.generate(slug, count, seed=seed)
    now = time.time_ns() // 1000
    out = [prepare_event(msgspec.convert(item, EventIn), slug, now) for item in raw[:count]]
    assert all(isinstance(p, Prepared) for p in out)
    return out  # type: ignore[return-value]


@pytest.fixture
def filled(store: Store, settings: Settings) -> Filled:
    acme = store.create_tenant("acme")
    globex = store.create_tenant("globex")
    evs = events("acme", 1000)
    for i in range(0, 1000, 250):
        store.append(acme.id, evs[i : i + 250])
    store.append(globex.id, events("globex", 300, seed=2))
    store.close()
    return Filled(settings, acme.id, globex.id, evs)


class Attacker:
    """SQL on the raw database: ``sql`` takes SQLite text with ``{events}``-style table names filled in."""

    def __init__(self, conn: Any, pg: bool, acme: int, globex: int) -> None:
        self.conn, self.pg, self.acme, self.globex = conn, pg, acme, globex

    def run(self, sql: str, *params: Any) -> list[Any]:
        if self.pg:
            sql = sql.replace("?", "%s")
        cur = self.conn.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def rid(self, seq: int, tenant: int | None = None) -> int:
        return ((self.acme if tenant is None else tenant) << 40) | seq

    def s(self, tenant: int | None = None) -> str:
        return f"tenant_{self.acme if tenant is None else tenant}"


@contextmanager
def attacker(filled: Filled) -> Iterator[Attacker]:
    database = filled.settings.database
    if "://" not in database:
        conn = sqlite3.connect(database)
        saved = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for name, _ in saved:
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, events_fts, instance)")
        try:
            yield Attacker(conn, False, filled.acme, filled.globex)
            for _, sql in saved:  # covering the tracks: the triggers are back as they were
                conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(database) as pg:
        tables = [
            f"{s}.{t}"
            for s in (f"tenant_{filled.acme}", f"tenant_{filled.globex}")
            for t in ("events", "event_targets", "event_blocks")
        ]
        for t in tables:
            pg.execute(f"ALTER TABLE {t} DISABLE TRIGGER append_only")
        yield Attacker(pg, True, filled.acme, filled.globex)
        for t in tables:
            pg.execute(f"ALTER TABLE {t} ENABLE TRIGGER append_only")


def hide(a: Attacker) -> None:
    """Delete the event's words from the full-text index."""
    if a.pg:
        a.run(f"UPDATE {a.s()}.events SET search = '' WHERE seq = ?", SEQ)
        return
    words = " ".join(t for (t,) in a.run("SELECT term FROM temp.vocab WHERE doc = ?", a.rid(SEQ)))
    a.run("INSERT INTO events_fts (events_fts, rowid, text) VALUES ('delete', ?, ?)", a.rid(SEQ), words)


def plant(a: Attacker) -> None:
    """Put the event into the results of a word it does not hold."""
    if a.pg:
        a.run(f"UPDATE {a.s()}.events SET search = search || ' zebra' WHERE seq = ?", SEQ)
    else:
        a.run("INSERT INTO events_fts (rowid, text) VALUES (?, 'zebra')", a.rid(SEQ))


def move_tenant(a: Attacker) -> None:
    """File the event (SQLite: its row; PostgreSQL: its target rows) under globex."""
    if a.pg:
        rows = a.run(f"SELECT target_id, type FROM {a.s()}.event_targets WHERE seq = ?", SEQ)
        a.run(f"DELETE FROM {a.s()}.event_targets WHERE seq = ?", SEQ)
        for target_id, type_ in rows:
            a.run(f"INSERT INTO {a.s(a.globex)}.event_targets VALUES (?, ?, ?)", target_id, type_, SEQ)
    else:
        a.run("UPDATE events SET tenant_id = ? WHERE rid = ?", a.globex, a.rid(SEQ))


def alter_columns(a: Attacker) -> None:
    """Change the action and actor searches filter on."""
    if a.pg:
        a.run(f"UPDATE {a.s()}.events SET action = 'user.logout', actor_id = 'nobody' WHERE seq = ?", SEQ)
    else:
        a.run("UPDATE events SET action = 'user.logout', actor_id = 'nobody' WHERE rid = ?", a.rid(SEQ))


def alter_identity(a: Attacker) -> None:
    """Point the event's address elsewhere and drop its actor's e-mail: ip and e-mail searches are misled."""
    key = ip_key("10.0.0.1")
    if a.pg:
        a.run(f"UPDATE {a.s()}.events SET ip = ?, actor_email = NULL WHERE seq = ?", key, SEQ)
    else:
        a.run("UPDATE events SET ip = ?, actor_email = NULL WHERE rid = ?", key, a.rid(SEQ))


def delete_targets(a: Attacker) -> None:
    if a.pg:
        a.run(f"DELETE FROM {a.s()}.event_targets WHERE seq = ?", SEQ)
    else:
        a.run("DELETE FROM event_targets WHERE rid = ?", a.rid(SEQ))


def alter_block(a: Attacker) -> None:
    """Shift a time block's range so time searches skip its events."""
    if a.pg:
        a.run(f"UPDATE {a.s()}.event_blocks SET min_occurred = min_occurred + 10 WHERE block = 1")
    else:
        a.run(
            "UPDATE event_blocks SET min_occurred = min_occurred + 10 WHERE tenant_id = ? AND block = 1",
            a.acme,
        )


TAMPERS = {
    "hide from full-text": (hide, f"tenant acme, seq {SEQ}: full-text index", "hidden from search"),
    "plant into full-text": (plant, f"tenant acme, seq {SEQ}: full-text index", "planted"),
    "move to another tenant": (move_tenant, f"tenant acme, seq {SEQ}: ", "tenant"),
    "alter action and actor": (
        alter_columns,
        f"tenant acme, seq {SEQ}: row columns differ",
        "action is 'user.logout'",
    ),
    "alter ip and e-mail": (
        alter_identity,
        f"tenant acme, seq {SEQ}: row columns differ",
        "ip is '10.0.0.1'",
    ),
    "delete target rows": (
        delete_targets,
        f"tenant acme, seq {SEQ}: target rows differ",
        "hidden from target",
    ),
    "alter time block": (
        alter_block,
        "tenant acme, time block 1 (seqs 256..511)",
        "time searches are misled",
    ),
}


def cli(settings: Settings, *args: str) -> Result:
    where = ["--database", settings.database] if args[0] == "reindex" else database_args(settings)
    return CliRunner().invoke(main, [*args, *where])


def test_untouched_indexes_verify(filled: Filled) -> None:
    """An untouched database: verify checks the indexes and passes; --json says how many events."""
    result = cli(filled.settings, "verify", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] and out["indexes"]["events"] == 1300


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampered_index_is_reported_and_reindex_repairs_it(filled: Filled, name: str) -> None:
    """Each tampering passes the ledger check but fails verify, naming tenant and seq; reindex undoes it."""
    tamper, where, what = TAMPERS[name]
    with attacker(filled) as a:
        tamper(a)
    skipped = cli(filled.settings, "verify", "--no-indexes")
    assert skipped.exit_code == 0, skipped.output  # the ledger is intact: only the index check sees it
    result = cli(filled.settings, "verify")
    assert result.exit_code == 1, result.output
    assert where in result.output and what in result.output, result.output
    assert "index verification FAILED" in result.output
    repaired = cli(filled.settings, "reindex", "--json")
    assert repaired.exit_code == 0, repaired.output
    assert json.loads(repaired.stdout)["repaired"] >= 1
    again = cli(filled.settings, "verify")
    assert again.exit_code == 0, again.output


def _seqs(store: Store, tenant_id: int, **query: Any) -> set[int]:
    page = store.search(tenant_id, SearchQuery(limit=1000, **query))
    return {seq for seq, _, _ in page.events}


def test_hidden_and_planted_words_change_search_until_reindex(filled: Filled) -> None:
    """The attacks are real: after them a word no longer finds the event and 'zebra' does; reindex restores
    the answers the ledger implies."""
    ev = filled.events[SEQ].event
    word = (ev.message or "").split()[0]
    with attacker(filled) as a:
        hide(a)
        plant(a)
    store = open_store(filled.settings.database, filled.settings)
    try:
        assert SEQ not in _seqs(store, filled.acme, text=word)
        assert _seqs(store, filled.acme, text="zebra") == {SEQ}
    finally:
        store.close()
    assert cli(filled.settings, "reindex", "--tenant", "acme").exit_code == 0
    store = open_store(filled.settings.database, filled.settings)
    try:
        assert SEQ in _seqs(store, filled.acme, text=word)
        assert _seqs(store, filled.acme, text="zebra") == set()
        report = check_indexes(store, store.list_tenants())  # type: ignore[arg-type]
        assert report.ok, [str(f) for f in report.shown]
    finally:
        store.close()


def test_single_tenant_check_and_reindex(filled: Filled) -> None:
    """verify --tenant checks that tenant's indexes only; reindex --tenant mends them and records itself in the
    platform log."""
    with attacker(filled) as a:
        alter_columns(a)
    assert cli(filled.settings, "verify", "--tenant", "globex").exit_code == 0
    assert cli(filled.settings, "verify", "--tenant", "acme").exit_code == 1
    assert cli(filled.settings, "reindex", "--tenant", "acme").exit_code == 0
    assert cli(filled.settings, "verify", "--tenant", "acme").exit_code == 0
    store = open_store(filled.settings.database, filled.settings)
    try:
        platform = store.get_tenant("vigil")
        page = store.search(platform.id, SearchQuery(action="audit_log.reindexed"))
        assert len(page.events) == 1
        body = json.loads(page.events[0][2])
        assert body["targets"] == [{"id": "acme", "type": "tenant"}] and body["metadata"]["repaired"] == 1
    finally:
        store.close()


def test_intact_reindex_rewrites_nothing(filled: Filled) -> None:
    result = cli(filled.settings, "reindex", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["repaired"] == 0


def test_lookup_is_bounded_by_the_tenants_own_rows(filled: Filled) -> None:
    """A row of globex's log rewritten to claim acme's tenant and an id does not answer acme's lookup of that
    id; acme's own event with an id globex also holds answers acme with acme's event."""
    globex_event = "018f0000-0000-7000-8000-00000000beef"
    with attacker(filled) as a:
        if a.pg:  # the same id in both schemas
            a.run(f"UPDATE {a.s(a.globex)}.events SET id = ?::uuid WHERE seq = 3", str(filled.events[0].id))
            a.run(f"UPDATE {a.s(a.globex)}.events SET id = ?::uuid WHERE seq = 4", globex_event)
        else:
            raw = bytes.fromhex(globex_event.replace("-", ""))
            a.run("UPDATE events SET tenant_id = ?, id = ? WHERE rid = ?", a.acme, raw, a.rid(3, a.globex))
    store = open_store(filled.settings.database, filled.settings)
    try:
        assert store.get_event(filled.acme, globex_event) is None
        mine = store.get_event(filled.acme, str(filled.events[0].id))
        assert mine is not None and mine[0] == 0 and mine[2] == filled.events[0].body
    finally:
        store.close()


@hsettings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable, max_size=80))
def test_ascii_words_match_sqlites_tokenizer(text: str) -> None:
    """The checker's ASCII word split is exactly what SQLite's unicode61 tokenizer indexes."""
    assert tokens(text) == tokens.sqlite(text)


@given(st.text(max_size=40))
@hsettings(max_examples=100, deadline=None)
def test_any_text_tokenizes_as_sqlite_does(text: str) -> None:
    assert tokens(text) == tokens.sqlite(text)
