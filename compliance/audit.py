"""Append-only, hash-chained audit log.

Each entry's ``hash`` is SHA-256 over its own fields and the previous entry's hash, so editing,
deleting or reordering any entry breaks the chain from that point.  The ``audit_chain`` row keeps
both ends (the head, and what retention pruned), so deleting the newest entries or the oldest
ones outside retention is detected too.  Appends lock that row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite serialises writers), so concurrent writers cannot fork the chain.

Entries never carry a subject id: ``subject_ref`` (an HMAC of the id under the subject's salt)
links entries to a subject only while the subject exists; erasure deletes the salt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.orm import Session

from compliance.models import AuditChain, AuditEntry, Subject

GENESIS = "0" * 64


def canonical_json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def subject_ref(subject: Subject) -> str:
    """Pseudonymous reference to a subject, unlinkable once the subject's salt is deleted."""
    return hmac.new(
        bytes.fromhex(subject.audit_salt), subject.id.encode(), hashlib.sha256
    ).hexdigest()


def entry_hash(entry: AuditEntry) -> str:
    body = {
        "seq": entry.seq,
        "recorded_at": entry.recorded_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "subject_ref": entry.subject_ref,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _chain(session: Session) -> AuditChain:
    chain = session.execute(
        select(AuditChain).where(AuditChain.id == 1).with_for_update()
    ).scalar_one_or_none()
    if chain is None:  # a store migrated without the seed row
        chain = AuditChain(
            id=1, first_seq=1, first_prev_hash=GENESIS, last_seq=0, last_hash=GENESIS
        )
        session.add(chain)
        session.flush()
    return chain


def append(
    session: Session,
    *,
    action: str,
    object_type: str,
    object_id: str,
    actor: str,
    subject_ref: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction.  ``details`` must hold no personal data."""
    chain = _chain(session)
    entry = AuditEntry(
        seq=chain.last_seq + 1,
        recorded_at=(now or datetime.now(UTC)).astimezone(UTC),
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        subject_ref=subject_ref,
        details=canonical_json(details or {}),
        prev_hash=chain.last_hash,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    chain.last_seq, chain.last_hash = entry.seq, entry.hash
    session.flush()
    return entry


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    ok: bool
    entries: int
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "problems": self.problems}


def verify(session: Session, *, max_problems: int = 20) -> VerifyReport:
    """Walk the chain in ``seq`` order and report every break (edit, deletion, reordering)."""
    chain = session.execute(select(AuditChain).where(AuditChain.id == 1)).scalar_one_or_none()
    if chain is None:
        return VerifyReport(ok=False, entries=0, problems=["audit_chain row is missing"])
    problems: list[str] = []
    expected_seq, prev_hash, count = chain.first_seq, chain.first_prev_hash, 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    for entry in rows:
        count += 1
        if entry.seq != expected_seq:
            problems.append(f"entry {entry.seq}: expected seq {expected_seq} (entries missing)")
        if entry.prev_hash != prev_hash:
            problems.append(f"entry {entry.seq}: prev_hash does not match the entry before it")
        if entry_hash(entry) != entry.hash:
            problems.append(f"entry {entry.seq}: content does not match its hash (edited)")
        expected_seq, prev_hash = entry.seq + 1, entry.hash
        if len(problems) >= max_problems:
            break
    else:
        if expected_seq - 1 != chain.last_seq or prev_hash != chain.last_hash:
            problems.append(
                f"chain head is entry {chain.last_seq} but the log ends at {expected_seq - 1}"
                " (newest entries deleted or head altered)"
            )
    return VerifyReport(ok=not problems, entries=count, problems=problems)


def prune_before(session: Session, before: datetime) -> int:
    """Delete the oldest entries recorded before ``before`` (a prefix of the chain), keeping the
    chain verifiable from the first remaining entry.  Returns how many were deleted."""
    chain = _chain(session)
    cut = session.execute(
        select(func.max(AuditEntry.seq)).where(AuditEntry.recorded_at < before)
    ).scalar_one_or_none()
    if cut is None:
        return 0
    last = session.execute(select(AuditEntry).where(AuditEntry.seq == cut)).scalar_one()
    deleted = rowcount(session.execute(delete(AuditEntry).where(AuditEntry.seq <= cut)))
    chain.first_seq, chain.first_prev_hash = cut + 1, last.hash
    session.flush()
    return deleted


def rowcount(result: object) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def count_before(session: Session, before: datetime) -> int:
    cut = session.execute(
        select(func.max(AuditEntry.seq)).where(AuditEntry.recorded_at < before)
    ).scalar_one_or_none()
    if cut is None:
        return 0
    return int(
        session.execute(
            select(func.count(AuditEntry.seq)).where(AuditEntry.seq <= cut)
        ).scalar_one()
    )
