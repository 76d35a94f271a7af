"""Screens and APIs of the owner and unit archives: declared once, built by the registry."""

from __future__ import annotations

from app.i18n import T
from models.archives import (
    OWNER_KINDS,
    RESIDENT_RELATIONS,
    UNIT_STATUSES,
    UNIT_USES,
    Building,
    Estate,
    Owner,
    Ownership,
    Resident,
    Unit,
    Vehicle,
)
from models.imports import UNIT_IMPORT
from views.collect import UNIT_COLLECT, CollectUnitMixin
from views.registry import Lookup, Related, Resource, register

# A unit's and an owner's records, on their detail pages: everything the desk holds about them
# one click away (issue 12: related records link to each other).
BILL_COLUMNS = ["period", "item.name", "amount", "paid_amount", "due_date", "status"]
UNIT_RECORDS = [
    Related(T("求助", "Requests"), "ticket", "unit_id", ["number", "kind", "status", "received_at", "assignee.username"],
            name="tickets"),
    Related(T("账单", "Bills"), "bill", "unit_id", BILL_COLUMNS, name="bills"),
    Related(T("装修", "Renovations"), "renovation", "unit_id", ["number", "status", "planned_start", "planned_end"],
            name="renovations"),
    Related(T("服务单", "Service orders"), "service_order", "unit_id", ["number", "item.name", "status", "amount"],
            name="service-orders"),
]
OWNERSHIP_ROWS = {
    "unit": T("房屋", "Unit"),
    "owner": T("业主", "Owner"),
    "share": T("产权份额(%)", "Share (%)"),
    "since": T("起始日期", "Since"),
    "until": T("截止日期", "Until"),
}


def _ownership_rows(record, side: str) -> list[dict]:
    """The owners of a unit (side "unit") or the units of an owner (side "owner"), each row a link
    to the other side's page, within the user's estates."""
    from flask import url_for
    from sqlalchemy import select

    from app.extensions import db
    from views.base import rights
    from views.registry import REGISTRY
    from views.scope import clause_for

    stmt = (
        select(Ownership, Unit.code, Owner.name)
        .join(Unit, Unit.id == Ownership.unit_id)
        .join(Owner, Owner.id == Ownership.owner_id)
        .where((Ownership.unit_id if side == "unit" else Ownership.owner_id) == record.id)
        .order_by(Ownership.since.desc().nulls_last(), Ownership.id)
        .limit(50)
    )
    scope = clause_for(REGISTRY["unit"])
    if scope is not None:
        stmt = stmt.where(Unit.id.in_(select(Unit.id).where(scope)))
    other = "owner" if side == "unit" else "unit"
    may = "read" in rights(other)
    rows = []
    for own, code, name in db.session.execute(stmt).all():
        pk = own.owner_id if other == "owner" else own.unit_id
        rows.append(
            {
                "unit": code, "owner": name, "share": own.share, "since": own.since or "", "until": own.until or "",
                "_url": url_for(f"{other.title()}View.show", pk=pk) if may else None,
            }
        )
    return rows


UNIT_LOOKUP = Lookup("unit", search=("code",), label=lambda u: f"{u.code}")
OWNER_LOOKUP = Lookup("owner", search=("name",), label=lambda o: o.name)

register(
    Resource(
        name="estate",
        model=Estate,
        label=T("小区", "Estates"),
        category="archives",
        estate="id",
        icon="fa-map",
        list_columns=["code", "name", "address", "phone", "developer"],
        edit_columns=["code", "name", "address", "phone", "developer"],
        search_columns=["code", "name"],
        order=("code", "asc"),
        labels={
            "code": T("小区编码", "Estate code"),
            "name": T("小区名称", "Estate name"),
            "address": T("地址", "Address"),
            "phone": T("管理处电话", "Office phone"),
            "developer": T("开发单位", "Developer"),
        },
    )
)

