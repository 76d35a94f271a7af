"""Records retention (DESIGN.md item 13, jobs/retention.py) on the real PostgreSQL: yearly
archiving with an injected 1 January, archived tickets out of the working lists and in the
read-only archive, purge after two years only through a verified export, restore with the same
ids, and a purge killed between the file and the delete.

Each test uses its own far-past years, so the jobs (which act on every due row) never touch the
rows of another test: 2011 (archive), 2001 (purge and restore), 1995 (interrupted purge).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path

import prison
import pytest
from sqlalchemy import and_, or_, select, text

UTC = dt.UTC
ARCHIVE = "jobs.retention.archive_closed_tickets"
PURGE = "jobs.retention.purge_archived_tickets"


def run(app, task: str, **kwargs):
    """Run a periodic job in-process, as ``flask desk run-job`` does (app context, system user)."""
    result = app.extensions["celery"].tasks[task].apply(kwargs=kwargs)
    if result.failed():
        raise result.result
    return result.result


def make_ticket(app, unit_id: int, kind: str, end: str | None, at: dt.datetime) -> tuple[int, str]:
    """A ticket recorded at ``at`` and taken to ``end`` (closed / cancelled / None: left open),
    through the ORM as the system user. A repair gets a cost and a callback; a security case
    notifies the supervisor and the manager."""
    from app.extensions import db
    from models.base import acting_as, system_user_id
    from models.desk import Callback, Ticket, record_callback_outcome

    with app.app_context():
        s = db.session
        with acting_as(system_user_id(s)):
            extra = (
                {"subkind": "theft", "address": "1栋大堂", "callback_phone": "13800138000"} if kind == "security" else {}
            )
            t = Ticket(
                kind=kind,
                channel="phone",
                priority="normal",
                unit_id=unit_id,
                description=f"留存测试 {kind}",
                reported_at=at,
                **extra,
            )
            s.add(t)
            s.flush()
            step = at + dt.timedelta(hours=1)
            if end == "closed" and kind == "repair":
                t.responsibility = "common_area"
                t.cost = Decimal("35.50")
                t.transition(s, "acknowledged", now=step)
                t.transition(s, "resolved", now=step + dt.timedelta(hours=2))  # -> callback
                s.flush()
                cb = s.execute(select(Callback).where(Callback.ticket_id == t.id)).scalar_one()
                record_callback_outcome(s, cb, reached=True, satisfaction=5, comment="满意", now=step + dt.timedelta(days=2))
            elif end == "closed":
                t.transition(s, "resolved", now=step)
                t.transition(s, "closed", now=step + dt.timedelta(hours=1))
            elif end == "cancelled":
                t.transition(s, "cancelled", reason="住户撤回", now=step)
            s.commit()
            assert t.status == (end or "new"), t.status
            result = (t.id, t.number)
        s.remove()
    return result


def snapshot(app, ticket_ids: list[int]) -> dict[str, dict[int, dict]]:
    """Every row of these tickets, table -> id -> columns."""
    from app.extensions import db
    from models.desk import Callback, Notification, Ticket, TicketEvent

    t, ev, cb, n = Ticket.__table__, TicketEvent.__table__, Callback.__table__, Notification.__table__
    with app.app_context():
        s = db.session
        rows = {
            "ticket": s.execute(select(t).where(t.c.id.in_(ticket_ids))).mappings().all(),
            "ticket_event": s.execute(select(ev).where(ev.c.ticket_id.in_(ticket_ids))).mappings().all(),
            "callback": s.execute(select(cb).where(cb.c.ticket_id.in_(ticket_ids))).mappings().all(),
        }
        cb_ids = [r["id"] for r in rows["callback"]] or [-1]
        rows["notification"] = (
            s.execute(
                select(n).where(
                    or_(
                        and_(n.c.subject_type == "ticket", n.c.subject_id.in_(ticket_ids)),
                        and_(n.c.subject_type == "callback", n.c.subject_id.in_(cb_ids)),
                    )
                )
            )
            .mappings()
            .all()
        )
        s.remove()
    return {table: {r["id"]: dict(r) for r in got} for table, got in rows.items()}


def without_archived_at(snap: dict) -> dict:
    """A restore starts a new retention period: everything as it was but ``archived_at``."""
    out = dict(snap)
    out["ticket"] = {pk: {k: v for k, v in row.items() if k != "archived_at"} for pk, row in snap["ticket"].items()}
    return out


def restore_day(app) -> dt.date:
    from models.fees import local_today

    with app.app_context():
        return local_today()


def local_midnight(day: dt.date) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


def by_number(number: str) -> str:
    return "?q=" + prison.dumps({"filters": [{"col": "number", "opr": "eq", "value": number}]})


@pytest.fixture()
def export_dir(app, tmp_path, monkeypatch) -> Path:
    monkeypatch.setitem(app.config, "RETENTION_EXPORT_DIR", str(tmp_path / "retention"))
    return tmp_path / "retention"


def exports(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl.gz")) if directory.is_dir() else []


# --- 1. yearly archiving ---------------------------------------------------------------------
def test_retention_archive_on_new_year_keeps_open_tickets_and_is_idempotent(app, make_unit, api, web):
    unit = make_unit()["unit"]
    last_year = dt.datetime(2011, 6, 15, 2, 0, tzinfo=UTC)
    closed, closed_no = make_ticket(app, unit, "repair", "closed", last_year)
    cancelled, cancelled_no = make_ticket(app, unit, "security", "cancelled", last_year)
    still_open, open_no = make_ticket(app, unit, "consultation", None, last_year)
    # Recorded at 00:30 on 1 January 2012 in Shanghai (still 2011 in UTC): next year's register.
    next_year, next_year_no = make_ticket(app, unit, "consultation", "closed", dt.datetime(2011, 12, 31, 16, 30, tzinfo=UTC))
    ids = [closed, cancelled, still_open, next_year]
    before = snapshot(app, ids)["ticket"]

    # 31 December: the year is not over yet, nothing happens.
    assert run(app, ARCHIVE, today="2011-12-31") == 0
    assert all(r["archived_at"] is None for r in snapshot(app, ids)["ticket"].values())

    # 1 January: last year's closed and cancelled tickets are archived.
    assert run(app, ARCHIVE, today="2012-01-01") >= 2
    after = snapshot(app, ids)["ticket"]
    new_year = dt.datetime(2011, 12, 31, 16, 0, tzinfo=UTC)  # 2012-01-01 00:00 Asia/Shanghai
    assert after[closed]["archived_at"] == new_year
    assert after[cancelled]["archived_at"] == new_year
    assert after[still_open]["archived_at"] is None, "an open ticket is never archived"
    assert after[next_year]["archived_at"] is None, "2012's register waits for 2013"
    for pk in ids:  # a Core UPDATE: no version bump, nobody "edited" the ticket
        assert after[pk]["version"] == before[pk]["version"]
        assert after[pk]["changed_at"] == before[pk]["changed_at"]
        assert {k: v for k, v in after[pk].items() if k != "archived_at"} == {
            k: v for k, v in before[pk].items() if k != "archived_at"
        }

    # The archiving is in the change history, once per ticket.
    from app.extensions import db
    from models.base import ChangeLog

    with app.app_context():
        logged = db.session.execute(
            select(ChangeLog.row_id).where(ChangeLog.table_name == "ticket", ChangeLog.row_id.in_(ids))
            .where(ChangeLog.changes["archived_at"].isnot(None))
        ).scalars().all()
        db.session.remove()
    assert sorted(logged) == sorted([closed, cancelled])

    # Rerun (and any later day of the year): nothing changes.
    assert run(app, ARCHIVE, today="2012-01-01") == 0
    assert run(app, ARCHIVE, today="2012-03-01") == 0
    assert snapshot(app, ids)["ticket"] == after

    # Out of the working lists, for everyone; the open one stays.
    for role in ("Staff", "Supervisor", "Manager"):
        assert api(role).get(f"/api/v1/ticket/{by_number(closed_no)}").json["count"] == 0, role
        assert api(role).get(f"/api/v1/ticket/{closed}").status_code == 404, role
    assert api("Staff").get(f"/api/v1/ticket/{by_number(open_no)}").json["count"] == 1
    assert api("Staff").get(f"/api/v1/ticket/{still_open}").status_code == 200
    # An archived ticket cannot be worked on any more.
    assert api("Staff").post(f"/api/v1/ticket/{closed}/transition", json={"to": "reopened", "version": 1}).status_code == 404

    # In the read-only archive for the Manager and the Committee; not for Staff or Supervisor.
    for role in ("Manager", "Committee"):
        found = api(role).get(f"/api/v1/ticket_archive/{by_number(cancelled_no)}")
        assert found.status_code == 200 and found.json["count"] == 1, role
        assert found.json["result"][0]["archived_at"].startswith("2011-12-31T16:00:00")
        assert api(role).get(f"/api/v1/ticket_archive/{closed}").status_code == 200, role
        assert api(role).get(f"/api/v1/ticket_archive/{still_open}").status_code == 404, role
        # The archive is read-only: no write route at all.
        assert api(role).put(f"/api/v1/ticket_archive/{closed}", json={"description": "x"}).status_code == 405
    for role in ("Staff", "Supervisor"):
        assert api(role).get("/api/v1/ticket_archive/").status_code == 403, role
        assert api(role).get(f"/api/v1/ticket_archive/{closed}").status_code == 403, role
    # The archive's detail screen keeps the timeline; no status form.
    page = web("Manager").get(f"/ticket_archive/show/{closed}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "desk-timeline" in html and "desk-transition" not in html
    assert web("Manager").get(f"/ticket/show/{closed}").status_code == 404


# --- 2. purge after two years, then restore --------------------------------------------------
def test_retention_purge_exports_then_deletes_and_restore_brings_back(app, make_unit, export_dir):
    unit = make_unit()["unit"]
    at = dt.datetime(2001, 3, 10, 1, 0, tzinfo=UTC)
    repair, _ = make_ticket(app, unit, "repair", "closed", at)
    security, _ = make_ticket(app, unit, "security", "cancelled", at)
    consult, _ = make_ticket(app, unit, "consultation", "closed", at)
    ids = [repair, security, consult]
    assert run(app, ARCHIVE, today="2002-01-01") >= 3
    before = snapshot(app, ids)
    assert before["callback"] and before["notification"] and len(before["ticket_event"]) >= 6

    # Kept two years: on 1 January 2004 they are still there.
    assert run(app, PURGE, today="2004-01-01") == {"tickets": 0, "files": [], "failed": {}}
    assert snapshot(app, ids) == before

    # The day after, exported then deleted.
    result = run(app, PURGE, today="2004-01-02")
    assert result["tickets"] >= 3 and len(result["files"]) == 1
    files = exports(export_dir)
    assert [f.name for f in files] == result["files"]
    assert snapshot(app, ids) == {"ticket": {}, "ticket_event": {}, "callback": {}, "notification": {}}
    assert run(app, PURGE, today="2004-01-02") == {"tickets": 0, "files": [], "failed": {}}
    assert exports(export_dir) == files

    # The file: header, every row with every column, trailer; ISO datetimes with offsets,
    # decimals as strings.
    with gzip.open(files[0], "rt", encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh]
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "trailer"
    assert lines[-1]["rows"] == len(lines) - 2
    rows = {(d["table"], d["row"]["id"]): d["row"] for d in lines[1:-1]}
    for table, got in before.items():
        for pk, row in got.items():
            assert set(rows[(table, pk)]) == set(row), table
    ticket_row = rows[("ticket", repair)]
    assert ticket_row["cost"] == "35.50"
    assert ticket_row["reported_at"] == "2001-03-10T01:00:00+00:00"
    assert ticket_row["archived_at"] == "2001-12-31T16:00:00+00:00"

    # Restore: the same rows with the same ids, archived_at kept; sequences past them.
    with app.app_context():
        from app.extensions import db

        db.session.execute(text("SELECT setval(pg_get_serial_sequence('callback', 'id'), 1)"))
        db.session.commit()
        db.session.remove()
    out = app.test_cli_runner().invoke(args=["desk", "restore-tickets", str(files[0])])
    assert out.exit_code == 0, out.output
    in_file = sum(1 for table, _ in rows if table == "ticket")
    assert f"ticket: {in_file} restored, 0 already present" in out.output
    assert without_archived_at(snapshot(app, ids)) == without_archived_at(before)
    # A new retention period from the restore: not purged by the next run.
    restored_on = restore_day(app)
    assert {r["archived_at"] for r in snapshot(app, ids)["ticket"].values()} == {local_midnight(restored_on)}
    with app.app_context():
        from app.extensions import db

        last = db.session.execute(
            text("SELECT pg_sequence_last_value(pg_get_serial_sequence('callback', 'id')::regclass)")
        ).scalar()
        top = db.session.execute(text("SELECT max(id) FROM callback")).scalar()
        db.session.remove()
    assert last >= top

    # Restoring again skips everything.
    again = app.test_cli_runner().invoke(args=["desk", "restore-tickets", str(files[0])])
    assert again.exit_code == 0, again.output
    assert "ticket: 0 restored" in again.output
    assert without_archived_at(snapshot(app, ids)) == without_archived_at(before)


def test_retention_restore_refuses_a_damaged_file(app, tmp_path):
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": "header", "format": "desk-retention-tickets", "version": 1}) + "\n")
        fh.write(json.dumps({"type": "row", "table": "ticket", "row": {"id": 1}}) + "\n")
        fh.write(json.dumps({"type": "trailer", "rows": 1, "counts": {"ticket": 1}, "sha256": "0" * 64}) + "\n")
    out = app.test_cli_runner().invoke(args=["desk", "restore-tickets", str(bad)])
    assert out.exit_code != 0 and "checksum" in out.output


# --- 3. a purge killed halfway ---------------------------------------------------------------
def test_retention_purge_killed_after_the_file_reruns_without_duplicates_or_loss(app, make_unit, export_dir, monkeypatch):
    import jobs.retention as retention

    unit = make_unit()["unit"]
    at = dt.datetime(1995, 5, 5, 5, 0, tzinfo=UTC)
    ids = [
        make_ticket(app, unit, "repair", "closed", at)[0],
        make_ticket(app, unit, "security", "cancelled", at)[0],
        make_ticket(app, unit, "consultation", "closed", at)[0],
    ]
    assert run(app, ARCHIVE, today="1996-01-01") >= 3
    before = snapshot(app, ids)

    # Killed before the rename: no export file, every row still in the database.
    def killed(*args, **kwargs):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(retention, "_publish", killed)
    with pytest.raises(RuntimeError, match="killed while writing"):
        run(app, PURGE, today="1998-01-02")
    monkeypatch.undo()
    monkeypatch.setitem(app.config, "RETENTION_EXPORT_DIR", str(export_dir))
    assert exports(export_dir) == []
    assert snapshot(app, ids) == before

    # Killed after the file is complete, before the delete: a verified file, rows still there.
    def killed_before_delete(session, export, *plan):
        raise RuntimeError("killed before delete")

    monkeypatch.setattr(retention, "_delete_exported", killed_before_delete)
    with pytest.raises(RuntimeError, match="killed before delete"):
        run(app, PURGE, today="1998-01-02")
    monkeypatch.undo()
    monkeypatch.setitem(app.config, "RETENTION_EXPORT_DIR", str(export_dir))
    first = exports(export_dir)
    assert len(first) == 1
    with app.app_context():
        assert retention.read_export(first[0]).ids("ticket") == sorted(ids)
    assert snapshot(app, ids) == before

    # The rerun writes the same file again, then deletes: one file, each row once.
    result = run(app, PURGE, today="1998-01-02")
    assert result == {"tickets": 3, "files": [first[0].name], "failed": {}}
    assert exports(export_dir) == first
    assert snapshot(app, ids)["ticket"] == {}
    with app.app_context():
        export = retention.read_export(first[0])
    for table, got in before.items():
        assert sorted(export.ids(table)) == sorted(got), table

    # Nothing lost: the file brings back exactly what was there.
    out = app.test_cli_runner().invoke(args=["desk", "restore-tickets", str(first[0])])
    assert out.exit_code == 0, out.output
    assert without_archived_at(snapshot(app, ids)) == without_archived_at(before)
