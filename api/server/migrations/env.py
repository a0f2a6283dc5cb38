"""Alembic environment of the API's tables (run from code by :func:`secureflow.api.server.db.upgrade_engine`).

The API shares the ledger's database but keeps its own version table
(``api_alembic_version``) and only ever looks at tables named ``api_*``, so the
two migration histories never touch each other's tables.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from secureflow.api.server.db import VERSION_TABLE
from secureflow.api.server.tables import Base

config = context.config


def _only_api_tables(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return type_ != "table" or bool(name and name.startswith("api_"))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_object=_only_api_tables,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the API migrations through secureflow.api.server.db.upgrade_engine (it passes a connection)"
    )
_run(connection)
