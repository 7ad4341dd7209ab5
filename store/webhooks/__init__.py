"""Registry webhook delivery with an outbound guard (guard.py, delivery.py)."""
