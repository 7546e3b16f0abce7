"""Fixtures of the compliance tests: a migrated store on SQLite (always) and on PostgreSQL
(skipped with the reason when no server answers), one fresh database or schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

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


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'compliance.db'}"
        engine = make_engine(url)
        migrate(engine)
        yield Backend("sqlite", url, engine, None)
        engine.dispose()
        return
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    schema = f"smt_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, schema=schema)
    migrate(engine)
    try:
        yield Backend("postgresql", PG_URL, engine, schema)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def factory(backend: Backend) -> sessionmaker[Session]:
    return session_factory(backend.engine)


@pytest.fixture
def t0() -> datetime:
    return datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
