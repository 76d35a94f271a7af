"""The service desk (住户求助): tickets, their timeline, response policies, callbacks, duty shifts
and notifications. DESIGN.md items 3 to 6.

Deadlines are computed when a ticket is created or changes, stored on it, and the earliest one
still pending is kept in the indexed ``next_due_at`` so the escalation sweep reads only tickets
whose time has come (Zammad's escalation_at). Every clock-dependent method takes ``now``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from flask_appbuilder import Model
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    event,
    func,
    select,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship

from app.i18n import T
from models.base import AuditedModel, BigId, DataChoices, FinalStates, UTCDateTime, utcnow
from models.calendar import WorkCalendar
from models.errors import FieldErrors
from models.validators import check_phone
from models.visibility import Confidential

# --- vocabularies ----------------------------------------------------------------------------
TICKET_KINDS = {
    "emergency_medical": T("急救病人", "Emergency medical"),
    "repair": T("报修", "Repair"),
    "complaint": T("投诉", "Complaint"),
    "consultation": T("咨询", "Consultation"),
    "security": T("治安事件", "Security incident"),
    "disaster": T("灾害", "Disaster"),
    "other": T("其他求助", "Other request"),
}
# Sub-classes (细类) are data a Manager maintains (``TicketSubkind``); these are the defaults the
# migration loads: the procedure's security and disaster lists, and the usual repair trades.
DEFAULT_SUBKINDS = [
    ("repair", "plumbing", "给排水", "Plumbing"),
    ("repair", "electrical", "电气", "Electrical"),
    ("repair", "doors_windows", "门窗", "Doors and windows"),
    ("repair", "lift", "电梯", "Lifts"),
    ("repair", "public_facilities", "公共设施", "Public facilities"),
    ("repair", "walls_waterproofing", "墙面/防水", "Walls and waterproofing"),
    ("repair", "gas", "燃气", "Gas"),
    ("repair", "intercom_security", "门禁/对讲", "Access control and intercom"),
    ("repair", "other_repair", "其他维修", "Other repairs"),
    ("complaint", "noise", "噪音", "Noise"),
    ("complaint", "sanitation", "环境卫生", "Sanitation"),
    ("complaint", "parking", "停车", "Parking"),
    ("complaint", "staff_conduct", "服务态度", "Staff conduct"),
    ("security", "theft", "盗窃", "Theft"),
    ("security", "fight", "打架", "Fight"),
    ("security", "robbery", "抢劫", "Robbery"),
    ("security", "homicide", "凶杀", "Homicide"),
    ("security", "poisoning", "投毒", "Poisoning"),
    ("security", "traffic_accident", "交通事故", "Traffic accident"),
    ("disaster", "typhoon", "台风", "Typhoon"),
    ("disaster", "flooding", "水浸", "Flooding"),
    ("disaster", "fire", "火灾", "Fire"),
]
# The classes whose procedure names its cases: a security incident or a disaster says which.
SUBKIND_REQUIRED = ("security", "disaster")
SUBKINDS_OF: dict[str, set[str]] = {}  # the defaults by class (tests and the seed read them)
for _kind, _code, _zh, _en in DEFAULT_SUBKINDS:
    SUBKINDS_OF.setdefault(_kind, set()).add(_code)


def _load_subkinds(session) -> dict:
    rows = session.execute(
        select(TicketSubkind.code, TicketSubkind.name, TicketSubkind.name_en).order_by(
            TicketSubkind.kind, TicketSubkind.position, TicketSubkind.id
        )
    ).all()
    return {r.code: T(r.name, r.name_en or r.name) for r in rows}


TICKET_SUBKINDS = DataChoices(_load_subkinds)


def subkinds_of(session, kind: str | None, active_only: bool = True) -> dict[str, str]:
    """code -> kind of the sub-classes a class offers (all classes when ``kind`` is None)."""
    stmt = select(TicketSubkind.code, TicketSubkind.kind).order_by(TicketSubkind.position, TicketSubkind.id)
    if kind is not None:
        stmt = stmt.where(TicketSubkind.kind == kind)
    if active_only:
        stmt = stmt.where(TicketSubkind.active.is_(True))
    return dict(session.execute(stmt).all())


CHANNELS = {
    "phone": T("电话", "Phone"),
    "visit": T("来访", "Visit"),
    "written": T("书面", "Written"),
    "portal": T("网上", "Portal"),
}
PRIORITIES = {"normal": T("一般", "Normal"), "urgent": T("紧急", "Urgent"), "major": T("重大", "Major")}
STATUSES = {
    "new": T("新建", "New"),
    "acknowledged": T("已答复", "Acknowledged"),
    "in_progress": T("处理中", "In progress"),
    "resolved": T("已解决", "Resolved"),
    "callback": T("待回访", "Awaiting callback"),
    "closed": T("已关闭", "Closed"),
    "reopened": T("重新打开", "Reopened"),
    "cancelled": T("已取消", "Cancelled"),
}
OPEN_STATUSES = ("new", "acknowledged", "in_progress", "reopened")
RESPONSIBILITIES = {
    "owner_paid": T("业主自费", "Owner-paid"),
    "developer_warranty": T("开发商保修", "Developer warranty"),
    "common_area": T("公共部位（物业负责）", "Common area (property company)"),
}
MEDICAL_PATHS = {
    "escort": T("护送就医（保安二人及车辆）", "Escort to hospital (two guards and a vehicle)"),
    "ambulance": T("拨打 120 并在门口引导", "Call 120 and guide the ambulance from the gate"),
    "short_term_care": T("短时看护（不得单人看护）", "Short-term care (never alone)"),
}
CONSULT_MODES = {"written": T("书面", "Written"), "oral": T("口头", "Oral")}
COMPLAINT_ABOUT = {
    "staff": T("员工", "A staff member"),
    "neighbour": T("邻里", "A neighbour"),
    "renovation": T("装修", "A renovation"),
    "service_quality": T("服务质量", "Service quality"),
}
ESCALATION_LEVELS = {0: T("前台", "Clerk"), 1: T("主管", "Supervisor"), 2: T("经理", "Manager")}

# Every coded column of a ticket and its labels: the screens, the API's validation, the print form
# and the registers all read them from here, so no coded value is ever shown raw.
TICKET_CODED = {
    "kind": TICKET_KINDS,
    "subkind": TICKET_SUBKINDS,
    "channel": CHANNELS,
    "priority": PRIORITIES,
    "status": STATUSES,
    "responsibility": RESPONSIBILITIES,
    "medical_path": MEDICAL_PATHS,
    "consult_mode": CONSULT_MODES,
    "complaint_about": COMPLAINT_ABOUT,
    "escalation_level": ESCALATION_LEVELS,
}

# What each column of a ticket is called, on the screens, the print form and the registers.
TICKET_LABELS = {
    "number": T("编号", "Number"),
    "estate": T("小区", "Estate"),
    "estate.name": T("小区", "Estate"),
    "unit": T("房屋", "Unit"),
    "unit.code": T("房号", "Unit"),
    "owner": T("业主", "Owner"),
    "owner.name": T("业主", "Owner"),
    "resident": T("住户", "Resident"),
    "visitor_name": T("报事人（来电人）", "Caller"),
    "visitor_phone": T("报事人电话", "Caller phone"),
    "kind": T("类别", "Class"),
    "subkind": T("细类", "Sub-class"),
    "channel": T("渠道", "Channel"),
    "priority": T("优先级", "Priority"),
    "address": T("地址/地点", "Address / place"),
    "callback_phone": T("联系电话", "Callback phone"),
    "description": T("求助内容", "Request"),
    "status": T("状态", "Status"),
    "cancel_reason": T("取消原因", "Cancellation reason"),
    "assignee": T("处理人", "Handler"),
    "assignee.username": T("处理人", "Handler"),
    "deadline": T("当前时限", "Deadline"),
    "subject": T("求助内容", "About"),
    "escalation_level": T("升级级别", "Escalation level"),
    "responsibility": T("维修责任", "Repair responsibility"),
    "agreed_visit_at": T("约定上门时间", "Agreed visit time"),
    "cost": T("费用(元)", "Cost (CNY)"),
    "medical_path": T("急救处置", "Emergency path"),
    "dispatched": T("派出人员", "Who was sent"),
    "consult_mode": T("咨询方式", "Consultation mode"),
    "reply": T("答复内容", "Reply"),
    "confidential": T("保密", "Confidential"),
    "complaint_about": T("投诉对象", "Complaint about"),
    "reported_at": T("登记时间", "Recorded at"),
    "received_at": T("受理时间", "Received at"),
    "received_late_reason": T("补登原因", "Reason for late entry"),
    "replied_at": T("答复时间", "Replied at"),
    "resolved_at": T("解决时间", "Resolved at"),
    "closed_at": T("关闭时间", "Closed at"),
    "reply_due_at": T("答复时限", "Reply due"),
    "resolve_due_at": T("解决时限", "Resolve due"),
    "next_due_at": T("下一时限", "Next deadline"),
    "archived_at": T("归档时间", "Archived at"),
    # computed (Ticket properties)
    "reply_basis": T("答复时限依据", "Reply limit from"),
    "resolve_basis": T("解决时限依据", "Resolve limit from"),
    "read_only_notice": T("说明", "Why"),
}

# What the columns of the desk's other records are called (their screens, their API's labels).
POLICY_LABELS = {
    "kind": T("类别", "Class"),
    "priority": T("优先级（空为全部）", "Priority (empty: any)"),
    "reply_minutes": T("答复时限(分钟)", "Reply within (min)"),
    "resolve_minutes": T("解决时限(分钟)", "Resolve within (min)"),
    "resolve_working_days": T("解决时限(工作日)", "Resolve within (working days)"),
    "second_level_minutes": T("二级升级(超时后分钟)", "Second level after (min)"),
    "warn_minutes": T("提前预警(分钟)", "Warn before (min)"),
    "replaces_rule": T("替代规程", "Replaces procedure rule"),
    "active": T("启用", "Active"),
    "rule_notes": T("各条规程是否适用", "Which procedure rule applies"),  # computed (SlaPolicy.rule_notes)
}
CALLBACK_LABELS = {
    "ticket": T("求助单", "Ticket"),
    "ticket.number": T("求助单", "Ticket"),
    "due_at": T("应回访时间", "Due"),
    "status": T("状态", "Status"),
    "attempts": T("联系次数", "Tries"),
    "reached": T("已联系上", "Reached"),
    "satisfaction": T("满意度(1-5)", "Satisfaction (1-5)"),
    "comment": T("回访意见", "Comment"),
    "done_at": T("完成时间", "Done at"),
    "assignee": T("回访人", "Assignee"),
    "assignee.username": T("回访人", "Assignee"),
}
DUTY_LABELS = {
    "user": T("值班人", "On duty"),
    "user.username": T("值班人", "On duty"),
    "estate": T("小区", "Estate"),
    "estate.name": T("小区", "Estate"),
    "starts_at": T("开始", "Starts"),
    "ends_at": T("结束", "Ends"),
    "post": T("岗位", "Post"),
}
NOTIFICATION_LABELS = {
    "created_at": T("时间", "When"),
    "title": T("标题", "Title"),
    "body": T("内容", "Body"),
    "kind": T("类型", "Kind"),
    "channel": T("渠道", "Channel"),
    "state": T("发送状态", "Delivery"),
    "attempts": T("尝试次数", "Attempts"),
    "sent_at": T("发送时间", "Sent at"),
    "read_at": T("已读时间", "Read at"),
    "last_error": T("最近错误", "Last error"),
}

# The class-specific parts of a ticket (its form's sections, its detail page's, its print form's):
# each belongs to a class, and shows for any ticket where it holds something.
TICKET_PARTS = {
    "repair": (T("报修", "Repair"), ("responsibility", "agreed_visit_at", "cost")),
    "emergency_medical": (T("急救", "Emergency medical"), ("medical_path", "dispatched")),
    "consultation": (T("咨询", "Consultation"), ("consult_mode", "reply", "confidential")),
    "complaint": (T("投诉", "Complaint"), ("complaint_about",)),
}

# Which status may follow which; anything else is refused with the reason.
TRANSITIONS = {
    "new": {"acknowledged", "in_progress", "resolved", "cancelled"},
    "acknowledged": {"in_progress", "resolved", "cancelled"},
    "in_progress": {"resolved", "cancelled"},
    "resolved": {"callback", "closed", "reopened"},
    "callback": {"closed", "reopened"},
    "closed": {"reopened"},
    "reopened": {"acknowledged", "in_progress", "resolved", "cancelled"},
    "cancelled": set(),
}

# The emergency procedure (DESIGN.md item 4): for every one of these classes the clerk records
# where to send people and a phone first, before anything else.
EMERGENCY_KINDS = ("emergency_medical", "security", "disaster")
FIRST_FIELDS = {
    "emergency_medical": {
        "address": T("急救必须先登记地址", "Record the address first for an emergency"),
        "callback_phone": T("急救必须先登记联系电话", "Record the phone first for an emergency"),
    },
    "security": {
        "address": T(
            "治安事件必须先登记地点（地址），以便派人前往", "Record the place first for a security incident: where to send people"
        ),
        "callback_phone": T("治安事件必须先登记联系电话", "Record the phone first for a security incident"),
    },
    "disaster": {
        "address": T("灾害必须先登记地点（地址），以便派人前往", "Record the place first for a disaster: where to send people"),
        "callback_phone": T("灾害必须先登记联系电话", "Record the phone first for a disaster"),
    },
}
assert set(FIRST_FIELDS) == set(EMERGENCY_KINDS)

# A request received more than this long before it is recorded needs the reason (a letter by
# post, a call noted during an outage); a little ahead is a clock's drift, more is the future.
LATE_ENTRY = dt.timedelta(hours=1)
CLOCK_SKEW = dt.timedelta(minutes=1)


# --- the rulebook: the procedure's own time limits -----------------------------------------------
@dataclass(frozen=True)
class Rule:
    """A time limit the help-request procedure itself sets. A response policy may tighten it, in
    the rule's own terms (minutes, or working days), or name it in ``replaces_rule`` to replace it;
    a policy never drops it silently."""

    key: str
    label: T
    deadline: str  # "reply" or "resolve"
    minutes: int | None = None
    working_days: int | None = None
    kinds: frozenset | None = None  # None: every class
    consult_mode: str | None = None

    def applies(self, kind: str, consult_mode: str | None) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self.consult_mode is None or consult_mode == self.consult_mode


RULEBOOK = {
    r.key: r
    for r in (
        Rule(
            "reply_five_minutes",
            T("规程：当场答复，需请示主管的 5 分钟内答复", "Procedure: reply at once, within 5 minutes after asking the supervisor"),
            "reply",
            minutes=5,
        ),
        Rule(
            "written_reply",
            T("规程：书面咨询 2 个工作日内书面答复", "Procedure: a written reply to a written consultation within 2 working days"),
            "resolve",
            working_days=2,
            kinds=frozenset({"consultation"}),
            consult_mode="written",
        ),
    )
}
RULE_CHOICES = {k: r.label for k, r in RULEBOOK.items()}

# What the forms say about the rules above, next to the fields they govern.
POLICY_HELP = {
    "replaces_rule": T(
        "规程底线：答复 5 分钟内（所有类别）；书面咨询 2 个工作日内书面答复。策略只能按同样的计时方式收紧它们"
        "（书面答复按工作日）；要放宽或改用其他计时，须在「替代规程」中选择该条。详情页显示每条规程是否适用。",
        "The procedure's floor: reply within 5 minutes (every class); a written reply to a written consultation "
        "within 2 working days. A policy may only tighten them in the same terms (working days for the written "
        "reply); to loosen one or count it otherwise, choose it under 'Replaces procedure rule'. The detail page "
        "says which applies.",
    ),
    "resolve_minutes": T(
        "按日历分钟计时；书面咨询仍按规程 2 个工作日，除非在「替代规程」中选择该条",
        "Counted in calendar minutes; written consultations keep the procedure's 2 working days unless that rule "
        "is chosen under 'Replaces procedure rule'",
    ),
    "reply_minutes": T(
        "不超过规程的 5 分钟；更长须在「替代规程」中选择答复条款",
        "At most the procedure's 5 minutes; longer only when the reply rule is chosen under 'Replaces procedure rule'",
    ),
}
TICKET_HELP = {
    "estate": T(
        "选了房屋时按房屋所在小区；没有房屋的来电（路人、公共区域）请选择小区",
        "Taken from the unit when there is one; for a call about no unit (a passer-by, a common area) choose it",
    ),
    "address": T(
        "急救、治安事件、灾害：先登记地址（派人前往的地点）和联系电话",
        "Medical emergencies, security incidents, disasters: record the address (where to send people) and the "
        "phone first",
    ),
    "received_at": T(
        "收到求助的时间，时限由此起算；默认为现在，不能是将来",
        "When the office received the request; deadlines run from it. Now by default, never in the future",
    ),
    "received_late_reason": T(
        "受理时间早于登记一小时以上时必填（如信件邮寄、停电时记录的来电）",
        "Required when received more than an hour before it is recorded (a letter by post, a call noted during an "
        "outage)",
    ),
    "cost": T(
        "有偿服务按收费程序办理；员工不得收受住户财物",
        "Paid work follows the paid-service procedure; staff never accept money or gifts",
    ),
}

# The policies an install starts with (the migration writes the same rows): one per class, any
# priority. Rows, so that a Manager sees and changes them; the rulebook above applies on top.
SEED_POLICY = {"reply_minutes": 5, "resolve_minutes": 24 * 60, "second_level_minutes": 30, "warn_minutes": 2}
# Escalation steps when a class has no active policy at all (a Manager deactivated it): the ticket
# says so ("no policy") rather than pretending one applied.
NO_POLICY_STEPS = {"second_level_minutes": 30, "warn_minutes": 2}


def is_major_incident(kind: str, priority: str) -> bool:
    """Told to supervisor and manager the moment it is recorded, whatever the hour."""
    return kind in ("security", "disaster") or (kind == "emergency_medical" and priority == "major")


# --- response policies -----------------------------------------------------------------------
class SlaPolicy(AuditedModel):
    """Reply and resolve deadlines for a class (and optionally a priority) of request."""

    __tablename__ = "sla_policy"

    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    priority: Mapped[str | None] = mapped_column(String(16))  # None: any priority
    reply_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    resolve_minutes: Mapped[int | None] = mapped_column(Integer)
    resolve_working_days: Mapped[int | None] = mapped_column(Integer)
    second_level_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    warn_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=2)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # The rulebook rule (RULEBOOK) this policy replaces outright; otherwise it may only tighten it.
    replaces_rule: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("kind", "priority", name="uq_sla_policy_kind_priority"),
        # NULLs are distinct in a unique constraint: one "any priority" row per class needs its own.
        Index(
            "uq_sla_policy_kind_any_priority",
            "kind",
            unique=True,
            postgresql_where=text("priority IS NULL"),
            sqlite_where=text("priority IS NULL"),
        ),
    )

    def check(self) -> None:
        errors = {}
        if self.kind not in TICKET_KINDS:
            errors["kind"] = [str(T("类别无效", "Invalid class"))]
        if self.priority is not None and self.priority not in PRIORITIES:
            errors["priority"] = [str(T("优先级无效", "Invalid priority"))]
        for field in ("reply_minutes", "second_level_minutes"):
            if getattr(self, field) is None or getattr(self, field) <= 0:
                errors[field] = [str(T("必须大于 0", "Must be greater than 0"))]
        if (self.resolve_minutes is None) == (self.resolve_working_days is None):
            errors["resolve_minutes"] = [
                str(
                    T(
                        "解决时限须填写分钟数或工作日数之一",
                        "Give the resolve limit in minutes or in working days, not both",
                    )
                )
            ]
        elif (self.resolve_minutes or 1) <= 0 or (self.resolve_working_days or 1) <= 0:
            errors["resolve_minutes"] = [str(T("必须大于 0", "Must be greater than 0"))]
        if self.warn_minutes is None or self.warn_minutes < 0:
            errors["warn_minutes"] = [str(T("不能为负数", "Cannot be negative"))]
        session = object_session(self)
        if session is not None and "kind" not in errors and "priority" not in errors:
            # The unique indexes settle races; this names the field for the usual case.
            with session.no_autoflush:
                same = select(SlaPolicy.id).where(
                    SlaPolicy.kind == self.kind,
                    SlaPolicy.priority.is_(None) if self.priority is None else SlaPolicy.priority == self.priority,
                )
                if self.id is not None:
                    same = same.where(SlaPolicy.id != self.id)
                if session.execute(same.limit(1)).first():
                    errors["priority"] = [
                        str(T("该类别的这一优先级已有策略：请修改那一条", "This class already has a policy for this priority: edit that one"))
                    ]
        rule = RULEBOOK.get(self.replaces_rule) if self.replaces_rule else None
        if self.replaces_rule and (rule is None or (rule.kinds is not None and self.kind not in rule.kinds)):
            errors["replaces_rule"] = [str(T("该规程条款不适用于此类别", "That procedure rule does not apply to this class"))]
        reply_rule = RULEBOOK["reply_five_minutes"]
        if (
            "reply_minutes" not in errors
            and self.reply_minutes is not None
            and self.reply_minutes > reply_rule.minutes
            and self.replaces_rule != reply_rule.key
        ):
            errors["reply_minutes"] = [
                str(
                    T(
                        f"规程要求 {reply_rule.minutes} 分钟内答复：策略只能收紧；如确需放宽，请在「替代规程」中选择该条",
                        f"The procedure says reply within {reply_rule.minutes} minutes: a policy may only tighten it; "
                        "to loosen it, choose that rule under 'Replaces procedure rule'",
                    )
                )
            ]
        if errors:
            raise FieldErrors(errors)

    def rule_effects(self) -> list[tuple[T, T]]:
        """For each rulebook rule of this class: what applies under this policy (the form says it)."""
        out = []
        for rule in RULEBOOK.values():
            if rule.kinds is not None and self.kind not in rule.kinds:
                continue
            _, basis = effective_limits(self, self.kind, rule.consult_mode)
            which = basis[rule.deadline]
            if self.replaces_rule == rule.key:
                effect = T("本策略替代此条规程", "This policy replaces the rule")
            elif which.startswith("rule:"):
                effect = T("此条规程适用（本策略未收紧它）", "The rule applies (this policy does not tighten it)")
            else:
                effect = T("本策略收紧了此条规程，按本策略", "This policy tightens the rule and applies")
            out.append((rule.label, effect))
        return out

    @property
    def rule_notes(self) -> str:
        """``rule_effects`` as one line for the detail page."""
        return "；".join(f"{rule}：{effect}" for rule, effect in self.rule_effects())

    def __str__(self) -> str:
        return (
            f"{TICKET_KINDS.get(self.kind, self.kind)}/{PRIORITIES.get(self.priority, '*') if self.priority else '*'}"
        )


def policy_row(session: Session, kind: str, priority: str | None) -> SlaPolicy | None:
    """The active policy of a class and priority: the exact row, else the class's any-priority row."""
    rows = session.execute(select(SlaPolicy).where(SlaPolicy.kind == kind, SlaPolicy.active.is_(True))).scalars().all()
    return next((r for r in rows if r.priority == priority), None) or next((r for r in rows if r.priority is None), None)


