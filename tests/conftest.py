"""Suite-wide: every test gets its own audit key file and anchor file (compliance/audit.py), so
no test reads a developer's `.smt/` or another test's anchors."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_audit_key(tmp_path_factory, monkeypatch):
    d = tmp_path_factory.mktemp("audit")
    monkeypatch.setenv("SMT_AUDIT_KEY_FILE", str(d / "audit.key"))
    monkeypatch.setenv("SMT_AUDIT_ANCHOR_URL", str(d / "anchors.jsonl"))
    monkeypatch.delenv("SMT_AUDIT_KEY", raising=False)
