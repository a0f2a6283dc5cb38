"""The auditors' web page (public static files): ``GET /ui`` and its assets, from ``api/server/web/``.

The page holds no data: the browser asks the user for an API key (kept in the
tab's ``sessionStorage`` only) and calls the same ``/v1`` routes as any client,
which authenticate and scope every request (a member key sees only its jobs).
So these routes are declared :func:`secureflow.api.server.auth.public`, like ``/healthz``: they
serve a fixed set of files, read once at start-up, never anything from a
request path (no directory traversal), with a strict Content-Security-Policy
that lets the page load and call nothing but its own origin. They are not part
of the OpenAPI contract (``include_in_schema=False``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response

from secureflow.api.server.auth import public

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
"""Only our origin, for scripts, styles, images and API calls; no inline code, no frames, no forms posted."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # revalidate every time (cheap: 304 by ETag), so a new version of the page is never mixed with an old one
    "Cache-Control": "no-cache",
}

ASSETS: dict[str, tuple[str, str]] = {
    "/ui": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/app.css": ("app.css", "text/css; charset=utf-8"),
    "/ui/icon.svg": ("icon.svg", "image/svg+xml"),
}
"""Route path -> (file in api/server/web/, media type): the page's whole set of files."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_asset(name: str, media_type: str) -> Asset:
    """One file of ``api/server/web/``; a missing file stops the app from starting (a broken install)."""
    path = WEB_DIR / name
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise RuntimeError(
            f"the web UI file {path} cannot be read ({exc.strerror}): reinstall secureflow "
            "(api/server/web/ ships with the package)"
        ) from exc
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def serve_asset(asset: Asset, request: Request, security: dict[str, str] = SECURITY_HEADERS) -> Response:
    """``asset`` with ``security`` headers and its ETag (304 when the browser has it)."""
    headers = {**security, "ETag": asset.etag}
    if asset.etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _endpoint(name: str, asset: Asset) -> Callable[[Request], Response]:
    def serve(request: Request) -> Response:
        return serve_asset(asset, request)

    serve.__name__ = f"ui_{name.replace('.', '_')}"
    serve.__doc__ = f"The auditors' web page: {name} (static, public; the data comes from /v1 with a key)."
    return serve


def build_router() -> APIRouter:
    """A router with one GET route per asset (each declared public), the files read now."""
    built = APIRouter(tags=["web UI"])
    for route_path, (name, media_type) in ASSETS.items():
        built.add_api_route(
            route_path,
            _endpoint(name, load_asset(name, media_type)),
            methods=["GET"],
            dependencies=[Depends(public())],
            response_class=Response,
            include_in_schema=False,
        )
    return built


router = build_router()
