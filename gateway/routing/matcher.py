"""Canonical paths and (method, path) → route matching.

MLflow routes on the percent-decoded path, so `%2F` would become a separator and `%2e%2e`
a parent segment there. Instead of reproducing that, we refuse every spelling that does
not decode to one unambiguous path; what is left matches a route exactly (case, trailing
slash and all) or is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from gateway.errors import bad_request, forbidden
from gateway.routing.model import Route, RouteMatch

# percent-escapes that would change the path's structure once decoded
_STRUCTURAL_ESCAPES = re.compile(r"%(2[fF]|5[cC]|2[eE]|25|00|3[bB]|3[fF]|23)")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(:path)?\}")
_MATCHED_MAX = 10_000  # remembered matches; the cache is emptied when full
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def canonical_path(raw_path: str) -> str:
    """Decode a request path once, refusing encoded separators, dot segments and the like."""
    if not raw_path.startswith("/"):
        raise bad_request("The request path must start with '/'.")
    if not raw_path.isascii():  # on the wire a path is ASCII; anything else is percent-encoded
        raise bad_request("The request path must be percent-encoded ASCII.")
    if _STRUCTURAL_ESCAPES.search(raw_path):
        raise bad_request("The request path contains an encoded separator or dot.")
    if "%" in _ESCAPE.sub("", raw_path):
        raise bad_request("The request path contains a malformed percent-escape.")
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError as exc:
        raise bad_request("The request path is not valid UTF-8.") from exc
    if _CONTROL.search(path) or "\\" in path or ";" in path:
        raise bad_request("The request path contains a forbidden character.")
    if "//" in path:
        raise bad_request("The request path contains an empty segment.")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise bad_request("The request path contains a dot segment.")
    return path


class RouteTable:
    """Exact-path rows are looked up first, then templates from most to least specific."""

    def __init__(self, routes: Iterable[Route]):
        self.routes: tuple[Route, ...] = tuple(routes)
        self._exact: dict[str, list[Route]] = {}
        self._templates: list[tuple[re.Pattern[str], Route]] = []
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            key = (route.method, route.path)
            if key in seen:
                raise ValueError(f"duplicate route row {route.method} {route.path}")
            seen.add(key)
            if _PARAM.search(route.path):
                self._templates.append((_compile(route.path), route))
            else:
                self._exact.setdefault(route.path, []).append(route)
        self._templates.sort(key=lambda item: _specificity(item[1].path), reverse=True)
        self._matched: dict[tuple[str, str], RouteMatch] = {}  # a training loop repeats paths

    def match(self, method: str, raw_path: str) -> RouteMatch:
        """The route serving (method, path), or a GatewayError (malformed, unknown, not offered)."""
        key = (method, raw_path)
        found = self._matched.get(key)
        if found is None:
            found = self._match(method, raw_path)  # a GatewayError is raised, never remembered
            if len(self._matched) >= _MATCHED_MAX:
                self._matched.clear()
            self._matched[key] = found
        return found

    def _match(self, method: str, raw_path: str) -> RouteMatch:
        method = method.upper()
        if method not in _KNOWN_METHODS:
            raise forbidden(f"Method {method} is not allowed.")
        if method == "OPTIONS":
            # the UI is served from the gateway's own origin: no cross-origin preflight needed
            raise forbidden("OPTIONS is not offered by this deployment.")
        routed = "GET" if method == "HEAD" else method
        path = canonical_path(raw_path)
        found = self._find(routed, path)
        if found is None:
            raise forbidden(f"No route for {method} {path}.")
        route, params = found
        if route.refused:
            raise forbidden(f"{route.refused}: {method} {path}")
        return RouteMatch(route=route, method=routed, path=path, path_params=params)

    def _find(self, method: str, path: str) -> tuple[Route, tuple[tuple[str, str], ...]] | None:
        for route in self._exact.get(path, ()):
            if route.method == method:
                return route, ()
        for pattern, route in self._templates:
            if route.method != method:
                continue
            m = pattern.fullmatch(path)
            if m:
                return route, tuple(m.groupdict().items())
        return None


def _compile(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        name, is_path = m.group(1), m.group(2)
        out.append(f"(?P<{name}>.+)" if is_path else f"(?P<{name}>[^/]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def _specificity(template: str) -> tuple[int, int]:
    # more literal characters first; a {x:path} catch-all last among equals
    literal = len(_PARAM.sub("", template))
    return (literal, -template.count(":path}"))
