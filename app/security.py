"""The security manager: permissions come from the role matrix (app/roles.py), in memory.

FAB checks permissions against its tables on every request (several queries). The product's roles
are data in code, so for those roles the check is a set lookup; roles an Admin creates in the
screens are still checked against the tables. Users are loaded with their roles in one statement.
"""

from __future__ import annotations

import secrets

from flask import current_app
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import Group, User
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app import roles as R

PERMISSION_PREFIX = "can_"


def resource_permissions(resource: str, role: str) -> set[tuple[str, str]]:
    """The FAB (permission, view menu) pairs a role holds on one resource."""
    return {(PERMISSION_PREFIX + right, resource) for right in R.rights_of(role, resource)}


class DeskSecurityManager(SecurityManager):
    _matrix_cache: dict[str, frozenset[tuple[str, str]]] | None = None

    # --- the matrix in memory ------------------------------------------------------------
    def matrix_permissions(self) -> dict[str, frozenset[tuple[str, str]]]:
        if self._matrix_cache is None:
            from views.registry import REGISTRY, menu_categories_for

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

    # --- users in one statement ----------------------------------------------------------
    def load_user(self, pk):
        stmt = (
            select(User)
            .where(User.id == int(pk))
            .options(joinedload(User.roles), joinedload(User.groups).joinedload(Group.roles))
        )
        user = self.session.execute(stmt).unique().scalar_one_or_none()
        if user and user.is_active:
            return user
        return None

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
