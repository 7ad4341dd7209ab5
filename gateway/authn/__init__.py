"""Authentication: who is calling (bearer tokens, the browser session and its sign-in)."""
