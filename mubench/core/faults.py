"""Store and disk faults, said in one sentence: a full disk, a corrupt SQLite store, an unreachable tracking URI."""
from __future__ import annotations

import errno
import shutil
import socket
import sqlite3
from pathlib import Path
from urllib.parse import urlparse

from mubench.core.errors import MubenchError

FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
SERVER_TIMEOUT_S = 5.0


class DiskFull(MubenchError):
    """A write failed for want of space; the grid stops (every later cell would fail the same way)."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an exception it was raised from or while handling, is a full disk."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in FULL_ERRNOS) or \
                "database or disk is full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "cause", None)
    return False


def disk_full_error(folders: dict[str, Path]) -> DiskFull:
    """One sentence naming the fullest of the folders written to (option -> folder) and what to do."""
    def free(folder: Path) -> int:
        folder = Path(folder)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free
    option, folder = min(folders.items(), key=lambda item: free(item[1]))
    return DiskFull(f"the disk of {option} {str(folder)!r} ran out of space ({free(folder) // 2**20} MiB free); free space "
                    f"there or choose another {option}, then run the same command again: finished cells are kept.")


def check_sqlite_store(db: Path) -> None:
    """A store file that exists must be a readable SQLite database; MLflow would print 90 lines of SQLAlchemy."""
    if not db.exists() or db.stat().st_size == 0:
        return
    what_to_do = "move it aside to start a new store (its runs are lost) or restore it from a backup"
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            verdict = conn.execute("pragma quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise MubenchError(f"the MLflow store {str(db)!r} is not a readable SQLite database ({exc}); "
                           f"{what_to_do}.") from None
    if verdict != "ok":
        raise MubenchError(f"the MLflow store {str(db)!r} is damaged (SQLite: {verdict}); {what_to_do}.")


def check_tracking_uri(uri: str) -> None:
    """A tracking server that does not answer is one sentence now, not minutes of MLflow's retries."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        if not uri.startswith("sqlite:///"):
            raise MubenchError(f"--tracking-uri {uri!r} is not a SQLite URI of a file; write sqlite:///<path>.db.")
        check_sqlite_store(Path(uri[len("sqlite:///"):]))
        return
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=SERVER_TIMEOUT_S).close()
        except OSError as exc:
            raise MubenchError(f"--tracking-uri {uri!r}: no MLflow server answered at {parsed.hostname}:{port} "
                               f"within {SERVER_TIMEOUT_S:g} s ({exc.strerror or exc}); start it or fix the URI."
                               ) from None
        return
    if parsed.scheme not in ("", "file", "databricks") and not parsed.scheme.startswith(("postgresql", "mysql", "mssql")):
        raise MubenchError(f"--tracking-uri {uri!r} has scheme {parsed.scheme!r}, which MLflow cannot store runs "
                           f"in; use sqlite:///<path>.db, http(s)://<server> or a folder.")
