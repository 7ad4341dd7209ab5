"""Parse `dynamodb://` store URIs into where the table lives."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEME = "dynamodb"
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class InvalidStoreUri(ValueError):
    """The URI is not one of the `dynamodb://` forms this store understands."""


@dataclass(frozen=True)
class DynamoUri:
    """Where a table lives: a local endpoint, an AWS region, or boto3's defaults."""

    table: str
    endpoint_url: str | None = None  # None: boto3 decides (AWS, or AWS_ENDPOINT_URL_DYNAMODB)
    region: str | None = None  # None: boto3's default region chain
    is_local: bool = False  # a DynamoDB-compatible server (no PITR/TTL/streams, dummy creds)


def parse_dynamo_uri(uri: str) -> DynamoUri:
    """Parse `dynamodb://HOST:PORT/TABLE`, `dynamodb://REGION/TABLE` or `dynamodb:///TABLE`."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME:
        raise InvalidStoreUri(f"Not a {SCHEME}:// URI: {uri!r}")
    if parts.query or parts.fragment:
        raise InvalidStoreUri(f"{SCHEME}:// URIs take no query or fragment: {uri!r}")
    table = parts.path.lstrip("/")
    if not _TABLE_NAME.match(table):
        raise InvalidStoreUri(
            f"Invalid table name {table!r} in {uri!r}: 3-255 characters of A-Z a-z 0-9 _ . -"
        )
    netloc = parts.netloc
    if not netloc:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
        return DynamoUri(table=table, is_local=bool(endpoint) and _is_loopback_url(endpoint))
    if ":" in netloc:
        host, port = _host_and_port(parts, uri)
        return DynamoUri(table=table, endpoint_url=f"http://{host}:{port}", is_local=True)
    if _REGION.match(netloc):
        return DynamoUri(table=table, region=netloc)
    raise InvalidStoreUri(
        f"Cannot read {uri!r}: expected dynamodb://HOST:PORT/TABLE (local endpoint), "
        "dynamodb://REGION/TABLE (AWS) or dynamodb:///TABLE (boto3 defaults)"
    )


def format_dynamo_uri(location: DynamoUri) -> str:
    """The `dynamodb://` URI that `parse_dynamo_uri` reads back as `location`."""
    if location.endpoint_url:
        return f"{SCHEME}://{urlsplit(location.endpoint_url).netloc}/{location.table}"
    return f"{SCHEME}://{location.region or ''}/{location.table}"


def _host_and_port(parts, uri: str) -> tuple[str, int]:
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidStoreUri(f"Invalid port in {uri!r}") from exc
    host = parts.hostname
    if not host or port is None:
        raise InvalidStoreUri(f"Expected HOST:PORT in {uri!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host, port
    return (f"[{address}]" if address.version == 6 else str(address)), port


def _is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
