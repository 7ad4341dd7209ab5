"""The one DynamoDB table: requests, values, update expressions, URIs."""
