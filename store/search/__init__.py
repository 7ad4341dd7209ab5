"""What every search shares: page tokens and comparisons with SQL's meaning."""
