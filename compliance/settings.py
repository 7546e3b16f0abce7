"""The compliance settings: one pydantic-settings object, environment prefix ``SMT_``.

Load it once (``ComplianceSettings()``) at the edge (CLI, flow entry) and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DIR = Path(".smt")


class ComplianceSettings(BaseSettings):
    """Where the compliance store lives and where exports go.

    - ``database_url`` (``SMT_DATABASE_URL``): SQLAlchemy URL; a SQLite file by default,
      e.g. ``postgresql+psycopg://user@host:5432/db`` for PostgreSQL.
    - ``export_dir`` (``SMT_EXPORT_DIR``): local path or fsspec URL for access/portability
      exports (one zip per request).
    - ``actor`` (``SMT_ACTOR``): who the audit log names for actions of this process.
    - ``audit_key_file`` (``SMT_AUDIT_KEY_FILE``) or ``audit_key`` (``SMT_AUDIT_KEY``, hex): the
      HMAC key of the audit chain, kept outside the database (a file, mode 0600, created on
      first use; in production a mounted secret).
    - ``controller_time_zone`` (``SMT_CONTROLLER_TIME_ZONE``): IANA zone of the controller's
      establishment; GDPR requests are dated (day of receipt) and counted in it.
    - ``audit_anchor_url`` (``SMT_AUDIT_ANCHOR_URL``): where ``smt audit checkpoint`` anchors the
      chain's head (append-only: a local JSON-lines file, or one new object per checkpoint
      under an ``s3://`` prefix).
    """

    model_config = SettingsConfigDict(env_prefix="SMT_", extra="ignore")

    database_url: str = Field(default=f"sqlite:///{DEFAULT_DIR / 'compliance.db'}")
    export_dir: str = Field(default=str(DEFAULT_DIR / "exports"))
    actor: str = "smt"
    audit_key_file: str = Field(default=str(DEFAULT_DIR / "audit.key"))
    audit_key: str | None = Field(default=None, repr=False)
    audit_anchor_url: str = Field(default=str(DEFAULT_DIR / "audit-anchors.jsonl"))
    controller_time_zone: str = "Europe/Brussels"

    @field_validator("controller_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"SMT_CONTROLLER_TIME_ZONE={value!r} is not an IANA time zone; use e.g."
                " Europe/Brussels"
            ) from exc
        return value
