"""The auditors' web page (public static files): ``GET /ui`` and its assets, from ``api/server/web/``.

The page holds no data: the browser asks the user for an API key (kept in the
tab's ``sessionStorage`` only) and calls the same ``/v1`` routes as any client,
which authenticate and scope every request (a member key sees only its jobs).
So these routes are declared :func:`secureflow.api.server.auth.public`, like ``/healthz``: they
serve a fixed set of files, read once at start-up, never anything from a
request path (no directory traversal), with a strict Content-Security-Policy
that lets the page load and call nothing but its own origin. They are not part
of the OpenAPI contract (``include_in_schema=False``).

Verification in the browser (``verify.js``, with the libraries of ``verify-lib.js``)
calls a JSON-RPC node the auditor chooses, directly from the page. The CSP comes
from this server, so the page is opened as ``/ui?node=<URL>`` (the page's "Use
this node" button reloads it so): `node_origin` checks the URL is an http(s)
URL and the page is served with exactly that origin added to ``connect-src``;
without ``node`` the page may call nothing but this origin. Only the auditor's
own choice widens it (a link cannot carry a key, and the page never adds a node
by itself); the scripts and styles stay ``'self'`` in every case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response

from secureflow.api.server.auth import public
from secureflow.api.server.errors import BadRequestError

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def content_security_policy(node_origin: str | None = None) -> str:
    """The page's CSP: our origin only, plus ``node_origin`` in ``connect-src`` if the auditor chose it."""
    connect = "connect-src 'self'" + (f" {node_origin}" if node_origin else "")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            connect,
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


CONTENT_SECURITY_POLICY = content_security_policy()
"""Only our origin, for scripts, styles, images and API calls; no inline code, no frames, no forms posted."""

NODE_URL_MAX = 2048


def node_origin(url: str) -> str:
    """The origin (``scheme://host[:port]``) of an auditor's JSON-RPC node URL, for ``connect-src``.

    Only an absolute http(s) URL with a host qualifies, without user:password (a credential must not
    end up in a response header) and without characters that could end a CSP source expression.
    Raises `BadRequestError` saying what is wrong.
    """
    hint = "give the node's JSON-RPC URL, e.g. /ui?node=http://127.0.0.1:8545"
    if len(url) > NODE_URL_MAX or any(c.isspace() or c in ";,'\"" for c in url):
        raise BadRequestError("the node URL has characters a URL cannot have here", hint=hint)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadRequestError(f"the node URL is not a URL ({exc})", hint=hint) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequestError("the node URL must be an http:// or https:// URL with a host", hint=hint)
    if parts.username is not None or parts.password is not None:
        raise BadRequestError(
            "the node URL must not carry a user name or password (they would be sent back in a header)",
            hint=hint,
        )
    host = parts.hostname
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


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
    "/ui/verify-lib.js": ("verify-lib.js", "text/javascript; charset=utf-8"),
    "/ui/verify.js": ("verify.js", "text/javascript; charset=utf-8"),
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


def serve_page(asset: Asset, request: Request) -> Response:
    """The page itself: with ``?node=URL``, its CSP also lets it call that node's origin (and its ETag
    differs, so a cached copy is never served with another page's policy)."""
    node = request.query_params.get("node")
    if not node:
        return serve_asset(asset, request)
    origin = node_origin(node)
    policy = content_security_policy(origin)
    etag = '"' + hashlib.sha256(asset.etag.encode() + policy.encode()).hexdigest()[:32] + '"'
    return serve_asset(
        replace(asset, etag=etag), request, {**SECURITY_HEADERS, "Content-Security-Policy": policy}
    )


def _endpoint(name: str, asset: Asset) -> Callable[[Request], Response]:
    def serve(request: Request) -> Response:
        if name == "index.html":
            return serve_page(asset, request)
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
