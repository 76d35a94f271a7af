"""FAB's security screens (users, roles, groups) in the user's language.

FAB shows its identifiers as they are: role names (``Admin``, ``Staff``), booleans (``True``),
permissions (``can read on ticket``, ``can this form get on ResetMyPasswordView``). These
subclasses show them by their labels instead: roles by ``ROLE_LABELS``, a permission as "what it is
on: the right" (a resource by its registered label, a menu by its menu label, FAB's own screens by
the names below), in lists, detail pages, form choices and search choices. Nothing stored changes:
the names stay the identifiers the role matrix (app/roles.py) and FAB work with.

The classes keep FAB's names: FAB names permissions, blueprints and endpoints after them
(``UserDBModelView.userinfo``, ``can_userinfo`` on ``UserDBModelView``).
"""

from __future__ import annotations

from flask import current_app
from flask_appbuilder.security import views as fab
from flask_appbuilder.widgets import ListWidget, ShowWidget
from flask_babel import gettext

from app.i18n import T

YES, NO = T("是", "Yes"), T("否", "No")

ROLE_LABELS: dict[str, T] = {
    "Admin": T("系统管理员", "Administrator"),
    "Manager": T("管理处经理", "Manager"),
    "Supervisor": T("主管", "Supervisor"),
    "Staff": T("员工", "Staff"),
    "Committee": T("业主委员会", "Owners' committee"),
    "Public": T("未登录访客", "Public"),
    "System": T("系统（后台任务）", "System (jobs)"),
}

# The rights of the role matrix (app/roles.py) and FAB's own permission names.
PERMISSION_LABELS: dict[str, T] = {
    "can_read": T("查看", "read"),
    "can_write": T("修改", "write"),
    "can_export": T("导出", "export"),
    "can_personal": T("个人信息", "personal data"),
    "can_approve": T("审批", "approve"),
    "menu_access": T("菜单", "menu"),
    "can_list": T("列表", "list"),
    "can_show": T("查看", "show"),
    "can_add": T("新增", "add"),
    "can_edit": T("编辑", "edit"),
    "can_delete": T("删除", "delete"),
    "can_download": T("下载", "download"),
    "can_userinfo": T("我的信息", "my profile"),
    "can_this_form_get": T("打开表单", "open the form"),
    "can_this_form_post": T("提交表单", "send the form"),
    "can_chart": T("图表", "chart"),
    "can_get": T("读取", "get"),
    "can_post": T("新增", "post"),
    "can_put": T("修改", "put"),
    "can_info": T("表单信息", "form info"),
    "resetmypassword": T("修改我的密码", "change my password"),
    "resetpasswords": T("重置密码", "reset passwords"),
    "userinfoedit": T("编辑我的信息", "edit my profile"),
    "copyrole": T("复制角色", "copy roles"),
}

# FAB's own screens and APIs (view menus without a menu entry of their own).
VIEW_LABELS: dict[str, T] = {
    "UserDBModelView": T("用户", "Users"),
    "RoleModelView": T("角色", "Roles"),
    "UserGroupModelView": T("用户组", "Groups"),
    "UserStatsChartView": T("用户统计", "User statistics"),
    "PermissionModelView": T("基本权限", "Base permissions"),
    "ViewMenuModelView": T("视图/菜单", "Views/menus"),
    "PermissionViewModelView": T("视图/菜单权限", "Permissions on views/menus"),
    "ResetPasswordView": T("重置密码", "Reset a password"),
    "ResetMyPasswordView": T("修改我的密码", "Change my password"),
    "UserInfoEditView": T("编辑我的信息", "Edit my profile"),
    "OpenApi": T("接口说明", "OpenAPI"),
    "SwaggerView": T("接口文档", "API documentation"),
    "MenuApi": T("菜单接口", "Menu API"),
    "SecurityApi": T("登录接口", "Security API"),
    "AuthDBView": T("登录", "Sign-in"),
    "LocaleView": T("语言切换", "Language switch"),
    "DeskIndexView": T("首页", "Home page"),
    "UtilView": T("返回上一页", "Back"),
}


def role_label(role) -> str:
    name = getattr(role, "name", role)
    label = ROLE_LABELS.get(name)
    return str(label) if label is not None else str(name)


def roles_text(roles) -> str:
    return "、".join(role_label(r) for r in roles or ())


def user_label(user) -> str:
    return f"{user.first_name or ''}{user.last_name or ''}".strip() or user.username


