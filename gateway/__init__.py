"""The Cedarflow gateway: every MLflow call authenticated, decided by Cedar policies, forwarded.

Start reading at pipeline.py: the request path, one module per step.
"""
