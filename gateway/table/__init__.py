"""`cedarflow table`: creating, checking, exporting and importing the DynamoDB table."""
