"""Shard planning: length-ordered shards that cover every allowed record exactly once."""

from __future__ import annotations

import pyarrow as pa

from mpc.api import token_lengths
from tasks import batch, storage


def _allowed(tmp_path, texts):
    url = str(tmp_path / "allowed.parquet")
    n = len(texts)
    storage.write_parquet_atomic(url, pa.table({
        "record_id": [f"r{i}" for i in range(n)], "subject_id": [f"s{i}" for i in range(n)],
        "text": texts, "region": ["europe"] * n}))  # fmt: skip
    return url


TEXTS = ["word " * (1 + (i * 7) % 40) for i in range(50)]


def test_shards_are_ordered_by_token_length_and_cover_each_record_once(tmp_path):
    url = _allowed(tmp_path, TEXTS)
    paths = batch.RunPaths.for_run(str(tmp_path / "out"), "run-1")
    shards = batch.plan_shards(url, paths, shard_size=8, key="k", model="minilm", max_length=128)
    rows = [r for s in shards for r in s["rows"]]
    assert sorted(rows) == list(range(len(TEXTS)))
    lengths = token_lengths(TEXTS, model="minilm")
    longest = [max(lengths[r] for r in s["rows"]) for s in shards]
    assert longest == sorted(longest)
    # padded tokens: far below shards in input order
    padded = sum(max(lengths[r] for r in s["rows"]) * len(s["rows"]) for s in shards)
    in_order = sum(max(lengths[i:i + 8]) * len(lengths[i:i + 8]) for i in range(0, len(lengths), 8))
    assert padded < 0.75 * in_order


def test_shard_names_are_stable_and_depend_on_the_engine_key(tmp_path):
    url = _allowed(tmp_path, TEXTS)
    paths = batch.RunPaths.for_run(str(tmp_path / "out"), "run-1")
    a = batch.plan_shards(url, paths, shard_size=8, key="k", model="minilm")
    b = batch.plan_shards(url, paths, shard_size=8, key="k", model="minilm")
    c = batch.plan_shards(url, paths, shard_size=8, key="other", model="minilm")
    assert [s["name"] for s in a] == [s["name"] for s in b]
    assert not {s["name"] for s in a} & {s["name"] for s in c}


def test_without_a_model_shards_keep_input_order(tmp_path):
    url = _allowed(tmp_path, TEXTS)
    paths = batch.RunPaths.for_run(str(tmp_path / "out"), "run-1")
    shards = batch.plan_shards(url, paths, shard_size=8, key="k")
    assert [r for s in shards for r in s["rows"]] == list(range(len(TEXTS)))
