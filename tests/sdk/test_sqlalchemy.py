"""vigil.sdk.sqlalchemy: ORM flushes and bulk UPDATE/DELETE statements on an app's SQLite file become change
events with exact before and after values in a real Vigil server, only when the transaction commits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sdk_support import Tenant
from sqlalchemy import Engine, Numeric, String, create_engine, delete, func, insert, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from test_asgi import server_events

from vigil.sdk import Client
from vigil.sdk.sqlalchemy import track

SYSTEM = {"id": "system", "type": "system"}


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    budget: Mapped[int] = mapped_column(default=0)
    rate: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), default=None)
    due: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime | None] = mapped_column(default=None)


class Note(Base):  # not tracked
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def vigil(tenant: Tenant) -> Iterator[Client]:
    client = Client(tenant.url, tenant.key, flush_interval=0.05, batch_size=500)
    yield client
    client.close(5)


@pytest.fixture
def sessions(engine: Engine, vigil: Client) -> Iterator[sessionmaker[Session]]:
    factory = sessionmaker(engine)
    tracker = track(factory, vigil, models=[Project], exclude={"updated_at"})
    yield factory
    tracker.remove()


def changes_on_server(vigil: Client, tenant: Tenant) -> list[dict[str, Any]]:
    assert vigil.flush(30), "the client did not deliver within 30 s"
    events = server_events(tenant)
    assert all(e["category"] == "change" and e["outcome"] == "success" for e in events)
    return events


def test_orm_insert_update_delete_record_created_updated_deleted(
    sessions: sessionmaker[Session], vigil: Client, tenant: Tenant
) -> None:
    """Through the unit of work: a new row is ``projects.created`` with [None, value] pairs, a changed one
    ``projects.updated`` with only the changed fields, a deleted one ``projects.deleted`` with [value, None];
    excluded fields and untracked models are never recorded."""
    due = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with sessions() as s:
        project = Project(name="Apollo", budget=100, rate=Decimal("12.50"))
        s.add_all([project, Note(text="not tracked")])
        s.commit()
        pid = project.id
        project.name = "Apollo 11"  # set while expired (after the commit): "before" is loaded, not guessed
        project.due = due
        project.updated_at = datetime.now(UTC)
        project.budget = 100  # the same value: not a change
        s.commit()
        s.delete(project)
        s.commit()
    created, updated, deleted = changes_on_server(vigil, tenant)
    target = [{"type": "projects", "id": str(pid)}]
    assert (created["action"], created["targets"], created["actor"]) == ("projects.created", target, SYSTEM)
    assert created["changes"] == {
        "id": [None, pid],
        "name": [None, "Apollo"],
        "budget": [None, 100],
        "rate": [None, "12.50"],
    }
    assert (updated["action"], updated["targets"]) == ("projects.updated", target)
    assert updated["changes"] == {
        "name": ["Apollo", "Apollo 11"],
        "due": [None, due.isoformat()],
    }
    assert (deleted["action"], deleted["targets"]) == ("projects.deleted", target)
    assert deleted["changes"]["name"] == ["Apollo 11", None]
    assert deleted["changes"]["budget"] == [100, None]
    assert "updated_at" not in created["changes"] and "updated_at" not in deleted["changes"]


def test_bulk_update_of_1000_rows_records_1000_exact_changes(
    engine: Engine, vigil: Client, tenant: Tenant
) -> None:
    """One ``session.execute(update(Project)...)`` over 1,000 rows, with SQL expressions as values, gives
    1,000 ``projects.updated`` events whose before and after values are what the database held and holds."""
    with Session(engine) as s:
        s.execute(insert(Project), [{"id": i, "name": f"p{i}", "budget": i} for i in range(1, 1001)])
        s.execute(insert(Project), [{"id": 5000, "name": "untouched", "budget": 0}])
        s.commit()
    factory = sessionmaker(engine)
    track(factory, vigil, models=[Project], actor_resolver=lambda: {"id": "svc_batch", "type": "service"})
    with factory() as s:
        result = s.execute(
            update(Project)
            .where(Project.id <= 1000)
            .values(name=func.upper(Project.name), budget=Project.budget * 2 + 1)
        )
        assert result.rowcount == 1000  # type: ignore[attr-defined]
        s.commit()
    events = changes_on_server(vigil, tenant)
    assert len(events) == 1000
    by_id = {e["targets"][0]["id"]: e for e in events}
    assert set(by_id) == {str(i) for i in range(1, 1001)}
    for i in range(1, 1001):
        e = by_id[str(i)]
        assert e["action"] == "projects.updated"
        assert e["changes"] == {"name": [f"p{i}", f"P{i}"], "budget": [i, 2 * i + 1]}, e
        assert e["actor"] == {"id": "svc_batch", "type": "service"}


def test_a_rolled_back_transaction_records_nothing(
    sessions: sessionmaker[Session], vigil: Client, tenant: Tenant
) -> None:
    """ORM changes and bulk statements of a transaction that rolls back, or that is closed without a commit,
    are never recorded; the next committed change is."""
    with sessions() as s:
        s.add_all([Project(id=1, name="one"), Project(id=2, name="two")])
        s.commit()
    with sessions() as s:
        s.add(Project(id=3, name="three"))
        s.get_one(Project, 1).name = "uno"
        s.execute(update(Project).values(budget=7))
        s.execute(delete(Project).where(Project.id == 2))
        s.rollback()
    with sessions() as s:
        s.execute(update(Project).values(budget=8))
        s.add(Project(id=4, name="four"))
        s.flush()
    # closed without commit
    with sessions() as s:
        s.get_one(Project, 1).name = "eins"
        s.commit()
    events = changes_on_server(vigil, tenant)
    assert [(e["action"], e["targets"][0]["id"]) for e in events] == [
        ("projects.created", "1"),
        ("projects.created", "2"),
        ("projects.updated", "1"),
    ]
    assert events[-1]["changes"] == {"name": ["one", "eins"]}


def test_a_savepoint_rollback_drops_only_the_changes_made_inside_it(
    sessions: sessionmaker[Session], vigil: Client, tenant: Tenant
) -> None:
    """Changes inside a rolled-back SAVEPOINT are dropped; those around it, and in a released one, commit."""
    with sessions() as s:
        s.add(Project(id=1, name="one", budget=1))
        with s.begin_nested():
            s.execute(update(Project).where(Project.id == 1).values(budget=2))
        nested = s.begin_nested()
        s.execute(update(Project).where(Project.id == 1).values(budget=99))
        s.add(Project(id=2, name="gone"))
        s.flush()
        nested.rollback()
        s.get_one(Project, 1).name = "uno"
        s.commit()
    events = changes_on_server(vigil, tenant)
    assert [(e["action"], e["changes"]) for e in events] == [
        (
            "projects.created",
            {
                "id": [None, 1],
                "name": [None, "one"],
                "budget": [None, 1],
            },
        ),
        ("projects.updated", {"budget": [1, 2]}),
        ("projects.updated", {"name": ["one", "uno"]}),
    ]


def test_bulk_delete_and_bulk_update_by_primary_key(
    sessions: sessionmaker[Session], vigil: Client, tenant: Tenant
) -> None:
    """``delete(Project).where(...)`` gives ``projects.deleted`` with each row's values; the ORM bulk
    update by primary key (a list of parameter sets) gives ``projects.updated`` per row; rows the WHERE
    does not match, and bound parameters in it, are handled as the database does."""
    with sessions() as s:
        s.add_all([Project(id=i, name=f"p{i}", budget=i) for i in range(1, 6)])
        s.commit()
    with sessions() as s:
        s.execute(delete(Project).where(Project.budget >= 4))
        s.execute(update(Project), [{"id": 1, "name": "first"}, {"id": 2, "budget": 20}])
        s.execute(
            update(Project).where(Project.name == func.lower("P3")).values(budget=30),
        )
        s.execute(update(Project).where(Project.id == 42).values(budget=0))  # matches nothing
        s.commit()
        assert [p.budget for p in s.scalars(select(Project).order_by(Project.id))] == [1, 20, 30]
    events = changes_on_server(vigil, tenant)[5:]  # after the five created
    assert [(e["action"], e["targets"][0]["id"]) for e in events] == [
        ("projects.deleted", "4"),
        ("projects.deleted", "5"),
        ("projects.updated", "1"),
        ("projects.updated", "2"),
        ("projects.updated", "3"),
    ]
    assert events[0]["changes"]["name"] == ["p4", None]
    assert events[2]["changes"] == {"name": ["p1", "first"]}
    assert events[3]["changes"] == {"budget": [2, 20]}
    assert events[4]["changes"] == {"budget": [3, 30]}


def test_tracking_an_engine_covers_its_sessions_only_until_removed(
    engine: Engine, tmp_path: Path, vigil: Client, tenant: Tenant
) -> None:
    """``track(engine, ...)`` records the changes of every session bound to that engine, not those of another
    engine; after ``remove()`` nothing more is recorded."""
    other = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    Base.metadata.create_all(other)
    tracker = track(engine, vigil, models=[Project])
    try:
        for bind in (engine, other):
            with Session(bind) as s:
                s.add(Project(id=1, name="one"))
                s.commit()
    finally:
        tracker.remove()
        other.dispose()
    with Session(engine) as s:
        s.get_one(Project, 1).name = "after remove"
        s.commit()
    [event] = changes_on_server(vigil, tenant)
    assert event["action"] == "projects.created"


def test_track_checks_its_arguments(engine: Engine, vigil: Client) -> None:
    """No models, something that is not a mapped class, or an unknown target is an error at once."""
    with pytest.raises(ValueError, match="models= is empty"):
        track(engine, vigil, models=[])
    with pytest.raises(TypeError, match="mapped classes"):
        track(engine, vigil, models=[dict])
    with pytest.raises(TypeError, match="takes a Session"):
        track("sqlite://", vigil, models=[Project])  # type: ignore[arg-type]