def effective_limits(row: SlaPolicy | None, kind: str, consult_mode: str | None) -> tuple[dict, dict]:
    """The limits that apply, and where each comes from (``{"reply": "policy:7", "resolve":
    "rule:written_reply"}``): the policy row, with every rulebook rule of the request on top unless
    the policy tightens it in the rule's own terms or names it as replaced."""
    if row is not None:
        limits = {
            "reply_minutes": row.reply_minutes,
            "resolve_minutes": row.resolve_minutes,
            "resolve_working_days": row.resolve_working_days,
            "second_level_minutes": row.second_level_minutes,
            "warn_minutes": row.warn_minutes,
        }
        source = f"policy:{row.id}" if row.id is not None else "policy:new"
        basis = {"reply": source, "resolve": source}
    else:
        limits = {"reply_minutes": None, "resolve_minutes": None, "resolve_working_days": None, **NO_POLICY_STEPS}
        basis = {"reply": "none", "resolve": "none"}
    for rule in RULEBOOK.values():
        if not rule.applies(kind, consult_mode) or (row is not None and row.replaces_rule == rule.key):
            continue
        prefix = rule.deadline  # "reply" or "resolve"
        minutes, days = limits.get(f"{prefix}_minutes"), limits.get(f"{prefix}_working_days")
        if rule.minutes is not None:
            tighter = minutes is not None and minutes <= rule.minutes
        else:
            tighter = days is not None and days <= rule.working_days
        if not tighter:
            limits[f"{prefix}_minutes"] = rule.minutes
            if prefix == "resolve":
                limits["resolve_working_days"] = rule.working_days
            basis[prefix] = f"rule:{rule.key}"
    return limits, basis


