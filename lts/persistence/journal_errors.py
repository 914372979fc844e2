"""What a write error means to the journal: a bad record, a transient conflict, or an outage.

Where it sits: :class:`lts.persistence.journal.Journal` asks this module about every error a
batch raises (the policy is in :mod:`lts.persistence.journal`'s docstring). A record error
(:func:`is_record_error`: the database refused a value, or the driver or a column type could not
bind it, or building the rows failed) fails that record alone; a serialization failure or a
deadlock (:func:`is_transient`) is tried again at once; anything else means the database cannot
write now, and :func:`describe_error` says why in one short line built from exception classes and
codes only, never from a message, a statement or a URL. :func:`unavailable_reason` combines the
two: the reason, or None for a record error. SQLite's errors (raised by
:mod:`lts.persistence.sqlite_writer` as SQLAlchemy's, with the ``sqlite3`` error as ``orig``) and
PostgreSQL's are classified alike.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Final

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from lts.errors import JournalUnavailable

__all__ = ["describe_error", "is_record_error", "is_transient", "sqlstate",
           "unavailable_reason"]

# Python errors building or binding a record's values.
_ROW_ERRORS: Final = (KeyError, TypeError, ValueError, ArithmeticError)
# SQLSTATE classes of a record the database refuses: data exception, integrity violation.
_RECORD_SQLSTATE_CLASSES: Final = frozenset({"22", "23"})
# PostgreSQL's serialization failure and deadlock: the whole batch is tried again at once.
_RETRY_SQLSTATES: Final = frozenset({"40001", "40P01"})

_PG_REASONS: Final = {
    "53100": "disk full", "53200": "database out of memory", "53300": "too many connections",
    "57P01": "database shutting down", "57P02": "database crashed",
    "57P03": "database starting up or shutting down", "57014": "statement cancelled",
    "25006": "database is read-only", "40001": "serialization failures",
    "40P01": "deadlocks",
}
_PG_CLASS_REASONS: Final = {"08": "connection lost", "53": "database out of resources",
                            "58": "database system error", "XX": "database internal error"}
_SQLITE_REASONS: Final = {  # by primary result code
    3: "access denied", 5: "database is locked", 6: "database is locked", 7: "out of memory",
    8: "database is read-only", 10: "disk I/O error", 11: "database file corrupt",
    13: "disk full", 14: "cannot open the database file", 26: "not a database file",
}


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a PostgreSQL error; None for SQLite's and the driver's own."""
    code = getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def _driver_error(exc: DBAPIError) -> BaseException:
    """The driver's own exception (asyncpg's, under SQLAlchemy's adapter), else ``orig``."""
    orig = exc.orig
    cause = orig.__cause__ if orig is not None else None
    return cause if cause is not None else orig if orig is not None else exc


def _is_sqlite_binding_error(error: BaseException | None) -> bool:
    """``sqlite3`` refused a value before SQLite saw it (no SQLite result code)."""
    return isinstance(error, (sqlite3.ProgrammingError, sqlite3.InterfaceError)) \
        and getattr(error, "sqlite_errorcode", None) is None and "binding" in str(error)


def is_record_error(exc: BaseException) -> bool:
    """Caused by the records themselves (see :mod:`lts.persistence.journal`); anything else
    means the database cannot write now."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        if isinstance(exc, IntegrityError | DataError):
            return True
        code = sqlstate(exc)
        if code is not None:
            return code[:2] in _RECORD_SQLSTATE_CLASSES
        return _is_sqlite_binding_error(exc.orig)
    if isinstance(exc, StatementError):  # raised binding a value, before the database saw it
        return exc.orig is not None and is_record_error(exc.orig)
    return isinstance(exc, _ROW_ERRORS)


def is_transient(exc: BaseException) -> bool:
    """A serialization failure or deadlock: the transaction may simply be tried again."""
    return isinstance(exc, DBAPIError) and sqlstate(exc) in _RETRY_SQLSTATES


def _sqlite_reason(error: sqlite3.Error) -> str:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        name = getattr(error, "sqlite_errorname", None) or str(code)
        return _SQLITE_REASONS.get(code & 0xFF, f"database error: {name}")
    return f"database error: {type(error).__name__}"


def describe_error(exc: BaseException) -> str:
    """One short line for an error that keeps the database from writing: built from classes
    and codes only, never from a message (it could hold a URL or a value)."""
    if isinstance(exc, JournalUnavailable):
        return str(exc)  # the journal's own words
    if isinstance(exc, sqlite3.Error):
        return _sqlite_reason(exc)
    if isinstance(exc, DBAPIError):
        if isinstance(exc.orig, sqlite3.Error):
            return _sqlite_reason(exc.orig)
        if exc.connection_invalidated:
            return f"connection lost: {type(_driver_error(exc)).__name__}"
        code = sqlstate(exc)
        known = _PG_REASONS.get(code or "") or _PG_CLASS_REASONS.get((code or "")[:2])
        if known is not None:
            return known
        what = f"SQLSTATE {code}" if code else type(_driver_error(exc)).__name__
        return f"database error: {what}"
    if isinstance(exc, StatementError) and exc.orig is not None:
        return describe_error(exc.orig)
    if isinstance(exc, TimeoutError):
        return "database timeout"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "disk full"
        return f"database unreachable: {type(exc).__name__}"
    return f"database error: {type(exc).__name__}"


def unavailable_reason(exc: BaseException) -> str | None:
    """Why ``exc`` keeps the database from writing, in one short sanitized line; None when it
    is caused by the records themselves (the journal fails those records alone)."""
    return None if is_record_error(exc) else describe_error(exc)
