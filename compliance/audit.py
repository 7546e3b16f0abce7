"""Append-only, keyed hash-chained audit log, anchored outside the database.

Each entry's ``hash`` is HMAC-SHA256, under a key kept outside the database
(``SMT_AUDIT_KEY_FILE`` / ``SMT_AUDIT_KEY``), over its own fields and the previous entry's hash,
so editing, deleting or reordering any entry breaks the chain from that point, and someone who
can write to the database but does not hold the key cannot re-hash what they changed (a plain
SHA-256 chain could be rewritten and re-hashed by anyone with write access).  The key alone
cannot stop a database writer from deleting the newest entries and moving the head back, or from
restoring an older copy of the database: ``checkpoint`` therefore writes the head (seq, hash,
MAC) to append-only storage outside the database at intervals (``smt audit checkpoint``,
scheduled), and ``verify`` checks every anchor against the chain.  What remains undetectable:
truncating entries newer than the last anchor; run checkpoints often enough for that window.  The ``audit_chain`` row keeps
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
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.orm import Session

from compliance.errors import ComplianceError
from compliance.models import AuditChain, AuditEntry, Subject

GENESIS = "0" * 64
log = logging.getLogger("smt.audit")
_KEYS: dict[str, bytes] = {}


def audit_key(settings=None) -> bytes:
    """The chain's HMAC key: ``SMT_AUDIT_KEY`` (hex), else the key file (created 0600 with 256
    bits from the OS on first use; one that others can read is refused)."""
    from compliance.settings import ComplianceSettings

    s = settings or ComplianceSettings()
    if s.audit_key:
        key = bytes.fromhex(s.audit_key)
        if len(key) < 32:
            raise ComplianceError("SMT_AUDIT_KEY must be at least 32 bytes (64 hex digits)")
        return key
    path = Path(s.audit_key_file).resolve()
    cached = _KEYS.get(str(path))
    if cached is not None:
        return cached
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            log.warning("created the audit chain key %s: keep it (and a backup) outside the database", path)
        except FileExistsError:
            pass  # another process made it first
    if path.stat().st_mode & 0o077:
        raise ComplianceError(f"audit key {path} is readable by others; run `chmod 600 {path}`")
    key = bytes.fromhex(path.read_text().strip())
    _KEYS[str(path)] = key
    return key


def canonical_json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def subject_ref(subject: Subject) -> str:
    """Pseudonymous reference to a subject, unlinkable once the subject's salt is deleted."""
    return hmac.new(
        bytes.fromhex(subject.audit_salt), subject.id.encode(), hashlib.sha256
    ).hexdigest()


def entry_hash(entry: AuditEntry, key: bytes | None = None) -> str:
    """HMAC-SHA256 of the entry under the chain key (``legacy_hash``: the unkeyed form)."""
    return hmac.new(key or audit_key(), _body(entry).encode(), hashlib.sha256).hexdigest()


def legacy_hash(entry: AuditEntry) -> str:
    """The unkeyed SHA-256 of stores written before the chain was keyed (``smt audit rekey``)."""
    return hashlib.sha256(_body(entry).encode()).hexdigest()


def _body(entry: AuditEntry) -> str:
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
    return canonical_json(body)


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
    entry.hash = entry_hash(entry, audit_key())
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


def verify(session: Session, *, max_problems: int = 20, settings=None) -> VerifyReport:
    """Walk the chain in ``seq`` order and report every break (edit, deletion, reordering,
    re-hashing without the key), then check it against every anchor written outside the
    database (truncation, an older copy restored, a forged anchor)."""
    chain = session.execute(select(AuditChain).where(AuditChain.id == 1)).scalar_one_or_none()
    if chain is None:
        return VerifyReport(ok=False, entries=0, problems=["audit_chain row is missing"])
    key = audit_key(settings)
    problems: list[str] = []
    legacy = 0
    expected_seq, prev_hash, count = chain.first_seq, chain.first_prev_hash, 0
    rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
    for entry in rows:
        count += 1
        if entry.seq != expected_seq:
            problems.append(f"entry {entry.seq}: expected seq {expected_seq} (entries missing)")
        if entry.prev_hash != prev_hash:
            problems.append(f"entry {entry.seq}: prev_hash does not match the entry before it")
        if entry_hash(entry, key) != entry.hash:
            if legacy_hash(entry) == entry.hash:
                legacy += 1
            else:
                problems.append(f"entry {entry.seq}: content does not match its keyed hash (edited or "
                                "re-hashed without the audit key)")
        expected_seq, prev_hash = entry.seq + 1, entry.hash
        if len(problems) >= max_problems:
            break
    else:
        if expected_seq - 1 != chain.last_seq or prev_hash != chain.last_hash:
            problems.append(
                f"chain head is entry {chain.last_seq} but the log ends at {expected_seq - 1}"
                " (newest entries deleted or head altered)"
            )
    if legacy:
        problems.append(f"{legacy} entries carry an unkeyed SHA-256: either a store written before the chain "
                        "was keyed (run `smt audit rekey` once after upgrading) or entries rewritten by someone "
                        "without the audit key")
    problems += _check_anchors(session, chain, key, settings)
    return VerifyReport(ok=not problems, entries=count, problems=problems[:max_problems])


