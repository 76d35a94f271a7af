"""Issue 9, items 4 and 12: the holiday calendar and the response policies an install starts with.

The calendar comes from the ``chinese-calendar`` package (the State Council's notices), loaded at
install by the migration and for any year by ``flask desk holidays --year``; a year the package does
not know is a clear error, and a Manager's corrections are never overwritten. The response policies
the desk applies are rows a Manager sees, written at install."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _install_years(known: range) -> range:
    this_year = dt.datetime.now(SHANGHAI).year
    return range(max(known.start, this_year - 1), known.stop)


def _official(year: int) -> dict[dt.date, str]:
    """What chinese-calendar itself says, asked through its own API (not through our code)."""
    import chinese_calendar

    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    # Public holidays (weekend days inside a holiday period included), and Saturdays and Sundays
    # that are working days (调休).
    out = {d: "holiday" for d in chinese_calendar.get_holidays(start, end, include_weekends=False)}
    for day in chinese_calendar.get_dates(start, end):
        if day.weekday() >= 5 and chinese_calendar.is_workday(day):
            out[day] = "workday"
    return out


def _calendar_rows(session, years: range) -> dict[dt.date, str]:
    from models.calendar import Holiday

    rows = session.execute(
        select(Holiday.day, Holiday.kind).where(
            Holiday.day >= dt.date(years.start, 1, 1), Holiday.day <= dt.date(years.stop - 1, 12, 31)
        )
    ).all()
    return dict(rows)


def _check_installed(session) -> None:
    from flask_appbuilder.security.sqla.models import User

    from models.calendar import known_years
    from models.desk import SEED_POLICY, TICKET_KINDS, SlaPolicy

    known = known_years()
    years = _install_years(known)
    assert len(years) >= 1, f"chinese-calendar {known} is older than last year: upgrade it"
    have = _calendar_rows(session, years)
    for year in years:
        official = _official(year)
        assert official, year
        for day, kind in official.items():
            assert have.get(day) == kind, (day, kind, have.get(day))
    # One policy per class, any priority, the values the desk applies, by the system user.
    rows = session.execute(select(SlaPolicy).where(SlaPolicy.priority.is_(None))).scalars().all()
    assert {r.kind for r in rows} == set(TICKET_KINDS)
    system = session.execute(select(User.id).where(User.username == "system")).scalar_one()
    for r in rows:
        assert r.created_by_id == system
    seeded = [r for r in rows if r.created_by_id == system and r.version == 1]
    for r in seeded:
        assert {k: getattr(r, k) for k in SEED_POLICY} == SEED_POLICY


def test_a_fresh_postgresql_install_has_the_calendar_and_the_policies(app, db_session):
    """The session's database was built by ``flask db upgrade`` (conftest): nothing else loaded it."""
    _check_installed(db_session)


def test_a_fresh_sqlite_install_has_the_calendar_and_the_policies(tmp_path):
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    sqlite_app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'desk.db'}",
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
            "SYNC_ROLES_ON_START": False,
        }
    )
    with sqlite_app.app_context():
        upgrade()
        _check_installed(db.session)
        db.session.remove()


