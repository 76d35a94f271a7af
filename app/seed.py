"""Demo data for the quick start and realistic data at any size for benchmarks.

Both write through Core ``INSERT``s in batches (ORM unit-of-work is ~4x slower, STACK-NOTES.md),
stamped with the system user; the change log records generated data as one entry per batch
rather than one per row.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import string
from decimal import Decimal

from sqlalchemy import func, insert, select

from app.extensions import db
from models.archives import Building, Estate, Owner, Ownership, Resident, Unit, Vehicle
from models.base import ChangeLog, system_user_id, utcnow
from models.validators import id_check_digit

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏辉建华建国俊峰宇浩然子涵欣怡梓轩一诺雨桐思远嘉怡志强海燕晓东"
REGIONS = ("440305", "440304", "110105", "310115", "320102", "330106", "510107", "420106")
PREFIXES = (
    "138",
    "139",
    "135",
    "136",
    "137",
    "150",
    "151",
    "152",
    "158",
    "159",
    "186",
    "187",
    "188",
    "133",
    "153",
    "180",
    "189",
    "177",
    "199",
)
BATCH = 5000


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def mobile(rng: random.Random) -> str:
    return rng.choice(PREFIXES) + "".join(rng.choice(string.digits) for _ in range(8))


def unique_id_number(n: int) -> str:
    """A valid 18-digit ID number, distinct for every n below 160 million."""
    seq, rest = n % 1000, n // 1000
    birth = dt.date(1950, 1, 1) + dt.timedelta(days=(rest * 7919) % 20000)
    region = REGIONS[(rest // 20000) % len(REGIONS)]
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_digit(first17)


def demo_password(rng: random.SystemRandom | None = None) -> str:
    rng = rng or random.SystemRandom()
    upper = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2))
    lower = "".join(rng.choice("abcdefghijkmnpqrstuvwxyz") for _ in range(5))
    digits = "".join(rng.choice("23456789") for _ in range(3))
    return f"{upper}{lower}-{digits}"


def _stamp(uid: int) -> dict:
    now = utcnow()
    return {"version": 1, "created_at": now, "changed_at": now, "created_by_id": uid, "changed_by_id": uid}


def _insert(model, rows: list[dict]) -> None:
    for i in range(0, len(rows), BATCH):
        db.session.execute(insert(model), rows[i : i + BATCH])


def generate(
    units: int, residents_per_unit: int = 2, seed: int = 7, estate_prefix: str = "E", per_estate: int = 20000
) -> dict:
    """Add ``units`` units with owners (about 1 per unit), ownerships and residents, in estates of
    ``per_estate`` units each."""
    rng = random.Random(seed)
    uid = system_user_id(db.session)
    stamp = _stamp(uid)
    start_estate = (db.session.execute(select(func.count()).select_from(Estate)).scalar() or 0) + 1
    per_building = 2 * 30 * 4  # entrances x floors x flats
    counts = {"estate": 0, "building": 0, "unit": 0, "owner": 0, "ownership": 0, "resident": 0}
    made = 0
    e_no = start_estate
    owner_seq = db.session.execute(select(func.coalesce(func.max(Owner.id), 0))).scalar()
    while made < units:
        n_units = min(per_estate, units - made)
        estate_id = db.session.execute(
            insert(Estate).returning(Estate.id),
            [
                {
                    **stamp,
                    "code": f"{estate_prefix}{e_no:03d}",
                    "name": f"翠湖花园{e_no}期",
                    "address": f"深圳市南山区翠湖路{e_no}号",
                    "phone": "0755-26881234",
                    "developer": "深圳市翠湖置业有限公司",
                }
            ],
        ).scalar_one()
        counts["estate"] += 1
        n_buildings = (n_units + per_building - 1) // per_building
        building_rows = [
            {**stamp, "estate_id": estate_id, "code": str(b + 1), "name": f"{b + 1}栋", "floors": 30}
            for b in range(n_buildings)
        ]
        building_ids = [
            r[0]
            for r in db.session.execute(
                insert(Building).returning(Building.id, sort_by_parameter_order=True), building_rows
            ).all()
        ]
        counts["building"] += n_buildings
        unit_rows = []
        for i in range(n_units):
            b, rest = divmod(i, per_building)
            entrance, rest = divmod(rest, 30 * 4)
            floor, flat = divmod(rest, 4)
            status = rng.choices(("occupied", "rented", "vacant", "unsold"), (70, 15, 10, 5))[0]
            unit_rows.append(
                {
                    **stamp,
                    "estate_id": estate_id,
                    "building_id": building_ids[b],
                    "code": f"{b + 1}-{entrance + 1}-{floor + 1}{flat + 1:02d}",
                    "floor": floor + 1,
                    "gross_area": Decimal(rng.randrange(4500, 18000)) / 100,
                    "use": "residential",
                    "status": status,
                    "handover_date": None if status == "unsold" else dt.date(2019, 6, 30),
                }
            )
        unit_ids = []
        for j in range(0, len(unit_rows), BATCH):
            unit_ids += [
                r[0]
                for r in db.session.execute(
                    insert(Unit).returning(Unit.id, sort_by_parameter_order=True), unit_rows[j : j + BATCH]
                ).all()
            ]
        counts["unit"] += n_units
        owner_rows, owner_for_unit = [], []
        for _ in unit_ids:
            if owner_rows and rng.random() < 0.08:
                owner_for_unit.append(len(owner_rows) - 1)  # the previous owner owns this one too
                continue
            owner_rows.append(
                {**stamp, "name": person_name(rng), "kind": "person", "id_number": None, "phone": mobile(rng)}
            )
            owner_for_unit.append(len(owner_rows) - 1)
        for row in owner_rows:
            owner_seq += 1
            if owner_seq % 50:  # a few owners have not given an ID number
                row["id_number"] = unique_id_number(owner_seq)
        owner_ids = []
        for j in range(0, len(owner_rows), BATCH):
            owner_ids += [
                r[0]
                for r in db.session.execute(
                    insert(Owner).returning(Owner.id, sort_by_parameter_order=True), owner_rows[j : j + BATCH]
                ).all()
            ]
        counts["owner"] += len(owner_rows)
        ownership_rows = [
            {
                **stamp,
                "unit_id": unit_id,
                "estate_id": estate_id,
                "owner_id": owner_ids[owner_for_unit[k]],
                "share": Decimal("100"),
                "since": dt.date(2019, 6, 30),
            }
            for k, unit_id in enumerate(unit_ids)
        ]
        _insert(Ownership, ownership_rows)
        counts["ownership"] += len(ownership_rows)
        resident_rows = []
        for k, unit_id in enumerate(unit_ids):
            owner_row = owner_rows[owner_for_unit[k]]
            for r in range(residents_per_unit):
                relation = "self" if r == 0 else rng.choice(("family", "family", "tenant"))
                resident_rows.append(
                    {
                        **stamp,
                        "unit_id": unit_id,
                        "estate_id": estate_id,
                        "owner_id": owner_ids[owner_for_unit[k]],
                        "name": owner_row["name"] if r == 0 else person_name(rng),
                        "relation": relation,
                        "phone": owner_row["phone"] if r == 0 else mobile(rng),
                        "move_in": dt.date(2019, 7, 1) + dt.timedelta(days=rng.randrange(0, 1500)),
                        "is_current": True,
                    }
                )
        _insert(Resident, resident_rows)
        counts["resident"] += len(resident_rows)
        made += n_units
        e_no += 1
        db.session.execute(
            insert(ChangeLog),
            [
                {
                    "table_name": t,
                    "row_id": 0,
                    "action": "insert",
                    "changed_at": utcnow(),
                    "user_id": uid,
                    "changes": {"generated": n},
                }
                for t, n in counts.items()
                if n
            ],
        )
        db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # VACUUM too: index-only scans (deep pages) need the visibility map it builds.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("estate", "building", "unit", "owner", "ownership", "resident"):
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
    return counts


# The demo's two estates (issue 11): (name, units, login suffix).
DEMO_ESTATES = (("翠湖花园", 300, "a"), ("锦绣华庭", 200, "b"))
# Who works where: Admin and a company-level Manager for every estate; one login per role for each
# estate. (username, role, family name, given name, estate suffix or None for every estate)
DEMO_USERS = (
    ("admin", "Admin", "系统", "管理员", None),
    ("manager", "Manager", "公司", "经理", None),
    *[
        (f"{role.lower()}_{suffix}", role, first, last, suffix)
        for _name, _units, suffix in DEMO_ESTATES
        for role, first, last in (
            ("Manager", "管理处", "经理"),
            ("Supervisor", "服务部", "主管"),
            ("Staff", "前台", "客服"),
            ("Committee", "业委会", "委员"),
        )
    ],
)


ALL_ESTATES = None


def ensure_user(sm, username: str, role_name: str, first: str, last: str, password: str, estates=ALL_ESTATES):
    """The user with this role and password, working for ``estates`` (a list of estate ids, or
    ALL_ESTATES for a company-level user)."""
    from models.scope import UserEstate

    user = sm.find_user(username=username)
    role = sm.find_role(role_name)
    if user is None:
        user = sm.add_user(username, first, last, f"{username}@desk.local", role, password=password)
    else:
        sm.reset_password(user.id, password)
    wanted = {None} if estates is ALL_ESTATES else set(estates)
    rows = db.session.execute(select(UserEstate).where(UserEstate.user_id == user.id)).scalars().all()
    for row in rows:
        if row.estate_id not in wanted:
            db.session.delete(row)
    have = {row.estate_id for row in rows}
    db.session.add_all(UserEstate(user_id=user.id, estate_id=e) for e in wanted - have)
    db.session.commit()
    return user


def demo_data(sm) -> list[tuple[str, str, str]]:
    """Two estates (翠湖花园 ~300 units, 锦绣华庭 ~200) with owners and residents, a few vehicles;
    one login per role for each estate, a company-level Manager and Admin. Returns the logins
    (username, password, who: role and estate); passwords are new on every run."""
    has_units = db.session.execute(select(func.count()).select_from(Unit)).scalar()
    if not has_units:
        for seed, (name, units, _suffix) in enumerate(DEMO_ESTATES, start=7):
            generate(units=units, residents_per_unit=2, seed=seed, estate_prefix="DEMO")
            estate = db.session.execute(select(Estate).order_by(Estate.id.desc())).scalars().first()
            estate.name = name
            db.session.commit()
        rng = random.Random(11)
        units = db.session.execute(select(Unit).order_by(Unit.id).limit(12)).scalars().all()
        for n, u in enumerate(units):
            db.session.add(
                Vehicle(
                    plate=f"粤B{rng.randrange(10000, 99999)}",
                    unit_id=u.id,
                    brand="比亚迪",
                    color="白",
                    parking_space=f"B1-{n + 1:03d}",
                )
            )
        db.session.commit()
    service_catalog()
    renovation_fee_items()
    estate_of = {}
    for name, _units, suffix in DEMO_ESTATES:
        estate_of[suffix] = db.session.execute(select(Estate).where(Estate.name == name)).scalars().first()
    logins = []
    for username, role, first, last, suffix in DEMO_USERS:
        password = demo_password()
        estate = estate_of.get(suffix)
        ensure_user(sm, username, role, first, last, password, estates=ALL_ESTATES if suffix is None else [estate.id])
        logins.append((username, password, f"{first}{last} · {estate.name if estate else '全部小区'}"))
    demo_requests(estate_of)
    return logins


def demo_requests(estate_of: dict) -> None:
    """A few help requests in each demo estate, taken by its front desk: an assigned repair, one
    noted late during an outage and already past its reply deadline, an unassigned complaint and
    a consultation; so every role's workbench has something on it at the first sign-in (the
    sweep escalates the late one within a minute)."""
    from flask_appbuilder.security.sqla.models import User

    from models.base import acting_as
    from models.desk import Ticket

    if db.session.execute(select(func.count()).select_from(Ticket)).scalar():
        return
    now = dt.datetime.now(dt.UTC)
    for suffix, estate in estate_of.items():
        if estate is None:
            continue
        staff = db.session.execute(select(User).where(User.username == f"staff_{suffix}")).scalar_one()
        units = db.session.execute(
            select(Unit).where(Unit.estate_id == estate.id).order_by(Unit.id).limit(4)
        ).scalars().all()
        with acting_as(staff.id):
            for ticket in (  # one at a time: a request's number is the next of its day
                [
                    Ticket(kind="repair", channel="phone", priority="normal", unit=units[0], assignee_id=staff.id,
                           description="卫生间水龙头漏水，业主下午在家", responsibility="owner_paid"),
                    Ticket(kind="repair", channel="phone", priority="normal", unit=units[1], assignee_id=staff.id,
                           description="楼道灯不亮", received_at=now - dt.timedelta(hours=2),
                           received_late_reason="停电期间电话记录，来电后补录", responsibility="common_area"),
                    Ticket(kind="complaint", channel="visit", priority="normal", unit=units[2],
                           complaint_about="neighbour", description="楼上装修晚上十点后仍在施工"),
                    Ticket(kind="consultation", channel="phone", priority="normal", unit=units[3],
                           consult_mode="oral", description="咨询车位租赁如何办理"),
                ]
            ):  # fmt: skip
                db.session.add(ticket)
                db.session.flush()
            db.session.commit()


# The paid convenience services the procedure lists (DESIGN.md item 9), with demo prices:
# (code, category, Chinese name, English name, pricing, price, per, materials extra).
DEMO_SERVICES = (
    ("R-DRAIN", "repairs", "疏通下水道", "Clear drains", "fixed", "80", "次", False),
    ("R-TAP", "repairs", "维修水龙头", "Fix taps", "fixed", "30", "次", True),
    ("R-VALVE", "repairs", "维修更换阀门", "Fix or replace valves", "fixed", "50", "个", True),
    ("R-MAILBOX", "repairs", "维修信报箱锁", "Fix mailbox locks", "fixed", "20", "把", True),
    ("R-EMETER", "repairs", "更换电表", "Replace electricity meters", "fixed", "60", "块", True),
    ("R-WMETER", "repairs", "更换水表", "Replace water meters", "fixed", "60", "块", True),
    ("R-DOORLOCK", "repairs", "维修更换门锁", "Fix or replace door locks", "fixed", "50", "把", True),
    ("R-APPLIANCE", "repairs", "家用电器检查", "Check household appliances", "per_hour", "60", "小时", True),
    ("R-AC-INSTALL", "repairs", "空调安装", "Install air conditioners", "quoted", None, "台", True),
    ("R-AC-CHECK", "repairs", "空调检查保养", "Check air conditioners", "per_unit", "80", "台", False),
    ("R-DOORWIN", "repairs", "维修门窗", "Fix doors and windows", "quoted", None, "处", True),
    ("P-CLEAN", "periodic", "室内清洁", "Indoor cleaning", "per_hour", "50", "小时", False),
    ("P-WINDOW", "periodic", "擦窗", "Window washing", "per_unit", "15", "扇", False),
    ("P-PLANTS", "periodic", "室内绿植养护", "Indoor plants care", "fixed", "100", "次", False),
    ("E-MILK", "errands", "代送牛奶", "Milk delivery", "per_unit", "2", "次", False),
    ("E-VALET", "errands", "代客泊车", "Valet parking", "fixed", "10", "次", False),
    ("E-SCHOOL", "errands", "接送孩子上下学", "School pick-up", "fixed", "20", "次", False),
    ("E-MAGAZINE", "errands", "代订报刊杂志", "Magazine subscriptions", "free", None, "次", False),
    ("E-MAIL", "errands", "代取邮件", "Mail pick-up", "free", None, "次", False),
    ("E-TICKET", "errands", "代购车船机票", "Train, ship and air tickets", "fixed", "10", "张", False),
    ("E-UTILITY", "errands", "代缴水电燃气费", "Paying water, power and gas", "free", None, "次", False),
    ("E-TUTOR", "errands", "代请家教", "Finding tutors", "fixed", "50", "次", False),
    ("E-NANNY", "errands", "代请保姆", "Finding nannies", "fixed", "100", "次", False),
    ("E-HOURLY", "errands", "代请钟点工", "Finding hourly helpers", "fixed", "30", "次", False),
    ("C-WASH", "car_wash", "洗车", "Car wash", "fixed", "30", "次", False),
    ("C-WAX", "car_wash", "汽车打蜡", "Car waxing", "fixed", "120", "次", False),
    ("A-ACTIVITY", "recreation", "文体活动", "Recreation activities", "free", None, "次", False),
    ("M-DOCTOR", "medical", "驻区医生出诊", "Resident doctor visit", "fixed", "50", "次", False),
    ("M-FIRSTAID", "medical", "急救药箱", "First-aid kits", "per_unit", "80", "个", False),
)


def service_catalog() -> int:
    """The demo catalog of paid services and its 'service' fee item; codes that exist are
    skipped (a Manager's changes are kept). Returns how many entries were added."""
    from models.fees import FeeItem
    from models.services import ServiceItem

    fee_item = db.session.execute(select(FeeItem).where(FeeItem.code == "SERVICE")).scalar()
    if fee_item is None:
        fee_item = FeeItem(code="SERVICE", name="有偿服务费", kind="service", grace_days=30, due_days=15)
        db.session.add(fee_item)
        db.session.flush()
    have = set(db.session.execute(select(ServiceItem.code)).scalars())
    added = 0
    for code, category, name, name_en, pricing, price, per, materials in DEMO_SERVICES:
        if code in have:
            continue
        db.session.add(
            ServiceItem(
                code=code,
                category=category,
                name=name,
                name_en=name_en,
                pricing=pricing,
                price=Decimal(price) if price is not None else None,
                unit_label=per,
                materials_extra=materials,
                demo_price=pricing != "free",
                active=True,
                fee_item_id=fee_item.id,
            )
        )
        added += 1
    db.session.commit()
    return added


def renovation_fee_items() -> int:
    """The fee items (kind 'renovation') a renovation's deposit and management fee are billed
    under (codes from config RENOVATION_DEPOSIT_ITEM / RENOVATION_FEE_ITEM); existing ones kept."""
    from flask import current_app

    from models.fees import FeeItem

    added = 0
    for key, default, name in (
        ("RENOVATION_DEPOSIT_ITEM", "RENO-DEPOSIT", "装修押金"),
        ("RENOVATION_FEE_ITEM", "RENO-FEE", "装修管理费"),
    ):
        code = current_app.config.get(key, default)
        if db.session.execute(select(FeeItem).where(FeeItem.code == code)).scalar() is None:
            db.session.add(FeeItem(code=code, name=name, kind="renovation", grace_days=30, due_days=7))
            added += 1
    db.session.commit()
    return added


def desk_defaults(today: dt.date | None = None) -> list[str]:
    """What the migration writes at install, for a database built before it: the starting
    response policies (into an empty table only) and this year's and next year's holidays from
    chinese-calendar (missing days only: a Manager's corrections are kept). Returns notes to print
    (a year the package does not know yet)."""
    from zoneinfo import ZoneInfo

    from flask import current_app

    from models.base import acting_as
    from models.calendar import CalendarYearUnknown, load_official_year
    from models.desk import ensure_default_policies

    zone = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
    today = today or dt.datetime.now(zone).date()
    notes = []
    with acting_as(system_user_id(db.session)):
        ensure_default_policies(db.session)
        for year in (today.year, today.year + 1):
            try:
                load_official_year(db.session, year)
            except CalendarYearUnknown as e:
                notes.append(str(e))
        db.session.commit()
    return notes


def random_token(n: int = 8) -> str:
    return secrets.token_hex(n)
