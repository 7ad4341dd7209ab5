"""Where webhooks may be delivered: the outbound guard against server-side request forgery.

A destination address is allowed when it is globally routable (IPv4-mapped, 6to4 and Teredo
forms unwrapped, as MLflow does), or inside a network an administrator allowed with
`cedarflow up|serve --webhook-allow-network CIDR` (`CEDARFLOW_WEBHOOK_ALLOW_NETWORKS`,
comma-separated). Loopback, link-local (cloud metadata included), private, shared, multicast
and reserved addresses are refused otherwise. `https` always; `http` only to a destination
whose every address is inside an allowed network. The check runs on the URL when a webhook
is created or changed, before each delivery, and on the connected socket's peer address
(a name that resolves differently at connect time is still refused).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.utils.validation import (
    _is_public_ip,
    _resolve_hostname_with_timeout,
    _validate_canonical_ip_literal,
)

from store.webhooks.networks import ALLOW_NETWORKS_ENV, IpNetwork, parse_networks

__all__ = ["ALLOW_NETWORKS_ENV", "AddressPolicy", "DestinationRefused"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(Exception):
    """A connection to an address the guard does not deliver to (never retried)."""


@dataclass(frozen=True)
class AddressPolicy:
    allowed_networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def from_env(cls) -> AddressPolicy:
        return cls(parse_networks(os.environ.get(ALLOW_NETWORKS_ENV, "").split(",")))

    def allowed_network(self, ip: IpAddress) -> bool:
        ip = getattr(ip, "ipv4_mapped", None) or ip
        return any(ip.version == n.version and ip in n for n in self.allowed_networks)

    def permits(self, ip: IpAddress) -> bool:
        return _is_public_ip(ip) or self.allowed_network(ip)

    def check_url(self, url: str) -> None:
        """MLflow's URL rules and messages, with this policy's addresses and schemes."""
        if not isinstance(url, str):
            raise _invalid(f"Webhook URL must be a string, got {type(url).__name__!r}")
        if not url.strip():
            raise _invalid(f"Webhook URL cannot be empty or just whitespace: {url!r}")
        try:
            parsed = urllib.parse.urlparse(url)
            hostname = parsed.hostname
        except ValueError as exc:
            raise _invalid(f"Invalid webhook URL {url!r}: {exc!r}") from exc
        if parsed.scheme not in ("https", "http"):
            raise _scheme(parsed.scheme)
        if not hostname:
            raise _invalid(f"Webhook URL must include a hostname: {url!r}")
        _validate_canonical_ip_literal(hostname, "Webhook URL")
        addresses = self._resolve(hostname)
        for ip in addresses:
            if not self.permits(ip):
                raise _invalid(
                    "Webhook URL must not resolve to a non-public IP address. "
                    f"{hostname!r} resolves to {ip}."
                )
        if parsed.scheme == "http" and not all(self.allowed_network(ip) for ip in addresses):
            raise _scheme("http")

    def check_peer(self, sock: socket.socket) -> None:
        """The address a socket is connected to; closes it and refuses when not allowed."""
        try:
            ip = ipaddress.ip_address(sock.getpeername()[0])
        except (OSError, ValueError) as exc:
            sock.close()
            raise DestinationRefused(f"webhook peer address unknown: {exc}") from exc
        if not self.permits(ip):
            sock.close()
            raise DestinationRefused(f"webhook delivery to {ip} is not allowed here")

    @staticmethod
    def _resolve(hostname: str) -> list[IpAddress]:
        try:
            infos = _resolve_hostname_with_timeout(hostname, "Webhook URL")
        except (socket.gaierror, UnicodeError, ValueError) as exc:
            raise _invalid(f"Cannot resolve Webhook URL hostname {hostname!r}: {exc}") from exc
        return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _invalid(message: str) -> MlflowException:
    return MlflowException.invalid_parameter_value(message)


def _scheme(scheme: str) -> MlflowException:
    return _invalid(f"Invalid webhook URL scheme: {scheme!r}. Allowed schemes are: https.")
