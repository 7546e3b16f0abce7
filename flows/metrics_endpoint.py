"""The metrics endpoint ``smt up`` starts: one HTTP server for Prometheus to scrape.

Flow runs are short-lived processes, so each job writes its metrics to a textfile in
``SMT_METRICS_DIR`` (``inference.prom``, ``failover.prom``, ``breach.prom``); this endpoint serves
them together with the compliance gauges it recomputes from the store on every scrape
(``smt_dsr_overdue_requests``).  Labels carry no personal data.

    python -m flows.metrics_endpoint --port 9464 --dir .smt/ops/metrics
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class TextfileCollector(Collector):
    """Every ``*.prom`` file of a folder; a family already served by this process is skipped."""

    def __init__(self, folder: Path, own: set[str]):
        self.folder = folder
        self.own = own

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for file in sorted(self.folder.glob("*.prom")):
            try:
                families = list(text_string_to_metric_families(file.read_text(encoding="utf-8")))
            except (OSError, ValueError) as err:
                log.warning("skipping unreadable metrics file %s: %s", file.name, err)
                continue
            for family in families:
                if family.name in self.own or family.name in seen:
                    continue
                seen.add(family.name)
                yield family


class OverdueRefresher(Collector):
    """Recompute ``smt_dsr_overdue_requests`` from the compliance store before each scrape."""

    def collect(self) -> Iterator[Metric]:
        from compliance.db import open_store, transaction
        from compliance.metrics import refresh_overdue
        from compliance.settings import ComplianceSettings

        try:
            with transaction(open_store(ComplianceSettings().database_url)) as session:
                refresh_overdue(session)
        except Exception as err:  # noqa: BLE001 - a scrape must not fail on the store
            log.warning("could not refresh overdue requests: %s", type(err).__name__)
        return iter(())


def serve(port: int, folder: Path, host: str = "127.0.0.1") -> None:
    import compliance.breach_escalation  # noqa: F401 - register the compliance metrics
    import compliance.metrics  # noqa: F401

    folder.mkdir(parents=True, exist_ok=True)
    own = {m.name for m in REGISTRY.collect()}
    REGISTRY.register(OverdueRefresher())
    REGISTRY.register(TextfileCollector(folder, own))
    start_http_server(port, addr=host)


def main(argv: list[str] | None = None) -> int:
    import threading

    parser = argparse.ArgumentParser(prog="python -m flows.metrics_endpoint")
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dir", type=Path, required=True, help="folder of *.prom textfiles")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    serve(args.port, args.dir, args.host)
    threading.Event().wait()  # until SIGTERM
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
