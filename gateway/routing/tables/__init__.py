"""The route rows: MLflow's, one module per family of calls, and the gateway's own."""
