"""The audit chain verifies, and raw-SQL tampering (edit, delete, reorder) is detected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from compliance import audit
from compliance.db import transaction


def _fill(factory, n: int = 5, start: datetime | None = None) -> None:
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    with transaction(factory) as s:
        for i in range(n):
            audit.append(
                s,
                action="test.event",
                object_type="test",
                object_id=str(i),
                actor="tester",
                details={"i": i},
                now=start + timedelta(days=i),
            )


def _verify(factory) -> audit.VerifyReport:
    with factory() as s:
        return audit.verify(s)


def test_chain_verifies_and_links_each_entry(factory):
    _fill(factory)
    report = _verify(factory)
    assert report.ok and report.entries == 5
    with factory() as s:
        rows = s.execute(text("select seq, prev_hash, hash from audit_entries order by seq")).all()
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))


def test_edit_detected(backend, factory):
    _fill(factory)
    with backend.engine.begin() as c:
        c.execute(text("update audit_entries set details = :d where seq = 3"), {"d": '{"i":99}'})
    report = _verify(factory)
    assert not report.ok
    assert any("entry 3" in p and "edited" in p for p in report.problems)


def test_edit_with_recomputed_hash_breaks_the_next_link(backend, factory):
    _fill(factory)
    with factory() as s:
        entry = s.get(audit.AuditEntry, 2)
        entry.actor = "mallory"
        entry.hash = audit.entry_hash(entry)
        s.commit()
    report = _verify(factory)
    assert not report.ok
    assert any("entry 3" in p and "prev_hash" in p for p in report.problems)


def test_delete_middle_detected(backend, factory):
    _fill(factory)
    with backend.engine.begin() as c:
        c.execute(text("delete from audit_entries where seq = 2"))
    report = _verify(factory)
    assert not report.ok and report.entries == 4
    assert any("entry 3" in p for p in report.problems)


def test_delete_newest_detected(backend, factory):
    _fill(factory)
    with backend.engine.begin() as c:
        c.execute(text("delete from audit_entries where seq = 5"))
    report = _verify(factory)
    assert not report.ok
    assert any("head" in p for p in report.problems)


def test_reorder_detected(backend, factory):
    _fill(factory)
    with backend.engine.begin() as c:  # swap entries 2 and 4 by renumbering them
        c.execute(text("update audit_entries set seq = 100 where seq = 2"))
        c.execute(text("update audit_entries set seq = 2 where seq = 4"))
        c.execute(text("update audit_entries set seq = 4 where seq = 100"))
    report = _verify(factory)
    assert not report.ok
    assert any("entry 2" in p for p in report.problems)


def test_prune_keeps_the_rest_verifiable(factory):
    _fill(factory, n=6)
    with transaction(factory) as s:
        assert audit.count_before(s, datetime(2026, 1, 3, 12, tzinfo=UTC)) == 3
        assert audit.prune_before(s, datetime(2026, 1, 3, 12, tzinfo=UTC)) == 3
    report = _verify(factory)
    assert report.ok and report.entries == 3
    _fill(factory, n=1, start=datetime(2026, 2, 1, tzinfo=UTC))
    assert _verify(factory).ok
