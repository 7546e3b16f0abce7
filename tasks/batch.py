"""Plain steps of a secure-inference run (no Prefect here; ``tasks.inference_tasks`` wraps them).

Layout of a run under ``<output>/<run_id>/``::

    results.parquet      one row per processed record (written once, by the final merge)
    quarantine.parquet   invalid records: row, line, record_id, reasons
    manifest.json        counts, cost per shard and in total, model, versions, timings, status
    _work/               while the run is unfinished: valid and allowed records, per-shard
                         results and costs (removed when the run completes)

Every step is idempotent and writes atomically (``tasks.storage``).  A shard is identified by a
digest of its record ids, texts and engine settings, so a resumed run reuses a shard result only
when it would compute exactly the same thing.  The ``_work`` files hold record text and ids: they
stay beside the results (same store, same residency), are recorded with the compliance store
(``input_copy_url``) and are deleted on completion.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from compliance.gate import PURPOSE_SECURE_INFERENCE, ConsentGate, Policy
from mpc.errors import ConfigurationError, SmtError
from tasks import regions, storage
from tasks.io_contract import quarantine_table, read_batch, validate_batch

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RESIDENCY = "residency"  # exclusion reason: the record's region is not the run's region


class ShardFailed(SmtError):
    """One or more shards of a run failed; finished shards are kept for a resume.

    ``retryable``: the failure was the services' or the network's (unreachable, refused as
    busy or draining, a party that stopped mid-session), so a later try may succeed."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


def services_spec(settings, rules: regions.ResidencyRules | None, region: str | None) -> dict | None:
    """Where the shards' sessions go: settings first, then the region's entry in regions.yaml;
    None: the embedded default (local services on loopback).  Addresses and a folder name only:
    the data owner's key is read from ``identity_dir`` inside the task, never passed around."""
    mo, dealer, ident = settings.model_owner_endpoint, settings.dealer_endpoint, settings.identity_dir
    entry = rules.regions.get(region).services if (rules and region and region in rules.regions) else None
    if entry is not None:
        mo, dealer = mo or entry.model_owner, dealer or entry.dealer
        ident = ident or entry.identity_dir
    if not mo and not dealer:
        return None
    if not (mo and dealer and ident):
        raise ConfigurationError(
            "party services are half configured: give the model-owner endpoint, the dealer endpoint and "
            "the data owner's identity directory (SMT_MODEL_OWNER_ENDPOINT, SMT_DEALER_ENDPOINT, "
            f"SMT_IDENTITY_DIR, or services: in regions.yaml for region {region})")
    return {"model_owner": mo, "dealer": dealer, "identity_dir": ident}


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise ConfigurationError(
            f"run id {run_id!r} is not usable as a folder name; use letters, digits, '.', '_' "
            "or '-' (at most 128 characters, not starting with '.', '_' or '-')")
    return run_id


@dataclass(frozen=True, kw_only=True)
class RunPaths:
    run_dir: str

    @classmethod
    def for_run(cls, output_url: str, run_id: str) -> RunPaths:
        return cls(run_dir=storage.join(output_url, check_run_id(run_id)))

    @property
    def results(self) -> str:
        return storage.join(self.run_dir, "results.parquet")

    @property
    def quarantine(self) -> str:
        return storage.join(self.run_dir, "quarantine.parquet")

    @property
    def manifest(self) -> str:
        return storage.join(self.run_dir, "manifest.json")

    @property
    def work(self) -> str:
        return storage.join(self.run_dir, "_work")

    def work_file(self, *parts: str) -> str:
        return storage.join(self.work, *parts)


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


# --- 1. load and validate --------------------------------------------------------------------


def prepare_batch(input_url: str, paths: RunPaths, *, max_text_chars: int,
                  storage_options: dict | None = None) -> dict:
    """Read and validate; write quarantine.parquet and the valid records; return counts + URLs."""
    raw = read_batch(input_url, storage_options=storage_options)
    valid, quarantine = validate_batch(raw, max_text_chars=max_text_chars)
    storage.write_parquet_atomic(paths.quarantine, quarantine_table(quarantine),
                                 storage_options=storage_options)
    valid_url = paths.work_file("valid.parquet")
    storage.write_parquet_atomic(valid_url, pa.Table.from_pandas(valid, preserve_index=False),
                                 storage_options=storage_options)
    return {
        "format": raw.fmt,
        "records_in": raw.records_in,
        "records_valid": len(valid),
        "records_quarantined": len(quarantine),
        "quarantined_by_reason": _counts(quarantine["reasons"].explode()),
        "valid_url": valid_url,
        "quarantine_url": paths.quarantine,
    }


# --- 2. compliance gate ----------------------------------------------------------------------


