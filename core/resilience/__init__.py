"""Timeouts with fallbacks and a circuit breaker: what keeps a slow or failing dependency from holding a webhook."""