def test_the_command_loads_a_year_and_keeps_a_managers_corrections(app, api):
    from app.extensions import db
    from models.calendar import Holiday

    year = 2025  # not a year other tests compute deadlines in
    official = _official(year)
    national_day = dt.date(year, 10, 1)
    corrected = dt.date(year, 10, 11)  # a make-up Saturday the Manager says the office took off
    assert official[national_day] == "holiday" and official[corrected] == "workday"
    with app.app_context():
        row = db.session.execute(select(Holiday).where(Holiday.day == corrected)).scalar_one()
        pk, version = row.id, row.version
        db.session.execute(delete(Holiday).where(Holiday.day == national_day))  # lost somehow
        db.session.commit()
        db.session.remove()
    resp = api("Manager").put(
        f"/api/v1/holiday/{pk}", json={"kind": "holiday", "name": "管理处安排休息", "version": version}
    )
    assert resp.status_code == 200, resp.json
    try:
        result = app.test_cli_runner().invoke(args=["desk", "holidays", "--year", str(year)])
        assert result.exit_code == 0, result.output
        assert f"{year}: 1 days added" in result.output
        assert "1 kept as a Manager changed them" in result.output
        with app.app_context():
            have = _calendar_rows(db.session, range(year, year + 1))
            assert have[national_day] == "holiday"  # back
            assert have[corrected] == "holiday"  # the Manager's word stands
            assert {d: k for d, k in have.items() if d != corrected} == {
                d: k for d, k in official.items() if d != corrected
            }
            db.session.remove()
        # Again: nothing to add, nothing overwritten.
        again = app.test_cli_runner().invoke(args=["desk", "holidays", "--year", str(year)])
        assert again.exit_code == 0 and f"{year}: 0 days added" in again.output
    finally:
        with app.app_context():
            row = db.session.get(Holiday, pk)
            row.kind, row.name = "workday", "国庆节调休"
            db.session.commit()
            db.session.remove()


def test_a_year_the_package_does_not_know_is_a_clear_error_and_loads_nothing(app):
    from app.extensions import db
    from models.calendar import known_years

    known = known_years()
    for year in (known.stop, known.start - 1):
        result = app.test_cli_runner().invoke(args=["desk", "holidays", "--year", str(year)])
        assert result.exit_code != 0, result.output
        assert str(year) in result.output and "chinese-calendar" in result.output, result.output
        with app.app_context():
            assert _calendar_rows(db.session, range(year, year + 1)) == {}
            db.session.remove()


def test_the_command_without_a_year_says_what_the_package_and_the_table_have(app):
    from models.calendar import known_years

    known = known_years()
    result = app.test_cli_runner().invoke(args=["desk", "holidays"])
    assert result.exit_code == 0, result.output
    assert f"{known.start}-{known.stop - 1}" in result.output
    assert f"{known.stop - 1} (" in result.output  # the last known year is in the table, with its count


def test_a_written_consultation_before_national_day_is_due_after_it(app, api, make_unit):
    """The reported case: received 2026-09-30 10:00, two working days later is 2026-10-09 10:00
    (1-7 October are National Day holidays), not 2026-10-02."""
    assert app.test_cli_runner().invoke(args=["desk", "holidays", "--year", "2026"]).exit_code == 0
    ids = make_unit()
    resp = api("Staff").post(
        "/api/v1/ticket/",
        json={
            "kind": "consultation",
            "consult_mode": "written",
            "channel": "written",
            "unit": ids["unit"],
            "description": "来信咨询物业费标准",
            "received_at": "2026-09-30T10:00:00+08:00",
            "received_late_reason": "信件邮寄，节后登记",
        },
    )
    assert resp.status_code == 201, resp.json
    t = api("Staff").get(f"/api/v1/ticket/{resp.json['id']}").json["result"]
    assert dt.datetime.fromisoformat(t["resolve_due_at"]) == dt.datetime(2026, 10, 9, 10, 0, tzinfo=SHANGHAI)


