"""Sign-in sessions kept on the server, so that signing out really ends a session.

Flask's session is a signed cookie: without a record on the server, a cookie copied before
``/logout/`` would still open every screen until it expires. Each form sign-in writes a row here
and puts its random id in the cookie; every request checks the row exists (in the same statement
that loads the user). Signing out deletes the row; a password change or disabling the user deletes
all of the user's rows (``_end_sessions_on_credential_change``), whatever screen or command did it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from flask_appbuilder import Model
from flask_appbuilder.security.sqla.models import User
from sqlalchemy import ForeignKey, Integer, String, delete, event, inspect
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import UTCDateTime, utcnow


class LoginSession(Model):
    __tablename__ = "login_session"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    def __str__(self) -> str:
        return f"session of user {self.user_id}"


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def credential_stamp(user) -> str:
    """A short digest of the user's password hash: API tokens carry it, so a password change ends
    them too (the hash itself never leaves the server)."""
    return hashlib.sha256((user.password or "").encode()).hexdigest()[:16]


@event.listens_for(Session, "before_flush")
def _end_sessions_on_credential_change(session: Session, flush_context, instances) -> None:
    for obj in session.dirty:
        if not isinstance(obj, User):
            continue
        state = inspect(obj)
        if state.attrs.password.history.has_changes() or state.attrs.active.history.has_changes():
            session.execute(delete(LoginSession).where(LoginSession.user_id == obj.id))
