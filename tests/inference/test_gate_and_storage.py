"""The compliance gate on the real SQL store, and storage on real S3 (moto server on loopback)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from compliance.db import transaction
from compliance.gate import PURPOSE_SECURE_INFERENCE
from compliance.subjects import SqlConsentGate, ensure_subject, record_consent, set_flags
from tasks import batch, storage

from .conftest import MARK, write_batch


def _subjects(store):
    now = datetime.now(UTC)
    with transaction(store) as s:
        record_consent(s, "withdrawn", PURPOSE_SECURE_INFERENCE, given=True, source="t")
        record_consent(s, "withdrawn", PURPOSE_SECURE_INFERENCE, given=False, source="t")
        record_consent(s, "consented", PURPOSE_SECURE_INFERENCE, given=True, source="t")
        set_flags(s, ensure_subject(s, "objector"), actor="t", now=now, reason="t", objected=True)
        set_flags(s, ensure_subject(s, "restricted"), actor="t", now=now, reason="t",
                  restricted=True)


@pytest.mark.parametrize("policy, region, expected_ok, expected_excluded", [
    ("default", None, ["r-consented", "r-unknown", "r-unknown2"],
     {"consent_withdrawn": 1, "objected": 1, "restricted": 1}),
    ("strict", None, ["r-consented"],
     {"consent_withdrawn": 1, "objected": 1, "restricted": 1, "no_consent": 2}),
    ("default", "europe", ["r-consented", "r-unknown"],
     {"consent_withdrawn": 1, "objected": 1, "restricted": 1, "residency": 1}),
])
def test_gate_excludes_and_counts(tmp_path, store, policy, region, expected_ok,
                                  expected_excluded):
    _subjects(store)
    url = write_batch(tmp_path / "b.csv", [
        ("r-withdrawn", "withdrawn", MARK, "europe"),
        ("r-consented", "consented", MARK, "europe"),
        ("r-objector", "objector", MARK, "europe"),
        ("r-restricted", "restricted", MARK, "europe"),
        ("r-unknown", "never-seen", MARK, "europe"),
        ("r-unknown2", "never-seen-2", MARK, "apac"),
    ])
    paths = batch.RunPaths.for_run(str(tmp_path / "out"), "run1")
    prepared = batch.prepare_batch(url, paths, max_text_chars=1000)
    gated = batch.gate_batch(prepared["valid_url"], paths, gate=SqlConsentGate(store),
                             policy=policy, region=region)
    allowed = storage.read_parquet(gated["allowed_url"]).to_pandas()
    assert sorted(allowed["record_id"]) == expected_ok
    assert gated["excluded_by_reason"] == expected_excluded
    assert gated["records_allowed"] + gated["records_excluded"] == prepared["records_valid"]


def test_atomic_write_on_s3_leaves_only_the_final_object(s3):
    fs, bucket = s3
    so = storage.s3_options(fs.client_kwargs["endpoint_url"])
    url = f"s3://{bucket}/run/x.json"
    storage.write_json_atomic(url, {"a": 1}, storage_options=so)
    storage.write_json_atomic(url, {"a": 2}, storage_options=so)  # overwrite in place
    assert storage.read_json(url, storage_options=so) == {"a": 2}
    fs.invalidate_cache()
    assert fs.ls(f"{bucket}/run") == [f"{bucket}/run/x.json"]  # no temporary object left


def test_prepare_batch_from_and_to_s3(tmp_path, s3):
    fs, bucket = s3
    so = storage.s3_options(fs.client_kwargs["endpoint_url"])
    local = write_batch(tmp_path / "b.csv", [("a", "s", MARK, "europe"), ("b", "s", "", "apac")])
    fs.put(local, f"{bucket}/in/batch.csv")
    paths = batch.RunPaths.for_run(f"s3://{bucket}/out", "run-s3")
    prepared = batch.prepare_batch(f"s3://{bucket}/in/batch.csv", paths, max_text_chars=100,
                                   storage_options=so)
    assert (prepared["records_in"], prepared["records_valid"]) == (2, 1)
    quarantine = storage.read_parquet(paths.quarantine, storage_options=so).to_pylist()
    assert quarantine == [{"row": 2, "line": 3, "record_id": "b", "subject_id": "s",
                          "reasons": ["text_empty"]}]


def test_run_id_must_be_a_plain_folder_name():
    from mpc.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="not usable as a folder name"):
        batch.RunPaths.for_run("/tmp/out", "../escape")
