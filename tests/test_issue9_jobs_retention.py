"""Issue 9, item 20: the retention purge takes with it every row that depends on a ticket, found
from the foreign keys in the metadata (a table added later included): NOT NULL references are
exported and deleted, nullable ones detached and put back by a restore; one ticket that cannot be
purged does not stop the others, now or in later runs; a restore starts a new retention period
and says until when. On a PostgreSQL database of their own (the purge acts on every due row)."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pytest
from sqlalchemy import BigInteger, Column, ForeignKey, Integer, MetaData, String, Table, func, select, text, update

from tests.conftest import as_system
from tests.test_issue9_jobs_beat import new_ticket, new_unit, pg_app  # noqa: F401

pytestmark = pytest.mark.services

UTC = dt.UTC




def archived_tickets(flask_app, n: int, archived: dt.datetime) -> list[int]:
    from models.desk import Ticket

    def go(s):
        unit = new_unit(s)
        ids = [new_ticket(s, unit.id, archived - dt.timedelta(days=30), end="closed").id for _ in range(n)]
        s.execute(update(Ticket).where(Ticket.id.in_(ids)).values(archived_at=archived))
        return ids

    return as_system(flask_app, go)


def present(flask_app, ids) -> list[int]:
    from models.desk import Ticket

    return as_system(flask_app, lambda s: sorted(s.execute(select(Ticket.id).where(Ticket.id.in_(ids))).scalars()))


def purge(flask_app, today: dt.date, directory, **kw) -> dict:
    from jobs.retention import purge_archived

    return as_system(flask_app, lambda s: purge_archived(s, today, directory, 2, 1000, **kw))


def test_plan_is_read_from_the_metadata():
    """Today's dependents, and a table added later, without a hand-kept list."""
    from flask_appbuilder import Model

    from jobs.retention import purge_plan

    plan = purge_plan()
    owned = [o.table.name for o in plan.owned]
    assert owned[0] == "ticket" and {"ticket_event", "callback", "notification"} <= set(owned)
    assert ("service_order", "ticket_id") in {(link.table.name, link.column) for link in plan.links}
    md = MetaData()
    for table in Model.metadata.sorted_tables:
        table.to_metadata(md)
    Table(
        "later_child",
        md,
        Column("id", Integer, primary_key=True),
        Column("ticket_id", ForeignKey("ticket.id"), nullable=False),
    )
    Table("later_grandchild", md, Column("id", Integer, primary_key=True), Column("child_id", ForeignKey("later_child.id"), nullable=False))  # fmt: skip
    Table("later_ref", md, Column("id", Integer, primary_key=True), Column("child_id", ForeignKey("later_child.id")))
    later = purge_plan(md)
    names = [o.table.name for o in later.owned]
    assert names.index("later_child") < names.index("later_grandchild")  # parents first
    assert ("later_ref", "child_id") in {(link.table.name, link.column) for link in later.links}


def test_a_table_added_later_is_exported_deleted_detached_and_restored(pg_app, tmp_path):  # noqa: F811
    from flask_appbuilder import Model

    from app.extensions import db
    from jobs.retention import purge_plan, read_export, restore_file

    md = MetaData()
    for table in Model.metadata.sorted_tables:
        table.to_metadata(md)
    attachment = Table(
        "issue9_attachment", md, Column("id", Integer, primary_key=True),
        Column("ticket_id", BigInteger, ForeignKey("ticket.id"), nullable=False), Column("name", String(40)),
    )  # fmt: skip
    note = Table(
        "issue9_note", md, Column("id", Integer, primary_key=True),
        Column("ticket_id", BigInteger, ForeignKey("ticket.id"), nullable=True), Column("body", String(40)),
    )  # fmt: skip
    with pg_app.app_context():
        attachment.create(db.engine)
        note.create(db.engine)
    try:
        (tid,) = archived_tickets(pg_app, 1, dt.datetime(1990, 3, 1, tzinfo=UTC))
        with pg_app.app_context(), db.engine.begin() as conn:
            conn.execute(attachment.insert(), [{"id": 1, "ticket_id": tid, "name": "照片.jpg"}])
            conn.execute(note.insert(), [{"id": 7, "ticket_id": tid, "body": "另案记录"}])
        result = purge(pg_app, dt.date(1993, 1, 1), tmp_path, plan=purge_plan(md))
        assert result["tickets"] == 1 and not result["failed"]
        assert present(pg_app, [tid]) == []
        with pg_app.app_context(), db.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(attachment)).scalar() == 0
            assert conn.execute(select(note.c.ticket_id)).scalar_one() is None  # kept, detached
        path = tmp_path / result["files"][0]
        export = read_export(path)
        assert export.rows["issue9_attachment"] == [{"id": 1, "ticket_id": tid, "name": "照片.jpg"}]
        assert export.links == [{"table": "issue9_note", "column": "ticket_id", "id": 7, "value": tid}]

        restored = as_system(pg_app, lambda s: restore_file(s, path, today="2030-05-01", metadata=md))
        assert restored["ticket"] == {"restored": 1, "skipped": 0, "kept_until": "2032-05-01"}
        assert restored["issue9_note.ticket_id"] == {"restored": 1, "skipped": 0}
        with pg_app.app_context(), db.engine.connect() as conn:
            assert conn.execute(select(attachment.c.name)).scalar_one() == "照片.jpg"
            assert conn.execute(select(note.c.ticket_id)).scalar_one() == tid
    finally:
        with pg_app.app_context():
            note.drop(db.engine)
            attachment.drop(db.engine)


