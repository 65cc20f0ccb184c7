"""Application Insights gets the same numbers as `/api/metrics`, through OpenTelemetry metrics.

One source of truth: the prometheus_client `REGISTRY` of `core/metrics.py`. At every export (60 s)
observable instruments read it, so no call site counts twice and a counter added to `core/metrics.py`
needs nothing here. Counters go out as observable counters (the exporter turns the cumulative totals
into per-interval deltas: `customMetrics | summarize sum(valueSum)` gives the count), gauges as
observable gauges.

The gauges that span instances (leases, inbox and outbox backlog) are read from the database by
whoever samples them (the `/api/metrics` scrape or the one-minute timer) and handed to
`record_db_stats`; only the instance that sampled recently reports them, so `customMetrics` does
not fill with stale copies from idle instances.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from core.metrics import REGISTRY
from core.storage.stats import DbStats

METER_NAME = "reportes_bot"
STATS_FRESH_SECONDS = 150.0  # two missed one-minute samples and the instance stops reporting them


@dataclass(frozen=True, slots=True)
class GaugeSample:
    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


# The database-wide gauges: name -> help text. Same names in /api/metrics and in customMetrics.
DB_GAUGES: dict[str, str] = {
    "thread_locks_active": "Conversation leases held and not expired (BloqueosConversacion)",
    "thread_locks_expired": "Conversation leases past expiry with an owner still set (holder died)",
    "inbox_backlog": "MensajesProcesados rows by Estado (pendiente, error)",
    "inbox_oldest_pending_age_seconds": "Age of the oldest pending inbound delivery",
    "outbox_backlog": "ColaEnvios rows by Estado",
    "outbox_oldest_due_age_seconds": "How late the oldest pending send is",
    "ai_runs_in_flight": "EjecucionesIA rows still queued or in progress",
    "ai_runs_oldest_age_seconds": "Age of the oldest AI run still in flight",
}


def samples_from_stats(stats: DbStats) -> tuple[GaugeSample, ...]:
    def age(since_ms: int | None) -> float:
        return max(stats.read_at_ms - since_ms, 0) / 1000 if since_ms is not None else 0.0

    samples = [
        GaugeSample("thread_locks_active", stats.leases_active),
        GaugeSample("thread_locks_expired", stats.leases_expired),
        GaugeSample("inbox_oldest_pending_age_seconds", age(stats.inbox_oldest_pending_ms)),
        GaugeSample("outbox_oldest_due_age_seconds", age(stats.outbox_oldest_due_ms)),
        GaugeSample("ai_runs_oldest_age_seconds", age(stats.ai_runs_oldest_ms)),
    ]
    samples += [GaugeSample("inbox_backlog", n, (("estado", e),)) for e, n in stats.inbox]
    samples += [GaugeSample("outbox_backlog", n, (("estado", e),)) for e, n in stats.outbox]
    samples += [GaugeSample("ai_runs_in_flight", n, (("estado", e),)) for e, n in stats.ai_runs]
    return tuple(samples)


_stats_lock = threading.Lock()
_stats: tuple[float, tuple[GaugeSample, ...]] = (0.0, ())
_installed = False


def record_db_stats(samples: Iterable[GaugeSample], *, at: float | None = None) -> None:
    """Keep the latest database-wide gauges for the next Application Insights export."""
    global _stats
    with _stats_lock:
        _stats = (time.monotonic() if at is None else at, tuple(samples))


def fresh_db_stats(now: float | None = None) -> tuple[GaugeSample, ...]:
    taken, samples = _stats
    now = time.monotonic() if now is None else now
    return samples if samples and now - taken <= STATS_FRESH_SECONDS else ()


def registry_samples(registry: CollectorRegistry = REGISTRY) -> dict[str, list[tuple[str, float, dict[str, str]]]]:
    """`{family: [(sample name, value, labels)]}` for counters and gauges, `_created` series left out."""
    out: dict[str, list[tuple[str, float, dict[str, str]]]] = {}
    for family in registry.collect():
        if family.type not in ("counter", "gauge"):
            continue
        rows = out.setdefault(f"{family.type}:{family.name}", [])
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            rows.append((sample.name, float(sample.value), dict(sample.labels)))
    return out


def install_metrics_bridge(registry: CollectorRegistry = REGISTRY) -> list[str]:
    """Create one observable instrument per registry family (and one per database gauge); idempotent.

    Answers the instrument names. Must run after the meter provider is set (configure_azure_monitor),
    although the OpenTelemetry API also binds instruments created earlier once a provider appears.
    """
    global _installed
    if _installed:
        return []
    _installed = True
    from opentelemetry.metrics import CallbackOptions, Observation, get_meter

    meter = get_meter(METER_NAME)
    names: list[str] = []

    def family_callback(key: str):  # one closure per family: the callback reads only its own rows
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            rows = registry_samples(registry).get(key, [])
            return [Observation(value, labels) for _, value, labels in rows]

        return callback

    for key in registry_samples(registry):
        kind, family = key.split(":", 1)
        name = f"{family}_total" if kind == "counter" else family
        description = next((f.documentation for f in registry.collect() if f.name == family), "")
        if kind == "counter":
            meter.create_observable_counter(name, callbacks=[family_callback(key)], description=description)
        else:
            meter.create_observable_gauge(name, callbacks=[family_callback(key)], description=description)
        names.append(name)

    def db_callback(gauge_name: str):
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(s.value, dict(s.labels)) for s in fresh_db_stats() if s.name == gauge_name]

        return callback

    for gauge_name, description in DB_GAUGES.items():
        meter.create_observable_gauge(gauge_name, callbacks=[db_callback(gauge_name)], description=description)
        names.append(gauge_name)
    return names