register(
    Resource(
        name="building",
        model=Building,
        label=T("楼栋", "Buildings"),
        category="archives",
        estate="estate_id",
        icon="fa-building-o",
        list_columns=["estate.name", "code", "name", "floors"],
        edit_columns=["estate", "code", "name", "floors"],
        search_columns=["estate", "code", "name"],
        order=("code", "asc"),
        labels={
            "estate": T("小区", "Estate"),
            "estate.name": T("小区", "Estate"),
            "code": T("楼栋号", "Building no."),
            "name": T("楼栋名称", "Building name"),
            "floors": T("层数", "Floors"),
        },
    )
)

UNIT_LABELS = {
    "estate": T("小区", "Estate"),
    "estate.name": T("小区", "Estate"),
    "building": T("楼栋", "Building"),
    "building.code": T("楼栋", "Building"),
    "code": T("房号", "Unit code"),
    "floor": T("楼层", "Floor"),
    "gross_area": T("建筑面积(㎡)", "Gross area (m²)"),
    "use": T("用途", "Use"),
    "status": T("状态", "Status"),
    "handover_date": T("交房日期", "Handover date"),
    "owners": T("业主", "Owners"),
}

register(
    Resource(
        name="unit",
        model=Unit,
        label=T("房屋", "Units"),
        category="archives",
        estate="estate_id",
        icon="fa-home",
        list_columns=["code", "building.code", "floor", "gross_area", "use", "status"],
        edit_columns=["building", "code", "floor", "gross_area", "use", "status", "handover_date", "note"],
        show_columns=[
            "estate.name",
            "building.code",
            "code",
            "floor",
            "gross_area",
            "use",
            "status",
            "handover_date",
            "owners",
            "note",
            "created_at",
            "created_by.username",
            "changed_at",
            "changed_by.username",
        ],
        # No "building" filter: it would render every building of every estate into a dropdown;
        # unit codes start with the building number (3-2-1501), so "starts with 3-" does it.
        search_columns=["code", "use", "status", "floor"],
        order=("code", "asc"),
        labels=UNIT_LABELS,
        choices={"use": UNIT_USES, "status": UNIT_STATUSES},
        descriptions={"code": T("如 3-2-1501（楼栋-单元-房号）", "e.g. 3-2-1501 (building-entrance-flat)")},
        importer=UNIT_IMPORT,
        # 收款: the unit's open bills ticked on one form, the receipt printed (views/collect.py).
        view_mixins=(CollectUnitMixin,),
        links=[UNIT_COLLECT],
        related=[
            Related(T("业主", "Owners"), rows=lambda u: _ownership_rows(u, "unit"), columns=list(OWNERSHIP_ROWS),
                    labels=OWNERSHIP_ROWS, name="owners"),
            Related(T("住户", "Residents"), "resident", "unit_id", ["name", "relation", "phone", "move_in", "is_current"],
                    name="residents"),
            *UNIT_RECORDS,
            Related(
                T("收款记录", "Payments"),
                resource="payment",
                via="unit_id",
                columns=["receipt_no", "paid_at", "amount", "method", "status"],
                name="payments",
            ),
        ],
    )
)

OWNER_LABELS = {
    "name": T("姓名/单位名称", "Name"),
    "kind": T("类型", "Kind"),
    "estate": T("登记小区", "Registered at"),
    "estate.name": T("登记小区", "Registered at"),
    "id_number": T("身份证号", "ID number"),
    "phone": T("联系电话", "Phone"),
    "phone2": T("备用电话", "Second phone"),
    "email": T("电子邮箱", "Email"),
    "address": T("通讯地址", "Postal address"),
    "units": T("房屋", "Units"),
}

