"""Alembic environment: runs on the connection given in ``config.attributes["connection"]``
(``compliance.db.migrate``) or on ``sqlalchemy.url``."""

from __future__ import annotations

import importlib
import pkgutil

from alembic import context
from sqlalchemy import create_engine

import compliance
from compliance.models import Base

# Every ``compliance.*models`` module declares tables on the same Base: load them all so that
# autogenerate sees the whole schema.
for _mod in pkgutil.iter_modules(compliance.__path__):
    if _mod.name.endswith("models"):
        importlib.import_module(f"compliance.{_mod.name}")

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
