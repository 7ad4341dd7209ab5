"""Traces, spans and assessments of the tracking store (mixed into DynamoTrackingStore)."""
