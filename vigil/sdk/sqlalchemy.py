"""Entity change history from SQLAlchemy 2: every insert, update and delete of the models you name becomes a
``change`` event, once the transaction commits.

    from vigil.sdk.sqlalchemy import track

    tracker = track(SessionLocal, vigil, models=[Project, Member], exclude={"updated_at"})
    ...
    tracker.remove()

Each changed row gives one event: action ``<table>.created``, ``.updated`` or ``.deleted``, ``changes``
``{field: [before, after]}`` (for an update only the fields that changed, for a new or deleted row only
the fields that hold a value), targets ``[{type: <table>, id:
<primary key>}]``. Rows changed through the unit of work (``session.add``, attribute changes, ``session.delete``)
are read at each flush; rows changed by ORM bulk statements (``session.execute(update(Model)...)``,
``delete(Model)``, and the bulk update by primary key) are read with one SELECT before the statement and, for an
update, one SELECT by primary key after it (chunks of 500), so expressions and column defaults are seen as the
database wrote them. Events wait in ``session.info`` until the session's outermost transaction commits; a
rollback drops them (a savepoint's rollback drops those made inside it).

The actor is ``actor_resolver()``, else the actor of the request the web middleware is recording
(:func:`vigil.sdk.capture.current_actor`), else ``{"id": "system", "type": "system"}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import logging
import math
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

try:
    import sqlalchemy  # noqa: F401  # first, so that its absence says how to install it
except ImportError as exc:
    raise ImportError(
        "vigil.sdk.sqlalchemy needs SQLAlchemy 2: pip install 'vigil-audit[sdk,sqlalchemy]'"
    ) from exc
from sqlalchemy import Column, Engine, Table, event, inspect, select, tuple_
from sqlalchemy.engine import Connection, Result
from sqlalchemy.orm import (
    Mapper,
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    scoped_session,
    sessionmaker,
)
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from vigil.model import MAX_CHANGES, MAX_SAFE_INT
from vigil.sdk.aio import AsyncClient
from vigil.sdk.capture import action_part, current_actor, current_context
from vigil.sdk.client import Client
from vigil.sdk.worker import Throttle

log = logging.getLogger("vigil.sdk")

SYSTEM = {"id": "system", "type": "system"}
CHUNK = 500  # primary keys per "IN (...)" of the re-selects: under every database's parameter limit
MAX_TEXT = 1000  # characters of a text value kept in a change; longer values are cut and marked

SessionTarget = Session | sessionmaker[Any] | scoped_session[Any] | type[Session] | Engine
_warn = Throttle()


class _Model:
    """What the tracker needs of one mapped class: its table name, primary key and tracked columns."""

    __slots__ = ("action", "columns", "kind", "pk")

    def __init__(self, mapper: Mapper[Any], exclude: Collection[str]) -> None:
        table = mapper.local_table
        name = table.name if isinstance(table, Table) else mapper.class_.__name__
        self.action = action_part(name) or "record"
        self.kind = name[:64]
        self.pk: list[tuple[str, ColumnElement[Any]]] = [
            (mapper.get_property_by_column(c).key, c) for c in mapper.primary_key
        ]
        self.columns: list[tuple[str, Column[Any]]] = []
        for prop in mapper.column_attrs:
            col = prop.columns[0]
            if prop.key not in exclude and isinstance(col, Column):
                self.columns.append((prop.key, col))


class _Pending:
    __slots__ = ("event", "tag")

    def __init__(self, tag: SessionTransaction | None, event: dict[str, Any]) -> None:
        self.tag = tag  # the (innermost) transaction the change happened in
        self.event = event


class Tracker:
    """The listeners :func:`track` installed; :meth:`remove` takes them away again."""

    def __init__(
        self,
        target: SessionTarget,
        client: Client | AsyncClient,
        models: Iterable[type[Any]],
        actor_resolver: Callable[[], Mapping[str, Any] | None] | None,
        exclude: Collection[str],
    ) -> None:
        if isinstance(client, AsyncClient):
            client = client.client
        if not isinstance(client, Client):
            raise TypeError(f"client must be a vigil.sdk.Client or AsyncClient; got {type(client).__name__}")
        self.client = client
        self.actor_resolver = actor_resolver
        self.exclude = frozenset(exclude)
        self.mappers: set[Mapper[Any]] = set()
        for model in models:
            mapper = inspect(model, raiseerr=False)
            if not isinstance(mapper, Mapper):
                raise TypeError(f"models= takes mapped classes; {model!r} is not one")
            self.mappers.add(mapper)
        if not self.mappers:
            raise ValueError("models= is empty: the tracker would record nothing")
        self.engine: Engine | None = None
        self.target: Any
        if isinstance(target, Engine):
            self.engine = target
            self.target = Session  # every session; only the rows bound to the engine count
        elif isinstance(target, Session | sessionmaker | scoped_session) or (
            isinstance(target, type) and issubclass(target, Session)
        ):
            self.target = target
        else:
            raise TypeError(
                "track() takes a Session, sessionmaker, scoped_session, Session class or Engine; "
                f"got {type(target).__name__}"
            )
        self._key = f"vigil.pending.{id(self)}"
        self._models: dict[type[Any], _Model | None] = {}
        self._listeners: list[tuple[Any, str, Callable[..., Any]]] = [
            (self.target, "before_flush", self._before_flush),
            (self.target, "after_flush", self._after_flush),
            (self.target, "do_orm_execute", self._on_execute),
            (self.target, "after_commit", self._after_commit),
            (self.target, "after_soft_rollback", self._after_soft_rollback),
            (self.target, "after_transaction_end", self._after_transaction_end),
        ]

        def keep_old(target: Any, value: Any, oldvalue: Any, initiator: Any) -> Any:
            return value  # this tracker's own function: removing it leaves another tracker's in place

        for mapper in self.mappers:
            # load the old value when an unloaded (expired) attribute is set, so updates know "before"
            for prop in mapper.column_attrs:
                if prop.key not in self.exclude:
                    self._listeners.append((getattr(mapper.class_, prop.key), "set", keep_old))
        for target_, name, fn in self._listeners:
            if name == "set":
                event.listen(target_, name, fn, active_history=True)
            else:
                event.listen(target_, name, fn)

    def remove(self) -> None:
        """Stop tracking; changes of transactions that have not committed yet are never recorded."""
        for target, name, fn in self._listeners:
            if event.contains(target, name, fn):
                event.remove(target, name, fn)
        self._listeners = []

    # -- which rows ----------------------------------------------------------------------------------------

    def _model(self, cls: type[Any]) -> _Model | None:
        try:
            return self._models[cls]
        except KeyError:
            pass
        mapper = inspect(cls, raiseerr=False)
        found = None
        if isinstance(mapper, Mapper) and any(m in self.mappers for m in mapper.iterate_to_root()):
            found = _Model(mapper, self.exclude)
        self._models[cls] = found
        return found

    def _bound(self, session: Session, mapper: Mapper[Any]) -> bool:
        if self.engine is None:
            return True
        try:
            bind = session.get_bind(mapper=mapper)
        except Exception:
            return False
        return getattr(bind, "engine", bind) is self.engine

    # -- the unit of work ----------------------------------------------------------------------------------

    def _before_flush(self, session: Session, flush_context: UOWTransaction, instances: Any) -> None:
        for obj in session.deleted:
            if self._model(type(obj)) is not None and inspect(obj).expired_attributes:
                try:
                    session.refresh(obj)  # load what is about to be deleted, for its "before" values
                except Exception:  # gone already, say: the delete goes on, with what is known of it
                    if _warn.ready():
                        log.warning("vigil: could not load a deleted %s row's values", type(obj).__name__)

    def _after_flush(self, session: Session, flush_context: UOWTransaction) -> None:
        # the session still shows its pre-flush state here: new, dirty, deleted and attribute history
        events: list[dict[str, Any]] = []
        for objs, verb in (
            (session.new, "created"),
            (session.dirty, "updated"),
            (session.deleted, "deleted"),
        ):
            for obj in objs:
                model = self._model(type(obj))
                if model is None:
                    continue
                state = inspect(obj)
                if not self._bound(session, state.mapper):
                    continue
                values = state.dict
                changes: dict[str, list[Any]] = {}
                if verb == "updated":
                    for key, _ in model.columns:
                        history = state.attrs[key].history
                        if not history.has_changes():
                            continue
                        after = history.added[0] if history.added else None
                        if isinstance(after, ClauseElement):
                            continue  # a SQL expression: its value is known only to the database
                        before = history.deleted[0] if history.deleted else None
                        if before != after:
                            changes[key] = [_plain(before), _plain(after)]
                    if not changes:
                        continue
                else:
                    for key, _ in model.columns:
                        if values.get(key) is not None:  # an empty field of a new or gone row says nothing
                            value = _plain(values[key])
                            changes[key] = [None, value] if verb == "created" else [value, None]
                pk = [values.get(key) for key, _ in model.pk]
                events.append(self._event(model, verb, pk, changes))
        if events:
            self._hold(session, events)

    # -- bulk statements -----------------------------------------------------------------------------------

    def _on_execute(self, orm_state: ORMExecuteState) -> Result[Any] | None:
        if not (orm_state.is_update or orm_state.is_delete):
            return None
        mapper = orm_state.bind_mapper
        model = self._model(mapper.class_) if mapper is not None else None
        if mapper is None or model is None or not self._bound(orm_state.session, mapper):
            return None
        session = orm_state.session
        try:
            conn = session.connection(bind_arguments={"mapper": mapper})
            before = self._before(conn, model, orm_state)
        except Exception:
            # whatever we cannot read, the app's statement still runs as it would without us
            if _warn.ready():
                log.exception("vigil: could not read the rows a bulk statement changes; not recorded")
            return None
        if before is None:
            return None
        result = orm_state.invoke_statement()
        if getattr(result, "returns_rows", False):
            result = result.freeze()()  # the statement's own rows, kept before we read the table again
        try:
            events = self._bulk_events(conn, model, orm_state.is_update, before)
        except Exception:
            if _warn.ready():
                log.exception("vigil: could not read the rows a bulk statement changed; not recorded")
            return result
        if events:
            self._hold(session, events)
        return result

    @staticmethod
    def _before(
        conn: Connection, model: _Model, orm_state: ORMExecuteState
    ) -> dict[tuple[Any, ...], tuple[Any, ...]] | None:
        """The rows the statement is about to change, by primary key; None for a statement not handled."""
        params = orm_state.parameters
        if isinstance(params, list):
            if not orm_state.is_update:
                return None
            # the ORM bulk UPDATE by primary key: one parameter set per row, keyed by attribute name
            keys = [tuple(p[key] for key, _ in model.pk) for p in params]
            return _select_by_pk(conn, model, keys)
        stmt = select(*[c for _, c in model.pk], *[c for _, c in model.columns])
        where = getattr(orm_state.statement, "whereclause", None)
        if where is not None:
            stmt = stmt.where(where)
        return _rows(conn.execute(stmt, dict(params) if isinstance(params, Mapping) else {}), len(model.pk))

    def _bulk_events(
        self,
        conn: Connection,
        model: _Model,
        is_update: bool,
        before: dict[tuple[Any, ...], tuple[Any, ...]],
    ) -> list[dict[str, Any]]:
        after = _select_by_pk(conn, model, list(before)) if is_update else {}
        events: list[dict[str, Any]] = []
        for pk, old in before.items():
            changes: dict[str, list[Any]] = {}
            if not is_update:
                changes = {
                    key: [_plain(old[i]), None]
                    for i, (key, _) in enumerate(model.columns)
                    if old[i] is not None
                }
                events.append(self._event(model, "deleted", list(pk), changes))
                continue
            new = after.get(pk)
            if new is None:
                continue  # the update moved its primary key: the row is not where it was
            for i, (key, _) in enumerate(model.columns):
                if old[i] != new[i]:
                    changes[key] = [_plain(old[i]), _plain(new[i])]
            if changes:
                events.append(self._event(model, "updated", list(pk), changes))
        return events

    # -- commit and rollback -------------------------------------------------------------------------------

    def _hold(self, session: Session, events: list[dict[str, Any]]) -> None:
        tag = session.get_nested_transaction() or session.get_transaction()
        actor = None
        try:
            actor = self.actor_resolver() if self.actor_resolver is not None else current_actor()
        except Exception:
            if _warn.ready():
                log.exception("vigil: the actor resolver failed; recording the changes as the system's")
        context = current_context()
        pending = session.info.setdefault(self._key, [])
        for ev in events:
            ev["actor"] = dict(actor) if actor else SYSTEM
            if context:
                ev["context"] = context
            pending.append(_Pending(tag, ev))

    def _after_commit(self, session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint was released: its changes wait for the outermost commit
        pending: list[_Pending] = session.info.pop(self._key, [])
        for p in pending:
            try:
                self.client.record(category="change", outcome="success", **p.event)
            except Exception:
                if _warn.ready():
                    log.exception("vigil: could not record a change of %s", p.event.get("action"))

    def _after_soft_rollback(self, session: Session, previous: SessionTransaction) -> None:
        pending: list[_Pending] | None = session.info.get(self._key)
        if not pending:
            return
        # the database rolled back to the nearest savepoint or the outermost transaction
        boundary: SessionTransaction | None = previous
        while boundary is not None and not (boundary.parent is None or boundary.nested):
            boundary = boundary.parent
        if boundary is None or boundary.parent is None:
            session.info.pop(self._key, None)
            return
        session.info[self._key] = [p for p in pending if not _within(p.tag, boundary)]

    def _after_transaction_end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # ended without a commit (closed): what it held never happened
            session.info.pop(self._key, None)

    @staticmethod
    def _event(model: _Model, verb: str, pk: Sequence[Any], changes: dict[str, list[Any]]) -> dict[str, Any]:
        if len(changes) > MAX_CHANGES:
            changes = dict(list(changes.items())[:MAX_CHANGES])
        target_id = ",".join("" if v is None else str(v) for v in pk)[:256] or "unknown"
        return {
            "action": f"{model.action}.{verb}",
            "targets": [{"type": model.kind, "id": target_id}],
            "changes": changes,
        }


def track(
    target: SessionTarget,
    client: Client | AsyncClient,
    *,
    models: Iterable[type[Any]],
    actor_resolver: Callable[[], Mapping[str, Any] | None] | None = None,
    exclude: Collection[str] = (),
) -> Tracker:
    """Record the changes of ``models`` made through ``target`` as ``change`` events sent with ``client``.

    ``target`` is a ``Session``, a ``sessionmaker`` or ``scoped_session`` (every session it makes), the
    ``Session`` class (every session), or an ``Engine`` (every session, changes to rows bound to that engine).
    ``actor_resolver()`` returns who is making the changes (see the module doc for the default); ``exclude``
    names attributes never recorded (``updated_at``, say). Returns the :class:`Tracker`; ``remove()`` it to
    stop.
    """
    return Tracker(target, client, models, actor_resolver, exclude)


def _within(tag: SessionTransaction | None, boundary: SessionTransaction) -> bool:
    while tag is not None:
        if tag is boundary:
            return True
        tag = tag.parent
    return False


def _rows(result: Result[Any], npk: int) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {tuple(row[:npk]): tuple(row[npk:]) for row in result}


def _select_by_pk(
    conn: Connection, model: _Model, keys: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The tracked columns of the rows with these primary keys, by primary key."""
    pk_cols = [c for _, c in model.pk]
    found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i : i + CHUNK]
        cond = pk_cols[0].in_([k[0] for k in chunk]) if len(pk_cols) == 1 else tuple_(*pk_cols).in_(chunk)
        stmt = select(*pk_cols, *[c for _, c in model.columns]).where(cond)
        found.update(_rows(conn.execute(stmt), len(pk_cols)))
    return found


def _plain(value: Any) -> Any:
    """A column value as JSON an event can hold: dates as ISO 8601, decimals and UUIDs as text, bytes as
    base64 (large ones by size only), long text cut, integers beyond 2^53 as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID | dt.timedelta):
        return str(value)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return base64.b64encode(data).decode() if len(data) <= 256 else f"<{len(data)} bytes>"
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return _plain(str(value))
