"""Cross-site request forgery defence for calls that ride on the session cookie.

A browser attaches the cookie to requests another site makes it send. SameSite=Lax already keeps
the cookie off cross-site POSTs in current browsers; on top of that, a state-changing call
authenticated by the cookie must prove it comes from our own pages: browsers set `Origin` on
every POST/PUT/PATCH/DELETE (same-origin ones included) and page scripts cannot forge it, so it
must equal the gateway's public origin; when `Origin` is absent, `Referer` must point into it;
when `Sec-Fetch-Site` is sent it must say same-origin. A request with neither header is refused.
No token is needed on top: MLflow's UI sends its calls with `fetch`, which always carries
`Origin` for these methods. Bearer-token calls are not affected (a browser never adds those).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

from gateway.errors import forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE_MESSAGE = (
    "Cross-site request refused: the session cookie is only accepted from this server's pages."
)


def origin_of(url: str) -> str:
    """scheme://host[:port], lower-cased, default ports dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class SameOriginCheck:
    """Refuses cookie-authenticated unsafe calls that do not come from `public_url`'s origin."""

    def __init__(self, public_url: str) -> None:
        self.origin = origin_of(public_url)

    def check(self, request: Request) -> None:
        if request.method in SAFE_METHODS:
            return
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site != "same-origin":
            raise forbidden(CROSS_SITE_MESSAGE)
        origin = request.headers.get("origin")
        if origin is not None:
            if origin == "null" or origin_of(origin) != self.origin:
                raise forbidden(CROSS_SITE_MESSAGE)
            return
        referer = request.headers.get("referer")
        if not referer or origin_of(referer) != self.origin:
            raise forbidden(CROSS_SITE_MESSAGE)
