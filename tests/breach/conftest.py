"""A migrated SQLite compliance store per test, with subjects in several jurisdictions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from compliance.db import make_engine, migrate, session_factory, transaction
from compliance.subjects import ensure_subject

# (id, country, subdivision, locale, time zone)
SUBJECTS = [
    ("s-fr", "FR", None, "fr_FR", "Europe/Paris"),
    ("s-de", "DE", None, "de", "Europe/Berlin"),
    ("s-es", "ES", None, "es-ES", "Europe/Madrid"),
    ("s-jp", "JP", None, "ja", "Asia/Tokyo"),
    ("s-sg", "SG", None, "zh-Hans-SG", "Asia/Singapore"),
    ("s-ca", "US", "CA", None, None),
]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'compliance.db'}"


@pytest.fixture
def factory(db_url: str) -> sessionmaker[Session]:
    engine = make_engine(db_url)
    migrate(engine)
    f = session_factory(engine)
    with transaction(f) as s:
        for sid, country, sub, locale, tz in SUBJECTS:
            ensure_subject(
                s,
                sid,
                country=country,
                subdivision=sub,
                locale=locale,
                time_zone=tz,
                now=datetime(2026, 10, 1, tzinfo=UTC),
            )
    yield f
    engine.dispose()
