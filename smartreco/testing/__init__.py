"""Helpers for tests and benchmarks only (never imported by product code)."""
