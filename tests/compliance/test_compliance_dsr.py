"""Executing requests (without Prefect): export, erasure across every store, rectification,
restriction/objection/opt-out honoured by the gate, resumption, dry run."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from compliance_helpers import subjects_in, write_run
from sqlalchemy import func, select

from compliance import audit, execution, files, requests, service
from compliance.db import transaction
from compliance.errors import ComplianceError
from compliance.gate import ExclusionReason
from compliance.models import Consent, DataSubjectRequest, RequestStep, Subject
from compliance.store import SqlConsentGate
from compliance.subjects import record_consent

P = "secure_inference"
NOW = datetime.now(UTC)


@pytest.fixture
def world(factory, tmp_path: Path) -> dict:
    """Two runs with alice, bob and carol; alice also in quarantine; consents recorded."""
    out = tmp_path / "out"
    with transaction(factory) as s:
        record_consent(s, "alice", P, given=True, source="web")
        record_consent(s, "bob", P, given=True, source="web")
    write_run(factory, out, "run-1", ["alice", "bob", "alice"], started_at=NOW - timedelta(days=40),
              quarantined=["alice", None])
    write_run(factory, out, "run-2", ["carol", "alice"], started_at=NOW - timedelta(days=2),
              region="americas", quarantined=["bob"])
    return {"out": out, "exports": str(tmp_path / "exports")}


def _submit(factory, subject: str, rtype: str, regime: str = "gdpr", **kw) -> str:
    with transaction(factory) as s:
        return requests.submit(s, subject_id=subject, rtype=rtype, regime=regime, **kw).id


def _run(factory, world, request_id: str) -> dict:
    result = service.execute(factory, request_id, export_dir=world["exports"], worker="w1")
    assert result is not None
    return result


def test_access_exports_exactly_the_subjects_records(factory, world):
    rid = _submit(factory, "alice", "access")
    result = _run(factory, world, rid)
    assert result["status"] == "completed" and result["export"].endswith(f"{rid}.zip")
    with zipfile.ZipFile(result["export"]) as zf:
        names = set(zf.namelist())
        doc = json.loads(zf.read("export.json"))
        results_csv = zf.read("inference_results.csv").decode()
    assert {"export.json", "consents.csv", "inference_results.csv", "quarantine.csv"} <= names
    assert sorted((r["run_id"], r["record_id"]) for r in doc["inference_results"]) == [
        ("run-1", "run-1-r0"), ("run-1", "run-1-r2"), ("run-2", "run-2-r1")
    ]
    assert {r["subject_id"] for r in doc["inference_results"] + doc["quarantine"]} == {"alice"}
    assert [q["record_id"] for q in doc["quarantine"]] == ["run-1-q0"]
    assert doc["consents"][0]["purpose"] == P
    assert {r["id"] for r in doc["requests"]} == {rid}
    assert doc["processing_history"]  # consent and request events of alice
    assert "bob" not in json.dumps(doc) and "carol" not in results_csv
    with factory() as s:
        assert audit.verify(s).ok


def test_ccpa_know_covers_everything_since_2022(factory, world):
    # 11 CCR 7024(h): not 12 months, but everything collected on or after 1 January 2022
    write_run(factory, world["out"], "run-2025", ["alice"], started_at=NOW - timedelta(days=400))
    write_run(factory, world["out"], "run-2022", ["alice"],
              started_at=datetime(2022, 1, 1, 0, 30, tzinfo=UTC))
    write_run(factory, world["out"], "run-2021", ["alice"],
              started_at=datetime(2021, 12, 30, tzinfo=UTC))
    rid = _submit(factory, "alice", "know", regime="ccpa")
    with zipfile.ZipFile(_run(factory, world, rid)["export"]) as zf:
        doc = json.loads(zf.read("export.json"))
    runs = {r["run_id"] for r in doc["inference_results"]}
    assert {"run-2025", "run-2022"} <= runs and "run-2021" not in runs
    assert len(doc["inference_results"]) == 5
    assert doc["lookback_since"].startswith("2022-01-01")


def test_erasure_removes_the_subject_everywhere(factory, world):
    access = _submit(factory, "alice", "access")
    export_zip = Path(_run(factory, world, access)["export"])
    assert export_zip.exists()
    rid = _submit(factory, "alice", "erasure")
    result = _run(factory, world, rid)
    assert result["status"] == "completed"
    out = world["out"]
    assert subjects_in(out / "run-1" / "results.parquet") == ["bob"]
    assert subjects_in(out / "run-2" / "results.parquet") == ["carol"]
    assert subjects_in(out / "run-1" / "quarantine.parquet") == [None]
    assert subjects_in(out / "run-2" / "quarantine.parquet") == ["bob"]
    # the schema of rewritten files is unchanged
    assert pq.read_schema(out / "run-1" / "results.parquet").field("embedding").type == pa.list_(
        pa.float32()
    )
    assert not export_zip.exists()
    with factory() as s:
        assert s.get(Subject, "alice") is None
        assert s.execute(select(func.count()).select_from(Consent).where(Consent.subject_id == "alice")).scalar_one() == 0
        assert s.execute(
            select(func.count()).select_from(DataSubjectRequest).where(DataSubjectRequest.subject_id == "alice")
        ).scalar_one() == 0
        kept = s.get(DataSubjectRequest, rid)
        assert kept.status == "completed" and kept.subject_id is None
        assert s.get(Subject, "bob") is not None
        report = audit.verify(s)
        assert report.ok
        last = s.execute(select(audit.AuditEntry).order_by(audit.AuditEntry.seq.desc())).scalars().first()
        assert last.action == "dsr.complete" and json.loads(last.details)["rows_removed"] == 4
        dump = " ".join(e.details + e.object_id for e in s.execute(select(audit.AuditEntry)).scalars())
        assert "alice" not in dump


def test_erasure_resumes_after_a_failure(factory, world, monkeypatch):
    rid = _submit(factory, "alice", "erasure")
    real = files.erase_subject
    calls = {"n": 0}

    def flaky(url: str, subject_id: str) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk went away")
        return real(url, subject_id)

    monkeypatch.setattr(files, "erase_subject", flaky)
    with pytest.raises(OSError):
        service.execute(factory, rid, export_dir=world["exports"], worker="w1")
    with factory() as s:
        assert requests.get_request(s, rid).status == "failed"
        done = execution.done_steps(s, rid)
    assert done == {"erase:run-1:results"}
    result = _run(factory, world, rid)  # resumes: failed -> in_progress, skips the done step
    assert result["status"] == "completed"
    with factory() as s:
        steps = s.execute(select(RequestStep.name).where(RequestStep.request_id == rid)).scalars().all()
    assert len(steps) == len(set(steps)) == 7
    assert subjects_in(world["out"] / "run-2" / "results.parquet") == ["carol"]


def test_erasure_dry_run_changes_nothing(factory, world):
    rid = _submit(factory, "alice", "erasure")
    before = (world["out"] / "run-1" / "results.parquet").read_bytes()
    report = service.preview(factory, rid)
    assert report["would_erase"]["rows"] == {
        "run-1:results": 2, "run-1:quarantine": 1, "run-2:results": 1, "run-2:quarantine": 0
    }
    assert (world["out"] / "run-1" / "results.parquet").read_bytes() == before
    with factory() as s:
        assert requests.get_request(s, rid).status == "received"


def test_file_without_subject_column_is_reported_not_silently_passed(factory, world):
    pq.write_table(pa.table({"row": [0], "record_id": ["x"]}), world["out"] / "run-2" / "quarantine.parquet")
    rid = _submit(factory, "alice", "erasure")
    _run(factory, world, rid)
    with factory() as s:
        step = s.execute(
            select(RequestStep).where(RequestStep.request_id == rid, RequestStep.name == "scan:files")
        ).scalar_one()
    assert step.detail["unlinkable_files"] == ["run-2:quarantine"]


@pytest.mark.parametrize(
    ("rtype", "regime", "reason"),
    [
        ("restriction", "gdpr", ExclusionReason.RESTRICTED),
        ("objection", "gdpr", ExclusionReason.OBJECTED),
        ("opt_out", "ccpa", ExclusionReason.OBJECTED),
    ],
)
def test_flag_requests_are_honoured_by_the_gate(factory, world, rtype, regime, reason):
    gate = SqlConsentGate(factory)
    assert gate.decide(["bob"], purpose=P)["bob"].allowed
    _run(factory, world, _submit(factory, "bob", rtype, regime=regime))
    decision = gate.decide(["bob", "carol"], purpose=P)
    assert decision["bob"].reason == reason and decision["carol"].allowed


def test_rectification_changes_only_allowed_fields(factory, world):
    rid = _submit(factory, "bob", "rectification", payload={"changes": {"locale": "fr", "time_zone": "Europe/Paris"}})
    _run(factory, world, rid)
    with factory() as s:
        bob = s.get(Subject, "bob")
        assert (bob.locale, bob.time_zone) == ("fr", "Europe/Paris")
    with pytest.raises(ComplianceError, match="cannot rectify"):  # refused at submission
        _submit(factory, "bob", "rectification", payload={"changes": {"audit_salt": "00"}})
    # a payload stored otherwise (an older version, a hand edit) is refused again at execution
    bad = _submit(factory, "bob", "rectification", payload={"changes": {"locale": "de"}})
    with transaction(factory) as s:
        requests.get_request(s, bad).payload = {"changes": {"audit_salt": "00"}}
    with pytest.raises(ComplianceError, match="cannot rectify"):
        service.execute(factory, bad, export_dir=world["exports"], worker="w1")
    with factory() as s:
        assert requests.get_request(s, bad).status == "failed"


def test_closed_request_is_not_run_again(factory, world):
    rid = _submit(factory, "bob", "objection")
    _run(factory, world, rid)
    assert service.execute(factory, rid, export_dir=world["exports"], worker="w2") is None


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_erasure_rewrites_input_copies(factory, world, fmt):
    import pandas as pd

    copy = world["out"] / f"input-copy.{fmt}"
    frame = pd.DataFrame({"record_id": ["i1", "i2", "i3"], "subject_id": ["alice", "007", "alice"],
                          "text": ["a", "b", "c"]})
    if fmt == "csv":
        frame.to_csv(copy, index=False)
    else:
        copy.write_text(frame.to_json(orient="records", lines=True))
    with transaction(factory) as s:
        from compliance.runs import record_inference_run

        record_inference_run(s, "run-3", str(world["out"]), "apac", "minilm", NOW,
                             input_copy_url=str(copy))
    _run(factory, world, _submit(factory, "alice", "erasure"))
    left = pd.read_csv(copy, dtype=str) if fmt == "csv" else pd.read_json(copy, lines=True, dtype={"subject_id": str})
    assert left["record_id"].tolist() == ["i2"]
    assert left["subject_id"].tolist() == ["007"]  # ids stay strings, leading zeros kept


def _unfinished_run(factory, out: Path, run_id: str = "run-9") -> Path:
    """What a failed or killed inference run leaves: its recorded input copy and work files
    (allowed records with texts, one finished shard's results), no results.parquet."""
    import pandas as pd

    from compliance.runs import record_inference_run

    work = out / run_id / "_work"
    (work / "shards").mkdir(parents=True)
    texts = pd.DataFrame({"record_id": ["w1", "w2", "w3"], "subject_id": ["alice", "bob", "alice"],
                          "text": ["alice's text", "bob's text", "more of alice"], "region": ["europe"] * 3})
    texts.to_parquet(work / "valid.parquet")
    texts.to_parquet(work / "allowed.parquet")
    pq.write_table(pa.table({"record_id": ["w1", "w2"], "subject_id": ["alice", "bob"],
                             "embedding": pa.array([[0.1, 0.2], [0.3, 0.4]], pa.list_(pa.float32()))}),
                   work / "shards" / "shard-00000-abc.parquet")
    with transaction(factory) as s:
        record_inference_run(s, run_id, str(out), "europe", "minilm", NOW - timedelta(days=1),
                             input_copy_url=str(work / "valid.parquet"))
    return work


def test_erasure_reaches_the_work_files_of_an_unfinished_run(factory, world):
    work = _unfinished_run(factory, world["out"])
    access = _run(factory, world, _submit(factory, "alice", "access"))
    with zipfile.ZipFile(access["export"]) as z:
        names = z.namelist()
        blob = " ".join(z.read(n).decode(errors="replace") for n in names)
    assert "w1" in blob  # the unfinished run's shard result is part of the access export
    with factory() as s:
        preview = execution.erasure_preview(s, s.get(DataSubjectRequest, _submit(factory, "alice", "erasure")))
    assert preview["rows"]["run-9:work/allowed.parquet"] == 2
    assert preview["rows"]["run-9:work/shards/shard-00000-abc.parquet"] == 1
    rid = _submit(factory, "alice", "erasure")
    assert _run(factory, world, rid)["status"] == "completed"
    for f in ("valid.parquet", "allowed.parquet", "shards/shard-00000-abc.parquet"):
        assert subjects_in(work / f) == ["bob"], f


def test_retention_deletes_the_work_files_of_an_unfinished_run(factory, world):
    from compliance import retention

    work = _unfinished_run(factory, world["out"])
    with transaction(factory) as s:
        report = retention.run(s, dry_run=False, now=NOW + timedelta(days=3650))
    assert report.deleted["inputs"] >= 3  # the input copy and both work files
    assert not list(work.rglob("*.parquet"))
