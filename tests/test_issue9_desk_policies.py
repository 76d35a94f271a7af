"""Issue 9, item 7: a response policy never silently drops a rule of the procedure.

Every rule of the rulebook (reply within 5 minutes; a written reply to a written consultation within
2 working days) is a floor: a policy tightens it in the rule's own terms, or names it in
``replaces_rule``; otherwise the rule applies. The policy's page and the ticket say which applies."""

from __future__ import annotations

import datetime as dt

import pytest

from models.desk import RULEBOOK, TICKET_KINDS


def _where(rule) -> tuple[str, str | None]:
    """A class and consultation mode the rule applies to."""
    kind = sorted(rule.kinds)[0] if rule.kinds else "other"
    return kind, rule.consult_mode


def _policy(kind: str, **limits):
    from models.desk import SEED_POLICY, SlaPolicy

    values = {**SEED_POLICY, "resolve_working_days": None, **limits}
    return SlaPolicy(kind=kind, priority=None, active=True, **values)


def _limit(limits: dict, rule) -> tuple:
    return limits[f"{rule.deadline}_minutes"], limits.get(f"{rule.deadline}_working_days")


@pytest.mark.parametrize("key", sorted(RULEBOOK))
def test_every_rule_is_a_floor_a_policy_tightens_or_names(key):
    from models.desk import effective_limits

    rule = RULEBOOK[key]
    kind, mode = _where(rule)
    ruled = (rule.minutes, rule.working_days)
    unit = "minutes" if rule.minutes is not None else "working_days"
    amount = rule.minutes if rule.minutes is not None else rule.working_days
    field = f"{rule.deadline}_{unit}"
    other = "resolve_minutes" if unit == "working_days" else None  # the same deadline, counted otherwise

    # No policy at all: the rule.
    limits, basis = effective_limits(None, kind, mode)
    assert _limit(limits, rule) == ruled and basis[rule.deadline] == f"rule:{key}"
    # Looser in the rule's own terms: the rule stays.
    looser = {field: amount * 3}
    if field == "resolve_working_days":
        looser["resolve_minutes"] = None
    limits, basis = effective_limits(_policy(kind, **looser), kind, mode)
    assert _limit(limits, rule) == ruled and basis[rule.deadline] == f"rule:{key}"
    # Counted otherwise (calendar minutes for a working-day rule: the reported case): the rule stays.
    if other:
        limits, basis = effective_limits(_policy(kind, **{other: 1440}), kind, mode)
        assert _limit(limits, rule) == ruled and basis[rule.deadline] == f"rule:{key}"
    # Tighter in the same terms: the policy.
    tighter = {field: max(1, amount - 1) if amount > 1 else amount}
    if field == "resolve_working_days":
        tighter["resolve_minutes"] = None
    limits, basis = effective_limits(_policy(kind, **tighter), kind, mode)
    assert basis[rule.deadline].startswith("policy:")
    assert limits[field] == tighter[field]
    # Named as replaced: the policy, however loose.
    limits, basis = effective_limits(_policy(kind, replaces_rule=key, **looser), kind, mode)
    assert basis[rule.deadline].startswith("policy:") and limits[field] == looser[field]
    # A class or mode the rule is not about is the policy's alone.
    for other_kind in TICKET_KINDS:
        for other_mode in (None, "oral", "written"):
            if rule.applies(other_kind, other_mode):
                continue
            limits, basis = effective_limits(_policy(other_kind, **looser), other_kind, other_mode)
            assert basis[rule.deadline].startswith("policy:")


def _consultation_policy(api) -> dict:
    rows = api("Manager").get("/api/v1/sla_policy/?q=(page_size:100)").json["result"]
    return next(r for r in rows if r["kind"] == "consultation" and r["priority"] is None)


