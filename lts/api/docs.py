"""The interactive API docs (Swagger UI at ``/docs``), served from this package.

Where it sits: routes of the API app when ``api.docs`` is on (the default outside the prod
profile). FastAPI's own ``/docs`` page loads Swagger UI from a CDN, which the docs'
same-origin content security policy (:data:`lts.api.middleware.DOCS_CSP`) refuses and an
offline machine cannot reach: the page stayed blank. Here the page, its script, its styles and
the OAuth2 redirect page all come from ``/docs/`` (swagger-ui-dist 5.35.0, Apache 2.0, in
``static/swagger-ui``).
"""

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS = Path(__file__).resolve().parent / "static" / "swagger-ui"
_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "favicon-32x32.png": "image/png"}


def add_docs(app: FastAPI, openapi_url: str) -> None:
    """``/docs``, its OAuth2 redirect page and its three assets, none in the schema."""

    async def page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/docs/swagger-ui-bundle.js", swagger_css_url="/docs/swagger-ui.css",
            swagger_favicon_url="/docs/favicon-32x32.png")

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route("/docs", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs/oauth2-redirect", oauth2_redirect, methods=["GET"],
                      include_in_schema=False)
    for name, media_type in _FILES.items():
        app.add_api_route(f"/docs/{name}", _asset(ASSETS / name, media_type), methods=["GET"],
                          include_in_schema=False)


def _asset(path: Path, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
    async def serve() -> FileResponse:
        return FileResponse(path, media_type=media_type,
                            headers={"cache-control": "public, max-age=86400"})

    return serve