def policy_for(session: Session, kind: str, priority: str, consult_mode: str | None = None) -> dict:
    """The limits of a request (see ``effective_limits``), with ``basis`` saying where they come from."""
    limits, basis = effective_limits(policy_row(session, kind, priority), kind, consult_mode)
    return {**limits, "basis": basis}


def recompute_open_tickets(session: Session, kind: str | None = None) -> int:
    """Recompute the deadlines of the open tickets (of one class, or all) after their policy or the
    calendar changed; commits. Returns how many tickets were recomputed."""
    from sqlalchemy import update

    calendar = WorkCalendar.load(session)
    stmt = select(Ticket).where(Ticket.status.in_(OPEN_STATUSES), Ticket.archived_at.is_(None))
    if kind is not None:
        stmt = stmt.where(Ticket.kind == kind)
    tickets = session.execute(stmt).scalars().all()
    for t in tickets:
        with session.no_autoflush:  # the new values go out by the UPDATE below, never by a flush
            t.apply_policy(session, calendar)
            values = {
                c: getattr(t, c)
                for c in ("reply_due_at", "resolve_due_at", "second_level_minutes", "warn_minutes", "next_due_at", "sla_basis")
            }
            session.expunge(t)
            # Deadlines are system bookkeeping: no version bump for the people editing these tickets.
            session.execute(
                update(Ticket).where(Ticket.id == t.id).values(**values).execution_options(synchronize_session=False)
            )
    session.commit()
    return len(tickets)


