"""Inference runs recorded by the inference flow, and the files each run wrote.

A run writes ``<output_url>/<run_id>/results.parquet`` and ``quarantine.parquet`` (both with a
``subject_id`` column) and may keep a copy of its input (``input_copy_url``: CSV, JSON Lines or
Parquet with a ``subject_id`` column).  Access export, erasure and retention find every file
through this table, so the inference flow must call ``record_inference_run`` before it writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from compliance import audit
from compliance.errors import ComplianceError
from compliance.models import InferenceRun, Regime

REGION_REGIME = {"europe": Regime.GDPR, "americas": Regime.CCPA, "apac": Regime.PDPA}
ANY_REGION = "any"  # a run not tied to one region: retention uses the "*" policies
RESULTS, QUARANTINE, INPUTS = "results", "quarantine", "inputs"
WORK = "work/"  # prefix of the categories of an unfinished run's work files (texts, shard results)


@dataclass(frozen=True, kw_only=True)
class RunFile:
    run_id: str
    category: str  # results | quarantine | inputs
    url: str


def record_inference_run(
    session: Session,
    run_id: str,
    output_url: str,
    region: str | None,
    model: str,
    started_at: datetime,
    *,
    finished_at: datetime | None = None,
    input_copy_url: str | None = None,
    actor: str = "smt",
) -> InferenceRun:
    """Record (or update, when a run id resumes) where a run writes its files."""
    region = region or ANY_REGION
    if region not in REGION_REGIME and region != ANY_REGION:
        raise ComplianceError(
            f"unknown region {region!r}; use one of {sorted(REGION_REGIME)} or {ANY_REGION!r}"
        )
    if started_at.tzinfo is None:
        raise ComplianceError("started_at must be timezone-aware")
    run = session.get(InferenceRun, run_id)
    created = run is None
    if run is None:
        run = InferenceRun(run_id=run_id, started_at=started_at)
        session.add(run)
    run.output_url = output_url.rstrip("/")
    run.region, run.model = region, model
    run.finished_at = finished_at or run.finished_at
    run.input_copy_url = input_copy_url or run.input_copy_url
    session.flush()
    audit.append(
        session,
        action="run.recorded" if created else "run.updated",
        object_type="run",
        object_id=run_id,
        details={"region": region, "model": model, "finished": run.finished_at is not None},
        actor=actor,
    )
    return run


def run_files(run: InferenceRun) -> list[RunFile]:
    """The files of a run that may hold personal data and still exist by our records."""
    files = []
    if run.results_deleted_at is None:
        files.append(RunFile(run_id=run.run_id, category=RESULTS, url=results_url(run)))
    if run.quarantine_deleted_at is None:
        files.append(RunFile(run_id=run.run_id, category=QUARANTINE, url=quarantine_url(run)))
    if run.input_copy_url and run.input_deleted_at is None:
        files.append(RunFile(run_id=run.run_id, category=INPUTS, url=run.input_copy_url))
    files += work_files(run)
    return files


def work_files(run: InferenceRun) -> list[RunFile]:
    """The Parquet files an unfinished run keeps under ``<run>/_work/`` (valid and allowed
    records with their texts, per-shard results): found by listing, so that a dry run, a failed
    run or one stopped mid-way leaves nothing that erasure, access and retention cannot see.
    A completed run has deleted them."""
    import fsspec

    base = f"{run.output_url.rstrip('/')}/{run.run_id}/_work"
    fs, root = fsspec.core.url_to_fs(base)
    try:
        found = sorted(fs.glob(f"{root}/**/*.parquet"))
    except (FileNotFoundError, OSError):
        return []
    out = []
    protocol = base.split("://", 1)[0] + "://" if "://" in base else ""
    for path in found:
        url = protocol + path if protocol else path
        rel = path[len(root.rstrip("/")) + 1:]
        if run.input_copy_url and _same(url, run.input_copy_url):
            continue  # already listed as the run's input copy
        out.append(RunFile(run_id=run.run_id, category=WORK + rel, url=url))
    return out


def _same(a: str, b: str) -> bool:
    from pathlib import Path

    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def results_url(run: InferenceRun) -> str:
    return f"{run.output_url}/{run.run_id}/results.parquet"


def quarantine_url(run: InferenceRun) -> str:
    return f"{run.output_url}/{run.run_id}/quarantine.parquet"


def all_runs(session: Session, *, since: datetime | None = None) -> list[InferenceRun]:
    stmt = select(InferenceRun).order_by(InferenceRun.started_at, InferenceRun.run_id)
    if since is not None:
        stmt = stmt.where(InferenceRun.started_at >= since)
    return list(session.execute(stmt).scalars())