def gate_batch(valid_url: str, paths: RunPaths, *, gate: ConsentGate, policy: Policy,
               region: str | None, storage_options: dict | None = None,
               rules: regions.ResidencyRules | None = None,
               table: regions.RoutingTable | None = None) -> dict:
    """Drop records of subjects the gate excludes and, when ``region`` is given, records that
    the routing table does not send to ``region`` (reason ``residency``) or that no allowed
    region can take now (``residency_unavailable``: they wait).  No table: every residency at
    its primary region."""
    valid = storage.read_parquet(valid_url, storage_options=storage_options).to_pandas()
    reasons = pd.Series([None] * len(valid), index=valid.index, dtype=object)
    if region is not None:
        rules = rules or regions.default_rules()
        reasons[:] = regions.assign(valid["region"].tolist(), region,
                                    table or regions.all_healthy(rules), rules)
    subjects = sorted(set(valid.loc[reasons.isna(), "subject_id"]))
    decisions = gate.decide(subjects, purpose=PURPOSE_SECURE_INFERENCE, policy=policy) \
        if subjects else {}
    missing = [s for s in subjects if s not in decisions]
    if missing:
        raise ConfigurationError(
            f"the consent gate returned no decision for {len(missing)} subject(s); a gate must "
            "decide every subject id it is given (see compliance.gate.ConsentGate)")
    for i in valid.index[reasons.isna()]:
        decision = decisions[valid.at[i, "subject_id"]]
        if not decision.allowed:
            reasons[i] = str(decision.reason or "excluded")
    allowed = valid[reasons.isna()].reset_index(drop=True)
    allowed_url = paths.work_file("allowed.parquet")
    storage.write_parquet_atomic(allowed_url, pa.Table.from_pandas(allowed, preserve_index=False),
                                 storage_options=storage_options)
    return {
        "records_allowed": len(allowed),
        "records_excluded": int(reasons.notna().sum()),
        "excluded_by_reason": _counts(reasons.dropna()),
        "allowed_url": allowed_url,
    }


# --- 3. shards -------------------------------------------------------------------------------


def engine_key(*, model: str, parties: int, max_length: int) -> str:
    return f"model={model};parties={parties};max_length={max_length}"


def plan_shards(allowed_url: str, paths: RunPaths, *, shard_size: int, key: str,
                storage_options: dict | None = None, model: str | None = None,
                max_length: int = 128) -> list[dict]:
    """Split the allowed records into shards of at most ``shard_size`` rows.

    With ``model``, records are ordered by token length first (stable; ties keep input
    order), so each shard's session pads its texts to a similar length: padding is paid in
    every layer, and the attention's comparisons grow with the square of the padded length.
    A shard lists its rows (positions in the allowed file) and is named by a digest of the
    engine key and its records, so a re-run finds the same shards (resume).
    """
    allowed = storage.read_parquet(allowed_url, storage_options=storage_options).to_pandas()
    order = list(range(len(allowed)))
    if model is not None and len(allowed):
        from mpc.api import token_lengths  # the public tokenizer files only

        try:
            lengths = token_lengths(allowed["text"].tolist(), model=model, max_length=max_length)
            order.sort(key=lambda i: lengths[i])
        except ConfigurationError:
            pass  # a model only its owner's service has (no local tokenizer): input order
    shards = []
    for index, start in enumerate(range(0, len(order), shard_size)):
        rows = order[start:start + shard_size]
        part = allowed.iloc[rows]
        digest = hashlib.sha256(key.encode())
        for rid, text in zip(part["record_id"], part["text"], strict=True):
            digest.update(hashlib.sha256(f"{rid}\x00{text}".encode()).digest())
        name = f"shard-{index:05d}-{digest.hexdigest()[:16]}"
        shard = {
            "index": index,
            "name": name,
            "records": len(part),
            "allowed_url": allowed_url,
            "rows": rows,
            "result_url": paths.work_file("shards", f"{name}.parquet"),
            "cost_url": paths.work_file("shards", f"{name}.cost.json"),
        }
        shards.append(shard)
    return shards


def _redact(message: str, texts: list[str]) -> str:
    for text in sorted(texts, key=len, reverse=True):
        if text and len(text) >= 3:
            message = message.replace(text, "[record text]")
    return message


