"""Records retention (DESIGN.md item 13): each year's help register is archived at the start of
the next year and kept for two years; nothing is deleted without an export that can be restored.

Two periodic jobs and a restore:

- ``archive_closed_tickets``: the closed and cancelled tickets recorded before this local year
  (``DISPLAY_TIMEZONE``) get ``archived_at``. A Core UPDATE: no version bump, ``changed_at`` kept
  (archiving is bookkeeping, nobody edited the ticket); one change-log row per ticket says so.
  Open tickets are never touched. Beat runs it every few hours; it only acts for years before the
  current one, so on 1 January it archives last year and a rerun finds nothing left.
- ``purge_archived_tickets``: tickets archived more than ``RETENTION_KEEP_YEARS`` ago, with their
  timeline, callbacks and notifications, are written to a gzip JSON Lines file under
  ``RETENTION_EXPORT_DIR`` (to a temporary name, fsynced, then renamed), the file is read back and
  checked (row count and SHA-256), and only the rows found in the verified file are deleted, child
  tables first, in the transaction that holds the rows locked since they were read.
- ``restore_file`` (``flask desk restore-tickets FILE``) inserts a file's rows again with their
  original ids, skipping rows that exist, and moves the PostgreSQL sequences past them.

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
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from celery import shared_task
from flask import current_app
from sqlalchemy import TypeDecorator, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from app.extensions import db
from models.base import ChangeLog, current_actor_id, utcnow
from models.desk import Callback, Notification, Ticket, TicketEvent

FORMAT = "desk-retention-tickets"
FORMAT_VERSION = 1
ARCHIVABLE_STATUSES = ("closed", "cancelled")
# Parents first: the order rows are written and restored in. Deletion goes the other way.
TABLES = (Ticket.__table__, TicketEvent.__table__, Callback.__table__, Notification.__table__)
TABLE_BY_NAME = {t.name: t for t in TABLES}
PURGE_LOCK_KEY = 424243  # pg_advisory_xact_lock key: one purge at a time, whatever the process
STALE_TEMP_SECONDS = 3600
CHUNK = 5000  # ids per IN (...) list: well under the driver's bind-parameter limit


class RetentionError(RuntimeError):
    """An export that cannot be trusted, or rows that do not match it: nothing is deleted."""


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

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())

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
                table = json.loads(line)["table"]
                counts[table] = counts.get(table, 0) + 1
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
    if header.get("version") != FORMAT_VERSION:
        raise RetentionError(f"{path.name}: format version {header.get('version')} is not supported")
    if trailer.get("type") != "trailer":
        raise RetentionError(f"{path.name}: incomplete (no trailer)")
    digest = hashlib.sha256()
    rows: dict[str, list[dict]] = {t.name: [] for t in TABLES}
    for data in raw_lines[1:-1]:
        digest.update(data)
        doc = json.loads(data)
        if doc.get("type") != "row" or doc.get("table") not in rows:
            raise RetentionError(f"{path.name}: unexpected line {data[:80]!r}")
        rows[doc["table"]].append(doc["row"])
    export = Export(path=path, header=header, sha256=digest.hexdigest(), rows=rows)
    if export.count != trailer.get("rows") or export.sha256 != trailer.get("sha256"):
        raise RetentionError(f"{path.name}: row count or checksum does not match its trailer")
    if any(len(rows[t]) != n for t, n in (trailer.get("counts") or {}).items()):
        raise RetentionError(f"{path.name}: per-table counts do not match its trailer")
    return export


def _select_all(session: Session, table, where, lock: bool = True) -> list[dict]:
    stmt = select(table).where(where).order_by(table.c.id)
    if lock:
        stmt = stmt.with_for_update()
    return [dict(r._mapping) for r in session.execute(stmt)]


def _collect(session: Session, ticket_ids: list[int]) -> dict[str, list[dict]]:
    """Every row that belongs to these tickets, locked until the transaction ends."""
    t, ev, cb, n = TABLES
    rows = {t.name: _select_all(session, t, t.c.id.in_(ticket_ids))}
    rows[ev.name] = _select_all(session, ev, ev.c.ticket_id.in_(ticket_ids))
    rows[cb.name] = _select_all(session, cb, cb.c.ticket_id.in_(ticket_ids))
    rows[n.name] = _select_all(session, n, _notifications_of(ticket_ids, [r["id"] for r in rows[cb.name]]))
    return rows


def _notifications_of(ticket_ids: list[int], callback_ids: list[int]):
    n = Notification.__table__
    about_ticket = and_(n.c.subject_type == "ticket", n.c.subject_id.in_(ticket_ids))
    if not callback_ids:
        return about_ticket
    return or_(about_ticket, and_(n.c.subject_type == "callback", n.c.subject_id.in_(callback_ids)))


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


def export_batch(session: Session, cutoff: dt.datetime, directory: Path, batch: int) -> Export | None:
    """Lock the next batch of tickets archived before ``cutoff`` and their rows, write and verify
    their file. The rows stay locked (and in the database) until the caller commits or rolls back."""
    _lock(session)
    t = Ticket.__table__
    ticket_ids = (
        session.execute(
            select(t.c.id)
            .where(t.c.archived_at.is_not(None), t.c.archived_at < cutoff)
            .order_by(t.c.id)
            .limit(batch)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    if not ticket_ids:
        return None
    rows = _collect(session, ticket_ids)
    lines = [_row_line(table.name, row) for table in TABLES for row in rows[table.name]]
    header = {
        "type": "header",
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported_at": utcnow().isoformat(),
        "archived_before": cutoff.isoformat(),
        "tickets": len(ticket_ids),
        "tables": [table.name for table in TABLES],
    }
    path, sha = write_export(directory, export_name(ticket_ids), header, lines)
    export = read_export(path)
    if export.sha256 != sha or export.count != len(lines):
        raise RetentionError(f"{path.name}: read back differs from what was written")
    for table in TABLES:
        if export.ids(table.name) != [r["id"] for r in rows[table.name]]:
            raise RetentionError(f"{path.name}: {table.name} rows read back differ from the database")
    return export


def _delete_exported(session: Session, export: Export) -> None:
    """Delete exactly the rows of a verified file, children first; any row of these tickets the
    file does not hold makes the whole transaction fail (nothing is deleted unexported)."""
    t, ev, cb, n = TABLES
    for table in (n, ev, cb, t):
        ids = export.ids(table.name)
        deleted = 0
        for part in _chunks(ids):
            deleted += session.execute(delete(table).where(table.c.id.in_(part))).rowcount
        if deleted != len(ids):
            raise RetentionError(f"{export.path.name}: {table.name}: deleted {deleted} rows, the file holds {len(ids)}")
    ticket_ids = export.ids(t.name)
    left = session.execute(
        select(func.count()).select_from(n).where(_notifications_of(ticket_ids, export.ids(cb.name)))
    ).scalar()
    if left:
        raise RetentionError(f"{export.path.name}: {left} notifications arrived after the export; next run")
    _log_rows(session, "ticket", ticket_ids, "delete", {"retention_export": [None, export.path.name]})


def purge_archived(session: Session, today: dt.date, directory: Path, keep_years: int = 2, batch: int = 1000) -> dict:
    """Export then delete every ticket archived more than ``keep_years`` before ``today``; one
    file and one transaction per batch."""
    cutoff = _local_midnight(_years_before(today, keep_years))
    _clean_stale_temps(directory)
    files: list[str] = []
    tickets = 0
    while True:
        try:
            export = export_batch(session, cutoff, directory, batch)
            if export is None:
                session.rollback()
                break
            _delete_exported(session, export)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        files.append(export.path.name)
        tickets += len(export.ids("ticket"))
    return {"tickets": tickets, "files": files}


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
def _bump_sequences(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite hands out max(id) + 1 by itself
    for table in TABLES:
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


def restore_file(session: Session, path: str | Path) -> dict[str, dict[str, int]]:
    """Insert a verified file's rows with their ids (``archived_at`` as it was), skipping rows
    that exist; one transaction. Returns table -> {"restored": n, "skipped": n}."""
    export = read_export(path)
    result = {}
    try:
        for table in TABLES:
            rows = [_from_plain(table, r) for r in export.rows[table.name]]
            ids = [r["id"] for r in rows]
            present: set[int] = set()
            for part in _chunks(ids):
                present |= set(session.execute(select(table.c.id).where(table.c.id.in_(part))).scalars())
            missing = [r for r in rows if r["id"] not in present]
            for part in _chunks(missing, 1000):
                session.execute(insert(table), part)
            result[table.name] = {"restored": len(missing), "skipped": len(rows) - len(missing)}
            if table.name == "ticket":
                restored = [r["id"] for r in missing]
                _log_rows(session, "ticket", restored, "insert", {"restored_from": [None, export.path.name]})
        _bump_sequences(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return result