def _consultation(api, ids, mode: str, received: str) -> int:
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={
            "kind": "consultation",
            "consult_mode": mode,
            "channel": "written" if mode == "written" else "phone",
            "unit": ids["unit"],
            "description": f"{mode} 咨询",
            "received_at": received,
            "received_late_reason": "信件邮寄" if mode == "written" else "停电时记录",
        },
    )
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def _due(api, pk) -> dt.datetime:
    return dt.datetime.fromisoformat(api("Staff").get(f"/api/v1/ticket/{pk}").json["result"]["resolve_due_at"])


def test_a_consultation_policy_in_minutes_keeps_the_written_reply_rule(app, api, web, make_unit):
    """The reported case: a consultation policy of 1440 minutes (the installed row says exactly
    that) leaves written consultations at 2 working days; oral ones get the 1440 minutes; naming
    the rule replaces it. The policy's page and the ticket's page say which applies."""
    assert app.test_cli_runner().invoke(args=["desk", "holidays", "--year", "2026"]).exit_code == 0
    policy = _consultation_policy(api)
    assert (policy["resolve_minutes"], policy["resolve_working_days"], policy["replaces_rule"]) == (1440, None, None)
    ids = make_unit()
    received = "2026-09-24T10:00:00+08:00"  # Thursday; 25-27 Mid-Autumn; Mon 28 and Tue 29 working
    written = _consultation(api, ids, "written", received)
    oral = _consultation(api, ids, "oral", received)
    start = dt.datetime.fromisoformat(received)
    assert _due(api, written) == dt.datetime.fromisoformat("2026-09-29T10:00:00+08:00")
    assert _due(api, oral) == start + dt.timedelta(minutes=1440)

    staff = web("Staff")
    page = staff.get(f"/ticket/show/{written}").get_data(as_text=True)
    assert "解决时限依据" in page and str(RULEBOOK["written_reply"].label.zh) in page
    manager = web("Manager")
    page = manager.get(f"/sla_policy/show/{policy['id']}").get_data(as_text=True)
    assert str(RULEBOOK["written_reply"].label.zh) in page and "此条规程适用" in page
    form = manager.get("/sla_policy/add").get_data(as_text=True)
    assert "替代规程" in form and "书面咨询 2 个工作日内书面答复" in form

    resp = api("Manager").put(
        f"/api/v1/sla_policy/{policy['id']}", json={"replaces_rule": "written_reply", "version": policy["version"]}
    )
    assert resp.status_code == 200, resp.json
    try:
        # Open requests follow the policy now: the written one too, in calendar minutes.
        assert _due(api, written) == start + dt.timedelta(minutes=1440)
        page = manager.get(f"/sla_policy/show/{policy['id']}").get_data(as_text=True)
        assert "本策略替代此条规程" in page
        page = staff.get(f"/ticket/show/{written}").get_data(as_text=True)
        assert "响应时限策略「咨询/*」" in page
    finally:
        back = api("Manager").put(
            f"/api/v1/sla_policy/{policy['id']}", json={"replaces_rule": None, "version": resp.json["version"]}
        )
        assert back.status_code == 200, back.json
    assert _due(api, written) == dt.datetime.fromisoformat("2026-09-29T10:00:00+08:00")


def test_a_policy_cannot_loosen_the_reply_rule_without_naming_it(api):
    policy = next(
        r
        for r in api("Manager").get("/api/v1/sla_policy/?q=(page_size:100)").json["result"]
        if r["kind"] == "repair" and r["priority"] is None
    )
    resp = api("Manager").put(f"/api/v1/sla_policy/{policy['id']}", json={"reply_minutes": 20, "version": policy["version"]})
    assert resp.status_code == 422 and "reply_minutes" in resp.json["message"], resp.json
    assert "5 分钟" in resp.json["message"]["reply_minutes"][0]
    # A rule that is not about this class cannot be "replaced" by it.
    resp = api("Manager").put(
        f"/api/v1/sla_policy/{policy['id']}", json={"replaces_rule": "written_reply", "version": policy["version"]}
    )
    assert resp.status_code == 422 and "replaces_rule" in resp.json["message"], resp.json
