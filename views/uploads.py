"""Uploaded files (a standard's basis document, renovation drawings, inspection photos): stored
under ``INSTANCE_DIR/uploads/<area>/`` with generated names (the client's file name is never a
path), read back only through the routes of the record they belong to.

The name the file was uploaded under ("装修图纸 v2.pdf") is what people see: it is kept beside the
store (``uploads/.names/<area>/<stored name>``, one small UTF-8 file per upload, written before the
upload itself), shown on lists and detail pages instead of the stored path (``display_name``;
``views.fields.show_value`` does it for any stored name it is handed) and given to the browser on
download (``Content-Disposition`` with an ASCII ``filename`` and the RFC 5987 ``filename*``)."""

from __future__ import annotations

import re
import unicodedata
import uuid
from pathlib import Path
from urllib.parse import quote

from flask import abort, current_app, send_file

from app.i18n import T
from models.errors import FieldErrors

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_FILES = 10
NAMES_DIR = ".names"
MAX_NAME_BYTES = 180  # an uploaded name is kept to this many UTF-8 bytes (its extension kept)
# What ``save_uploads`` returns: "<area>/<32 hex digits><.ext>".
_STORED = re.compile(r"^[a-z0-9_]{1,40}/[0-9a-f]{32}(\.[A-Za-z0-9]{1,10})?$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]+")


def upload_root() -> Path:
    return Path(current_app.config["INSTANCE_DIR"]) / "uploads"


def _err(field: str, zh: str, en: str) -> FieldErrors:
    return FieldErrors({field: [str(T(zh, en))]})


def clean_name(filename: str, ext: str) -> str:
    """The uploaded name as people will read it: the last part of whatever path the client sent,
    no control characters, at most ``MAX_NAME_BYTES`` (the extension kept)."""
    base = re.split(r"[/\\]", str(filename or ""))[-1]
    base = unicodedata.normalize("NFC", _UNSAFE.sub(" ", base)).strip().strip(".").strip()
    if not base:
        return f"file{ext}"
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        stem, suffix = base[: -len(ext)] if ext and base.lower().endswith(ext) else base, ext
        while stem and len((stem + "…" + suffix).encode("utf-8")) > MAX_NAME_BYTES:
            stem = stem[:-1]
        base = f"{stem}…{suffix}"
    return base


def save_uploads(files, field: str, extensions, subdir: str, most: int = MAX_FILES) -> list[str]:
    """Check every file first (type, size, count: a 422 naming ``field``), then store them all,
    each with the name it was uploaded under. Returns the stored (relative) names."""
    files = [f for f in files or () if f is not None and getattr(f, "filename", "")]
    if len(files) > most:
        raise _err(field, f"一次最多上传 {most} 个文件", f"At most {most} files at a time")
    allowed = {e.lower() for e in extensions}
    blobs = []
    for storage in files:
        ext = Path(storage.filename).suffix.lower()
        if ext not in allowed:
            names = sorted(allowed)
            raise _err(field, f"文件须为 {'、'.join(names)} 之一", f"Files must be one of {', '.join(names)}")
        data = storage.stream.read(MAX_UPLOAD_BYTES + 1)
        if not data:
            raise _err(field, "文件为空", "The file is empty")
        if len(data) > MAX_UPLOAD_BYTES:
            raise _err(field, "文件过大（最大 10 MB）", "The file is too large (10 MB at most)")
        blobs.append((ext, data, clean_name(storage.filename, ext)))
    folder = upload_root() / subdir
    names = upload_root() / NAMES_DIR / subdir
    folder.mkdir(parents=True, exist_ok=True)
    names.mkdir(parents=True, exist_ok=True)
    stored = []
    for ext, data, shown in blobs:
        name = f"{uuid.uuid4().hex}{ext}"
        (names / name).write_text(shown, encoding="utf-8")  # first: a stored file always has its name
        (folder / name).write_bytes(data)
        stored.append(f"{subdir}/{name}")
    return stored


def is_stored_name(value) -> bool:
    """Whether ``value`` is a stored name as ``save_uploads`` makes them."""
    return isinstance(value, str) and _STORED.match(value) is not None


def display_name(stored, fallback: str | None = None) -> str | None:
    """The name a stored file was uploaded under; ``fallback`` for a file stored before names were
    kept (or not ours)."""
    if not is_stored_name(stored):
        return fallback
    try:
        name = (upload_root() / NAMES_DIR / stored).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError, RuntimeError):
        return fallback
    return name or fallback


def stored_path(stored: str) -> Path | None:
    """The file behind a stored name, if it is one of ours (never outside the upload root)."""
    root = upload_root().resolve()
    path = (root / str(stored)).resolve()
    if root not in path.parents or not path.is_file() or NAMES_DIR in path.relative_to(root).parts:
        return None
    return path


def content_disposition(name: str, fallback: str) -> str:
    """``attachment`` with the ASCII ``fallback`` as ``filename`` (every client reads it) and the
    real name as RFC 5987 ``filename*`` (UTF-8, percent-encoded), which browsers prefer."""
    ascii_name = unicodedata.normalize("NFKD", fallback).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r'[^A-Za-z0-9._ ()+-]', "_", ascii_name).strip() or "download"
    value = f'attachment; filename="{ascii_name}"'
    if name != ascii_name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def send_stored(stored: str | None, download_stem: str):
    """The file, downloaded under the name it was uploaded under (``download_stem`` plus its
    extension for a client that reads only the ASCII name, or a file stored without one)."""
    path = stored_path(stored) if stored else None
    if path is None:
        abort(404)
    fallback = f"{download_stem}{path.suffix}"
    response = send_file(path, as_attachment=True, download_name=fallback)
    response.headers["Content-Disposition"] = content_disposition(display_name(stored, fallback), fallback)
    return response


def send_nth(names, n: int, download_stem: str):
    if not isinstance(names, list) or not 0 <= n < len(names):
        abort(404)
    return send_stored(names[n], f"{download_stem}_{n + 1}")
