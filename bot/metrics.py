"""`GET /api/metrics`: this process's counters plus the database-wide gauges, in Prometheus text.

Counters (race errors, retries, duplicates, timeouts, breaker state) are per process: Prometheus
sums them across instances. Gauges that span instances (leases, inbox and outbox backlog) are read
from the database on every scrape, so any instance answers the same numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.clock import system_clock
from core.errors import BotError
from core.metrics import REGISTRY
from core.metrics_export import DB_GAUGES, GaugeSample, record_db_stats, samples_from_stats
from core.storage.database import Database
from core.storage.stats import read_stats

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _DbGauges(Collector):
    """One scrape's database gauges; built per request, never registered globally."""

    def __init__(self, samples: tuple[GaugeSample, ...], db_up: bool) -> None:
        self.samples = samples
        self.db_up = db_up

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("metrics_db_up", "1 if the database gauges below were read", value=int(self.db_up))
        for name, documentation in DB_GAUGES.items():
            rows = [s for s in self.samples if s.name == name]
            if not rows:
                continue
            label_names = [k for k, _ in rows[0].labels]
            family = GaugeMetricFamily(name, documentation, labels=label_names)
            for row in rows:
                family.add_metric([v for _, v in row.labels], row.value)
            yield family


async def sample_db_gauges(db: Database, now_ms: int | None = None) -> tuple[GaugeSample, ...] | None:
    """Read the database-wide gauges (and keep them for Application Insights); None if the DB failed."""
    now_ms = system_clock() if now_ms is None else now_ms
    try:
        stats = await read_stats(db, now_ms)
    except BotError as exc:
        log.warning("Métricas: no se pudieron leer los contadores de la base de datos: %s", exc)
        return None
    samples = samples_from_stats(stats)
    record_db_stats(samples)
    return samples


async def render_metrics(db: Database, now_ms: int | None = None) -> bytes:
    samples = await sample_db_gauges(db, now_ms)
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_DbGauges(samples or (), samples is not None))
    return generate_latest(REGISTRY) + generate_latest(snapshot)