def run_shard(shard: dict, *, model: str, parties: int, max_length: int, timeout: float,
              storage_options: dict | None = None, services: dict | None = None,
              session_options: dict | None = None) -> dict:
    """Run one shard's inference, unless its result already exists (resume).

    Two parties: as the data owner of a persistent model session with the model-owner and
    dealer services (``services``, else local ones; mpc/client.py).  Three parties: a one-shot
    session of local parties (mpc/launcher.py), as before."""
    so = storage_options
    if storage.exists(shard["result_url"], storage_options=so):
        return {"index": shard["index"], "status": "skipped",
                "cost": storage.read_json(shard["cost_url"], storage_options=so)}
    allowed = storage.read_parquet(shard["allowed_url"], storage_options=so)
    part = allowed.take(pa.array(shard["rows"], pa.int64())).to_pandas()
    texts = part["text"].tolist()
    from mpc import (  # the engine: heavy import, only where it is needed
        client,
        errors,
        run_inference,
    )

    started = time.perf_counter()
    try:
        if parties == 2:
            svc = client.Services.from_identity_dir(**services) if services else None
            result = client.infer(texts, model=model, services=svc, max_length=max_length, timeout=timeout,
                                  **(session_options or {}))
        else:
            result = run_inference(texts, model=model, parties=parties, max_length=max_length,
                                   timeout=timeout)
    except Exception as err:  # noqa: BLE001 - re-raised below, redacted
        # Engine messages could quote an input; never let record text reach logs or states.
        retryable = isinstance(err, (errors.TransportError, errors.PartyFailure)) and not isinstance(
            err, errors.IdentityError)
        raise ShardFailed(
            f"shard {shard['index']} ({shard['records']} records) failed: "
            f"{type(err).__name__}: {_redact(str(err), texts)}", retryable=retryable) from None
    wall = time.perf_counter() - started
    model_name = result.model_name
    outputs = np.asarray(result.outputs, dtype=np.float32)
    if outputs.shape[0] != len(part):
        raise ShardFailed(f"shard {shard['index']}: the engine returned {outputs.shape[0]} "
                          f"outputs for {len(part)} records")
    columns = {
        "record_id": pa.array(part["record_id"].tolist(), pa.string()),
        "subject_id": pa.array(part["subject_id"].tolist(), pa.string()),
        "region": pa.array(part["region"].tolist(), pa.string()),
        "model": pa.array([model_name] * len(part), pa.string()),
    }
    vectors = pa.array(list(outputs), pa.list_(pa.float32()))
    if result.kind == "classification":
        columns["label"] = pa.array([int(i) for i in outputs.argmax(axis=1)], pa.int64())
        columns["scores"] = vectors
    else:
        columns["embedding"] = vectors
    cost = {k: result.cost.get(k) for k in ("rounds", "bytes", "dealer_bytes", "seconds")}
    if result.cost.get("session_setup_seconds") is not None:  # this shard opened the model session
        cost["session_setup_seconds"] = result.cost["session_setup_seconds"]
    cost.update(wall_seconds=round(wall, 3), kind=result.kind, model=model_name,
                records=len(part))
    storage.write_json_atomic(shard["cost_url"], cost, storage_options=so)
    storage.write_parquet_atomic(shard["result_url"], pa.table(columns), storage_options=so)
    return {"index": shard["index"], "status": "computed", "cost": cost}


# --- 4. merge, manifest, cleanup -------------------------------------------------------------


def merge_results(shards: list[dict], paths: RunPaths, *, expected: int,
                  storage_options: dict | None = None) -> dict:
    """Concatenate shard results into results.parquet (unique by record_id), atomically."""
    tables = [storage.read_parquet(s["result_url"], storage_options=storage_options)
              for s in shards]
    if tables:
        table = pa.concat_tables(tables)
    else:
        table = pa.table({"record_id": pa.array([], pa.string()),
                          "subject_id": pa.array([], pa.string()),
                          "region": pa.array([], pa.string()),
                          "model": pa.array([], pa.string()),
                          "embedding": pa.array([], pa.list_(pa.float32()))})
    ids = table.column("record_id").to_pylist()
    if len(set(ids)) != len(ids) or len(ids) != expected:
        raise ShardFailed(f"merging shards gave {len(ids)} rows ({len(set(ids))} distinct ids) "
                          f"for {expected} records; delete {paths.work} and run again")
    storage.write_parquet_atomic(paths.results, table, storage_options=storage_options)
    return {"records_ok": len(ids), "results_url": paths.results}


def total_cost(outcomes: list[dict]) -> dict:
    total = {"rounds": 0, "bytes": 0, "dealer_bytes": 0, "seconds": 0.0}
    for outcome in outcomes:
        for k in total:
            total[k] += outcome["cost"].get(k) or 0
    total["seconds"] = round(total["seconds"], 3)
    return total


def software_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("secure-mpc-transformer", "crypten", "torch", "transformers", "prefect",
                 "prefect-dask", "pandera", "pyarrow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def finished_manifest(paths: RunPaths, *, storage_options: dict | None = None) -> dict | None:
    """The manifest of a completed run, or None."""
    if not storage.exists(paths.manifest, storage_options=storage_options):
        return None
    manifest = storage.read_json(paths.manifest, storage_options=storage_options)
    return manifest if manifest.get("status") == "completed" else None


def cleanup_work(paths: RunPaths, *, storage_options: dict | None = None) -> None:
    storage.remove_tree(paths.work, storage_options=storage_options)
