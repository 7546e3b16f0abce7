"""Fixtures of the compliance tests: a migrated store on SQLite (always) and on PostgreSQL
(skipped with the reason when no server answers), a migrated copy (SQLite) or emptied tables (PostgreSQL) per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from compliance.audit import GENESIS
from compliance.db import make_engine, migrate, session_factory

PG_URL = os.environ.get("SMT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, str | None] = {}


def pg_unavailable() -> str | None:
    """None when PostgreSQL answers at PG_URL, else why not."""
    if "reason" not in _pg_state:
        try:
            engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _pg_state["reason"] = None
        except Exception as exc:  # any connection failure means: skip, and say why
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} does not answer: {type(exc).__name__}"
    return _pg_state["reason"]


class Backend:
    def __init__(self, name: str, url: str, engine: Engine, schema: str | None) -> None:
        self.name, self.url, self.engine, self.schema = name, url, engine, schema


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once keeps the suite fast)."""
    path = tmp_path_factory.mktemp("template") / "compliance.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """One migrated schema for the session, dropped at the end; tests empty its tables."""
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    schema = f"smt_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, schema=schema)
    migrate(engine)
    engine.dispose()
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _empty_pg(engine: Engine) -> None:
    with engine.connect() as conn:
        tables = [
            name
            for name in inspect(conn).get_table_names()
            if name != "alembic_version"
        ]
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(
            text(
                "INSERT INTO audit_chain (id, first_seq, first_prev_hash, last_seq, last_hash)"
                " VALUES (1, 1, :g, 0, :g)"
            ),
            {"g": GENESIS},
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "compliance.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        yield Backend("sqlite", url, engine, None)
        engine.dispose()
        return
    schema = request.getfixturevalue("pg_schema")
    engine = make_engine(PG_URL, schema=schema)
    _empty_pg(engine)
    yield Backend("postgresql", PG_URL, engine, schema)
    engine.dispose()


@pytest.fixture
def factory(backend: Backend) -> sessionmaker[Session]:
    return session_factory(backend.engine)


@pytest.fixture
def t0() -> datetime:
    return datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
