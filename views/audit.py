"""The change history (every write to a business table), read-only, for Managers; which estates
each person works for, for Admin."""

from __future__ import annotations

from app.i18n import T
from app.security import user_label
from models.base import ChangeLog
from models.scope import UserEstate
from views.registry import Lookup, Resource, register
from views.scope import COMPANY_ONLY

register(
    Resource(
        name="change_log",
        model=ChangeLog,
        label=T("变更记录", "Change history"),
        category="audit",
        estate=COMPANY_ONLY,
        icon="fa-history",
        list_columns=["changed_at", "table_name", "row_id", "action", "user.username", "changes"],
        search_columns=["table_name", "row_id", "action", "changed_at"],
        order=("id", "desc"),
        writable=False,
        choices={
            "action": {
                "insert": T("新增", "Insert"),
                "update": T("修改", "Update"),
                "delete": T("删除", "Delete"),
            }
        },
        labels={
            "changed_at": T("时间", "When"),
            "table_name": T("表", "Table"),
            "row_id": T("记录编号", "Record ID"),
            "action": T("操作", "Action"),
            "user.username": T("操作人", "By"),
            "changes": T("变更内容（旧值 → 新值）", "Changes (old -> new)"),
        },
    )
)


def _assignable_people():
    """Any active person may be given estates (the Committee too: it reads one estate), never the
    system user, who acts for the company."""
    from flask import current_app
    from flask_appbuilder.security.sqla.models import User

    return User.active.is_(True) & (User.username != current_app.config.get("SYSTEM_USERNAME", "system"))


# Which estates each person works for (issue 11; views/scope.py): Admin's to give.
register(
    Resource(
        name="user_estate",
        model=UserEstate,
        label=T("人员负责小区", "Staff estates"),
        category="audit",
        estate=COMPANY_ONLY,
        icon="fa-sitemap",
        list_columns=["user.username", "user.first_name", "user.last_name", "estate.name"],
        edit_columns=["user", "estate"],
        search_columns=["estate"],
        order=("id", "desc"),
        labels={
            "user": T("人员", "Person"),
            "user.username": T("登录名", "Login"),
            "user.first_name": T("姓", "Family name"),
            "user.last_name": T("名", "Given name"),
            "estate": T("负责小区", "Estate"),
            "estate.name": T("负责小区（空：全部小区）", "Estate (empty: every estate)"),
        },
        descriptions={
            "estate": T(
                "不选：公司层面，负责全部小区（公司经理）；一人可负责多个小区，每个小区一行",
                "None: company level, every estate (company managers); one row per estate",
            )
        },
        lookups=[Lookup("user", search=("username", "first_name", "last_name"), label=user_label, choosable=_assignable_people)],
    )
)
