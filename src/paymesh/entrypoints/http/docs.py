"""API docs: Swagger UI at /docs and ReDoc at /redoc, both reading /openapi.json.

Both are served from files vendored into the package (static/: swagger-ui-dist 5.35.0,
Apache-2.0; redoc 2.5.4, MIT; their licences beside them), never from a CDN: the docs must work
on a machine with no way out, and a page that pulls script from a third party would be a hole
in a payment API's own origin. The pages carry no inline script, so a strict Content-Security-
Policy holds: scripts from this origin only, nothing sent anywhere else.

The docs are public, like /openapi.json: they describe the API, they hold no data. "Try it out"
asks for the API key in Swagger UI's own dialog; it stays in the browser's memory.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/docs/static"

#: Styles: both UIs set inline styles. Workers: ReDoc searches in a worker made from a blob.
#: Swagger UI's "Try it out" calls this origin only (connect-src).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

SWAGGER_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>paymesh API</title>
<link rel="stylesheet" href="{STATIC_PREFIX}/swagger-ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{STATIC_PREFIX}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{STATIC_PREFIX}/swagger-init.js"></script>
</body>
</html>
"""

REDOC_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>paymesh API</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="{STATIC_PREFIX}/redoc/redoc.standalone.js"></script>
</body>
</html>
"""


async def swagger_ui(request: Request) -> Response:
    return HTMLResponse(SWAGGER_PAGE, headers=_HEADERS)


async def redoc(request: Request) -> Response:
    return HTMLResponse(REDOC_PAGE, headers=_HEADERS)


def docs_routes() -> list[BaseRoute]:
    """The routes to add to the app beside the API's (`build_http_app`'s extra routes)."""
    return [
        Route("/docs", swagger_ui, methods=["GET"]),
        Route("/redoc", redoc, methods=["GET"]),
        Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="docs-static"),
    ]
