"""The dev identity provider of `cedarflow up`: a local token issuer and its sign-in page."""
