"""Small constructors that keep the route tables readable as data."""

from __future__ import annotations

from gateway.routing.model import FORWARD, NONE, PROTO, RefSpec, Route


def api(version: int, tail: str) -> tuple[str, ...]:
    """A protobuf route: served at both /api/N.0 and /ajax-api/N.0 by the same handler."""
    return (f"/api/{version}.0{tail}", f"/ajax-api/{version}.0{tail}")


def ajax(version: int, tail: str) -> tuple[str, ...]:
    """A route the UI alone uses: served at /ajax-api/N.0 only."""
    return (f"/ajax-api/{version}.0{tail}",)


def ref(kind: str, source: str = "", **options) -> RefSpec:
    return RefSpec(kind, source, **options)


def rows(
    method: str,
    paths: tuple[str, ...] | str,
    family: str,
    action: str,
    *refs: RefSpec,
    params: str = PROTO,
    filter: str | None = None,  # noqa: A002 - the row field's name
    anonymous: bool = False,
    serve: str = FORWARD,
) -> list[Route]:
    """One offered row per path."""
    paths = (paths,) if isinstance(paths, str) else paths
    return [
        Route(
            method=method,
            path=path,
            family=family,
            action=action,
            refs=tuple(refs),
            params=params,
            filter=filter,
            anonymous=anonymous,
            serve=serve,
        )
        for path in paths
    ]


def refused(method: str, paths: tuple[str, ...] | str, family: str, reason: str) -> list[Route]:
    """Rows for a family this deployment does not offer: always refused, never forwarded."""
    paths = (paths,) if isinstance(paths, str) else paths
    return [Route(method=method, path=path, family=family, refused=reason) for path in paths]


def answered(method: str, path: str, serve: str, action: str, family: str = "gateway") -> Route:
    """A row the gateway answers itself (PERMISSIONS, OPEN): it names no resource to decide."""
    return Route(method=method, path=path, family=family, action=action, params=NONE, serve=serve)
