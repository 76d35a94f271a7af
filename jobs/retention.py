"""Records retention (DESIGN.md item 13): each year's help register is archived at the start of
the next year and kept for two years; nothing is deleted without an export that can be restored.

Two periodic jobs and a restore:

- ``archive_closed_tickets``: the closed and cancelled tickets recorded before this local year
  (``DISPLAY_TIMEZONE``) get ``archived_at``. A Core UPDATE: no version bump, ``changed_at`` kept
  (archiving is bookkeeping, nobody edited the ticket); one change-log row per ticket says so.
  Open tickets are never touched. Beat runs it every few hours; it only acts for years before the
  current one, so on 1 January it archives last year and a rerun finds nothing left.
- ``purge_archived_tickets``: tickets archived more than ``RETENTION_KEEP_YEARS`` ago, with every
  row that depends on them, are written to a gzip JSON Lines file under ``RETENTION_EXPORT_DIR``
  (to a temporary name, fsynced, then renamed), the file is read back and checked (row count and
  SHA-256), and only the rows found in the verified file are deleted, child tables first, in the
  transaction that holds the rows locked since they were read.
- ``restore_file`` (``flask desk restore-tickets FILE``) inserts a file's rows again with their
  original ids, skipping rows that exist, re-attaches detached rows, and moves the PostgreSQL
  sequences past them. Restored tickets start a new retention period: kept ``RETENTION_KEEP_YEARS``
  from the restore (``kept_until`` in the result), not purged again by the next run.

What depends on a ticket is read from the metadata (``purge_plan``), so a table added later is
handled without a change here: a table with a NOT NULL foreign key to a ticket (or to a row that is
itself exported) is part of the ticket: its rows are exported and deleted (timeline, callbacks);
a nullable foreign key (a paid-service order made from a repair) is detached: the row keeps its own
record, the link is set to NULL and written to the file (a ``link`` line) so a restore puts it
back. Notifications, which name their subject by type and id, go with their ticket or callback.

One bad ticket does not block the others: a batch that fails on its data (a constraint, rows that
do not match the file) is rolled back, its file removed, and its tickets purged one by one, each in
its own transaction; the ones that still fail are reported (``failed``) and left for a later run,
and the run goes on past them (a cursor on the ticket id), so it always ends.

Safe to kill: the file name comes from the set of ticket ids, so a run killed after the rename and
before the delete leaves a complete file whose rows are still in the database; the rerun reads the
same tickets, writes the same name again (atomically replacing it with an equal snapshot) and then
deletes. A run killed before the rename leaves only a temporary file, cleaned up later. Purges are
serialised by a PostgreSQL advisory lock.

File layout, one JSON document a line: a header (``type: header``), one line per row
(``type: row``, ``table``, ``row`` with every column: datetimes ISO 8601 with their offset,
decimals as strings), then a trailer (``type: trailer``) with the row count, the count per table
and the SHA-256 of the row lines.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from celery import shared_task
from flask import current_app
from sqlalchemy import TypeDecorator, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.extensions import db
from models.base import ChangeLog, current_actor_id, utcnow
from models.desk import Callback, Notification, Ticket

log = logging.getLogger(__name__)

FORMAT = "desk-retention-tickets"
FORMAT_VERSION = 2  # 2: tables and detached links named in the header; 1 is still read
READABLE_VERSIONS = (1, 2)
ARCHIVABLE_STATUSES = ("closed", "cancelled")
LEGACY_TABLES = ("ticket", "ticket_event", "callback", "notification")  # version 1 files
PURGE_LOCK_KEY = 424243  # pg_advisory_xact_lock key: one purge at a time, whatever the process
STALE_TEMP_SECONDS = 3600
CHUNK = 5000  # ids per IN (...) list: well under the driver's bind-parameter limit


class RetentionError(RuntimeError):
    """An export that cannot be trusted, or rows that do not match it: nothing is deleted."""


@dataclass(frozen=True)
class Owned:
    """A table whose rows are part of a ticket: ``via`` are its NOT NULL foreign keys
    (column, parent table name) to the ticket or to another owned table."""

    table: object
    via: tuple


@dataclass(frozen=True)
class Link:
    """A nullable foreign key to an exported row: detached (set NULL) and recorded."""

    table: object
    column: str
    parent: str


@dataclass(frozen=True)
class Plan:
    owned: tuple  # parents first (ticket first); notifications last
    links: tuple

    @property
    def tables(self) -> tuple:
        return tuple(o.table for o in self.owned)

    def table(self, name: str):
        for o in self.owned:
            if o.table.name == name:
                return o.table
        raise KeyError(name)


def purge_plan(metadata=None) -> Plan:
    """What purging a ticket takes with it, from the foreign keys in the metadata (see the module
    docstring): every table added later is covered by what its foreign keys say."""
    import models  # noqa: F401  (every model's table in the metadata)

    if metadata is None:
        metadata = Ticket.metadata
    ticket = metadata.tables[Ticket.__tablename__]
    owned: dict[str, list] = {ticket.name: []}
    order = [ticket]
    links: list[Link] = []
    queue = [ticket]
    while queue:
        parent = queue.pop(0)
        for table in metadata.sorted_tables:
            for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
                if fk.column.table is not parent:
                    continue
                column = fk.parent
                if column.nullable or table is parent or (fk.ondelete or "").upper() == "SET NULL":
                    links.append(Link(table, column.name, parent.name))
                    continue
                if table.name not in owned:
                    owned[table.name] = []
                    order.append(table)
                    queue.append(table)
                owned[table.name].append((column.name, parent.name))
    notification = metadata.tables[Notification.__tablename__]
    if notification.name not in owned:  # named by subject type and id, not a foreign key
        owned[notification.name] = []
        order.append(notification)
    return Plan(owned=tuple(Owned(t, tuple(owned[t.name])) for t in order), links=tuple(links))


# --- clock -----------------------------------------------------------------------------------
def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=_zone()).astimezone(dt.UTC)


def clock(today: str | dt.date | None = None) -> tuple[dt.date, dt.datetime]:
    """(local date, now in UTC). An injected ``today`` (tests, catch-up runs) is that day's local
    midnight; otherwise the real clock."""
    if today is None:
        now = utcnow()
        return now.astimezone(_zone()).date(), now
    day = today if isinstance(today, dt.date) else dt.date.fromisoformat(today)
    return day, _local_midnight(day)


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _config(name: str, default):
    return current_app.config.get(name, default)


def _chunks(ids: list, size: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _log_rows(session: Session, table: str, ids: Iterable[int], action: str, changes: dict) -> None:
    """Core writes bypass the ORM's change log: say what happened, one row per ticket."""
    actor = current_actor_id(session)
    now = utcnow()
    rows = [
        {"table_name": table, "row_id": i, "action": action, "changed_at": now, "user_id": actor, "changes": changes}
        for i in ids
    ]
    if rows:
        session.execute(insert(ChangeLog.__table__), rows)