def users_text(users) -> str:
    return "、".join(user_label(u) for u in users or ())


def group_label(group) -> str:
    return str(group.label or group.name)


def groups_text(groups) -> str:
    return "、".join(group_label(g) for g in groups or ())


def yes_no(value) -> str:
    return str(YES if value else NO)


def plain(value) -> str:
    """A value as a person reads it: nothing for None, times to the minute."""
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    if hasattr(value, "username"):
        return user_label(value)
    return str(value)


def view_menu_label(name: str) -> str:
    from views.registry import CATEGORIES, REGISTRY

    if name in REGISTRY:
        return str(REGISTRY[name].label)
    if name in CATEGORIES:
        return str(CATEGORIES[name][0])
    if name in VIEW_LABELS:
        return str(VIEW_LABELS[name])
    item = current_app.appbuilder.menu.find(name)
    if item is not None and item.label:
        return str(item.label)
    return gettext(name)


def permission_name_label(name: str) -> str:
    label = PERMISSION_LABELS.get(name)
    return str(label) if label is not None else name


def permission_label(pv) -> str:
    """One permission on a view or menu: "服务请求：查看"."""
    return f"{view_menu_label(pv.view_menu.name)}：{permission_name_label(pv.permission.name)}"


def permissions_text(pvs) -> str:
    """A role's permissions grouped by what they are on: "服务请求：查看、修改；小区：查看"."""
    grouped: dict[str, list[str]] = {}
    for pv in pvs or ():
        grouped.setdefault(view_menu_label(pv.view_menu.name), []).append(permission_name_label(pv.permission.name))
    return "；".join(f"{view}：{'、'.join(perms)}" for view, perms in grouped.items())


def _relabel_choices(view, column: str, get_label) -> None:
    """The choices of a relation field (forms and search) read as labels, not identifiers."""
    for form in (view.add_form, view.edit_form, view.search_form):
        unbound = getattr(form, column, None) if form is not None else None
        if unbound is not None and hasattr(unbound, "kwargs"):
            unbound.kwargs["get_label"] = get_label


class UserDBModelView(fab.UserDBModelView):
    formatters_columns = {
        "active": yes_no,
        "roles": roles_text,
        "groups": groups_text,
        **{c: plain for c in ("email", "last_login", "created_on", "created_by", "changed_on", "changed_by")},
    }

    def _init_forms(self):
        super()._init_forms()
        _relabel_choices(self, "roles", role_label)


class RoleModelView(fab.RoleModelView):
    # FAB's role widgets print the values as they are; the plain ones apply the formatters.
    list_widget = ListWidget
    show_widget = ShowWidget
    label_columns = {
        **fab.RoleModelView.label_columns,
        "user": T("用户", "Users"),
        "groups": T("用户组", "Groups"),
    }
    formatters_columns = {"name": role_label, "permissions": permissions_text}

    def _init_forms(self):
        super()._init_forms()
        _relabel_choices(self, "permissions", permission_label)
        _relabel_choices(self, "user", user_label)
        _relabel_choices(self, "groups", group_label)


class UserGroupModelView(fab.UserGroupModelView):
    label_columns = {
        "name": T("名称", "Name"),
        "label": T("显示名", "Label"),
        "description": T("说明", "Description"),
        "users": T("用户", "Users"),
        "roles": T("角色", "Roles"),
    }
    formatters_columns = {"roles": roles_text, "users": users_text}

    def _init_forms(self):
        super()._init_forms()
        _relabel_choices(self, "roles", role_label)
        _relabel_choices(self, "users", user_label)


class PermissionModelView(fab.PermissionModelView):
    formatters_columns = {"name": permission_name_label}


class ViewMenuModelView(fab.ViewMenuModelView):
    formatters_columns = {"name": view_menu_label}


class PermissionViewModelView(fab.PermissionViewModelView):
    formatters_columns = {
        "permission": lambda p: permission_name_label(p.name),
        "view_menu": lambda v: view_menu_label(v.name),
    }

    label_columns = {**fab.PermissionViewModelView.label_columns, "role": T("角色", "Roles")}

    def _init_forms(self):
        super()._init_forms()
        _relabel_choices(self, "permission", lambda p: permission_name_label(p.name))
        _relabel_choices(self, "view_menu", lambda v: view_menu_label(v.name))
        _relabel_choices(self, "role", role_label)

