"""Owner and unit archives (业主档案): estates, buildings, units, owners, ownership, residents,
vehicles. DESIGN.md item 1."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from app.i18n import T
from models.base import AuditedModel, BigId
from models.errors import FieldErrors
from models.scope import InUnitsEstate, follow_unit
from models.validators import check_id_number, check_phone, check_plate, check_positive_decimal

UNIT_USES = {
    "residential": T("住宅", "Residential"),
    "commercial": T("商业", "Commercial"),
    "parking": T("车位", "Parking"),
    "storage": T("储藏室", "Storage"),
}
UNIT_STATUSES = {
    "unsold": T("待售", "Unsold"),
    "vacant": T("空置", "Vacant"),
    "occupied": T("自住", "Owner-occupied"),
    "rented": T("出租", "Rented"),
    "renovating": T("装修中", "Renovating"),
}
OWNER_KINDS = {"person": T("个人", "Person"), "company": T("单位", "Company")}
RESIDENT_RELATIONS = {
    "self": T("本人", "Owner self"),
    "family": T("家属", "Family"),
    "tenant": T("租户", "Tenant"),
    "other": T("其他", "Other"),
}

MSG_REQUIRED = T("必填", "Required")
MSG_DATES = T("结束日期不能早于开始日期", "The end date cannot be before the start date")


def _in(column: str, choices: dict) -> str:
    return f"{column} IN ({', '.join(repr(k) for k in choices)})"


def _dates_in_order(errors: dict, start_name: str, start, end_name: str, end) -> None:
    if start and end and end < start:
        errors[end_name] = [str(MSG_DATES)]


def _normalise(errors: dict, obj, field: str, rule) -> None:
    try:
        setattr(obj, field, rule(getattr(obj, field)))
    except ValueError as e:
        errors[field] = [str(e)]


class Estate(AuditedModel):
    __tablename__ = "estate"

    code: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    address: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))
    developer: Mapped[str | None] = mapped_column(String(100))

    buildings = relationship("Building", back_populates="estate", lazy="select")

    def check(self) -> None:
        errors: dict = {}
        _normalise(errors, self, "phone", check_phone)
        if errors:
            raise FieldErrors(errors)


class Building(AuditedModel):
    __tablename__ = "building"

    estate_id: Mapped[int] = mapped_column(ForeignKey("estate.id"), nullable=False)
    code: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str | None] = mapped_column(String(64))
    floors: Mapped[int | None] = mapped_column(Integer)

    estate = relationship("Estate", back_populates="buildings", lazy="select")

    __table_args__ = (
        UniqueConstraint("estate_id", "code", name="uq_building_estate_code"),
        CheckConstraint("floors IS NULL OR floors > 0", name="ck_building_floors"),
    )

    def __str__(self) -> str:
        return self.name or f"{self.code}栋"


class Unit(AuditedModel):
    """A unit (房屋): flat, shop, parking space or storage room, coded like 3-2-1501."""

    __tablename__ = "unit"

    estate_id: Mapped[int] = mapped_column(ForeignKey("estate.id"), nullable=False)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id"), nullable=False)
    code: Mapped[str] = mapped_column(String(32), nullable=False)
    floor: Mapped[int | None] = mapped_column(Integer)
    gross_area: Mapped[Decimal] = mapped_column(Numeric(10, 2), nullable=False)
    use: Mapped[str] = mapped_column(String(16), nullable=False, default="residential")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="vacant")
    handover_date: Mapped[dt.date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)

    estate = relationship("Estate", lazy="select")
    building = relationship("Building", lazy="select")
    ownerships = relationship("Ownership", back_populates="unit", lazy="select")
    owners = relationship("Owner", secondary="ownership", viewonly=True, lazy="select", order_by="Owner.id")
    residents = relationship("Resident", back_populates="unit", lazy="select", viewonly=True)

    __table_args__ = (
        UniqueConstraint("estate_id", "code", name="uq_unit_estate_code"),
        CheckConstraint("gross_area > 0", name="ck_unit_gross_area"),
        CheckConstraint(_in("use", UNIT_USES), name="ck_unit_use"),
        CheckConstraint(_in("status", UNIT_STATUSES), name="ck_unit_status"),
        Index("ix_unit_building", "building_id"),
        Index("ix_unit_status", "status"),
        Index("ix_unit_code", "code", "id"),
    )

    def check(self) -> None:
        errors: dict = {}
        building = self.building
        if building is None and self.building_id:
            building = object_session(self).get(Building, self.building_id)
        if building is None:
            errors["building"] = [str(MSG_REQUIRED)]
        else:
            # The estate follows the building: one less thing for a clerk to get wrong.
            was = self.estate_id
            if building.estate is not None:
                self.estate = building.estate
            else:
                self.estate_id = building.estate_id
            now = building.estate_id if building.estate_id is not None else getattr(building.estate, "id", None)
            if self.id is not None and was is not None and now is not None and now != was:
                follow_unit(object_session(self), self.id, now)  # its residents, bills... go along
        if self.gross_area is None:
            errors["gross_area"] = [str(MSG_REQUIRED)]
        else:
            try:
                # Exact to the square centimetre the deeds give: never rounded silently.
                self.gross_area = check_positive_decimal(self.gross_area, places=2)
            except ValueError as e:
                errors["gross_area"] = [str(e)]
        if self.use not in UNIT_USES:
            errors["use"] = [str(T("用途无效", "Invalid use"))]
        if self.status not in UNIT_STATUSES:
            errors["status"] = [str(T("状态无效", "Invalid status"))]
        if self.code and building is not None and "building" not in errors:
            session = object_session(self)
            clash = session.execute(
                select(Unit.id).where(
                    Unit.estate_id == building.estate_id, Unit.code == self.code, Unit.id != (self.id or 0)
                )
            ).first()
            if clash:
                errors["code"] = [str(T("该小区已有此房号", "This unit code already exists in the estate"))]
        if errors:
            raise FieldErrors(errors)


class Owner(AuditedModel):
    """An owner (业主): a person or a company; may own several units."""

    __tablename__ = "owner"
    # Personal data: masked for roles without the ``personal`` right (app/roles.py).
    __personal__ = {"phone": "phone", "phone2": "phone", "id_number": "id"}

    name: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="person")
    id_number: Mapped[str | None] = mapped_column(String(18))
    phone: Mapped[str] = mapped_column(String(32), nullable=False)
    phone2: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    # The estate where the owner was registered (登记小区): an owner is seen by the staff of that
    # estate and of every estate where they own a unit (views/scope.py).
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estate.id"), index=True)

    estate = relationship("Estate", lazy="select")
    ownerships = relationship("Ownership", back_populates="owner", lazy="select")
    units = relationship("Unit", secondary="ownership", viewonly=True, lazy="select")

    __table_args__ = (
        CheckConstraint(_in("kind", OWNER_KINDS), name="ck_owner_kind"),
        Index("ix_owner_id_number", "id_number", unique=True),
        Index("ix_owner_phone", "phone"),
        Index("ix_owner_name", "name"),
    )

    def check(self) -> None:
        errors: dict = {}
        _normalise(errors, self, "phone", check_phone)
        if not self.phone and "phone" not in errors:
            errors["phone"] = [str(MSG_REQUIRED)]
        _normalise(errors, self, "phone2", check_phone)
        if self.kind == "person":
            _normalise(errors, self, "id_number", check_id_number)
        if self.id_number and "id_number" not in errors:
            clash = (
                object_session(self)
                .execute(select(Owner.id).where(Owner.id_number == self.id_number, Owner.id != (self.id or 0)))
                .first()
            )
            if clash:
                errors["id_number"] = [str(T("已有业主使用此证件号", "Another owner has this ID number"))]
        if errors:
            raise FieldErrors(errors)


class Ownership(InUnitsEstate, AuditedModel):
    """Who owns which unit, with what share, since and until when."""

    __tablename__ = "ownership"

    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owner.id"), nullable=False)
    share: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False, default=Decimal("100"))
    since: Mapped[dt.date | None] = mapped_column(Date)
    until: Mapped[dt.date | None] = mapped_column(Date)

    unit = relationship("Unit", back_populates="ownerships", lazy="select")
    owner = relationship("Owner", back_populates="ownerships", lazy="select")

    __table_args__ = (
        UniqueConstraint("unit_id", "owner_id", "since", name="uq_ownership_unit_owner_since"),
        CheckConstraint("share > 0 AND share <= 100", name="ck_ownership_share"),
        Index("ix_ownership_owner", "owner_id"),
    )

    def check(self) -> None:
        errors: dict = {}
        if self.share is None or not (Decimal("0") < Decimal(self.share) <= Decimal("100")):
            errors["share"] = [str(T("产权份额须在 0 到 100 之间", "The share must be above 0 and at most 100"))]
        _dates_in_order(errors, "since", self.since, "until", self.until)
        if errors:
            raise FieldErrors(errors)

    def __str__(self) -> str:
        return f"{self.unit} · {self.owner}"


class Resident(InUnitsEstate, AuditedModel):
    """Who actually lives in a unit (住户): the owner, family or a tenant."""

    __tablename__ = "resident"
    __personal__ = {"phone": "phone", "id_number": "id"}

    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owner.id"))
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    relation: Mapped[str] = mapped_column(String(16), nullable=False, default="self")
    id_number: Mapped[str | None] = mapped_column(String(18))
    phone: Mapped[str | None] = mapped_column(String(32))
    move_in: Mapped[dt.date | None] = mapped_column(Date)
    move_out: Mapped[dt.date | None] = mapped_column(Date)
    is_current: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    unit = relationship("Unit", back_populates="residents", lazy="select")
    owner = relationship("Owner", lazy="select")

    __table_args__ = (
        CheckConstraint(_in("relation", RESIDENT_RELATIONS), name="ck_resident_relation"),
        Index("ix_resident_unit", "unit_id"),
        Index("ix_resident_phone", "phone"),
        Index("ix_resident_name", "name"),
    )

    def check(self) -> None:
        errors: dict = {}
        _normalise(errors, self, "phone", check_phone)
        _normalise(errors, self, "id_number", check_id_number)
        if self.relation not in RESIDENT_RELATIONS:
            errors["relation"] = [str(T("关系无效", "Invalid relation"))]
        _dates_in_order(errors, "move_in", self.move_in, "move_out", self.move_out)
        if self.move_out and self.move_out <= dt.date.today():
            self.is_current = False
        elif "move_out" not in errors:
            self.is_current = True
        if errors:
            raise FieldErrors(errors)


class Vehicle(InUnitsEstate, AuditedModel):
    __tablename__ = "vehicle"

    plate: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), nullable=False)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owner.id"))
    brand: Mapped[str | None] = mapped_column(String(32))
    color: Mapped[str | None] = mapped_column(String(16))
    parking_space: Mapped[str | None] = mapped_column(String(32))

    unit = relationship("Unit", lazy="select")
    owner = relationship("Owner", lazy="select")

    __table_args__ = (Index("ix_vehicle_unit", "unit_id"),)

    def check(self) -> None:
        errors: dict = {}
        _normalise(errors, self, "plate", check_plate)
        if errors:
            raise FieldErrors(errors)


# ``BigId`` is re-exported for migrations that reference it.
__all__ = [
    "BigId",
    "Building",
    "Estate",
    "Owner",
    "Ownership",
    "Resident",
    "Unit",
    "Vehicle",
]
