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

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

WEB_DIR: Final = Path(__file__).resolve().parent.parent / "web"

CONSOLE_PATH: Final = "/console"

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
    app.mount(CONSOLE_PATH, ConsoleFiles(directory=WEB_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PATH}/", status_code=307)


__all__ = ["CONSOLE_PATH", "WEB_DIR", "mount_console"]