# --- 1. archiving ----------------------------------------------------------------------------
def archive_closed(session: Session, today: dt.date, now: dt.datetime, batch: int = 1000) -> int:
    """Archive the closed and cancelled tickets recorded before ``today``'s local year. Commits
    per batch (a killed run keeps what it did; the rerun does the rest)."""
    t = Ticket.__table__
    year_start = _local_midnight(dt.date(today.year, 1, 1))
    due = and_(t.c.archived_at.is_(None), t.c.status.in_(ARCHIVABLE_STATUSES), t.c.reported_at < year_start)
    total = 0
    while True:
        # SKIP LOCKED: a ticket someone is saving right now is left for the next run; the WHERE is
        # checked again on the locked row, so a ticket reopened meanwhile is not archived.
        ids = select(t.c.id).where(due).order_by(t.c.id).limit(batch).with_for_update(skip_locked=True)
        done = (
            session.execute(
                update(t)
                .where(t.c.id.in_(ids.scalar_subquery()), due)
                .values(archived_at=now, changed_at=t.c.changed_at)  # no version bump, no "edited"
                .returning(t.c.id)
            )
            .scalars()
            .all()
        )
        if not done:
            session.commit()
            return total
        _log_rows(session, "ticket", done, "update", {"archived_at": [None, now.isoformat()]})
        session.commit()
        total += len(done)