# --------------------------------------------------------------------------------------------
# anchors outside the database


def _anchor_mac(key: bytes, record: dict[str, Any]) -> str:
    body = {k: record[k] for k in ("seq", "hash", "written_at")}
    return hmac.new(key, ("anchor:" + canonical_json(body)).encode(), hashlib.sha256).hexdigest()


def checkpoint(session: Session, settings=None, *, now: datetime | None = None) -> dict[str, Any] | None:
    """Anchor the committed head outside the database; None when the chain is empty."""
    from compliance.settings import ComplianceSettings

    s = settings or ComplianceSettings()
    chain = session.execute(select(AuditChain).where(AuditChain.id == 1)).scalar_one_or_none()
    if chain is None or chain.last_seq == 0:
        return None
    record: dict[str, Any] = {"seq": chain.last_seq, "hash": chain.last_hash,
                              "written_at": (now or datetime.now(UTC)).isoformat(timespec="seconds")}
    record["mac"] = _anchor_mac(audit_key(s), record)
    line = canonical_json(record)
    url = s.audit_anchor_url
    if "://" in url:
        import fsspec

        with fsspec.open(f"{url.rstrip('/')}/{record['seq']:012d}-{secrets.token_hex(4)}.json", "w") as fh:
            fh.write(line)  # one new object per checkpoint: nothing is ever overwritten
    else:
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(line + "\n")
    return record


def read_anchors(settings=None) -> list[dict[str, Any]]:
    from compliance.settings import ComplianceSettings

    s = settings or ComplianceSettings()
    url = s.audit_anchor_url
    lines: list[str] = []
    if "://" in url:
        import fsspec

        fs, _, paths = fsspec.get_fs_token_paths(url.rstrip("/") + "/*.json")
        for p in sorted(paths):
            with fs.open(p, "r") as fh:
                lines.append(fh.read())
    elif Path(url).exists():
        lines = Path(url).read_text().splitlines()
    out = []
    for i, line in enumerate(x for x in lines if x.strip()):
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"invalid": i})
    return out


def _check_anchors(session: Session, chain: AuditChain, key: bytes, settings) -> list[str]:
    problems = []
    for i, a in enumerate(read_anchors(settings)):
        if "invalid" in a or not isinstance(a.get("seq"), int) or a.get("mac") != _anchor_mac(key, a):
            problems.append(f"anchor {i + 1}: not written with the audit key (forged or damaged)")
            continue
        if a["seq"] > chain.last_seq:
            problems.append(f"anchor {i + 1} ({a['written_at']}) saw entry {a['seq']}, but the chain now ends at "
                            f"{chain.last_seq}: entries were deleted or an older copy of the database restored")
            continue
        if a["seq"] < chain.first_seq:
            continue  # pruned by retention since
        entry = session.get(AuditEntry, a["seq"])
        if entry is None or entry.hash != a["hash"]:
            problems.append(f"entry {a['seq']} differs from its anchor of {a['written_at']} (rewritten)")
    return problems


def rekey(session: Session, settings=None, *, actor: str = "smt") -> int:
    """Once, after upgrading a store written before the chain was keyed: verify the chain (an
    unkeyed SHA-256 prefix, then keyed entries appended since the upgrade) and re-hash it all
    under the key.  Refuses when the chain does not verify that way, when unkeyed entries come
    after keyed ones, or when anchors exist (a chain that was ever anchored was keyed: unkeyed
    entries in it mean a rewrite, which re-keying would bless).  Returns how many entries
    were re-hashed."""
    chain = _chain(session)
    entries = list(session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())
    key = audit_key(settings)
    if all(entry_hash(e, key) == e.hash for e in entries):
        return 0
    if read_anchors(settings):
        raise ComplianceError("the chain has anchors, so it was keyed before: unkeyed entries in it were "
                              "rewritten; not re-keying (run `smt audit verify`)")  # fmt: skip
    prev, expected, keyed_seen = chain.first_prev_hash, chain.first_seq, False
    for e in entries:
        keyed = entry_hash(e, key) == e.hash
        if e.seq != expected or e.prev_hash != prev or not (keyed or legacy_hash(e) == e.hash):
            raise ComplianceError(f"the chain does not verify at entry {e.seq}; not re-keying a damaged log")
        if keyed_seen and not keyed:
            raise ComplianceError(f"entry {e.seq} is unkeyed after keyed entries: a rewrite; not re-keying")
        keyed_seen = keyed_seen or keyed
        prev, expected = e.hash, e.seq + 1
    if expected - 1 != chain.last_seq or prev != chain.last_hash:
        raise ComplianceError("the chain's head does not match its last entry; not re-keying")
    prev = chain.first_prev_hash
    for e in entries:
        e.prev_hash = prev
        e.hash = entry_hash(e, key)
        prev = e.hash
    chain.last_hash = prev
    session.flush()
    append(session, action="audit.rekeyed", object_type="audit", object_id="chain", actor=actor,
           details={"entries": len(entries)})
    return len(entries)


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