def test_the_policy_list_shows_the_limits_the_desk_applies(app, api, make_unit):
    """No hidden constants: what a new request gets is what the class's row says; changing the row
    changes the request."""
    from models.desk import TICKET_KINDS

    rows = api("Staff").get("/api/v1/sla_policy/?q=(page_size:100)").json["result"]
    by_kind = {r["kind"]: r for r in rows if r["priority"] is None}
    assert set(by_kind) == set(TICKET_KINDS)
    other = by_kind["other"]
    ids = make_unit()
    resp = api("Staff").post(
        "/api/v1/ticket/", json={"kind": "other", "channel": "phone", "unit": ids["unit"], "description": "借推车"}
    )
    pk = resp.json["id"]

    def minutes(t, due):
        return (dt.datetime.fromisoformat(t[due]) - dt.datetime.fromisoformat(t["received_at"])).total_seconds() / 60

    t = api("Staff").get(f"/api/v1/ticket/{pk}").json["result"]
    assert minutes(t, "reply_due_at") == other["reply_minutes"]
    assert minutes(t, "resolve_due_at") == other["resolve_minutes"]
    resp = api("Manager").put(
        f"/api/v1/sla_policy/{other['id']}", json={"reply_minutes": 3, "resolve_minutes": 90, "version": other["version"]}
    )
    assert resp.status_code == 200, resp.json
    try:
        t = api("Staff").get(f"/api/v1/ticket/{pk}").json["result"]
        assert (minutes(t, "reply_due_at"), minutes(t, "resolve_due_at")) == (3, 90)
    finally:
        back = api("Manager").put(
            f"/api/v1/sla_policy/{other['id']}",
            json={
                "reply_minutes": other["reply_minutes"],
                "resolve_minutes": other["resolve_minutes"],
                "version": resp.json["version"],
            },
        )
        assert back.status_code == 200, back.json


def test_one_any_priority_policy_per_class(api):
    resp = api("Manager").post(
        "/api/v1/sla_policy/",
        json={"kind": "repair", "reply_minutes": 5, "resolve_minutes": 60, "second_level_minutes": 30, "warn_minutes": 2},
    )
    assert resp.status_code == 422 and "priority" in resp.json["message"], resp.json


def test_an_upgrade_keeps_what_a_manager_entered_before(tmp_path):
    """A database that already has a Manager's policy and a corrected day: the upgrade writes the
    missing rows only."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from app.extensions import db
    from models.desk import SEED_POLICY, TICKET_KINDS, SlaPolicy

    sqlite_app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}",
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-that-is-long-enough-for-hs256",
            "SYNC_ROLES_ON_START": False,
        }
    )
    from models.calendar import known_years

    year = _install_years(known_years()).stop - 1
    corrected, other = sorted(d for d, k in _official(year).items() if k == "holiday")[:2]
    with sqlite_app.app_context():
        upgrade(revision="sec0001")
        stamp = {"now": dt.datetime(2026, 1, 5, 8, 0)}
        db.session.execute(
            text(
                "INSERT INTO ab_user (id, first_name, last_name, username, email, active) "
                "VALUES (7, '管理处', '经理', 'boss', 'boss@x', 1)"
            )
        )
        common = "version, created_at, changed_at, created_by_id, changed_by_id"
        db.session.execute(
            text(
                f"INSERT INTO sla_policy (kind, priority, reply_minutes, resolve_minutes, second_level_minutes, "
                f"warn_minutes, active, {common}) VALUES ('repair', NULL, 3, 600, 20, 1, 1, 1, :now, :now, 7, 7)"
            ),
            stamp,
        )
        db.session.execute(
            text(f"INSERT INTO holiday (day, kind, name, {common}) VALUES (:day, 'workday', '值班', 1, :now, :now, 7, 7)"),
            {**stamp, "day": corrected.isoformat()},
        )
        db.session.commit()
        upgrade()
        rows = {r.kind: r for r in db.session.execute(select(SlaPolicy).where(SlaPolicy.priority.is_(None))).scalars()}
        assert set(rows) == set(TICKET_KINDS)
        assert (rows["repair"].reply_minutes, rows["repair"].resolve_minutes, rows["repair"].created_by_id) == (3, 600, 7)
        for kind in set(TICKET_KINDS) - {"repair"}:
            assert {k: getattr(rows[kind], k) for k in SEED_POLICY} == SEED_POLICY
        have = _calendar_rows(db.session, range(year, year + 1))
        assert have[corrected] == "workday"  # the Manager's
        assert have[other] == "holiday"  # the rest from chinese-calendar
        db.session.remove()
