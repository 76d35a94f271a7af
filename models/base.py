"""The base every business table stands on: audit columns, optimistic locking, change history.

- ``created_at`` / ``changed_at`` are timezone-aware and stored in UTC.
- ``created_by`` / ``changed_by`` come from the person logged in, or from the system user when a
  job, an import or a command writes (``acting_as``); never from the client.
- ``version`` is SQLAlchemy's version counter: an UPDATE carries ``WHERE version = <read>``, so two
  people saving the same record cannot overwrite each other silently (the loser gets ``Conflict``).
- every insert, update and delete writes a ``ChangeLog`` row with the old and new values.
- ``check()`` holds a model's cross-field rules; it runs before every flush, whatever the path
  (form, API, import, job), and raises ``FieldErrors``.
- ``__final__ = FinalStates(...)`` declares the states in which a record is a closed book (a closed
  ticket, a paid bill): it is then read-only, except for the declared ways out (reopening), checked
  before every flush like ``check()`` and refused with ``ReadOnlyRecord`` (a ``FieldErrors``: 422).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from flask_appbuilder import Model
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    TypeDecorator,
    event,
    insert,
    inspect,
    select,
)
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column, relationship

from models.errors import FieldErrors

BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetime stored in UTC on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: times must carry a time zone")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# --- who is writing --------------------------------------------------------------------------
_actor: ContextVar[int | None] = ContextVar("desk_actor", default=None)
_system_user_ids: dict[str, int] = {}


@contextlib.contextmanager
def acting_as(user_id: int | None):
    """Attribute every write inside the block to ``user_id`` (jobs use the system user)."""
    token = _actor.set(user_id)
    try:
        yield
    finally:
        _actor.reset(token)


def _request_user_id() -> int | None:
    try:
        from flask import g, has_request_context

        if has_request_context():
            user = getattr(g, "user", None)
            if user is not None and getattr(user, "is_authenticated", False):
                return user.id
    except Exception:  # pragma: no cover - no flask at all
        return None
    return None


def system_user_id(session: Session) -> int:
    """The id of the system user, the author of writes no person made."""
    from flask import current_app, has_app_context

    name = current_app.config.get("SYSTEM_USERNAME", "system") if has_app_context() else "system"
    key = f"{session.get_bind().url}:{name}"
    if key not in _system_user_ids:
        from flask_appbuilder.security.sqla.models import User

        uid = session.execute(select(User.id).where(User.username == name)).scalar()
        if uid is None:
            raise RuntimeError(f"system user {name!r} is missing: run `flask desk sync-roles` (start-up does it)")
        _system_user_ids[key] = uid
    return _system_user_ids[key]


def current_actor_id(session: Session) -> int:
    return _actor.get() or _request_user_id() or system_user_id(session)


# --- the base --------------------------------------------------------------------------------
class AuditedModel(Model):
    __abstract__ = True

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    @declared_attr
    def created_by_id(cls) -> Mapped[int]:
        return mapped_column(Integer, ForeignKey("ab_user.id"), nullable=False)

    @declared_attr
    def changed_by_id(cls) -> Mapped[int]:
        return mapped_column(Integer, ForeignKey("ab_user.id"), nullable=False)

    @declared_attr
    def created_by(cls):
        return relationship("User", foreign_keys=[cls.created_by_id], lazy="select", viewonly=True)

    @declared_attr
    def changed_by(cls):
        return relationship("User", foreign_keys=[cls.changed_by_id], lazy="select", viewonly=True)

    @declared_attr.directive
    def __mapper_args__(cls):
        return {"version_id_col": cls.version}

    # Columns that are never written by a client and never logged as a change.
    AUDIT_COLUMNS = ("id", "version", "created_at", "changed_at", "created_by_id", "changed_by_id")

    def check(self) -> None:
        """Cross-field rules; raise ``FieldErrors``. Runs before every flush."""

    def derive_estate(self, session: Session) -> None:
        """The estate a record takes from what it is about (models/scope.InUnitsEstate); runs first."""

    def before_insert(self, session: Session) -> None:
        """Derived values of a new row (numbers, deadlines); runs before ``check()``."""

    def before_update(self, session: Session) -> None:
        """Derived values after a change; runs before ``check()``."""

    def after_insert(self, session: Session) -> None:
        """Runs after the flush that inserted the row (its id is known)."""

    def __str__(self) -> str:
        for attr in ("name", "code", "plate"):
            value = getattr(self, attr, None)
            if value:
                return str(value)
        # The resource's label (views/registry.py register() sets it), never the class name.
        return f"{getattr(type(self), '__record_label__', None) or type(self).__name__} {self.id}"


class DataChoices(Mapping):
    """Choices kept in a table (code -> label), read once per request (or per call outside one), so
    that a row a Manager adds is offered, validated and shown at once without a restart. Used
    wherever a static ``{code: T}`` vocabulary is (forms, API validation, lists, print forms)."""

    def __init__(self, load):
        self._load = load  # session -> {code: T}

    def _data(self) -> dict:
        from flask import g, has_app_context

        if not has_app_context():
            return {}
        key = f"_desk_choices_{id(self)}"
        cached = g.get(key)
        if cached is None:
            from app.extensions import db

            cached = self._load(db.session)
            setattr(g, key, cached)
        return cached

    def forget(self) -> None:
        from flask import g, has_app_context

        if has_app_context():
            g.pop(f"_desk_choices_{id(self)}", None)

    def __getitem__(self, code):
        return self._data()[code]

    def __iter__(self):
        return iter(self._data())

    def __len__(self):
        return len(self._data())


# --- final states: records that are a closed book --------------------------------------------
class ReadOnlyRecord(FieldErrors):
    """A change to a record in a final state (closed, archived...), refused naming each field."""


@dataclass(frozen=True)
class FinalStates:
    """Declared on a model as ``__final__``: when a record is final and what may still happen to it.

    - ``column`` / ``states``: the record is final while ``column`` holds one of ``states`` (its
      value before this flush's changes);
    - ``filled``: columns that close the record for good once they hold a value (``archived_at``);
      no way out of those;
    - ``exits``: the documented ways out of a final state, ``{new state: other columns that may
      change with it}`` (a closed ticket is reopened: its status, and the dates reopening resets);
    - ``labels``: the states' labels, for the message.

    A final record cannot be deleted either. "Final" is as committed before the transaction: the
    unit of work that closes a record (or creates it closed) may finish its own bookkeeping. Writes
    that bypass the ORM (Core ``UPDATE`` of a job's own bookkeeping columns) are not seen here; they
    must never touch what a register prints.
    """

    column: str = "status"
    states: frozenset = frozenset()
    filled: tuple[str, ...] = ()
    exits: Mapping[str, frozenset] = field(default_factory=dict)
    labels: Mapping = field(default_factory=dict)
    # Links to other records that may still be filed on a final (not archived) record: they add to
    # the file without changing what the record says (a closed complaint linked to the renovation
    # that caused it).
    annotations: frozenset = frozenset()

    def message(self, old_state, archived: bool):
        from app.i18n import T

        if archived:
            return T("该记录已归档，为只读记录，不能修改", "This record is archived and read-only")
        label = self.labels.get(old_state, old_state)
        zh = getattr(label, "zh", str(label))
        en = getattr(label, "en", str(label))
        if self.exits:
            ways = [self.labels.get(k, k) for k in self.exits]
            ways_zh = "、".join(getattr(w, "zh", str(w)) for w in ways)
            ways_en = ", ".join(getattr(w, "en", str(w)) for w in ways)
            return T(
                f"该记录状态为「{zh}」，为只读记录，不能修改（可先「{ways_zh}」）",
                f"This record is '{en}' and read-only (it can be changed to '{ways_en}' first)",
            )
        return T(f"该记录状态为「{zh}」，为只读记录，不能修改", f"This record is '{en}' and read-only")


def _normal(value):
    """What counts as the same value: a form's empty text is the NULL it shows, a textarea's CRLF
    the LF stored, an aware time the same instant."""
    if value == "":
        return None
    if isinstance(value, str):
        return value.replace("\r\n", "\n")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _known_committed(state, key):
    """The value before this flush's changes, if the session knows it without asking."""
    hist = state.attrs[key].history
    if hist.deleted:
        return hist.deleted[0]
    if hist.unchanged:
        return hist.unchanged[0]
    if not hist.added and key in state.dict:
        return state.dict[key]
    return _UNKNOWN


_UNKNOWN = object()


def final_state_errors(session: Session, obj, deleting: bool = False) -> dict[str, list[str]]:
    """The fields a write would change on a final record (``{}`` when it may go ahead)."""
    spec: FinalStates | None = getattr(type(obj), "__final__", None)
    state = inspect(obj)
    if spec is None or state.key is None or id(obj) in session.info.get("desk_made_final", {}):
        return {}
    watched = (spec.column, *spec.filled)
    known = {k: _known_committed(state, k) for k in watched}
    if all(v is not _UNKNOWN for v in known.values()) and (
        known[spec.column] not in spec.states and all(known[k] is None for k in spec.filled)
    ):
        return {}
    # The row as it stands in this transaction: the truth whatever the session has loaded.
    table = obj.__table__
    pk = state.mapper.primary_key[0]
    row = session.connection().execute(select(table).where(table.c[pk.name] == state.identity[0])).mappings().first()
    if row is None:
        return {}
    old_state = row[table.c[spec.column].name]
    archived = any(row[table.c[k].name] is not None for k in spec.filled)
    if old_state not in spec.states and not archived:
        return {}
    message = str(spec.message(old_state, archived))
    if deleting:
        return {spec.column: [message]}
    changed = []
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in AuditedModel.AUDIT_COLUMNS or key not in state.dict:
            continue
        column = attr.columns[0]
        if column.table is not table:
            continue
        if _normal(state.dict[key]) != _normal(row[column.name]):
            changed.append(key)
    for rel in state.mapper.relationships:
        if rel.viewonly or rel.direction.name != "MANYTOONE" or not state.attrs[rel.key].history.added:
            continue
        target = state.attrs[rel.key].history.added[0]
        target_pk = inspect(target).identity[0] if target is not None and inspect(target).identity else None
        local = next(iter(rel.local_columns))
        if target_pk != row[local.name] and local.key not in changed:
            changed.append(rel.key)
    allowed: set[str] = set() if archived else set(spec.annotations)
    new_state = state.dict.get(spec.column, old_state)
    if not archived and new_state != old_state and new_state in spec.exits:
        allowed |= {spec.column, *spec.exits[new_state]}
    return {key: [message] for key in changed if key not in allowed}


class ChangeLog(Model):
    """One row per write to an audited table: who, when, and the old and new values."""

    __tablename__ = "change_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    table_name: Mapped[str] = mapped_column(String(64), nullable=False)
    row_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    action: Mapped[str] = mapped_column(String(8), nullable=False)  # insert / update / delete
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("ab_user.id"))
    changes: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)

    user = relationship("User", lazy="select", viewonly=True)

    __table_args__ = (Index("ix_change_log_table_row", "table_name", "row_id"),)

    def __str__(self) -> str:
        return f"{self.table_name}#{self.row_id} {self.action}"


