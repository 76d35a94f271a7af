"""The change history (every write to a business table), read-only, for Managers."""

from __future__ import annotations

from app.i18n import T
from models.base import ChangeLog
from views.registry import Resource, register
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