def ensure_default_policies(session: Session) -> int:
    """Write the starting policy (SEED_POLICY) of every class that has no "any priority" row, as
    the migration does at install; rows that exist are the Manager's and are left alone. Returns
    how many rows were written."""
    have = set(session.execute(select(SlaPolicy.kind).where(SlaPolicy.priority.is_(None))).scalars())
    missing = [k for k in TICKET_KINDS if k not in have]
    for kind in missing:
        session.add(SlaPolicy(kind=kind, priority=None, active=True, **SEED_POLICY))
    session.flush()
    return len(missing)


# --- tickets ---------------------------------------------------------------------------------
class TicketSubkind(AuditedModel):
    """A sub-class (细类) of a request class, maintained by a Manager: repairs by trade, the
    procedure's security incidents and disasters. Requests keep the code; retiring a row (not
    active) stops offering it without touching the requests that used it."""

    __tablename__ = "ticket_subkind"

    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    code: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_en: Mapped[str | None] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    __table_args__ = (Index("ix_ticket_subkind_kind", "kind", "position"),)

    def check(self) -> None:
        errors = {}
        if self.kind not in TICKET_KINDS:
            errors["kind"] = [str(T("取值无效", "Invalid value"))]
        code = (self.code or "").strip()
        if not code or not code.replace("_", "").isalnum() or not code.isascii():
            errors["code"] = [str(T("编码只能用英文字母、数字和下划线", "Use letters, digits and underscores only"))]
        if not (self.name or "").strip():
            errors["name"] = [str(T("请填写名称", "Give the name"))]
        if errors:
            raise FieldErrors(errors)
        self.code = code.lower()
        TICKET_SUBKINDS.forget()

    def __str__(self) -> str:
        return self.name


