"""Alembic environment of the ledger store.

Used two ways: programmatically by :mod:`secureflow.ledger.store.migrate` (which passes an
open connection in ``config.attributes["connection"]``), or by developers with
``alembic -c ledger/store/alembic.ini ...`` (URL from ``sqlalchemy.url`` or
``SECUREFLOW_DATABASE_URL``, else the local SQLite file).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from secureflow.ledger.store.engine import WRITE_OPTION, make_engine, resolve_url
from secureflow.ledger.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(
        url=resolve_url(config.get_main_option("sqlalchemy.url")),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the caller's connection, or open one from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = make_engine(resolve_url(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.connect() as conn:
            _configure_and_run(conn.execution_options(**{WRITE_OPTION: True}))
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