@shared_task(name="jobs.retention.archive_closed_tickets")
def archive_closed_tickets(today: str | None = None) -> int:
    """How many tickets this run archived (0 on a rerun, and on every day of the year after the
    first run of 1 January has gone through)."""
    day, now = clock(today)
    return archive_closed(db.session, day, now, int(_config("RETENTION_BATCH", 1000)))


# --- 2. the export file ----------------------------------------------------------------------
def _plain(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()  # UTCDateTime values are aware: "+00:00"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _row_line(table: str, row: dict) -> str:
    doc = {"type": "row", "table": table, "row": {k: _plain(v) for k, v in row.items()}}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _python_type(column):
    kind = column.type
    if isinstance(kind, TypeDecorator):  # UTCDateTime: its python_type is ``object``
        kind = kind.impl_instance
    try:
        return kind.python_type
    except NotImplementedError:
        return None


def _from_plain(table, row: dict) -> dict:
    unknown = set(row) - set(table.c.keys())
    if unknown:
        raise RetentionError(f"{table.name}: columns not in the database: {', '.join(sorted(unknown))}")
    out = {}
    for key, value in row.items():
        kind = _python_type(table.c[key])
        if value is None:
            out[key] = None
        elif kind is dt.datetime:
            out[key] = dt.datetime.fromisoformat(value)
        elif kind is dt.date:
            out[key] = dt.date.fromisoformat(value)
        elif kind is decimal.Decimal:
            out[key] = decimal.Decimal(value)
        else:
            out[key] = value
    return out


def export_name(ticket_ids: list[int]) -> str:
    """The same tickets always give the same name: a rerun replaces, never duplicates."""
    ids = sorted(ticket_ids)
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
    return f"tickets-{ids[0]}-{ids[-1]}-{digest}.jsonl.gz"


@dataclass
class Export:
    path: Path
    header: dict
    sha256: str
    rows: dict[str, list[dict]] = field(default_factory=dict)  # table -> rows as in the file
    links: list[dict] = field(default_factory=list)  # detached: {"table", "column", "id", "value"}

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rows.values()) + len(self.links)

    def ids(self, table: str) -> list[int]:
        return [r["id"] for r in self.rows.get(table, [])]


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # pragma: no cover - directories cannot be opened elsewhere
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, final: Path) -> None:
    """The complete file appears under its name at once (rename), and the rename is durable."""
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def write_export(directory: Path, name: str, header: dict, lines: list[str]) -> tuple[Path, str]:
    """Write header, row lines and trailer to a temporary name, fsync, rename. Returns the path and
    the SHA-256 of the row lines."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    final = directory / name
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write((json.dumps(header, ensure_ascii=False, sort_keys=True) + "\n").encode())
            for line in lines:
                data = (line + "\n").encode()
                digest.update(data)
                gz.write(data)
                doc = json.loads(line)
                key = doc["table"] if doc["type"] == "row" else f"link:{doc['table']}.{doc['column']}"
                counts[key] = counts.get(key, 0) + 1
            trailer = {"type": "trailer", "rows": len(lines), "counts": counts, "sha256": digest.hexdigest()}
            gz.write((json.dumps(trailer, sort_keys=True) + "\n").encode())
        raw.flush()
        os.fsync(raw.fileno())
    _publish(tmp, final)
    return final, digest.hexdigest()


def read_export(path: str | Path) -> Export:
    """Read a file back and check it: header, trailer, row count and checksum."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as fh:
            raw_lines = fh.read().splitlines(keepends=True)
    except (OSError, EOFError) as e:
        raise RetentionError(f"{path.name}: unreadable ({e})") from e
    if len(raw_lines) < 2:
        raise RetentionError(f"{path.name}: incomplete (no trailer)")
    try:
        header = json.loads(raw_lines[0])
        trailer = json.loads(raw_lines[-1])
    except ValueError as e:
        raise RetentionError(f"{path.name}: not a retention export ({e})") from e
    if header.get("type") != "header" or header.get("format") != FORMAT:
        raise RetentionError(f"{path.name}: not a {FORMAT} file")
    if header.get("version") not in READABLE_VERSIONS:
        raise RetentionError(f"{path.name}: format version {header.get('version')} is not supported")
    if trailer.get("type") != "trailer":
        raise RetentionError(f"{path.name}: incomplete (no trailer)")
    digest = hashlib.sha256()
    names = header.get("tables") if header.get("version", 1) >= 2 else LEGACY_TABLES
    rows: dict[str, list[dict]] = {name: [] for name in names or ()}
    link_keys = {tuple(k) for k in header.get("links") or ()}
    links: list[dict] = []
    counts: dict[str, int] = {}
    for data in raw_lines[1:-1]:
        digest.update(data)
        doc = json.loads(data)
        if doc.get("type") == "row" and doc.get("table") in rows:
            rows[doc["table"]].append(doc["row"])
            key = doc["table"]
        elif doc.get("type") == "link" and (doc.get("table"), doc.get("column")) in link_keys:
            links.append({k: doc[k] for k in ("table", "column", "id", "value")})
            key = f"link:{doc['table']}.{doc['column']}"
        else:
            raise RetentionError(f"{path.name}: unexpected line {data[:80]!r}")
        counts[key] = counts.get(key, 0) + 1
    export = Export(path=path, header=header, sha256=digest.hexdigest(), rows=rows, links=links)
    if export.count != trailer.get("rows") or export.sha256 != trailer.get("sha256"):
        raise RetentionError(f"{path.name}: row count or checksum does not match its trailer")
    if any(counts.get(t, 0) != n for t, n in (trailer.get("counts") or {}).items()):
        raise RetentionError(f"{path.name}: per-table counts do not match its trailer")
    return export


