"""Operating a server: Prometheus metrics and structured logs."""
