"""The API's documentation pages (public, static): Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

Both are served from this origin only, so they work on a machine without internet and load
nothing from a CDN: the pages and their start-up scripts are in ``api/server/web/``, the Swagger UI
and ReDoc bundles are copied from the pinned npm packages (``swagger-ui-dist``, ``redoc`` in
``package-lock.json``) into ``api/server/web/vendor/`` by ``scripts/bootstrap.sh``. An install
without those files still starts; the pages then answer 503 saying how to get them. Like ``/ui``
they read a fixed set of files at start-up, never a request path, and are not part of the OpenAPI
contract. Their Content-Security-Policy allows only this origin (plus the inline styles and blob
workers the two bundles need).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request, Response

from secureflow.api.server.auth import public
from secureflow.api.server.errors import UnavailableError
from secureflow.api.server.routes.ui import SECURITY_HEADERS, WEB_DIR, Asset, load_asset, serve_asset

DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # both bundles set element styles at run time
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc's search index runs in a blob worker
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

DOCS_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY}

PAGES: dict[str, tuple[str, str]] = {
    "/docs": ("docs.html", "text/html; charset=utf-8"),
    "/docs/docs.js": ("docs.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui-bundle.js": ("vendor/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui.css": ("vendor/swagger-ui.css", "text/css; charset=utf-8"),
    "/redoc": ("redoc.html", "text/html; charset=utf-8"),
    "/redoc/redoc.js": ("redoc.js", "text/javascript; charset=utf-8"),
    "/redoc/redoc.standalone.js": ("vendor/redoc.standalone.js", "text/javascript; charset=utf-8"),
}
"""Route path -> (file under api/server/web/, media type)."""


def _endpoint(name: str, asset: Asset | None) -> Callable[[Request], Response]:
    def serve(request: Request) -> Response:
        if asset is None:
            raise UnavailableError(
                f"the API docs file {name} is not installed",
                hint="run ./scripts/bootstrap.sh, which copies Swagger UI and ReDoc from the pinned npm "
                "packages into api/server/web/vendor/; /openapi.json is always served",
            )
        return serve_asset(asset, request, DOCS_HEADERS)

    serve.__name__ = f"docs_{name.replace('/', '_').replace('.', '_').replace('-', '_')}"
    serve.__doc__ = f"The API docs pages: {name} (static, public, served from this origin only)."
    return serve


def build_router() -> APIRouter:
    built = APIRouter(tags=["docs"])
    for route_path, (name, media_type) in PAGES.items():
        asset = load_asset(name, media_type) if (WEB_DIR / name).is_file() else None
        built.add_api_route(
            route_path,
            _endpoint(name, asset),
            methods=["GET"],
            dependencies=[Depends(public())],
            response_class=Response,
            include_in_schema=False,
        )
    return built


router = build_router()