def _select_all(session: Session, table, where, lock: bool = True) -> list[dict]:
    stmt = select(table).where(where).order_by(table.c.id)
    if lock:
        stmt = stmt.with_for_update()
    return [dict(r._mapping) for r in session.execute(stmt)]


def _in(column, ids: list):
    """``column IN ids`` in chunks the driver accepts."""
    if not ids:
        return column.in_([])
    return or_(*[column.in_(part) for part in _chunks(ids)])


def _collect(session: Session, plan: Plan, ticket_ids: list[int]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Every row that belongs to these tickets, and every detached link to them, locked until
    the transaction ends. Returns (table -> rows, links)."""
    ticket = plan.owned[0].table
    rows: dict[str, list[dict]] = {ticket.name: _select_all(session, ticket, ticket.c.id.in_(ticket_ids))}
    for owned in plan.owned[1:]:
        table = owned.table
        if table.name == Notification.__tablename__:
            callback = Callback.__tablename__
            callbacks = [r["id"] for r in rows.get(callback, [])]
            rows[table.name] = _select_all(session, table, _notifications_of(ticket_ids, callbacks, table))
            continue
        wheres = [_in(table.c[col], [r["id"] for r in rows[parent]]) for col, parent in owned.via]
        rows[table.name] = _select_all(session, table, or_(*wheres))
    links = []
    for link in plan.links:
        table = link.table
        parent_ids = [r["id"] for r in rows.get(link.parent, [])]
        if not parent_ids:
            continue
        where = _in(table.c[link.column], parent_ids)
        if table.name in rows:  # a row deleted with the ticket needs no detaching
            where = and_(where, table.c.id.notin_([r["id"] for r in rows[table.name]] or [-1]))
        for r in _select_all(session, table, where):
            links.append({"table": table.name, "column": link.column, "id": r["id"], "value": r[link.column]})
    return rows, links


def _link_line(link: dict) -> str:
    return json.dumps({"type": "link", **link}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _notifications_of(ticket_ids: list[int], callback_ids: list[int], n=None):
    n = Notification.__table__ if n is None else n
    about_ticket = and_(n.c.subject_type == "ticket", _in(n.c.subject_id, ticket_ids))
    if not callback_ids:
        return about_ticket
    return or_(about_ticket, and_(n.c.subject_type == "callback", _in(n.c.subject_id, callback_ids)))


def _clean_stale_temps(directory: Path) -> None:
    if not directory.is_dir():
        return
    limit = time.time() - STALE_TEMP_SECONDS
    for tmp in directory.glob(".tickets-*.tmp"):
        try:
            if tmp.stat().st_mtime < limit:
                tmp.unlink()
        except FileNotFoundError:
            pass


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PURGE_LOCK_KEY})


def _due_tickets(session: Session, cutoff: dt.datetime, after: int, limit: int, only=None) -> list[int]:
    """The next tickets archived before ``cutoff`` (ids above ``after``), locked."""
    t = Ticket.__table__
    q = select(t.c.id).where(t.c.archived_at.is_not(None), t.c.archived_at < cutoff, t.c.id > after)
    if only is not None:
        q = q.where(t.c.id.in_(list(only)))
    return session.execute(q.order_by(t.c.id).limit(limit).with_for_update()).scalars().all()


def export_tickets(session: Session, plan: Plan, ticket_ids: list[int], cutoff: dt.datetime, directory: Path) -> Export:
    """Write and verify the file of these (locked) tickets and every row that depends on them.
    The rows stay locked (and in the database) until the caller commits or rolls back."""
    rows, links = _collect(session, plan, ticket_ids)
    lines = [_row_line(o.table.name, row) for o in plan.owned for row in rows[o.table.name]]
    lines += [_link_line(link) for link in links]
    header = {
        "type": "header",
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported_at": utcnow().isoformat(),
        "archived_before": cutoff.isoformat(),
        "tickets": len(ticket_ids),
        "tables": [o.table.name for o in plan.owned],
        "links": [[link.table.name, link.column] for link in plan.links],
    }
    path, sha = write_export(directory, export_name(ticket_ids), header, lines)
    export = read_export(path)
    if export.sha256 != sha or export.count != len(lines):
        raise RetentionError(f"{path.name}: read back differs from what was written")
    for owned in plan.owned:
        name = owned.table.name
        if export.ids(name) != [r["id"] for r in rows[name]]:
            raise RetentionError(f"{path.name}: {name} rows read back differ from the database")
    if export.links != links:
        raise RetentionError(f"{path.name}: detached links read back differ from the database")
    return export


def export_batch(session: Session, cutoff: dt.datetime, directory: Path, batch: int, after: int = 0) -> Export | None:
    """Lock the next batch of tickets archived before ``cutoff`` and their rows, write and verify
    their file (see ``export_tickets``)."""
    _lock(session)
    ticket_ids = _due_tickets(session, cutoff, after, batch)
    if not ticket_ids:
        return None
    return export_tickets(session, purge_plan(), ticket_ids, cutoff, directory)


def _detach(session: Session, plan: Plan, export: Export) -> None:
    """Set the recorded links to NULL (rows that are not the ticket's keep their own record). A
    versioned row gets a new version: a form open on it cannot write the old link back."""
    tables = {link.table.name: link.table for link in plan.links}
    actor = current_actor_id(session)
    now = utcnow()
    for link in export.links:
        table = tables[link["table"]]
        column = table.c[link["column"]]
        values = {link["column"]: None}
        if "version" in table.c:
            values["version"] = table.c.version + 1
        done = session.execute(
            update(table).where(table.c.id == link["id"], column == link["value"]).values(**values)
        ).rowcount
        if done != 1:
            raise RetentionError(f"{export.path.name}: {link['table']} {link['id']} changed after the export")
        session.execute(
            insert(ChangeLog.__table__),
            {
                "table_name": table.name,
                "row_id": link["id"],
                "action": "update",
                "changed_at": now,
                "user_id": actor,
                "changes": {link["column"]: [link["value"], None], "retention_export": [None, export.path.name]},
            },
        )


def _delete_exported(session: Session, export: Export, plan: Plan | None = None) -> None:
    """Detach the recorded links, then delete exactly the rows of a verified file, children
    first; any row of these tickets the file does not hold makes the whole transaction fail
    (nothing is deleted unexported)."""
    plan = plan or purge_plan()
    _detach(session, plan, export)
    for owned in reversed(plan.owned):
        table = owned.table
        ids = export.ids(table.name)
        deleted = 0
        for part in _chunks(ids):
            deleted += session.execute(delete(table).where(table.c.id.in_(part))).rowcount
        if deleted != len(ids):
            raise RetentionError(f"{export.path.name}: {table.name}: deleted {deleted} rows, the file holds {len(ids)}")
    ticket_ids = export.ids(Ticket.__table__.name)
    n = plan.table(Notification.__tablename__)
    left = session.execute(
        select(func.count()).select_from(n).where(_notifications_of(ticket_ids, export.ids(Callback.__tablename__), n))
    ).scalar()
    if left:
        raise RetentionError(f"{export.path.name}: {left} notifications arrived after the export; next run")
    _log_rows(session, "ticket", ticket_ids, "delete", {"retention_export": [None, export.path.name]})


# A ticket's own data problem (a row a constraint keeps, rows that changed under the export):
# that ticket waits, the others go on. Anything else (the database or the disk is down) stops the run.
TICKET_ERRORS = (IntegrityError, RetentionError)


def _purge_one_transaction(session: Session, plan: Plan, cutoff, directory: Path, ids: list[int]) -> Export | None:
    """Export and delete these tickets in one transaction; on a ticket's data error, roll back
    and remove the file (nothing was deleted, so it is not needed) before raising."""
    export = None
    try:
        _lock(session)
        locked = _due_tickets(session, cutoff, 0, len(ids), only=ids)
        if not locked:
            session.rollback()
            return None
        export = export_tickets(session, plan, locked, cutoff, directory)
        _delete_exported(session, export, plan)
        session.commit()
        return export
    except TICKET_ERRORS:
        session.rollback()
        if export is not None:
            export.path.unlink(missing_ok=True)
        raise
    except BaseException:
        session.rollback()
        raise


def purge_archived(
    session: Session, today: dt.date, directory: Path, keep_years: int = 2, batch: int = 1000, plan: Plan | None = None
) -> dict:
    """Export then delete every ticket archived more than ``keep_years`` before ``today``; one
    file and one transaction per batch. A batch that fails on a ticket's data is done again ticket
    by ticket; tickets that still fail are in ``failed`` (id -> error) and wait for a later run."""
    cutoff = _local_midnight(_years_before(today, keep_years))
    _clean_stale_temps(directory)
    plan = plan or purge_plan()
    files: list[str] = []
    failed: dict[int, str] = {}
    tickets = 0
    after = 0
    while True:
        try:
            _lock(session)
            ids = _due_tickets(session, cutoff, after, batch)
            session.rollback()
        except BaseException:
            session.rollback()
            raise
        if not ids:
            break
        after = ids[-1]  # never the same tickets twice in a run: it always ends
        try:
            export = _purge_one_transaction(session, plan, cutoff, directory, ids)
            groups = [export] if export is not None else []
        except TICKET_ERRORS as e:
            log.warning("retention purge: batch %s..%s failed (%s); purging ticket by ticket", ids[0], ids[-1], e)
            groups = []
            for ticket_id in ids:
                try:
                    one = _purge_one_transaction(session, plan, cutoff, directory, [ticket_id])
                except TICKET_ERRORS as err:
                    failed[ticket_id] = f"{type(err).__name__}: {err}"[:500]
                    log.error("retention purge: ticket %s not purged: %s", ticket_id, failed[ticket_id])
                    continue
                if one is not None:
                    groups.append(one)
        for export in groups:
            files.append(export.path.name)
            tickets += len(export.ids("ticket"))
    return {"tickets": tickets, "files": files, "failed": failed}


@shared_task(name="jobs.retention.purge_archived_tickets")
def purge_archived_tickets(today: str | None = None) -> dict:
    day, _now = clock(today)
    return purge_archived(
        db.session,
        day,
        Path(_config("RETENTION_EXPORT_DIR", "retention")),
        int(_config("RETENTION_KEEP_YEARS", 2)),
        int(_config("RETENTION_BATCH", 1000)),
    )


# --- 3. restoring ----------------------------------------------------------------------------
def _bump_sequences(session: Session, tables) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite hands out max(id) + 1 by itself
    for table in tables:
        seq = session.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}).scalar()
        if not seq:
            continue
        top = session.execute(select(func.max(table.c.id))).scalar() or 0
        session.execute(
            text(
                "SELECT setval(CAST(:s AS regclass), GREATEST(:top, COALESCE(pg_sequence_last_value(CAST(:s AS regclass)), 1)))"
            ),
            {"s": seq, "top": max(top, 1)},
        )


def _file_tables(export: Export, metadata) -> list:
    """The file's tables, parents first, as tables of this database."""
    out = []
    for name in export.rows:
        if name not in metadata.tables:
            raise RetentionError(f"{export.path.name}: table {name} is not in this database")
        out.append(metadata.tables[name])
    return out


def restore_file(
    session: Session,
    path: str | Path,
    today: str | dt.date | None = None,
    keep_years: int | None = None,
    metadata=None,
) -> dict[str, dict]:
    """Insert a verified file's rows with their ids, skipping rows that exist, and put detached
    links back where the row is still there and not linked elsewhere; one transaction.

    Restored tickets start a new retention period (their old ``archived_at`` would have the next
    purge delete them again at once): archived as of ``today`` (local), so kept for
    ``keep_years`` (``RETENTION_KEEP_YEARS``) from the restore; ``kept_until`` in the result says
    the last day. Returns table -> {"restored": n, "skipped": n} (the ticket entry with
    ``kept_until``; detached links as ``table.column``)."""
    export = read_export(path)
    day, _now = clock(today)
    keep = int(keep_years if keep_years is not None else _config("RETENTION_KEEP_YEARS", 2))
    archived_at = _local_midnight(day)
    kept_until = _years_before(day, -keep)
    result: dict[str, dict] = {}
    metadata = metadata if metadata is not None else Ticket.metadata
    tables = _file_tables(export, metadata)
    try:
        for table in tables:
            rows = [_from_plain(table, r) for r in export.rows[table.name]]
            ids = [r["id"] for r in rows]
            present: set[int] = set()
            for part in _chunks(ids):
                present |= set(session.execute(select(table.c.id).where(table.c.id.in_(part))).scalars())
            missing = [r for r in rows if r["id"] not in present]
            if table.name == "ticket":
                old = {r["id"]: r.get("archived_at") for r in missing}
                for r in missing:
                    r["archived_at"] = archived_at
            for part in _chunks(missing, 1000):
                session.execute(insert(table), part)
            result[table.name] = {"restored": len(missing), "skipped": len(rows) - len(missing)}
            if table.name == "ticket":
                result[table.name]["kept_until"] = kept_until.isoformat()
                for r in missing:
                    _log_rows(
                        session,
                        "ticket",
                        [r["id"]],
                        "insert",
                        {
                            "restored_from": [None, export.path.name],
                            "archived_at": [_plain(old[r["id"]]), archived_at.isoformat()],
                            "kept_until": [None, kept_until.isoformat()],
                        },
                    )
        for link in export.links:
            key = f"{link['table']}.{link['column']}"
            counts = result.setdefault(key, {"restored": 0, "skipped": 0})
            table = metadata.tables.get(link["table"])
            if table is None or link["column"] not in table.c:
                counts["skipped"] += 1
                continue
            column = table.c[link["column"]]
            values = {link["column"]: link["value"]}
            if "version" in table.c:
                values["version"] = table.c.version + 1
            done = session.execute(
                update(table).where(table.c.id == link["id"], column.is_(None)).values(**values)
            ).rowcount
            counts["restored" if done else "skipped"] += 1
            if done:
                _log_rows(session, table.name, [link["id"]], "update", {link["column"]: [None, link["value"]]})
        _bump_sequences(session, tables)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return result
