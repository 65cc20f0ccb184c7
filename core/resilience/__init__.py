"""Resilience: retries with backoff, timeouts with fallbacks, circuit breakers."""