def test_one_ticket_that_cannot_be_purged_does_not_block_the_others(pg_app, tmp_path):  # noqa: F811
    """A reference the metadata does not know (a table made outside the product) keeps one
    ticket: the others of its batch are purged, that one is reported, its file removed, and
    later runs go on; once the reference is gone it is purged."""
    from app.extensions import db

    ids = archived_tickets(pg_app, 3, dt.datetime(1985, 6, 1, tzinfo=UTC))
    bad = ids[1]
    with pg_app.app_context(), db.engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE issue9_blocker (id serial PRIMARY KEY, ticket_id bigint REFERENCES ticket(id))")
        )
        conn.execute(text("INSERT INTO issue9_blocker (ticket_id) VALUES (:t)"), {"t": bad})
    try:
        first = purge(pg_app, dt.date(1988, 1, 1), tmp_path)
        assert first["tickets"] == 2 and list(first["failed"]) == [bad]
        assert "issue9_blocker" in first["failed"][bad] or "ForeignKey" in first["failed"][bad]
        assert present(pg_app, ids) == [bad]
        in_files = set()
        for name in first["files"]:
            with gzip.open(tmp_path / name, "rt", encoding="utf-8") as fh:
                in_files |= {d["row"]["id"] for d in map(json.loads, fh) if d.get("table") == "ticket"}
        assert in_files == set(ids) - {bad}
        assert sorted(p.name for p in tmp_path.glob("*.jsonl.gz")) == sorted(first["files"])  # no stray file

        second = purge(pg_app, dt.date(1988, 1, 2), tmp_path)  # no exception, no endless loop
        assert second["tickets"] == 0 and list(second["failed"]) == [bad]

        with pg_app.app_context(), db.engine.begin() as conn:
            conn.execute(text("DELETE FROM issue9_blocker"))
        third = purge(pg_app, dt.date(1988, 1, 3), tmp_path)
        assert third["tickets"] == 1 and not third["failed"] and present(pg_app, ids) == []
    finally:
        with pg_app.app_context(), db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS issue9_blocker"))


def test_restored_tickets_are_kept_the_period_the_restore_names(pg_app, tmp_path):  # noqa: F811
    from jobs.retention import restore_file
    from models.desk import Ticket

    ids = archived_tickets(pg_app, 2, dt.datetime(1975, 1, 10, tzinfo=UTC))
    purged = purge(pg_app, dt.date(1978, 1, 1), tmp_path)
    assert purged["tickets"] == 2 and present(pg_app, ids) == []
    path = tmp_path / purged["files"][0]
    restored = as_system(pg_app, lambda s: restore_file(s, path, today="1979-03-15"))
    assert restored["ticket"]["restored"] == 2 and restored["ticket"]["kept_until"] == "1981-03-15"
    at = as_system(pg_app, lambda s: set(s.execute(select(Ticket.archived_at).where(Ticket.id.in_(ids))).scalars()))
    assert at == {dt.datetime(1979, 3, 14, 16, 0, tzinfo=UTC)}  # 15 March, 00:00 in Shanghai
    # The old archived_at would have had the very next run delete them again.
    assert purge(pg_app, dt.date(1979, 3, 16), tmp_path)["tickets"] == 0
    assert purge(pg_app, dt.date(1981, 3, 15), tmp_path)["tickets"] == 0  # the last day kept
    assert present(pg_app, ids) == sorted(ids)
    assert purge(pg_app, dt.date(1981, 3, 16), tmp_path)["tickets"] == 2
    assert present(pg_app, ids) == []
