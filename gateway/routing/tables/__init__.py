"""The route rows of MLflow's server, one module per family of calls."""
