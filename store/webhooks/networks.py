"""The networks an administrator allows webhook delivery to (MLflow-free: read by the CLI)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

ALLOW_NETWORKS_ENV = "CEDARFLOW_WEBHOOK_ALLOW_NETWORKS"  # comma-separated CIDRs
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """CIDRs as given on the command line; a malformed one is an error, never ignored."""
    networks = []
    for value in values:
        text = value.strip()
        if text:
            networks.append(ipaddress.ip_network(text, strict=False))
    return tuple(networks)
