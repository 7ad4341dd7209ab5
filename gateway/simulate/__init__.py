"""The policy simulator: what the gateway would decide, from the same route table, policy
loading, entity building and decision code (`tools/simulate`, `cedarflow simulate`)."""
