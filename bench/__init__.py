"""Benchmarks: scripts that print a table. Speed is measured here, never asserted in tests."""
