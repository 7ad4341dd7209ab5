"""What the gateway records: one audit line per decision, Prometheus metrics."""