# --- tickets ---------------------------------------------------------------------------------
class Ticket(AuditedModel):
    """A resident's help request (住户求助): the help register's line."""

    __tablename__ = "ticket"

    number: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estate.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owner.id"))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("resident.id"))
    visitor_name: Mapped[str | None] = mapped_column(String(64))
    visitor_phone: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    subkind: Mapped[str | None] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(16), nullable=False, default="phone")
    priority: Mapped[str] = mapped_column(String(16), nullable=False, default="normal")
    address: Mapped[str | None] = mapped_column(String(200))
    callback_phone: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="new")
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    escalation_level: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # repair
    responsibility: Mapped[str | None] = mapped_column(String(24))
    agreed_visit_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    # emergency medical
    medical_path: Mapped[str | None] = mapped_column(String(24))
    dispatched: Mapped[str | None] = mapped_column(String(120))
    # consultation
    consult_mode: Mapped[str | None] = mapped_column(String(16))
    reply: Mapped[str | None] = mapped_column(Text)
    confidential: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # complaint
    complaint_about: Mapped[str | None] = mapped_column(String(24))
    renovation_id: Mapped[int | None] = mapped_column(
        ForeignKey("renovation.id", name="fk_ticket_renovation_id")
    )  # the renovation a complaint is about
    # times and deadlines
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)  # typed in
    # When the office received it (a letter by post, a call noted during an outage): the deadlines
    # and the registers run from it. Filled from ``reported_at`` when not given; NULL only in rows
    # written around the ORM (old retention exports), where it means "when recorded".
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    received_late_reason: Mapped[str | None] = mapped_column(String(200))
    # Where the deadlines come from: "reply=<source>;resolve=<source>", a source being
    # "policy:<id>", "rule:<RULEBOOK key>" or "none" (see ``effective_limits``).
    sla_basis: Mapped[str | None] = mapped_column(String(120))
    replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reply_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolve_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    second_level_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    warn_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=2)
    # Which deadline steps the sweep has already handled (warned / escalated), per deadline.
    reply_steps_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    resolve_steps_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    estate = relationship("Estate", lazy="select")
    unit = relationship("Unit", lazy="select")
    owner = relationship("Owner", lazy="select")
    resident = relationship("Resident", lazy="select")
    renovation = relationship("Renovation", lazy="select")
    assignee = relationship("User", foreign_keys=[assignee_id], lazy="select")
    events = relationship(
        "TicketEvent", back_populates="ticket", order_by="TicketEvent.id", lazy="select", viewonly=True
    )
    # Paid-service orders made from this (owner-paid repair) ticket: models/services.py.
    service_orders = relationship(
        "ServiceOrder",
        primaryjoin="Ticket.id == foreign(ServiceOrder.ticket_id)",
        order_by="ServiceOrder.id",
        lazy="select",
        viewonly=True,
    )

    __personal__ = {"visitor_phone": "phone", "callback_phone": "phone"}
    # Confidential matters stay confidential (DESIGN.md item 4): what was asked and answered is read
    # by supervisors and managers, the handler and the clerk who recorded it, on every path.
    __confidential__ = Confidential(flag="confidential", columns=("description", "reply", "subject"))

    # A closed, cancelled or archived request is what the registers print: read-only, except that
    # a closed one may be reopened (which resets its resolution and its resolve deadline).
    __final__ = FinalStates(
        column="status",
        states=frozenset({"closed", "cancelled"}),
        filled=("archived_at",),
        exits={
            "reopened": frozenset(
                {"resolved_at", "closed_at", "resolve_steps_done", "resolve_due_at", "next_due_at", "sla_basis"}
            )
        },
        labels=STATUSES,
        # A complaint found later to come from a renovation is linked to it, even once closed.
        annotations=frozenset({"renovation_id", "renovation"}),
    )

    __table_args__ = (
        Index("ix_ticket_next_due_at", "next_due_at", postgresql_where="next_due_at IS NOT NULL"),
        Index("ix_ticket_status_kind", "status", "kind"),
        Index("ix_ticket_reported_at", "reported_at"),
        Index("ix_ticket_received_at", "received_at"),  # the registers' and reports' ranges
        Index("ix_ticket_unit", "unit_id"),
        Index("ix_ticket_estate", "estate_id", "id"),  # the scope filter, newest first
        CheckConstraint("escalation_level BETWEEN 0 AND 2", name="ck_ticket_escalation_level"),
    )

    # --- rules ---------------------------------------------------------------------------
    def _check_subkind(self) -> dict:
        """The sub-class must be one the class offers (a retired one stays on old requests as long
        as neither is changed); security incidents and disasters must say which."""
        session = object_session(self)
        if session is None:
            return {}
        from sqlalchemy import inspect as sa_inspect

        state = sa_inspect(self)
        unchanged = not state.pending and not any(
            state.attrs[c].history.has_changes() for c in ("kind", "subkind")
        )
        if self.subkind and not unchanged:
            with session.no_autoflush:
                offered = subkinds_of(session, self.kind)
            if self.subkind not in offered:
                return {"subkind": [str(T("该类别没有此细类", "This sub-class does not belong to the class"))]}
        if self.kind in SUBKIND_REQUIRED and not self.subkind:
            return {"subkind": [str(T("请选择细类", "Choose the sub-class"))]}
        return {}

    def check(self) -> None:
        errors: dict = {}
        for field, vocab in (
            ("kind", TICKET_KINDS),
            ("channel", CHANNELS),
            ("priority", PRIORITIES),
            ("status", STATUSES),
        ):
            if getattr(self, field) not in vocab:
                errors[field] = [str(T("取值无效", "Invalid value"))]
        errors.update(self._check_subkind())
        for field in ("visitor_phone", "callback_phone"):
            try:
                setattr(self, field, check_phone(getattr(self, field)))
            except ValueError as e:
                errors[field] = [str(e)]
        # Emergencies (medical, security, disaster): where to send people and a phone, first.
        for field, message in FIRST_FIELDS.get(self.kind, {}).items():
            if not (getattr(self, field) or "").strip() and field not in errors:
                errors[field] = [str(message)]
        if self.received_at is not None and self.reported_at is not None:
            if self.received_at > self.reported_at + CLOCK_SKEW:
                errors["received_at"] = [
                    str(T("受理时间不能晚于登记时间（不能是将来）", "The time received cannot be after it was recorded (the future)"))
                ]
            elif self.reported_at - self.received_at > LATE_ENTRY and not (self.received_late_reason or "").strip():
                errors["received_late_reason"] = [
                    str(
                        T(
                            "受理时间早于登记时间一小时以上：请填写补登原因（如信件邮寄、停电时记录的来电）",
                            "Received more than an hour before it was recorded: give the reason (a letter by post, "
                            "a call noted during an outage)",
                        )
                    )
                ]
        if not (self.unit_id or self.unit or self.visitor_name):
            errors["unit"] = [str(T("请选择报事房屋，或填写报事人姓名", "Choose the unit, or give the caller's name"))]
        for field, vocab in (
            ("responsibility", RESPONSIBILITIES),
            ("medical_path", MEDICAL_PATHS),
            ("consult_mode", CONSULT_MODES),
            ("complaint_about", COMPLAINT_ABOUT),
        ):
            value = getattr(self, field)
            if value is not None and value not in vocab:
                errors[field] = [str(T("取值无效", "Invalid value"))]
        if self.cost is not None and Decimal(self.cost) < 0:
            errors["cost"] = [str(T("费用不能为负数", "The cost cannot be negative"))]
        if self.status == "cancelled" and not self.cancel_reason:
            errors["cancel_reason"] = [str(T("取消必须填写原因", "A cancellation needs a reason"))]
        if errors:
            raise FieldErrors(errors)

    @hybrid_property
    def received(self) -> dt.datetime | None:
        """When the office received the request (the recording time for rows that lack it)."""
        return self.received_at or self.reported_at

    @received.inplace.expression
    @classmethod
    def _received_expression(cls):
        return func.coalesce(cls.received_at, cls.reported_at)

    @classmethod
    def received_between(cls, start: dt.datetime, end: dt.datetime):
        """``start <= received < end``, as conditions each index can serve (unlike the coalesce)."""
        from sqlalchemy import and_, or_

        return or_(
            and_(cls.received_at >= start, cls.received_at < end),
            and_(cls.received_at.is_(None), cls.reported_at >= start, cls.reported_at < end),
        )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_major_incident(self) -> bool:
        return is_major_incident(self.kind, self.priority)

    # --- deadlines -----------------------------------------------------------------------
    def apply_policy(self, session: Session, calendar: WorkCalendar | None = None) -> None:
        """(Re)compute the deadlines from the time received; keeps the steps already handled."""
        policy = policy_for(session, self.kind, self.priority, self.consult_mode)
        start = self.received or utcnow()
        self.reply_due_at = start + dt.timedelta(minutes=policy["reply_minutes"]) if policy["reply_minutes"] else None
        self.resolve_due_at = self._resolve_due(session, policy, start, calendar)
        self.second_level_minutes = policy["second_level_minutes"]
        self.warn_minutes = policy["warn_minutes"]
        self.sla_basis = ";".join(f"{k}={v}" for k, v in policy["basis"].items())
        self.refresh_next_due()

    @staticmethod
    def _resolve_due(session: Session, policy: dict, start: dt.datetime, calendar: WorkCalendar | None = None):
        if policy.get("resolve_working_days"):
            return (calendar or WorkCalendar.load(session)).add_working_days(start, policy["resolve_working_days"])
        if policy.get("resolve_minutes"):
            return start + dt.timedelta(minutes=policy["resolve_minutes"])
        return None

    def deadline_basis(self, session: Session) -> list[tuple[T, T]]:
        """(deadline, where its limit comes from), to show and print beside the deadlines."""
        out = []
        for which in ("reply", "resolve"):
            text = self._basis(session, which)
            if text is not None:
                out.append((TICKET_LABELS[f"{which}_basis"], text))
        return out

    def _basis(self, session: Session | None, which: str) -> T | None:
        source = self.deadline_sources().get(which)
        if source is None:
            return None
        if source.startswith("rule:") and source[5:] in RULEBOOK:
            return RULEBOOK[source[5:]].label
        if source.startswith("policy:") and source[7:].isdigit():
            row = session.get(SlaPolicy, int(source[7:])) if session is not None else None
            name = str(row) if row is not None else f"#{source[7:]}"
            return T(f"响应时限策略「{name}」", f"Response policy '{name}'")
        return T("无启用的响应时限策略（只按规程）", "No active response policy (the procedure only)")

    # Computed facts of the detail page (labelled in TICKET_LABELS).
    @property
    def reply_basis(self) -> str | None:
        text = self._basis(object_session(self), "reply")
        return None if text is None else str(text)

    @property
    def resolve_basis(self) -> str | None:
        text = self._basis(object_session(self), "resolve")
        return None if text is None else str(text)

    @property
    def is_read_only(self) -> bool:
        return self.archived_at is not None or self.status in self.__final__.states

    @property
    def read_only_notice(self) -> str | None:
        """Why nothing can be changed on this request any more (None while it can)."""
        if self.archived_at is not None:
            return str(T("已归档：本记录只读。", "Archived: this record is read-only."))
        if self.status == "closed":
            return str(
                T("本记录已办结，只读；如需更改请先重新打开。", "This record is finished and read-only; reopen it to change it.")
            )
        if self.status == "cancelled":
            return str(T("本记录已取消，只读。", "This record is cancelled and read-only."))
        return None

    @property
    def deadline(self) -> dt.datetime | None:
        """The deadline the request is working to now: the reply until it is answered, then the
        resolution; none once it is done (models/workbench.ticket_deadline is the same in SQL)."""
        if self.status not in OPEN_STATUSES:
            return None
        return self.reply_due_at if self.replied_at is None else self.resolve_due_at

    @property
    def subject(self) -> str:
        """What the request is about, in one line of a list."""
        text = " ".join((self.description or "").split())
        return text if len(text) <= 40 else text[:39] + "…"

    def has_part(self, kind: str) -> bool:
        """Whether a class-specific part (TICKET_PARTS) applies: its class, or anything filled in it."""
        _, columns = TICKET_PARTS[kind]
        return self.kind == kind or any(getattr(self, c) not in (None, "", False) for c in columns)

    def deadline_sources(self) -> dict[str, str]:
        """``{"reply": "policy:7", "resolve": "rule:written_reply"}`` from ``sla_basis``."""
        parts = (p.split("=", 1) for p in (self.sla_basis or "").split(";") if "=" in p)
        return dict(parts)

    def deadline_steps(self, which: str) -> list[tuple[str, dt.datetime]]:
        """The steps of one deadline in order: warn before it, escalate to level 1 at it,
        level 2 after ``second_level_minutes``. ``which`` is 'reply' or 'resolve'."""
        due = self.reply_due_at if which == "reply" else self.resolve_due_at
        if due is None:
            return []
        steps = []
        if self.warn_minutes:
            steps.append(("warn", due - dt.timedelta(minutes=self.warn_minutes)))
        steps.append(("level1", due))
        steps.append(("level2", due + dt.timedelta(minutes=self.second_level_minutes)))
        return steps

    def pending_steps(self) -> list[tuple[str, str, dt.datetime]]:
        """(deadline, step, at) still to be handled while the ticket is open."""
        if not self.is_open or self.archived_at is not None:
            return []
        result = []
        if self.replied_at is None:
            result += [("reply", s, at) for s, at in self.deadline_steps("reply")[self.reply_steps_done :]]
        result += [("resolve", s, at) for s, at in self.deadline_steps("resolve")[self.resolve_steps_done :]]
        return sorted(result, key=lambda x: x[2])

    def refresh_next_due(self) -> None:
        pending = self.pending_steps()
        self.next_due_at = pending[0][2] if pending else None

    # --- workflow ------------------------------------------------------------------------
    def record(
        self,
        session: Session,
        kind: str,
        body: str | None = None,
        user_id: int | None = None,
        from_status: str | None = None,
        to_status: str | None = None,
        at: dt.datetime | None = None,
        data: dict | None = None,
    ) -> TicketEvent:
        from models.base import current_actor_id

        evt = TicketEvent(
            ticket=self,
            kind=kind,
            body=body,
            from_status=from_status,
            to_status=to_status,
            user_id=user_id or current_actor_id(session),
            at=at or utcnow(),
            data=data or {},
        )
        session.add(evt)
        return evt

    def transition(self, session: Session, to: str, reason: str | None = None, now: dt.datetime | None = None) -> None:
        """Move to ``to`` or raise ``FieldErrors`` saying why not."""
        now = now or utcnow()
        if to not in STATUSES:
            raise FieldErrors({"status": [str(T("未知状态", "Unknown status"))]})
        if to not in TRANSITIONS[self.status]:
            raise FieldErrors(
                {
                    "status": [
                        str(
                            T(
                                f"不能从「{STATUSES[self.status].zh}」变为「{STATUSES[to].zh}」",
                                f"Cannot go from '{STATUSES[self.status].en}' to '{STATUSES[to].en}'",
                            )
                        )
                    ]
                }
            )
        if to == "cancelled" and not reason:
            raise FieldErrors({"cancel_reason": [str(T("取消必须填写原因", "A cancellation needs a reason"))]})
        if to == "resolved" and self.kind == "repair" and not self.responsibility:
            raise FieldErrors(
                {
                    "responsibility": [
                        str(T("报修解决前须界定维修责任", "Decide the repair responsibility before resolving"))
                    ]
                }
            )
        previous = self.status
        self.status = to
        if to in ("acknowledged", "in_progress") and self.replied_at is None:
            self.replied_at = now
        if to == "resolved":
            self.resolved_at = now
            if self.replied_at is None:
                self.replied_at = now
            if self.kind in ("repair", "complaint"):
                # Every resolved repair and complaint gets a callback (回访).
                schedule_callback(session, self, now)
                self.record(session, "transition", body=reason, from_status=previous, to_status="resolved", at=now)
                previous, self.status, to = "resolved", "callback", "callback"
                reason = None
        if to == "closed":
            self.closed_at = now
        if to == "cancelled":
            self.cancel_reason = reason
        if to == "reopened":
            # A reopened case is a fresh promise: new resolve deadline, steps start again.
            self.resolved_at = None
            self.closed_at = None
            self.resolve_steps_done = 0
            policy = policy_for(session, self.kind, self.priority, self.consult_mode)
            self.resolve_due_at = self._resolve_due(session, policy, now)
        self.refresh_next_due()
        self.record(session, "transition", body=reason, from_status=previous, to_status=to, at=now)

    # --- hooks run on every write path (models/base.py) ----------------------------------
    def before_insert(self, session: Session) -> None:
        ticket_session_defaults(self)
        self.apply_policy(session)
        self.record(session, "created", body=self.description, to_status=self.status, at=self.reported_at)

    def before_update(self, session: Session) -> None:
        from sqlalchemy import inspect as sa_inspect

        state = sa_inspect(self)
        if any(state.attrs[f].history.has_changes() for f in ("kind", "priority", "consult_mode", "received_at")):
            self.apply_policy(session)
        if state.attrs["assignee_id"].history.has_changes() or state.attrs["assignee"].history.has_changes():
            self.record(session, "assign", body=str(self.assignee) if self.assignee else None)
        if state.attrs["reply"].history.has_changes() and self.reply:
            self.record(session, "reply", body=self.reply)
            if self.replied_at is None:
                self.replied_at = utcnow()
                self.refresh_next_due()

    def after_insert(self, session: Session) -> None:
        if self.is_major_incident:
            notify_major_incident(session, self)

    def __str__(self) -> str:
        return self.number or f"Ticket {self.id}"


