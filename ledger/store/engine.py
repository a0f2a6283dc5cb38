"""Database URLs and engines for the ledger store: defaults, password masking, SQLite pragmas.

The embedded default is a SQLite file ``.secureflow/secureflow.db`` under the
current directory; ``SECUREFLOW_DATABASE_URL`` (e.g.
``postgresql+psycopg://user:pw@host/db``) overrides it. SQLite connections get
WAL with ``synchronous = FULL`` (a committed accept survives power loss), a busy
timeout and enforced foreign keys, and write transactions start
with ``BEGIN IMMEDIATE`` so that concurrent writers (threads or processes) wait
for each other instead of failing on a lock upgrade.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from secureflow.ledger.errors import ConfigurationError, StoreUnavailableError

DATABASE_URL_ENV = "SECUREFLOW_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path(".secureflow") / "secureflow.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000

WRITE_OPTION = "secureflow_write"
"""Execution option marking a connection whose transaction will write (``BEGIN IMMEDIATE`` on SQLite)."""

_PASSWORD_IN_URL = re.compile(r"(?P<head>://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<tail>@)")


def resolve_url(url: str | None = None) -> str:
    """The URL to open: ``url`` if given, else ``SECUREFLOW_DATABASE_URL``, else the local SQLite file."""
    if url:
        return url
    from_env = os.environ.get(DATABASE_URL_ENV, "").strip()
    if from_env:
        return from_env
    return f"sqlite:///{(Path.cwd() / DEFAULT_SQLITE_PATH).as_posix()}"


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***`` (safe to log and show)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", str(url))


def scrub_password(text: str, url: str | URL) -> str:
    """``text`` with the URL's password (if any) replaced by ``***``, e.g. for driver error messages."""
    try:
        password = make_url(url).password
    except ArgumentError:
        match = _PASSWORD_IN_URL.search(str(url))
        password = match.group("password") if match else None
    if password:
        text = text.replace(str(password), "***")
    return text


def unavailable(url: str | URL, exc: BaseException) -> StoreUnavailableError:
    """A :class:`StoreUnavailableError` naming the (masked) URL and the driver's reason."""
    reason = scrub_password(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0], url)
    return StoreUnavailableError(f"cannot use the ledger database at {mask_url(url)}: {reason}")


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"{mask_url(url)!r} is not a database URL",
            hint=(
                "set SECUREFLOW_DATABASE_URL to e.g. postgresql+psycopg://user:password@host:5432/db "
                "or sqlite:///path/to/secureflow.db"
            ),
        ) from exc


def _is_memory_sqlite(parsed: URL) -> bool:
    return parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed.query)


def make_engine(url: str, **engine_options: Any) -> Engine:
    """Create the engine for ``url``; for a SQLite file, create its folder and set the pragmas."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite":
        engine_options.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **engine_options)
    if _is_memory_sqlite(parsed):
        # One shared connection: an in-memory database exists only inside its connection.
        engine_options.setdefault("poolclass", StaticPool)
        engine_options.setdefault("connect_args", {"check_same_thread": False})
    elif parsed.database:
        try:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unavailable(url, exc) from exc
    engine = create_engine(parsed, **engine_options)
    _install_sqlite_pragmas(engine, wal=not _is_memory_sqlite(parsed))
    return engine


def _install_sqlite_pragmas(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the sqlite3 module) emit BEGIN, so it can be BEGIN IMMEDIATE for writers.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                # FULL: every commit's WAL is fsynced, so an accepted record survives power loss and
                # OS crashes too (NORMAL only survives a process crash); cheap with chunked accepts.
                cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
