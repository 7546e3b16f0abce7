"""Shared builders of the compliance tests: inference-run outputs as the inference flow
writes them (``<output>/<run_id>/results.parquet`` and ``quarantine.parquet``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from compliance.db import transaction
from compliance.runs import record_inference_run


def write_run(
    factory,
    out: Path,
    run_id: str,
    subjects: list[str],
    *,
    started_at: datetime,
    region: str = "europe",
    quarantined: list[str | None] | None = None,
) -> Path:
    """Write one run's files (one result row per subject entry) and record the run."""
    run_dir = out / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    results = pa.table(
        {
            "record_id": [f"{run_id}-r{i}" for i in range(len(subjects))],
            "subject_id": subjects,
            "region": [region] * len(subjects),
            "model": ["minilm"] * len(subjects),
            "embedding": pa.array(
                [[float(i), 0.5] for i in range(len(subjects))], pa.list_(pa.float32())
            ),
        }
    )
    pq.write_table(results, run_dir / "results.parquet")
    quarantined = quarantined or []
    quarantine = pa.table(
        {
            "row": pa.array(range(len(quarantined)), pa.int64()),
            "record_id": [f"{run_id}-q{i}" for i in range(len(quarantined))],
            "subject_id": pa.array(quarantined, pa.string()),
            "reasons": pa.array([["text_empty"]] * len(quarantined), pa.list_(pa.string())),
        }
    )
    pq.write_table(quarantine, run_dir / "quarantine.parquet")
    with transaction(factory) as s:
        record_inference_run(
            s, run_id, str(out), region, "minilm", started_at, finished_at=started_at
        )
    return run_dir


def subjects_in(path: Path) -> list[str | None]:
    return pq.read_table(path).column("subject_id").to_pylist()
