"""Process-local counters, in one registry. Gauges that span instances are read from the database
at scrape time (`core/storage/stats.py`, rendered by `bot/metrics.py`), never from one process's memory.
`core/metrics_export.py` mirrors this registry to Application Insights; `core/events.py` is where
most of these counters move.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

# `*_created` timestamps double the exposition and no dashboard here reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

race_errors_total = Counter(
    "race_errors_total", "Conversation lease found busy or expired (seed 000)", registry=REGISTRY
)
concurrency_retries_total = Counter(
    "concurrency_retries_total", "Versioned session writes retried", ["operation"], registry=REGISTRY
)
duplicate_deliveries_total = Counter(
    "duplicate_deliveries_total", "Webhook deliveries already registered", registry=REGISTRY
)
webhook_deliveries_total = Counter(
    "webhook_deliveries_total", "Webhook deliveries registered", ["kind"], registry=REGISTRY
)
ai_timeouts_total = Counter("ai_timeouts_total", "AI calls that hit their timeout", ["operation"], registry=REGISTRY)
orphaned_runs_cancelled_total = Counter(
    "orphaned_runs_cancelled_total", "Background AI responses cancelled as orphans", registry=REGISTRY
)
messages_processed_total = Counter(
    "messages_processed_total", "Inbound messages handled", ["outcome"], registry=REGISTRY
)
outbound_sends_total = Counter("outbound_sends_total", "Outbound send outcomes", ["outcome"], registry=REGISTRY)
breaker_state = Gauge(
    "circuit_breaker_state", "0 closed, 1 half-open, 2 open", ["provider"], registry=REGISTRY
)
