"""MLflow's model registry store on DynamoDB: registered models, versions, aliases, prompts."""

from store.registry.store import DynamoRegistryStore

__all__ = ["DynamoRegistryStore"]