def next_ticket_number(session: Session, now: dt.datetime | None = None) -> str:
    """QZ + local date + a 4-digit sequence of the day; the unique index settles races."""
    from models.calendar import SHANGHAI

    now = now or utcnow()
    prefix = f"QZ{now.astimezone(SHANGHAI):%Y%m%d}-"
    last = session.execute(
        select(Ticket.number).where(Ticket.number.startswith(prefix)).order_by(Ticket.number.desc()).limit(1)
    ).scalar()
    seq = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{seq:04d}"


class TicketEvent(Model):  # not audited/versioned: immutable once written
    """One line of a ticket's timeline: immutable once written."""

    __tablename__ = "ticket_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), nullable=False)
    kind: Mapped[str] = mapped_column(
        String(24), nullable=False
    )  # created/transition/assign/reply/note/escalation/warning/callback
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    body: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    ticket = relationship("Ticket", back_populates="events", lazy="select")
    user = relationship("User", lazy="select")

    __table_args__ = (Index("ix_ticket_event_ticket", "ticket_id", "id"),)

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}"


EVENT_KINDS = {
    "created": T("登记", "Recorded"),
    "transition": T("状态变更", "Status change"),
    "assign": T("派单", "Assigned"),
    "reply": T("答复", "Reply"),
    "note": T("备注", "Note"),
    "escalation": T("升级", "Escalated"),
    "warning": T("预警", "Deadline warning"),
    "callback": T("回访", "Callback"),
    "notified": T("已通知", "Notified"),
}


@event.listens_for(Session, "before_flush")
def _timeline_is_immutable(session: Session, flush_context, instances) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, TicketEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise FieldErrors(
                {"event": [str(T("时间线记录不可修改或删除", "Timeline entries cannot be changed or deleted"))]}
            )


# --- callbacks -------------------------------------------------------------------------------
CALLBACK_STATUSES = {
    "pending": T("待回访", "Pending"),
    "done": T("已回访", "Done"),
    "unreachable": T("无法联系", "Unreachable"),
    "cancelled": T("已取消", "Cancelled"),
}


# The requests a callback may be made about (one is made by hand, by the screen or the API).
CALLBACK_TICKET_STATUSES = ("resolved", "callback", "closed")


