"""The security manager: permissions come from the role matrix (app/roles.py), in memory.

FAB checks permissions against its tables on every request (several queries). The product's roles
are data in code, so for those roles the check is a set lookup; roles an Admin creates in the
screens are still checked against the tables. Users are loaded with their roles in one statement.
"""

from __future__ import annotations

import datetime as dt
import secrets

from flask import current_app, g, session
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import Group, User
from flask_login import user_logged_in, user_logged_out
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import joinedload

from app import roles as R
from app import security_views as SV
from models.base import utcnow
from models.scope import UserEstate  # noqa: F401  (User.desk_estates is defined there)
from models.security import LoginSession, credential_stamp, new_session_id

# The key of the server-side session id in Flask's (signed) session cookie.
SESSION_ID_KEY = "_desk_sid"

PERMISSION_PREFIX = "can_"


def resource_permissions(resource: str, role: str) -> set[tuple[str, str]]:
    """The FAB (permission, view menu) pairs a role holds on one resource."""
    return {(PERMISSION_PREFIX + right, resource) for right in R.rights_of(role, resource)}


class DeskSecurityManager(SecurityManager):
    _matrix_cache: dict[str, frozenset[tuple[str, str]]] | None = None
    # FAB's security screens showing roles and permissions by their labels (app/security_views.py);
    # no user statistics chart: FAB's loads Google's chart library from the internet.
    userdbmodelview = SV.UserDBModelView
    rolemodelview = SV.RoleModelView
    groupmodelview = SV.UserGroupModelView
    permissionmodelview = SV.PermissionModelView
    viewmenumodelview = SV.ViewMenuModelView
    permissionviewmodelview = SV.PermissionViewModelView
    userstatschartview = None

    # --- the matrix in memory ------------------------------------------------------------
    def matrix_permissions(self) -> dict[str, frozenset[tuple[str, str]]]:
        if self._matrix_cache is None:
            from views.registry import REGISTRY, menu_categories_for, menu_entries_for

            cache: dict[str, frozenset[tuple[str, str]]] = {}
            for role in R.ROLES:
                pairs: set[tuple[str, str]] = set(R.SELF_SERVICE)
                for name in REGISTRY:
                    rights = R.rights_of(role, name)
                    pairs |= {(PERMISSION_PREFIX + r, name) for r in rights}
                    if "read" in rights:
                        pairs.add(("menu_access", name))
                        for cat in menu_categories_for(name):
                            pairs.add(("menu_access", cat))
                    # Reports and registers with menu entries of their own.
                    for entry, cat in menu_entries_for(name, lambda res, role=role: R.rights_of(role, res)):
                        pairs |= {("menu_access", entry), ("menu_access", cat)}
                cache[role] = frozenset(pairs)
            cache[R.PUBLIC_ROLE] = frozenset()
            cache[R.SYSTEM_ROLE] = frozenset()
            self._matrix_cache = cache
        return self._matrix_cache

    def _role_allows(self, role, permission_name: str, view_name: str) -> bool | None:
        """True/False for matrix roles, None for roles kept only in the tables."""
        if role.name == R.ADMIN_ROLE:
            return True
        perms = self.matrix_permissions().get(role.name)
        if perms is None:
            return None
        return (permission_name, view_name) in perms

    def _has_view_access(self, user, permission_name: str, view_name: str) -> bool:
        roles = self.get_user_roles(user)
        db_role_ids = []
        for role in roles:
            allowed = self._role_allows(role, permission_name, view_name)
            if allowed:
                return True
            if allowed is None:
                db_role_ids.append(role.id)
        return bool(db_role_ids) and self.exist_permission_on_roles(view_name, permission_name, db_role_ids)

    def is_item_public(self, permission_name, view_name):
        # The Public role is part of the matrix and holds nothing; no query needed.
        return False

    def get_user_menu_access(self, menu_names=None):
        from flask import g
        from flask_login import current_user

        if not current_user.is_authenticated:
            return set()
        user = g.user
        result = set()
        for name in menu_names or []:
            if self._has_view_access(user, "menu_access", name):
                result.add(name)
        return result

    def user_rights(self, resource: str, user=None) -> set[str]:
        """The rights of the current (or given) user on a resource: read/write/export/personal."""
        from flask import g

        user = user if user is not None else getattr(g, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            return set()
        rights = set()
        for right in R.RIGHTS.values():
            if self._has_view_access(user, PERMISSION_PREFIX + right, resource):
                rights.add(right)
        return rights

    # --- users in one statement, sessions checked on the server ---------------------------
    def _user_query(self, pk):
        return (
            select(User)
            .where(User.id == int(pk))
            .options(
                joinedload(User.roles),
                joinedload(User.groups).joinedload(Group.roles),
                # The estates the user works for (models/scope.py), in the same statement.
                joinedload(User.desk_estates),
            )
        )

    def load_user(self, pk):
        """The user of a session cookie: only while its server-side session exists (signing out,
        a password change or disabling the user deletes it; models/security.py)."""
        sid = session.get(SESSION_ID_KEY)
        if not isinstance(sid, str) or not sid:
            return None
        stmt = self._user_query(pk).where(
            exists().where(
                LoginSession.sid == sid,
                LoginSession.user_id == User.id,
                LoginSession.created_at > session_cutoff(),
            )
        )
        user = self.session.execute(stmt).unique().scalar_one_or_none()
        if user and user.is_active:
            return user
        return None

    def load_user_jwt(self, _jwt_header, jwt_data):
        """The user of an API token: active, and with the password the token was issued under."""
        try:
            user = self.session.execute(self._user_query(jwt_data["sub"])).unique().scalar_one_or_none()
        except (KeyError, TypeError, ValueError):
            return None
        if user and user.is_active and jwt_data.get("cred") == credential_stamp(user):
            g.user = user
            return user
        return None

    def create_jwt_manager(self, app):
        jwt_manager = super().create_jwt_manager(app)

        @jwt_manager.additional_claims_loader
        def _credential_claim(identity):
            user = self.get_user_by_id(int(identity))
            return {"cred": credential_stamp(user)} if user is not None else {}

        return jwt_manager

    def create_login_manager(self, app):
        lm = super().create_login_manager(app)
        # FAB passes ``current_app`` (a proxy); the signals are sent by the app object itself.
        real_app = app._get_current_object() if hasattr(app, "_get_current_object") else app
        user_logged_in.connect(_open_server_session, real_app)
        user_logged_out.connect(_close_server_session, real_app)
        return lm

    # --- syncing the matrix to FAB's tables ----------------------------------------------
    def sync_roles(self) -> dict[str, int]:
        """Make FAB's role tables say exactly what the matrix says. Returns pairs per role."""
        from views.registry import REGISTRY

        missing = sorted(set(REGISTRY) - set(R.MATRIX))
        if missing:
            raise RuntimeError(f"resources without a row in app/roles.py MATRIX: {missing}")
        self._matrix_cache = None
        counts = {}
        all_pvms = set()
        for role_name, pairs in self.matrix_permissions().items():
            role = self.find_role(role_name) or self.add_role(role_name)
            pvms = []
            for perm, view in sorted(pairs):
                pvm = self.add_permission_view_menu(perm, view)
                if pvm is not None:
                    pvms.append(pvm)
                    all_pvms.add(pvm)
            role.permissions = pvms
            counts[role_name] = len(pvms)
        admin = self.find_role(R.ADMIN_ROLE) or self.add_role(R.ADMIN_ROLE)
        admin.permissions = list(self.session.query(self.permissionview_model).all())
        counts[R.ADMIN_ROLE] = len(admin.permissions)
        self.session.commit()
        self._ensure_system_user()
        return counts

    def _ensure_system_user(self) -> None:
        name = current_app.config.get("SYSTEM_USERNAME", "system")
        if self.find_user(username=name) is None:
            role = self.find_role(R.SYSTEM_ROLE)
            user = self.add_user(
                username=name,
                first_name="系统",
                last_name="任务",
                email=f"{name}@localhost",
                role=role,
                password=secrets.token_urlsafe(32) + "Aa1!",
            )
            user.active = False  # it writes on behalf of jobs; it never logs in
            self.session.commit()


def session_cutoff() -> dt.datetime:
    """Sessions older than LOGIN_SESSION_HOURS end: a clerk signs in again every working day."""
    return utcnow() - dt.timedelta(hours=current_app.config.get("LOGIN_SESSION_HOURS", 16))


def _open_server_session(app, user, **kwargs) -> None:
    from app.extensions import db

    sid = new_session_id()
    # Expired sessions of everyone go as someone signs in: the table stays the size of the office.
    db.session.execute(delete(LoginSession).where(LoginSession.created_at <= session_cutoff()))
    db.session.add(LoginSession(sid=sid, user_id=user.id))
    db.session.commit()
    session[SESSION_ID_KEY] = sid


def _close_server_session(app, user, **kwargs) -> None:
    from app.extensions import db

    sid = session.pop(SESSION_ID_KEY, None)
    if sid:
        db.session.execute(delete(LoginSession).where(LoginSession.sid == sid))
        db.session.commit()


def working_user_clause():
    """SQL condition: an active user of a working role (app/roles.py WORKING_ROLES), never the
    Committee, an administrator's account or the system user."""
    from flask_appbuilder.security.sqla.models import Role

    return User.active.is_(True) & User.roles.any(Role.name.in_(R.WORKING_ROLES))


def person_name(user) -> str:
    """A person on screens, forms and lists: the name (张三), the login only when none is recorded."""
    if user is None:
        return ""
    return f"{user.first_name or ''}{user.last_name or ''}".strip() or user.username


def person_at(item, column: str):
    """For a column ``<relation>.username`` leading to a person: that person's name; else None."""
    from flask_appbuilder.security.sqla.models import User

    if not column.endswith(".username"):
        return None
    person = item
    for part in column.split(".")[:-1]:
        person = getattr(person, part, None)
        if person is None:
            return ""
    return person_name(person) if isinstance(person, User) else None


def user_label(user) -> str:
    """How a person is named on screens and in pickers: the name, then the login."""
    name = f"{user.first_name or ''}{user.last_name or ''}".strip()
    return f"{name} ({user.username})" if name else user.username


def working_people() -> list:
    """The working staff as a form offers them (id and label), for the actions' person inputs."""
    from types import SimpleNamespace

    from app.extensions import db
    from views.lookups import choosable_clause

    users = db.session.execute(select(User).where(choosable_clause(User)).order_by(User.username).limit(500)).scalars()
    return [SimpleNamespace(id=u.id, label=user_label(u)) for u in users]
