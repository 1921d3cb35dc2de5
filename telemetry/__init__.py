"""Prometheus metrics, their HTTP exporter, and structured logs for a bcfl node."""