def _plain(value):
    """A JSON-safe rendering of a column value for the change log."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _column_changes(obj, action: str) -> dict:
    state = inspect(obj)
    changes = {}
    for col in state.mapper.column_attrs:
        key = col.key
        if key in AuditedModel.AUDIT_COLUMNS:
            continue
        hist = state.attrs[key].history
        if action == "insert":
            value = getattr(obj, key)
            if value is not None:
                changes[key] = [None, _plain(value)]
        elif action == "delete":
            old = hist.unchanged[0] if hist.unchanged else (hist.deleted[0] if hist.deleted else None)
            if old is not None:
                changes[key] = [_plain(old), None]
        elif hist.has_changes():
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            if _plain(old) != _plain(new):
                changes[key] = [_plain(old), _plain(new)]
    return changes


def _apply_scalar_defaults(obj) -> None:
    """Column defaults apply at INSERT; rules in ``check()`` need them before."""
    for col in inspect(obj).mapper.columns:
        default = col.default
        if default is not None and default.is_scalar and getattr(obj, col.key, None) is None:
            setattr(obj, col.key, default.arg)


@event.listens_for(Session, "before_flush")
def _stamp_and_check(session: Session, flush_context, instances) -> None:
    actor = None
    for obj in list(session.deleted):
        errors = final_state_errors(session, obj, deleting=True)
        if errors:
            raise ReadOnlyRecord(errors)
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, AuditedModel):
            continue
        # Not "in session.dirty": an earlier object's hook may have refreshed this one, taking it
        # out of the dirty set; it must then be skipped, not stamped as an update.
        if obj not in session.new and not session.is_modified(obj, include_collections=False):
            continue
        if obj not in session.new:
            # Before the model's own hooks: a refused change must leave no trace (no timeline entry).
            errors = final_state_errors(session, obj)
            if errors:
                raise ReadOnlyRecord(errors)
        _note_made_final(session, obj)
        if actor is None:
            actor = current_actor_id(session)
        obj.derive_estate(session)
        if obj in session.new:
            _apply_scalar_defaults(obj)
            if obj.created_by_id is None:
                obj.created_by_id = actor
            obj.before_insert(session)
        else:
            obj.before_update(session)
        obj.changed_by_id = actor
        obj.check()
    # Remember what to log: the history is still readable in after_flush, the row ids too.
    pending = session.info.setdefault("desk_changes", [])
    for obj in session.new:
        if isinstance(obj, AuditedModel):
            pending.append(("insert", obj))
    for obj in session.dirty:
        if isinstance(obj, AuditedModel) and session.is_modified(obj, include_collections=False):
            pending.append(("update", obj))
    for obj in session.deleted:
        if isinstance(obj, AuditedModel):
            pending.append(("delete", obj))


@event.listens_for(Session, "after_flush")
def _write_change_log(session: Session, flush_context) -> None:
    pending = session.info.pop("desk_changes", [])
    if not pending:
        return
    actor = current_actor_id(session)
    rows = []
    now = utcnow()
    for action, obj in pending:
        changes = _column_changes(obj, action)
        if action == "update" and not changes:
            continue
        rows.append(
            {
                "table_name": obj.__tablename__,
                "row_id": obj.id,
                "action": action,
                "changed_at": now,
                "user_id": actor,
                "changes": changes,
            }
        )
    if rows:
        session.connection().execute(insert(ChangeLog.__table__), rows)
    for action, obj in pending:
        if action == "insert":
            obj.after_insert(session)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop("desk_changes", None)
    session.info.pop("desk_made_final", None)


@event.listens_for(Session, "after_commit")
def _forget_made_final(session: Session) -> None:
    session.info.pop("desk_made_final", None)


def _note_made_final(session: Session, obj) -> None:
    """Remember a record this transaction creates in, or moves to, a final state."""
    spec: FinalStates | None = getattr(type(obj), "__final__", None)
    if spec is None:
        return
    state = inspect(obj)
    if state.key is None:  # new: created closed (an import, a restore)
        made = getattr(obj, spec.column, None) in spec.states or any(getattr(obj, k, None) is not None for k in spec.filled)
    else:  # moved into a final state by this flush (the guard passed, so it was not final before)
        status = state.attrs[spec.column].history
        made = bool(status.added) and status.added[0] in spec.states and bool(status.deleted)
        made = made or any(
            state.attrs[k].history.added and state.attrs[k].history.added[0] is not None for k in spec.filled
        )
    if made:
        session.info.setdefault("desk_made_final", {})[id(obj)] = obj