register(
    Resource(
        name="owner",
        model=Owner,
        label=T("业主", "Owners"),
        category="archives",
        estate="estate_id|units.estate_id",
        icon="fa-user",
        list_columns=["name", "kind", "phone", "id_number"],
        edit_columns=["name", "kind", "estate", "id_number", "phone", "phone2", "email", "address", "note"],
        show_columns=[
            "name",
            "kind",
            "estate.name",
            "id_number",
            "phone",
            "phone2",
            "email",
            "address",
            "units",
            "note",
            "created_at",
            "created_by.username",
            "changed_at",
            "changed_by.username",
        ],
        search_columns=["name", "phone", "id_number", "kind"],
        labels=OWNER_LABELS,
        choices={"kind": OWNER_KINDS},
        related=[
            Related(T("房屋", "Units"), rows=lambda o: _ownership_rows(o, "owner"), columns=list(OWNERSHIP_ROWS),
                    labels=OWNERSHIP_ROWS, name="units"),
            *[Related(r.label, r.resource, "owner_id", r.columns, name=r.name) for r in UNIT_RECORDS if r.resource != "bill"],
            Related(T("账单", "Bills"), "bill", "owner_id", BILL_COLUMNS, name="bills"),
        ],
    )
)

register(
    Resource(
        name="ownership",
        model=Ownership,
        label=T("产权登记", "Ownership"),
        category="archives",
        estate="estate_id",
        icon="fa-key",
        list_columns=["unit.code", "owner.name", "share", "since", "until"],
        edit_columns=["unit", "owner", "share", "since", "until"],
        search_columns=["since", "until"],
        labels={
            "unit": T("房屋", "Unit"),
            "unit.code": T("房号", "Unit code"),
            "owner": T("业主", "Owner"),
            "owner.name": T("业主", "Owner"),
            "share": T("产权份额(%)", "Share (%)"),
            "since": T("起始日期", "Since"),
            "until": T("截止日期", "Until"),
        },
        lookups=[UNIT_LOOKUP, OWNER_LOOKUP],
    )
)

register(
    Resource(
        name="resident",
        model=Resident,
        label=T("住户", "Residents"),
        category="archives",
        estate="estate_id",
        icon="fa-users",
        list_columns=["unit.code", "name", "relation", "phone", "move_in", "move_out", "is_current"],
        edit_columns=["unit", "owner", "name", "relation", "id_number", "phone", "move_in", "move_out"],
        search_columns=["name", "phone", "relation", "is_current", "move_in"],
        labels={
            "unit": T("房屋", "Unit"),
            "unit.code": T("房号", "Unit code"),
            "owner": T("所属业主", "Owner"),
            "owner.name": T("所属业主", "Owner"),
            "name": T("姓名", "Name"),
            "relation": T("与业主关系", "Relation to owner"),
            "id_number": T("身份证号", "ID number"),
            "phone": T("联系电话", "Phone"),
            "move_in": T("入住日期", "Move-in"),
            "move_out": T("迁出日期", "Move-out"),
            "is_current": T("在住", "Living there"),
        },
        choices={"relation": RESIDENT_RELATIONS},
        lookups=[UNIT_LOOKUP, OWNER_LOOKUP],
    )
)

register(
    Resource(
        name="vehicle",
        model=Vehicle,
        label=T("车辆", "Vehicles"),
        category="archives",
        estate="estate_id",
        icon="fa-car",
        list_columns=["plate", "unit.code", "brand", "color", "parking_space"],
        edit_columns=["plate", "unit", "owner", "brand", "color", "parking_space"],
        search_columns=["plate", "parking_space"],
        order=("plate", "asc"),
        labels={
            "plate": T("车牌号", "Plate"),
            "unit": T("房屋", "Unit"),
            "unit.code": T("房号", "Unit code"),
            "owner": T("车主", "Owner"),
            "owner.name": T("车主", "Owner"),
            "brand": T("品牌", "Brand"),
            "color": T("颜色", "Colour"),
            "parking_space": T("车位", "Parking space"),
        },
        lookups=[UNIT_LOOKUP, OWNER_LOOKUP],
    )
)
