"""The compliance store's public face: open it, gate on it, record runs in it.

from compliance.store import open_store, SqlConsentGate, record_inference_run

factory = open_store(settings.database_url)       # migrates to head
gate = SqlConsentGate(factory)                      # compliance.gate.ConsentGate
with transaction(factory) as session:
    record_inference_run(session, run_id, output_url, region, model, started_at)
"""

from __future__ import annotations

from compliance.db import make_engine, migrate, open_store, session_factory, transaction
from compliance.runs import record_inference_run
from compliance.subjects import SqlConsentGate, ensure_subject, record_consent

__all__ = [
    "SqlConsentGate",
    "ensure_subject",
    "make_engine",
    "migrate",
    "open_store",
    "record_consent",
    "record_inference_run",
    "session_factory",
    "transaction",
]
