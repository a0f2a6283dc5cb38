"""Alembic migrations of the ledger store, run from code (no alembic.ini needed at runtime).

``upgrade(url)`` brings a database to the newest schema, ``current_revision(url)``
says where it is. Upgrades run in one transaction that first takes a lock
(an advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so several
processes opening the same database at once migrate it exactly once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from secureflow.ledger.store.engine import WRITE_OPTION, make_engine, unavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x5EC0_F10A  # arbitrary constant: pg_advisory_xact_lock key for schema upgrades


def alembic_config(migrations_dir: Path = MIGRATIONS_DIR) -> Config:
    """An Alembic config pointing at packaged migration scripts (the ledger's by default)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    return config


def head_revision(migrations_dir: Path = MIGRATIONS_DIR) -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(alembic_config(migrations_dir)).get_current_head()
    assert head is not None, f"no migration scripts in {migrations_dir}"  # noqa: S101 - invariant for the type checker, not input validation
    return head


def upgrade_engine(
    engine: Engine,
    revision: str = "head",
    *,
    migrations_dir: Path = MIGRATIONS_DIR,
    lock_key: int = _PG_MIGRATION_LOCK,
) -> None:
    """Migrate the database behind ``engine`` to ``revision`` in one locked transaction.

    Other schema owners sharing the database (the API's tables) pass their own migration folder
    and advisory-lock key; their env.py keeps its own version table.
    """
    config = alembic_config(migrations_dir)
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except DBAPIError as exc:
        raise unavailable(engine.url, exc) from exc


def revision_of_engine(engine: Engine) -> str | None:
    """The revision the database behind ``engine`` is at (None if never migrated)."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise unavailable(engine.url, exc) from exc


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest)."""
    engine = make_engine(url)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None if never migrated)."""
    engine = make_engine(url)
    try:
        return revision_of_engine(engine)
    finally:
        engine.dispose()
