"""The audit chain verifies, and raw-SQL tampering (edit, delete, reorder) is detected."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

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


# --- a database writer without the audit key (compliance/audit.py) ---------------------------


def _rehash_from(factory, seq: int, hasher) -> None:
    """What a database writer would do after changing entry ``seq``: re-link and re-hash every
    entry from there and move the head."""
    with factory() as s:
        rows = list(s.execute(select(audit.AuditEntry).order_by(audit.AuditEntry.seq)).scalars())
        prev = next(r.hash for r in rows if r.seq == seq - 1) if seq > 1 else audit.GENESIS
        for r in rows:
            if r.seq >= seq:
                r.prev_hash = prev
                r.hash = hasher(r)
                prev = r.hash
        chain = s.get(audit.AuditChain, 1)
        chain.last_hash = prev
        s.commit()


def test_rewrite_rehashed_without_the_key_is_detected(backend, factory):
    _fill(factory)
    with backend.engine.begin() as c:
        c.execute(text("update audit_entries set actor = 'mallory' where seq = 3"))
    _rehash_from(factory, 3, audit.legacy_hash)  # plain SHA-256: what the old chain allowed
    report = _verify(factory)
    assert not report.ok and any("unkeyed" in p for p in report.problems)
    wrong_key = b"\x01" * 32  # a guessed key
    _rehash_from(factory, 3, lambda e: audit.entry_hash(e, wrong_key))
    report = _verify(factory)
    assert not report.ok and any("entry 3" in p and "audit key" in p for p in report.problems)


def test_truncation_with_the_head_moved_back_is_caught_by_the_anchor(backend, factory):
    _fill(factory)
    with factory() as s:
        assert audit.checkpoint(s)["seq"] == 5
    with factory() as s:
        h3 = s.get(audit.AuditEntry, 3).hash
    with backend.engine.begin() as c:  # delete the newest entries and move the head: the chain itself is consistent
        c.execute(text("delete from audit_entries where seq > 3"))
        c.execute(text("update audit_chain set last_seq = 3, last_hash = :h"), {"h": h3})
    report = _verify(factory)
    assert not report.ok
    assert any("anchor 1" in p and "entry 5" in p and "ends at 3" in p for p in report.problems)


def test_an_older_copy_of_the_database_is_caught_by_the_anchor(backend, factory, tmp_path):
    if backend.name != "sqlite":
        pytest.skip("a file copy is the SQLite case; the anchor check is the same on PostgreSQL")
    _fill(factory, 3)
    db = Path(backend.url.removeprefix("sqlite:///"))
    with backend.engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    old = tmp_path / "old.db"
    shutil.copy(db, old)
    _fill(factory, 2, start=datetime(2026, 2, 1, tzinfo=UTC))
    with factory() as s:
        audit.checkpoint(s)
    backend.engine.dispose()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copy(old, db)  # replay: the database as it was before the last two entries
    report = _verify(factory)
    assert not report.ok and any("older copy" in p for p in report.problems)


def test_a_forged_or_edited_anchor_is_detected(backend, factory):
    import os

    _fill(factory)
    with factory() as s:
        audit.checkpoint(s)
    anchors = Path(os.environ["SMT_AUDIT_ANCHOR_URL"])
    record = json.loads(anchors.read_text().splitlines()[0])
    record["seq"] = 2  # move the anchor back to make room for a truncation
    anchors.write_text(anchors.read_text() + json.dumps(record) + "\n")
    report = _verify(factory)
    assert not report.ok and any("anchor 2" in p and "audit key" in p for p in report.problems)


def test_key_anchor_and_store_files_are_private(tmp_path, monkeypatch):
    import os
    import stat

    from compliance.db import open_store

    url = f"sqlite:///{tmp_path / 'new' / 'compliance.db'}"
    factory = open_store(url)
    _fill(factory, 2)
    with factory() as s:
        audit.checkpoint(s)
    for path in (tmp_path / "new" / "compliance.db", Path(os.environ["SMT_AUDIT_KEY_FILE"]),
                 Path(os.environ["SMT_AUDIT_ANCHOR_URL"])):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    os.chmod(os.environ["SMT_AUDIT_KEY_FILE"], 0o644)
    audit._KEYS.clear()
    with pytest.raises(audit.ComplianceError, match="chmod 600"):
        _verify(factory)


def test_rekey_upgrades_a_store_written_before_the_chain_was_keyed(backend, factory):
    _fill(factory, 3)
    _rehash_from(factory, 1, audit.legacy_hash)  # as the previous version wrote it
    _fill(factory, 1, start=datetime(2026, 3, 1, tzinfo=UTC))  # appended after the upgrade (keyed)
    assert not _verify(factory).ok
    with transaction(factory) as s:
        assert audit.rekey(s) == 4
    report = _verify(factory)
    assert report.ok and report.entries == 5  # + the audit.rekeyed entry
    with factory() as s:
        audit.checkpoint(s)
    _rehash_from(factory, 1, audit.legacy_hash)  # a later full rewrite without the key
    with transaction(factory) as s, pytest.raises(audit.ComplianceError, match="anchors"):
        audit.rekey(s)  # refuses to bless it


def test_checkpoint_command_and_anchors_on_s3(backend, factory, monkeypatch, capsys):
    """`smt audit checkpoint` anchors the head as a new S3 object each time (moto's real S3
    server on loopback); `smt audit verify` reads them back and catches a truncation."""
    import s3fs
    from moto.server import ThreadedMotoServer

    from flows.cli_compliance import main

    if backend.name != "sqlite":
        pytest.skip("the CLI runs against a SQLite URL here")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                           ("AWS_ENDPOINT_URL", endpoint), ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(var, value)
        fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": endpoint})
        fs.mkdir("anchors-bucket")
        monkeypatch.setenv("SMT_AUDIT_ANCHOR_URL", "s3://anchors-bucket/audit")
        monkeypatch.setenv("SMT_DATABASE_URL", backend.url)
        _fill(factory, 3)
        assert main(["audit", "checkpoint", "--json"]) == 0
        _fill(factory, 2, start=datetime(2026, 2, 1, tzinfo=UTC))
        assert main(["audit", "checkpoint", "--json"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["anchored"]["seq"] == 5
        assert len(fs.ls("anchors-bucket/audit")) == 2  # one object per checkpoint, none overwritten
        assert main(["audit", "verify", "--json"]) == 0
        with factory() as s:
            h4 = s.get(audit.AuditEntry, 4).hash
        with backend.engine.begin() as c:
            c.execute(text("delete from audit_entries where seq = 5"))
            c.execute(text("update audit_chain set last_seq = 4, last_hash = :h"), {"h": h4})
        assert main(["audit", "verify", "--json"]) == 1
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert any("saw entry 5" in p for p in report["problems"])
        assert main(["audit", "checkpoint", "--json"]) == 1  # a broken chain is never anchored
    finally:
        server.stop()
