"""The few HTML pages the gateway writes itself: sign-in outcomes and the dev provider's form."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse


def html_page(title: str, body_html: str, status: int = 200) -> HTMLResponse:
    """A page titled `title` around `body_html` (already escaped); never cached nor framed."""
    document = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )
    return HTMLResponse(
        document,
        status_code=status,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )
