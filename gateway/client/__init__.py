"""What runs on a user's machine: `cedarflow login`, the MLflow auth plugin, their tokens."""
