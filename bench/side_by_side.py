"""What the store benchmarks share: one measurement per call, its timing, and the table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    call: str
    ours_ms: tuple[float, float]  # median, p90
    sqlite_ms: tuple[float, float]
    round_trips: float  # DynamoDB requests per call


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and p90 latency of `call` in milliseconds over `repeat` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(int(len(samples) * 0.9) - 1, 0)]


def markdown_table(title: str, results: Sequence[Measurement]) -> str:
    """One Markdown row per call: both latencies, the ratio (DynamoDB / sqlite), the requests."""
    lines = [
        title,
        "",
        "| call | dynalite median / p90 ms | sqlite median / p90 ms | ratio (median) "
        "| DynamoDB requests |",
        "|---|---|---|---|---|",
    ]
    for m in results:
        ratio = m.ours_ms[0] / m.sqlite_ms[0] if m.sqlite_ms[0] else float("inf")
        lines.append(
            f"| {m.call} | {m.ours_ms[0]:.2f} / {m.ours_ms[1]:.2f} "
            f"| {m.sqlite_ms[0]:.2f} / {m.sqlite_ms[1]:.2f} | {ratio:.2f}× | {m.round_trips:g} |"
        )
    return "\n".join(lines)