class Callback(AuditedModel):
    """A follow-up with the resident after a repair or complaint is resolved (回访)."""

    __tablename__ = "callback"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), nullable=False)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reached: Mapped[bool | None] = mapped_column(Boolean)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    # Lateness steps handled (as tickets): 0 none, 1 supervisor told, 2 manager told.
    steps_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    ticket = relationship("Ticket", lazy="select")
    assignee = relationship("User", foreign_keys=[assignee_id], lazy="select")

    __table_args__ = (
        Index("ix_callback_next_due_at", "next_due_at", postgresql_where="next_due_at IS NOT NULL"),
        Index("ix_callback_status_due", "status", "due_at"),
        UniqueConstraint("ticket_id", "due_at", name="uq_callback_ticket_due"),
        CheckConstraint("satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name="ck_callback_satisfaction"),
    )

    # A finished callback is what the registers print as the result: read-only.
    __final__ = FinalStates(
        column="status", states=frozenset({"done", "unreachable", "cancelled"}), labels=CALLBACK_STATUSES
    )

    def check(self) -> None:
        errors = {}
        if self.ticket_id is None and self.ticket is None:
            errors["ticket"] = [str(T("请选择要回访的求助单", "Choose the request to call back about"))]
        if self.status not in CALLBACK_STATUSES:
            errors["status"] = [str(T("状态无效", "Invalid status"))]
        if self.satisfaction is not None and not 1 <= int(self.satisfaction) <= 5:
            errors["satisfaction"] = [str(T("满意度为 1 到 5 分", "Satisfaction is 1 to 5"))]
        if errors:
            raise FieldErrors(errors)

    def before_insert(self, session: Session) -> None:
        ticket = self.ticket if self.ticket is not None else session.get(Ticket, self.ticket_id) if self.ticket_id else None
        if ticket is None:
            return  # check() names the missing ticket
        if ticket.archived_at is not None or ticket.status not in CALLBACK_TICKET_STATUSES:
            raise FieldErrors(
                {
                    "ticket": [
                        str(
                            T(
                                "只能回访已解决、待回访或已关闭（未归档）的求助单",
                                "Only resolved, awaiting-callback or closed (not archived) requests get a callback",
                            )
                        )
                    ]
                }
            )
        if self.due_at is not None:
            self.refresh_next_due(int(_config("CALLBACK_SECOND_LEVEL_MINUTES", 240)))

    def record_outcome(
        self, session: Session, reached: bool, satisfaction: int | str | None = None, comment: str | None = None
    ) -> None:
        """The workflow action: see ``record_callback_outcome``."""
        if satisfaction is not None:
            satisfaction = int(satisfaction)
        record_callback_outcome(session, self, reached=reached, satisfaction=satisfaction, comment=comment)

    def refresh_next_due(self, second_level_minutes: int = 60) -> None:
        if self.status != "pending":
            self.next_due_at = None
        elif self.steps_done == 0:
            self.next_due_at = self.due_at
        elif self.steps_done == 1:
            self.next_due_at = self.due_at + dt.timedelta(minutes=second_level_minutes)
        else:
            self.next_due_at = None

    def __str__(self) -> str:
        return f"{self.ticket} 回访"


# --- duty and notifications ------------------------------------------------------------------
class DutyShift(AuditedModel):
    """Who is on duty when (值班): the escalation sweep tells the supervisor on duty."""

    __tablename__ = "duty_shift"

    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id"), nullable=False)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estate.id"))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    post: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)

    user = relationship("User", foreign_keys=[user_id], lazy="select")
    estate = relationship("Estate", lazy="select")

    __table_args__ = (Index("ix_duty_shift_time", "starts_at", "ends_at"),)

    def check(self) -> None:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise FieldErrors({"ends_at": [str(T("结束时间须晚于开始时间", "The end must be after the start"))]})

    def __str__(self) -> str:
        return f"{self.user} {self.starts_at:%m-%d %H:%M}"


NOTIFICATION_KINDS = {
    "major_incident": T("重大事件", "Major incident"),
    "warn": T("即将超时", "Deadline near"),
    "level1": T("超时升级至主管", "Late: escalated to supervisor"),
    "level2": T("超时升级至经理", "Late: escalated to manager"),
    "callback_late": T("回访超时", "Callback late"),
}
# Every kind a notification is stored with (jobs/escalation.py, renovation.py, dunning.py), as the
# inbox shows it.
NOTIFICATION_KIND_LABELS = {
    **NOTIFICATION_KINDS,
    "reply_warn": T("答复即将超时", "Reply deadline near"),
    "reply_level1": T("答复超时·升级至主管", "Reply late: to the supervisor"),
    "reply_level2": T("答复超时·升级至经理", "Reply late: to the manager"),
    "resolve_warn": T("处理即将超时", "Resolution deadline near"),
    "resolve_level1": T("处理超时·升级至主管", "Resolution late: to the supervisor"),
    "resolve_level2": T("处理超时·升级至经理", "Resolution late: to the manager"),
    "callback_level1": T("回访超时·升级至主管", "Callback late: to the supervisor"),
    "callback_level2": T("回访超时·升级至经理", "Callback late: to the manager"),
    "reno_inspection": T("装修巡查提醒", "Renovation inspection due"),
    "reno_overdue": T("装修超期", "Renovation overdue"),
    "rect_level1": T("整改超时·升级至主管", "Rectification late: to the supervisor"),
    "rect_level2": T("整改超时·升级至经理", "Rectification late: to the manager"),
    "dunning_reminder": T("缴费提醒已生成", "Payment reminders made"),
    "dunning_formal": T("催缴通知已生成", "Formal notices made"),
    "dunning_final": T("最后催缴通知已生成", "Final notices made"),
}
NOTIFICATION_CHANNELS = {
    "inbox": T("站内信", "In-app"),
    "email": T("邮件", "Email"),
    "webhook": T("群机器人", "Group robot"),
}
NOTIFICATION_STATES = {
    "pending": T("待发送", "Pending"),
    "sending": T("发送中", "Sending"),
    "sent": T("已发送", "Sent"),
    "failed": T("发送失败", "Failed"),
}


