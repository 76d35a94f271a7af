"""Staged dunning notices (催缴), daily.

A unit's *cycle* is the oldest due date of its unpaid, undisputed bills past due. When that date
is ``DUNNING_REMINDER_DAYS`` / ``DUNNING_FORMAL_DAYS`` / ``DUNNING_FINAL_DAYS`` days in the past,
the unit gets a reminder / formal notice / final notice: the highest stage reached that it does
not have yet for this cycle (a unit first seen 130 days late gets the final notice, not three
letters at once). Paying the oldest bill moves the cycle on, and a later arrear starts again at
the reminder.

Prepaid balances are used for unpaid bills first (``apply_prepaid_balances``): a unit whose money
paid in advance covers its bills is not dunned, whatever path made the bills.

Idempotent: one ``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO NOTHING`` on the unique key
(unit, stage, cycle); a rerun adds nothing. Units whose only arrears are disputed bills get none.

Each new notice gets its printable letter text (amounts and periods). Owners have no accounts
yet, so the staff are told: one message per estate and stage and day, through the notification
channels (inbox, e-mail, group robots; ``claim_notifications``, claimed once), to the estate's
supervisors on duty and the staff, as the day's list of letters to print and deliver.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from zoneinfo import ZoneInfo

from celery import shared_task
from flask import current_app
from sqlalchemy import case, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db
from models.archives import Estate, Owner, Unit
from models.arrears import UNPAID, outstanding_expr
from models.base import current_actor_id, utcnow
from models.desk import claim_notifications, supervisors_on_duty, users_with_role
from models.fees import Bill, FeeItem
from models.payments import DUNNING_STAGES, DunningNotice, amount_in_words, apply_prepaid_balances

STAGE_ORDER = ("reminder", "formal", "final")


def thresholds() -> dict[str, int]:
    cfg = current_app.config
    return {
        "reminder": int(cfg.get("DUNNING_REMINDER_DAYS", 15)),
        "formal": int(cfg.get("DUNNING_FORMAL_DAYS", 60)),
        "final": int(cfg.get("DUNNING_FINAL_DAYS", 120)),
    }


def local_today() -> dt.date:
    return dt.datetime.now(ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))).date()


def _insert_notices(session, today: dt.date, estate_id: int | None) -> list[tuple[int, int, str]]:
    """The set-based insert; returns (notice id, estate id, stage) of the notices it made."""
    days = thresholds()
    owed = outstanding_expr()
    where = [Bill.status.in_(UNPAID), Bill.disputed.is_(False), Bill.due_date < today]
    if estate_id:
        where.append(Bill.estate_id == estate_id)
    cycle = func.min(Bill.due_date)
    # The highest stage reached: cycle <= today - days[stage], compared as dates.
    stage = case(
        (cycle <= today - dt.timedelta(days=days["final"]), literal("final")),
        (cycle <= today - dt.timedelta(days=days["formal"]), literal("formal")),
        else_=literal("reminder"),
    )
    uid = current_actor_id(session)
    now = utcnow()
    per_unit = (
        select(
            Bill.estate_id,
            Bill.unit_id,
            func.max(Bill.owner_id).label("owner_id"),
            stage.label("stage"),
            cycle.label("cycle_due_date"),
            func.sum(owed).label("amount_due"),
            func.min(Bill.period).label("oldest_period"),
            literal(today).label("issued_on"),
            literal(False).label("sent"),
            literal(1).label("version"),
            literal(now).label("created_at"),
            literal(now).label("changed_at"),
            literal(uid).label("created_by_id"),
            literal(uid).label("changed_by_id"),
        )
        .where(*where)
        .group_by(Bill.estate_id, Bill.unit_id)
        .having(cycle <= today - dt.timedelta(days=days["reminder"]), func.sum(owed) > 0)
    )
    cols = [
        "estate_id",
        "unit_id",
        "owner_id",
        "stage",
        "cycle_due_date",
        "amount_due",
        "oldest_period",
        "issued_on",
        "sent",
        "version",
        "created_at",
        "changed_at",
        "created_by_id",
        "changed_by_id",
    ]
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = DunningNotice.__table__
    stmt = (
        insert_(table)
        .from_select(cols, per_unit)
        .on_conflict_do_nothing(index_elements=[table.c.unit_id, table.c.stage, table.c.cycle_due_date])
        .returning(table.c.id, table.c.estate_id, table.c.stage)
    )
    return [tuple(r) for r in session.execute(stmt).all()]


# --- the letter ----------------------------------------------------------------------------------
LETTER_OPENING = {
    "reminder": "您好！经核对，贵户尚有以下物业服务等费用未按期缴纳。为免产生滞纳金，敬请于收到本提醒后及时缴纳。",
    "formal": "贵户以下费用已逾期未缴。根据《物业服务合同》约定，业主应按时足额交纳物业服务费用。"
    "请于收到本通知之日起十五日内缴清欠费；逾期将按约定计收滞纳金。",
    "final": "贵户以下费用经多次催缴仍未缴纳。请于收到本通知之日起七日内缴清全部欠费；"
    "逾期仍不缴纳的，本公司将依据《物业服务合同》及《民法典》第九百四十四条的规定，依法提起诉讼或申请仲裁，"
    "由此产生的费用由贵户承担。",
}


def notice_lines(session, notice: DunningNotice, as_of: dt.date | None = None) -> list[dict]:
    """The unpaid, undisputed bills a notice is about (period, item, outstanding)."""
    as_of = as_of or notice.issued_on
    owed = outstanding_expr().label("owed")
    rows = session.execute(
        select(Bill.period, FeeItem.name.label("item"), Bill.due_date, owed)
        .join(FeeItem, FeeItem.id == Bill.item_id)
        .where(
            Bill.unit_id == notice.unit_id,
            Bill.status.in_(UNPAID),
            Bill.disputed.is_(False),
            Bill.due_date < as_of,
        )
        .order_by(Bill.due_date, Bill.period, Bill.id)
    ).all()
    return [{"period": r.period, "item": r.item, "due_date": r.due_date, "amount": Decimal(r.owed)} for r in rows]


def letter_text(
    *, stage: str, estate: str, unit: str, owner: str | None, lines: list[dict], total: Decimal, issued_on, company: str
) -> str:
    title = DUNNING_STAGES[stage].zh
    periods = sorted({ln["period"] for ln in lines})
    span = f"{periods[0]}至{periods[-1]}" if len(periods) > 1 else (periods[0] if periods else "")
    body = [
        title,
        "",
        f"尊敬的{estate}{unit}业主{('（' + owner + '）') if owner else ''}：",
        "",
        "    " + LETTER_OPENING[stage],
        "",
        f"    欠费期间：{span}",
    ]
    for ln in lines:
        body.append(f"    {ln['period']}  {ln['item']}  人民币 {ln['amount']:,.2f} 元（缴费期限 {ln['due_date']}）")
    body += [
        f"    合计欠费：人民币 {total:,.2f} 元（大写：{amount_in_words(total)}）",
        "",
        "    如您已缴纳，请忽略本通知；如对费用有异议，请携相关凭证到物业服务中心核对。",
        "",
        f"{company}",
        f"{issued_on.year}年{issued_on.month}月{issued_on.day}日",
    ]
    return "\n".join(body)


def _write_letters(session, ids: list[int]) -> None:
    company = current_app.config.get("FEES_COMPANY_NAME", "物业服务中心")
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = session.execute(
            select(DunningNotice, Estate.name, Unit.code, Owner.name)
            .join(Estate, Estate.id == DunningNotice.estate_id)
            .join(Unit, Unit.id == DunningNotice.unit_id)
            .outerjoin(Owner, Owner.id == DunningNotice.owner_id)
            .where(DunningNotice.id.in_(chunk))
        ).all()
        values = []
        for notice, estate, unit, owner in rows:
            lines = notice_lines(session, notice)
            values.append(
                {
                    "nid": notice.id,
                    "letter": letter_text(
                        stage=notice.stage,
                        estate=estate,
                        unit=unit,
                        owner=owner,
                        lines=lines,
                        total=Decimal(notice.amount_due),
                        issued_on=notice.issued_on,
                        company=company,
                    ),
                }
            )
            session.expunge(notice)
        if values:
            from sqlalchemy import bindparam, update

            table = DunningNotice.__table__
            session.execute(
                update(table).where(table.c.id == bindparam("nid")).values(letter=bindparam("letter")),
                values,
                execution_options={"synchronize_session": False},
            )


def _notify(session, made: list[tuple[int, int, str]], today: dt.date) -> int:
    per: dict[tuple[int, str], int] = defaultdict(int)
    for _nid, estate_id, stage in made:
        per[(estate_id, stage)] += 1
    if not per:
        return 0
    tz = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
    day = dt.datetime.combine(today, dt.time(0), tzinfo=tz)
    now = utcnow()
    sent = 0
    for (estate_id, stage), n in sorted(per.items()):
        estate = session.get(Estate, estate_id)
        label = DUNNING_STAGES[stage].zh
        title = f"【催缴】{estate.name} 今日新增{label} {n} 份"
        body = (
            f"{estate.name} {today.isoformat()} 新生成{label} {n} 份，请在“收费管理 → 催缴通知”中打印并送达业主，"
            f"送达后标记为已送达。"
        )
        people = {
            "Supervisor": supervisors_on_duty(session, estate_id, now),
            "Staff": users_with_role(session, "Staff", estate_id),
        }
        sent += len(
            claim_notifications(
                session,
                subject_type="estate",
                subject_id=estate_id,
                kind=f"dunning_{stage}",
                deadline_at=day,
                people=people,
                title=title,
                body=body,
            )
        )
    return sent


def run_dunning(today: dt.date | None = None, estate_id: int | None = None) -> dict:
    session = db.session
    today = today or local_today()
    apply_prepaid_balances(session, estate_id=estate_id, commit_every=200)
    made = _insert_notices(session, today, estate_id)
    _write_letters(session, [m[0] for m in made])
    notifications = _notify(session, made, today)
    session.commit()
    by_stage = {s: 0 for s in STAGE_ORDER}
    for _nid, _estate, stage in made:
        by_stage[stage] += 1
    return {"as_of": today.isoformat(), "created": len(made), "by_stage": by_stage, "notifications": notifications}


@shared_task(name="jobs.dunning.daily")
def daily(today: str | None = None) -> dict:
    return run_dunning(dt.date.fromisoformat(today) if today else None)
