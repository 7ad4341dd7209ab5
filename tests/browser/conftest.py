"""Browser tests reuse the gateway tests' servers (tests/gateway/gw_support.py, mlflow_tier.py)."""

from __future__ import annotations

import os

# Before MLflow is imported: its telemetry thread edits os.environ while requests iterates it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "gateway"))
