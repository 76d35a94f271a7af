"""Uploaded files (a standard's basis document, renovation drawings, inspection photos): stored
under ``INSTANCE_DIR/uploads/<area>/`` with generated names (the client's file name is never a
path), read back only through the routes of the record they belong to."""

from __future__ import annotations

import uuid
from pathlib import Path

from flask import abort, current_app, send_file

from app.i18n import T
from models.errors import FieldErrors

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_FILES = 10


def upload_root() -> Path:
    return Path(current_app.config["INSTANCE_DIR"]) / "uploads"


def _err(field: str, zh: str, en: str) -> FieldErrors:
    return FieldErrors({field: [str(T(zh, en))]})


def save_uploads(files, field: str, extensions, subdir: str, most: int = MAX_FILES) -> list[str]:
    """Check every file first (type, size, count: a 422 naming ``field``), then store them all.
    Returns the stored (relative) names."""
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
        blobs.append((ext, data))
    folder = upload_root() / subdir
    folder.mkdir(parents=True, exist_ok=True)
    stored = []
    for ext, data in blobs:
        name = f"{uuid.uuid4().hex}{ext}"
        (folder / name).write_bytes(data)
        stored.append(f"{subdir}/{name}")
    return stored


def stored_path(stored: str) -> Path | None:
    """The file behind a stored name, if it is one of ours (never outside the upload root)."""
    root = upload_root().resolve()
    path = (root / str(stored)).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path


def send_stored(stored: str | None, download_stem: str):
    path = stored_path(stored) if stored else None
    if path is None:
        abort(404)
    return send_file(path, as_attachment=True, download_name=f"{download_stem}{path.suffix}")


def send_nth(names, n: int, download_stem: str):
    if not isinstance(names, list) or not 0 <= n < len(names):
        abort(404)
    return send_stored(names[n], f"{download_stem}_{n + 1}")
