"""MLflow's tracking store on DynamoDB: experiments, runs, metrics, datasets, logged models."""

from store.tracking.store import DynamoTrackingStore

__all__ = ["DynamoTrackingStore"]
