"""Process-local counters, in one registry. Gauges that span instances are read from the database
at scrape time (`core/storage/stats.py`, rendered by `bot/metrics.py`), never from one process's memory.
`core/metrics_export.py` mirrors this registry to Application Insights; `core/events.py` is where
most of these counters move.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# `*_created` timestamps double the exposition and no dashboard here reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

race_errors_total = Counter(
    "race_errors_total", "Conversation lease expired before its holder released it (a dead or stalled drain)",
    registry=REGISTRY,
)
lease_busy_total = Counter(
    "lease_busy_total", "Conversation lease found held by another drain (normal in bursts: the holder handles it)",
    registry=REGISTRY,
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
outbound_abandoned_total = Counter(
    "outbound_abandoned_total", "Outbound rows given up unsent (deadline passed, or attempts used up)", ["reason"],
    registry=REGISTRY,
)
breaker_state = Gauge(
    "circuit_breaker_state", "0 closed, 1 half-open, 2 open", ["provider"], registry=REGISTRY
)
handoff_total = Counter(
    "handoff_total", "Conversation keys handed to the worker queue", ["origin", "outcome"], registry=REGISTRY
)
handoff_queue_depth = Gauge(
    "handoff_queue_depth", "Messages waiting in the worker queue (local host; on Azure read the queue)", ["queue"],
    registry=REGISTRY,
)
# Buckets from 5 ms (an idle in-process queue) to 60 s (a backlog after a crash).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
queue_wait_seconds = Histogram(
    "queue_wait_seconds", "Worker queue wait: enqueued -> worker start", buckets=_LATENCY_BUCKETS, registry=REGISTRY
)
reply_latency_seconds = Histogram(
    "reply_latency_seconds", "Webhook received -> reply accepted by Meta", buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
database_wait_exceeded_total = Counter(
    "database_wait_exceeded_total", "Requests answered 503 because the database did not answer in time", ["route"],
    registry=REGISTRY,
)
webhook_ignored_total = Counter(
    "webhook_ignored_total", "Webhook items acknowledged and ignored", ["reason"], registry=REGISTRY
)
retention_purged_total = Counter(
    "retention_purged_total", "Rows deleted by the retention timer", ["tabla"], registry=REGISTRY
)
worker_failures_total = Counter(
    "worker_failures_total", "Queue-trigger invocations that could not start (settings, database); none raised",
    ["reason"], registry=REGISTRY,
)
