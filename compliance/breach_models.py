"""SQL tables of breach incidents, on the compliance store's declarative ``Base``.

Created by the Alembic migrations ``0002_breaches``, ``0004_breach_facts``,
``0005_breach_review`` and ``0006_breach_round2``.  Personal data held here: the pseudonymous
ids of affected subjects (``breach_subjects``, deleted with the subject) and the subject each
notice was produced for.  Incidents themselves hold facts and counts only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from compliance.models import Base, UTCDateTime


class BreachIncident(Base):
    __tablename__ = "breach_incidents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    nature: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(String(256))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    aware_at: Mapped[datetime] = mapped_column(UTCDateTime)
    assessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    regimes: Mapped[list[str]] = mapped_column(JSON, default=list)
    affected_subjects: Mapped[int] = mapped_column(Integer, default=0)
    affected_records: Mapped[int] = mapped_column(Integer, default=0)
    affected_by_regime: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    measures: Mapped[list[str]] = mapped_column(JSON, default=list)
    likelihood: Mapped[int | None] = mapped_column(Integer)
    severity: Mapped[int | None] = mapped_column(Integer)
    risk_level: Mapped[str | None] = mapped_column(String(8))
    high_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    risk_removed: Mapped[bool] = mapped_column(Boolean, default=False)
    disproportionate_effort: Mapped[bool] = mapped_column(Boolean, default=False)
    unlawful_purpose: Mapped[bool] = mapped_column(Boolean, default=False)
    exemptions: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    late_reasons: Mapped[str | None] = mapped_column(Text)
    # APPI Rules Art. 8(1)(iv) and (viii): cause, measures to prevent recurrence (0004)
    cause: Mapped[str | None] = mapped_column(Text)
    prevention: Mapped[str | None] = mapped_column(Text)
    # LGPD: small processing agent (ANPD Res. 2/2022 Art. 14: doubled deadlines) (0004)
    small_agent: Mapped[bool] = mapped_column(Boolean, default=False)
    # PDPA s. 26D(1): when we FIRST assessed the breach notifiable; the 3 days run from it and a
    # later re-assessment never restarts them (0005)
    pdpa_notifiable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # PDPA s. 26D(2): when we FIRST assessed significant harm; the subjects' clock runs from it
    # (they are told on or after the PDPC, so never before the authority's due time) (0006)
    pdpa_harm_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # APPI Rules Art. 8(1)(v): secondary damage or its risk, stated in subject notices (0006)
    secondary_damage: Mapped[str | None] = mapped_column(Text)
    # last time an update or assessment changed a fact: what an authority update adds (0005)
    facts_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Cal. Civ. Code 1798.82(d)(2)(C): the date, estimated date or date range (0005)
    occurred_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    occurred_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    # 1798.82(d)(2)(D): notification delayed by a law enforcement investigation (None: unknown)
    law_enforcement_delay: Mapped[bool | None] = mapped_column(Boolean)
    # 1798.82(d)(2)(G): the breach happened at a third party (we were not its source) and the
    # offer of identity theft prevention and mitigation services, how to take it up (0005)
    third_party_source: Mapped[bool] = mapped_column(Boolean, default=False)
    identity_services: Mapped[str | None] = mapped_column(Text)
    phase: Mapped[int] = mapped_column(Integer, default=0)  # authority notifications sent
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __mapper_args__ = {"version_id_col": version}

    deadlines: Mapped[list[BreachDeadline]] = relationship(
        cascade="all, delete-orphan", order_by="BreachDeadline.id"
    )
    subjects: Mapped[list[BreachSubject]] = relationship(
        cascade="all, delete-orphan", order_by="BreachSubject.subject_id"
    )
    notices: Mapped[list[BreachNotice]] = relationship(
        cascade="all, delete-orphan", order_by="BreachNotice.id"
    )


class BreachSubject(Base):
    __tablename__ = "breach_subjects"

    breach_id: Mapped[str] = mapped_column(
        ForeignKey("breach_incidents.id", ondelete="CASCADE"), primary_key=True
    )
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True
    )


class BreachDeadline(Base):
    __tablename__ = "breach_deadlines"
    __table_args__ = (UniqueConstraint("breach_id", "regime", "obligation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    breach_id: Mapped[str] = mapped_column(
        ForeignKey("breach_incidents.id", ondelete="CASCADE"), index=True
    )
    regime: Mapped[str] = mapped_column(String(16))
    obligation: Mapped[str] = mapped_column(String(24))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    statutory: Mapped[bool] = mapped_column(Boolean)
    basis: Mapped[str] = mapped_column(String(64))
    tz: Mapped[str] = mapped_column(String(64))
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # False: a later assessment no longer owes it, but it was met or missed while owed, so it
    # is kept (a missed deadline stays missed) (0005)
    owed: Mapped[bool] = mapped_column(Boolean, default=True)


class BreachNotice(Base):
    """One notice produced: for the authority (per regime and phase) or for one subject."""

    __tablename__ = "breach_notices"
    __table_args__ = (UniqueConstraint("breach_id", "audience", "regime", "subject_id", "phase"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    breach_id: Mapped[str] = mapped_column(
        ForeignKey("breach_incidents.id", ondelete="CASCADE"), index=True
    )
    audience: Mapped[str] = mapped_column(String(16))  # authority | subject | public
    regime: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str | None] = mapped_column(ForeignKey("subjects.id", ondelete="SET NULL"))
    phase: Mapped[int] = mapped_column(Integer, default=1)
    locale: Mapped[str] = mapped_column(String(8))
    tz: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    produced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