class Notification(Model):
    """One message to one recipient on one channel about one deadline step. The unique key is
    claimed before anything is sent, so two sweeps, a rerun or a killed worker never notify twice."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id"))
    # "user:<id>" for a person (inbox, email), "role:<name>" for a role's group robot (webhook).
    recipient: Mapped[str] = mapped_column(String(64), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False, default="inbox")
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    subject_type: Mapped[str] = mapped_column(String(24), nullable=False, default="ticket")
    subject_id: Mapped[int] = mapped_column(BigId, nullable=False)
    deadline_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user = relationship("User", lazy="select")

    __table_args__ = (
        UniqueConstraint(
            "subject_type", "subject_id", "kind", "deadline_at", "channel", "recipient", name="uq_notification_once"
        ),
        Index("ix_notification_inbox", "user_id", "channel", "read_at"),
        Index("ix_notification_state", "state", "lease_until"),
    )

    def __str__(self) -> str:
        return self.title

    @staticmethod
    def mark_read(session: Session, pk: int, user_id: int) -> bool:
        """Mark one of the user's unread notifications read: one atomic UPDATE (no version, no
        race); False when there is none such (not the user's, or read already)."""
        from sqlalchemy import update

        if not 0 < pk < 2**63:  # no such row can exist; and the database would refuse the number
            return False
        result = session.execute(
            update(Notification)
            .where(Notification.id == pk, Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return result.rowcount == 1

    @staticmethod
    def unread_count(session: Session, user_id: int) -> int:
        mine = (Notification.user_id == user_id, Notification.channel == "inbox", Notification.read_at.is_(None))
        return session.execute(select(func.count()).select_from(Notification).where(*mine)).scalar()


def webhook_host_allowed(url: str) -> bool:
    """The server posts to these places only: a robot URL typed in a form must not make the server
    call into the office's own network (server-side request forgery). An entry ``host`` allows
    ``https://host`` on port 443 only; ``host:port`` that port (http or https), ``host:*`` any
    port (test robots on loopback)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return False
    if not host or parts.scheme not in ("http", "https") or parts.username or parts.password:
        return False
    for entry in str(_config("WEBHOOK_ALLOWED_HOSTS", "")).split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        name, _, allowed_port = entry.partition(":")
        if name != host:
            continue
        if not allowed_port:
            if parts.scheme == "https" and port in (None, 443):
                return True
        elif allowed_port == "*" or (port is not None and allowed_port == str(port)):
            return True
    return False


class NotificationRoute(AuditedModel):
    """Per role: send email to its members, and/or post to its group robot's webhook."""

    __tablename__ = "notification_route"

    role: Mapped[str] = mapped_column(String(32), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # email / webhook
    target: Mapped[str | None] = mapped_column(String(500))  # webhook URL
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    __table_args__ = (UniqueConstraint("role", "channel", "target", name="uq_notification_route"),)

    def check(self) -> None:
        errors = {}
        if self.channel not in ("email", "webhook"):
            errors["channel"] = [str(T("渠道为 email 或 webhook", "The channel is email or webhook"))]
        if self.channel == "webhook":
            if not (self.target or "").startswith(("http://", "https://")):
                errors["target"] = [str(T("请填写 http(s) 地址", "Give an http(s) address"))]
            elif not webhook_host_allowed(self.target):
                errors["target"] = [
                    str(
                        T(
                            "只允许企业微信/钉钉群机器人地址（WEBHOOK_ALLOWED_HOSTS）",
                            "Only WeCom / DingTalk robot addresses are allowed (WEBHOOK_ALLOWED_HOSTS)",
                        )
                    )
                ]
        if errors:
            raise FieldErrors(errors)

    def __str__(self) -> str:
        return f"{self.role}/{self.channel}"


def ticket_session_defaults(ticket: Ticket) -> None:
    """Fill what a new ticket derives: number, estate from the unit, deadlines."""
    session = object_session(ticket)
    if ticket.reported_at is None:
        ticket.reported_at = utcnow()
    if ticket.received_at is None:
        ticket.received_at = ticket.reported_at
    if not ticket.number:
        ticket.number = next_ticket_number(session, ticket.reported_at)
    if ticket.unit is not None and ticket.estate_id is None:
        ticket.estate_id = ticket.unit.estate_id


__all__ = [
    "Callback",
    "DutyShift",
    "Notification",
    "NotificationRoute",
    "SlaPolicy",
    "Ticket",
    "TicketEvent",
]


# --- who is told, and claiming each message once -----------------------------------------------
def users_with_role(session: Session, role_name: str, estate_id: int | None = None) -> list:
    """The active users of a role; with ``estate_id``, only those who work for that estate (or
    for the whole company: models/scope.py). Nobody is told of another estate's affairs."""
    from flask_appbuilder.security.sqla.models import Role, User

    from models.scope import UserEstate

    stmt = select(User).join(User.roles).where(Role.name == role_name, User.active.is_(True))
    if estate_id is not None:
        stmt = stmt.where(
            User.desk_estates.any((UserEstate.estate_id == estate_id) | UserEstate.estate_id.is_(None))
        )
    return list(session.execute(stmt.order_by(User.id)).scalars())


def supervisors_on_duty(session: Session, estate_id: int | None, now: dt.datetime) -> list:
    """Supervisors of the estate whose duty shift covers ``now`` (for the estate or all estates);
    when nobody is rostered, every supervisor of the estate: a late reply is never told to no one,
    nor to another estate's supervisors."""
    supervisors = users_with_role(session, "Supervisor", estate_id)
    ids = {u.id for u in supervisors}
    on_duty = (
        session.execute(
            select(DutyShift.user_id).where(
                DutyShift.starts_at <= now,
                DutyShift.ends_at > now,
                (DutyShift.estate_id.is_(None)) | (DutyShift.estate_id == estate_id),
            )
        )
        .scalars()
        .all()
    )
    chosen = [u for u in supervisors if u.id in set(on_duty) & ids]
    return chosen or supervisors


def recipients(session: Session, level: int, estate_id: int | None, now: dt.datetime, assignee=None) -> dict[str, list]:
    """role -> users to tell for an escalation level (0: warn the assignee or the supervisors)."""
    if level == 0:
        if assignee is not None:
            return {"Staff": [assignee]}
        return {"Supervisor": supervisors_on_duty(session, estate_id, now)}
    if level == 1:
        return {"Supervisor": supervisors_on_duty(session, estate_id, now)}
    return {
        "Supervisor": supervisors_on_duty(session, estate_id, now),
        "Manager": users_with_role(session, "Manager", estate_id),
    }


def claim_notifications(
    session: Session,
    *,
    subject_type: str,
    subject_id: int,
    kind: str,
    deadline_at: dt.datetime,
    people: dict[str, list],
    title: str,
    body: str,
) -> list[int]:
    """Insert one row per (recipient, channel) unless it exists; return the ids this call made.
    The unique key is the claim: whoever inserts the row first sends it, nobody sends it twice."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    routes = session.execute(select(NotificationRoute).where(NotificationRoute.active.is_(True))).scalars().all()
    rows = []
    base = {
        "subject_type": subject_type,
        "subject_id": subject_id,
        "kind": kind,
        "deadline_at": deadline_at,
        "title": title[:200],
        "body": body,
        "state": "pending",
        "attempts": 0,
        "created_at": utcnow(),
    }
    for role, users in people.items():
        emails = any(r.role == role and r.channel == "email" for r in routes)
        for user in users:
            rows.append({**base, "user_id": user.id, "recipient": f"user:{user.id}", "channel": "inbox"})
            if emails and user.email:
                rows.append({**base, "user_id": user.id, "recipient": f"user:{user.id}", "channel": "email"})
        for route in routes:
            if route.role == role and route.channel == "webhook":
                rows.append({**base, "user_id": None, "recipient": f"route:{route.id}", "channel": "webhook"})
    if not rows:
        return []
    insert_ = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    new_ids = []
    for row in rows:  # RETURNING of a multi-row ON CONFLICT insert is not portable: one at a time
        got = session.execute(
            insert_(Notification).values(**row).on_conflict_do_nothing().returning(Notification.id)
        ).scalar()
        if got is not None:
            new_ids.append(got)
    session.info.setdefault("desk_new_notifications", []).extend(new_ids)
    return new_ids


def _config(name: str, default):
    from flask import current_app, has_app_context

    return current_app.config.get(name, default) if has_app_context() else default


def schedule_callback(session: Session, ticket: Ticket, now: dt.datetime) -> Callback:
    delay = int(_config("CALLBACK_DELAY_MINUTES", 24 * 60))
    callback = Callback(ticket=ticket, due_at=now + dt.timedelta(minutes=delay), status="pending")
    callback.refresh_next_due(int(_config("CALLBACK_SECOND_LEVEL_MINUTES", 240)))
    session.add(callback)
    return callback


def record_callback_outcome(
    session: Session,
    callback: Callback,
    *,
    reached: bool,
    satisfaction: int | None = None,
    comment: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Reached: record satisfaction; an unsatisfied result reopens the ticket, else it closes.
    Not reached: count the try; after the configured number of tries the callback closes as
    unreachable and so does the ticket."""
    from models.base import current_actor_id

    now = now or utcnow()
    if callback.status != "pending":
        raise FieldErrors({"status": [str(T("该回访已完成", "This callback is already finished"))]})
    ticket = callback.ticket
    callback.attempts += 1
    # The callback's 回访人 is whoever recorded it (the last try, when there were several).
    callback.assignee_id = current_actor_id(session)
    if "assignee" in callback.__dict__:
        session.expire(callback, ["assignee"])  # read again from the new id, not the old person
    if reached:
        if satisfaction is None or not 1 <= int(satisfaction) <= 5:
            raise FieldErrors({"satisfaction": [str(T("满意度为 1 到 5 分", "Satisfaction is 1 to 5"))]})
        callback.reached = True
        callback.satisfaction = int(satisfaction)
        callback.comment = comment
        callback.status = "done"
        callback.done_at = now
        unsatisfied = callback.satisfaction <= int(_config("CALLBACK_UNSATISFIED_AT_MOST", 2))
        ticket.record(
            session, "callback", body=comment, at=now, data={"reached": True, "satisfaction": callback.satisfaction}
        )
        if ticket.status in ("callback", "resolved"):
            ticket.transition(session, "reopened" if unsatisfied else "closed", now=now)
        elif ticket.status == "closed" and unsatisfied and ticket.archived_at is None:
            # A callback made by hand after closing: an unsatisfied resident reopens the case too.
            ticket.transition(session, "reopened", now=now)
    else:
        callback.reached = False
        callback.comment = comment
        ticket.record(session, "callback", body=comment, at=now, data={"reached": False, "attempt": callback.attempts})
        if callback.attempts >= int(_config("CALLBACK_MAX_TRIES", 3)):
            callback.status = "unreachable"
            callback.done_at = now
            if ticket.status in ("callback", "resolved"):
                ticket.transition(session, "closed", reason=str(T("回访无法联系", "Callback: unreachable")), now=now)
    callback.refresh_next_due(int(_config("CALLBACK_SECOND_LEVEL_MINUTES", 240)))


def notify_major_incident(session: Session, ticket: Ticket) -> list[int]:
    """Supervisor and manager are told the moment a major case is recorded, whatever the hour."""
    now = ticket.reported_at or utcnow()
    people = recipients(session, 2, ticket.estate_id, now)
    kind_label = TICKET_KINDS[ticket.kind].zh
    title = f"【重大事件】{kind_label} {ticket.number}"
    body = f"{ticket.address or ''} {ticket.description}".strip()
    ids = claim_notifications(
        session,
        subject_type="ticket",
        subject_id=ticket.id,
        kind="major_incident",
        deadline_at=now,
        people=people,
        title=title,
        body=body,
    )
    if ids:
        ticket.record(
            session, "notified", body=title, at=now, data={"notifications": len(ids), "kind": "major_incident"}
        )
    return ids
