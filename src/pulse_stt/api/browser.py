"""The browser page at `/` (static files from `pulse_stt/web`, no build step) and the
handshake probe it uses to explain a refused WebSocket.

A browser never shows a page the status or body of a refused WebSocket handshake (it only
reports close code 1006), so the page asks `GET <streaming path>?<same query>` with its
token in the Authorization header: the answer is the 401/400 (503 while the server shuts
down) the handshake got, or 426 when the handshake would have been accepted.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pulse_stt.api.handshake import LEGACY_PATH, LIVE_PATH, HandshakeDenial, check_handshake

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


# Same-origin only: scripts, styles, the worklet, fetch and the WebSocket. Built from no
# request data: 'self' covers ws:/wss: to the page's own host and port in CSP Level 3
# (Chromium, Firefox and Safari 15.4+), so the Host header (which a client chooses: a `;`
# in it added directives) never reaches the policy.
PAGE_POLICY = (
    "default-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; media-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


async def index(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html", headers=PAGE_HEADERS)


async def handshake_probe(request: Request) -> JSONResponse:
    """What a WebSocket handshake with this query and credentials would be answered
    (`stream_endpoint`'s own checks)."""
    checked = await check_handshake(request.app.state.ctx, request)
    if isinstance(checked, HandshakeDenial):
        return checked.response
    return JSONResponse(
        {
            "status": "ok",
            "message": "a WebSocket handshake with these parameters and credentials would be "
            "accepted; connect with a WebSocket client.",
        },
        status_code=426,
        headers={"Upgrade": "websocket"},
    )


def browser_routes() -> list[BaseRoute]:
    probes = [
        Route(path, handshake_probe, methods=["GET"])
        for base in (LIVE_PATH, LEGACY_PATH)
        for path in (base, base + "/")
    ]
    return [
        Route("/", index, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=WEB_DIR), name="static"),
        *probes,
    ]
