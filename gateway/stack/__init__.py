"""`cedarflow up`: the whole stack on one machine (local DynamoDB, handler tier, gateway)."""
