"""Engine, sessions and schema migration of the compliance store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and foreign keys enforced.

    ``schema`` (PostgreSQL only) puts every table in that schema via ``search_path``.
    """
    parsed = make_url(url)
    connect_args: dict[str, object] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            db = Path(parsed.database)
            db.parent.mkdir(parents=True, exist_ok=True)
            if not db.exists():  # personal data: readable by this user only (SQLite would use 0644)
                os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        connect_args["timeout"] = 30
    elif schema is not None:
        connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(url, connect_args=connect_args)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

    return engine


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the Alembic migrations (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any exception."""
    with factory() as session, session.begin():
        yield session


def open_store(url: str) -> sessionmaker[Session]:
    """Engine + migrations + session factory: what CLI and flows call once."""
    engine = make_engine(url)
    migrate(engine)
    return session_factory(engine)
