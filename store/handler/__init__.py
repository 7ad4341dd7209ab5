"""The handler tier: MLflow's server on our stores, and the identity the gateway signs for it."""
