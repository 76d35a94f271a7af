"""The base every business table stands on: audit columns, optimistic locking, change history.

- ``created_at`` / ``changed_at`` are timezone-aware and stored in UTC.
- ``created_by`` / ``changed_by`` come from the person logged in, or from the system user when a
  job, an import or a command writes (``acting_as``); never from the client.
- ``version`` is SQLAlchemy's version counter: an UPDATE carries ``WHERE version = <read>``, so two
  people saving the same record cannot overwrite each other silently (the loser gets ``Conflict``).
- every insert, update and delete writes a ``ChangeLog`` row with the old and new values.
- ``check()`` holds a model's cross-field rules; it runs before every flush, whatever the path
  (form, API, import, job), and raises ``FieldErrors``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
from contextvars import ContextVar

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
        return f"{type(self).__name__} {self.id}"


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
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, AuditedModel):
            continue
        if obj in session.dirty and not session.is_modified(obj, include_collections=False):
            continue
        if actor is None:
            actor = current_actor_id(session)
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
