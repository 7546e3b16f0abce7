"""SQLAlchemy 2 models of the compliance store.

The schema is created and changed only by the Alembic migrations in ``compliance/migrations``;
``tests/compliance`` checks that the migrations and these models agree.

Personal data held here: the pseudonymous subject id and its attributes (region, locale, time
zone, flags), consents, and the requests a subject made.  The audit log never holds a subject id:
it holds ``subject_ref``, an HMAC of the id under a per-subject salt that erasure deletes
(crypto-shredding), so the hash chain survives an erasure while the entries stop being linkable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the compliance store; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Regime(StrEnum):
    GDPR = "gdpr"
    CCPA = "ccpa"
    PDPA = "pdpa"


class RequestType(StrEnum):
    ACCESS = "access"
    PORTABILITY = "portability"
    ERASURE = "erasure"
    RECTIFICATION = "rectification"
    RESTRICTION = "restriction"
    OBJECTION = "objection"
    KNOW = "know"  # CCPA
    DELETE = "delete"  # CCPA
    CORRECT = "correct"  # CCPA
    OPT_OUT = "opt_out"  # CCPA opt-out of sale/sharing


class RequestStatus(StrEnum):
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class Base(DeclarativeBase):
    pass


class Subject(Base):
    __tablename__ = "subjects"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    region: Mapped[str | None] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2))
    subdivision: Mapped[str | None] = mapped_column(String(8))
    locale: Mapped[str | None] = mapped_column(String(16))
    time_zone: Mapped[str | None] = mapped_column(String(64))  # IANA name
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    objected: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why processing is restricted: "request:<id>" for an interim restriction while a contest
    # (rectification) or an objection is pending (Art. 18(1)(a),(d)), "request:<id>" of a
    # restriction request too; the flag is lifted when no ground is left (Art. 18(3)).
    restriction_grounds: Mapped[list[str]] = mapped_column(JSON, default=list)
    audit_salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    consents: Mapped[list[Consent]] = relationship(
        back_populates="subject", cascade="all, delete-orphan", order_by="Consent.id"
    )


class Consent(Base):
    """One consent event (given or withdrawn); the latest per subject x purpose is current."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(64))
    given: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)

    subject: Mapped[Subject] = relationship(back_populates="consents")


class DataSubjectRequest(Base):
    __tablename__ = "dsr_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # NULL once the subject is erased; subject_ref stays (unlinkable after the salt is gone).
    subject_id: Mapped[str | None] = mapped_column(String(128), index=True)
    subject_ref: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    regime: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), index=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Optimistic lock: every UPDATE checks and bumps ``version`` (StaleDataError on a race).
    __mapper_args__ = {"version_id_col": version}

    deadlines: Mapped[list[Deadline]] = relationship(
        cascade="all, delete-orphan", order_by="Deadline.id"
    )
    steps: Mapped[list[RequestStep]] = relationship(
        cascade="all, delete-orphan", order_by="RequestStep.id"
    )


class Deadline(Base):
    __tablename__ = "dsr_deadlines"
    __table_args__ = (UniqueConstraint("request_id", "obligation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("dsr_requests.id", ondelete="CASCADE"))
    obligation: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RequestStep(Base):
    """Execution log of a request: one row per finished step (resumption skips these)."""

    __tablename__ = "dsr_steps"
    __table_args__ = (UniqueConstraint("request_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("dsr_requests.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(160))
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class InferenceRun(Base):
    """Where one inference run wrote its files: ``<output_url>/<run_id>/{results,quarantine}``."""

    __tablename__ = "inference_runs"

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    output_url: Mapped[str] = mapped_column(Text)
    input_copy_url: Mapped[str | None] = mapped_column(Text)
    region: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    results_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    quarantine_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    input_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RetentionPolicy(Base):
    __tablename__ = "retention_policies"
    __table_args__ = (UniqueConstraint("category", "regime"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    category: Mapped[str] = mapped_column(String(32))
    regime: Mapped[str] = mapped_column(String(8))  # a Regime value, or "*" for any
    days: Mapped[int] = mapped_column(Integer)


class Suppression(Base):
    """What outlives an erasure: a keyed hash of the subject id and why it must not be processed.

    Art. 7(3), 17(3), 21(3) GDPR and CCPA 1798.120: erasing a subject who withdrew consent,
    objected or opted out must not make them processable again.  No other data is kept: ``ref``
    is HMAC-SHA256 of the id under a key outside the database (``compliance.suppression``),
    ``scope`` is a purpose (for a withdrawn consent) or ``*`` (objection, opt-out).
    """

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("ref", "reason", "scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One entry of the hash-chained audit log; written only by ``compliance.audit.append``."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(160))
    subject_ref: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, hashed as stored
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChain(Base):
    """The chain's two ends: what was pruned by retention (first) and the head (last)."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_seq: Mapped[int] = mapped_column(Integer)
    first_prev_hash: Mapped[str] = mapped_column(String(64))
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
