"""Settings of the batch-inference flow (pydantic-settings, environment prefix ``SMT_``).

Loaded once by the CLI or the flow and passed down; nothing else reads the environment.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from compliance.gate import Policy
from tasks.io_contract import DEFAULT_MAX_TEXT_CHARS


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMT_", extra="ignore")

    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint for s3:// URLs other than AWS (MinIO, moto)")
    consent_policy: Policy = Field(
        "default", description="default: process unless withdrawn/objected/restricted; "
                               "strict: process only with recorded consent")
    max_text_chars: int = Field(DEFAULT_MAX_TEXT_CHARS, gt=0,
                                description="longer texts are quarantined (text_too_long)")
    dask_address: str | None = Field(
        None, description="address of an existing Dask scheduler; default: a local cluster")
    dask_workers: int | None = Field(
        None, ge=1, description="workers of the local cluster; default: one per 3 CPU cores")
    metrics_textfile: str | None = Field(
        None, description="write Prometheus metrics here after each run (textfile collector)")
    pushgateway_url: str | None = Field(
        None, description="push Prometheus metrics to this Pushgateway after each run")
    regions_file: str | None = Field(
        None, description="residency rules (YAML); default: deployments/regions.yaml")
    routing_table_url: str | None = Field(
        None, description="routing table written by the failover-check flow (local or s3://); "
                          "unset: every residency is processed at its primary region")
    model_owner_endpoint: str | None = Field(
        None, description="HOST:PORT of the model-owner service (overrides the region's entry in "
                          "regions.yaml); unset everywhere: local services on loopback")
    dealer_endpoint: str | None = Field(None, description="HOST:PORT of the dealer service")
    identity_dir: str | None = Field(
        None, description="the data owner's identity: data-owner.key and the pinned "
                          "model-owner.crt and dealer.crt (smt identity create)")
    session_lifetime: float = Field(3600.0, gt=0, description="renew a model session after so "
                                    "many seconds (fresh weight sharing and masks)")
    session_inferences: int = Field(0, ge=0, description="renew after so many inferences (0: no limit)")


class OpsSettings(BaseSettings):
    """Settings of the operations flows (failover check) and ``smt up``."""

    model_config = SettingsConfigDict(env_prefix="SMT_", extra="ignore")

    regions_file: str | None = Field(None, description="as InferenceSettings.regions_file")
    routing_table_url: str = Field(
        ".smt/routing.json", description="where failover-check persists the routing table")
    metrics_dir: str | None = Field(
        None, description="folder of Prometheus textfiles (one per job) served by `smt up`")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint for s3:// probes")
