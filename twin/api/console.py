"""The training console: static files from ``twin/web`` (plain HTML, ES modules and CSS, no build
step), served by the twin at ``/console/``; ``/`` redirects there.

The files hold no data, so they need no login: the console asks ``/api/me`` and shows its login
form when that answers 401. Every file is sent with a strict Content-Security-Policy: scripts,
styles and connections from this origin only, no inline script, no framing. Alarm messages and
device fields come from devices and are untrusted; the console writes them with ``textContent``
only, and the policy is the second line should that ever slip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"

CONSOLE_PATH: Final = "/console"

DOCS_ASSETS_DIR: Final = Path(fastapi_offline.__file__).resolve().parent / "static"
"""Swagger UI and ReDoc as files (``swagger-ui-bundle.js``, ``swagger-ui.css``,
``redoc.standalone.js``), shipped by the ``fastapi-offline`` package; the twin serves them itself
so that ``/docs`` and ``/redoc`` work without internet (FastAPI's defaults load them from a CDN)."""

DOCS_ASSETS_PATH: Final = "/api-docs-assets"

DOCS_SECURITY_HEADERS: Final = {
    # FastAPI's Swagger and ReDoc pages start their viewer with an inline script; everything else
    # comes from this origin, so a viewer that reaches for the internet (ReDoc's "powered by" logo
    # is fetched from its CDN) is stopped by the browser, not just left to fail
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "media-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class ConsoleFiles(StaticFiles):
    """StaticFiles with the security headers, and ``no-cache`` so that a twin upgrade is seen at
    the next load (the files are small; revalidation by ETag costs one round trip)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_console(app: FastAPI) -> None:
    """The console at ``/console/``, ``/`` redirecting there, and the API docs (``/docs``,
    ``/redoc``) from the twin's own files. The app must be made with ``docs_url=None,
    redoc_url=None`` (or FastAPI's CDN pages would answer first)."""
    app.mount(CONSOLE_PATH, ConsoleFiles(directory=WEB_DIR, html=True), name="console")
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=DOCS_ASSETS_DIR), name="api-docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title}: Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            # no "valid" badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers.update(DOCS_SECURITY_HEADERS)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title}: ReDoc",
            redoc_js_url=f"{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(DOCS_SECURITY_HEADERS)
        return page

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PATH}/", status_code=307)


__all__ = ["CONSOLE_PATH", "DOCS_ASSETS_PATH", "WEB_DIR", "mount_console"]
