"""The ASGI application: routes only; everything it serves with lives in ServerContext."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from pulse_stt import __version__
from pulse_stt.api.context import ServerContext
from pulse_stt.api.rest import LEGACY_REST_PATH, REST_PATH, file_endpoint
from pulse_stt.api.websocket import LEGACY_PATH, LIVE_PATH, stream_endpoint


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


async def ready(request: Request) -> JSONResponse:
    ctx: ServerContext = request.app.state.ctx
    return JSONResponse({"status": "ready", "model": str(ctx.engine.model_dir)})


def create_app(ctx: ServerContext) -> Starlette:
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            Route(REST_PATH, file_endpoint, methods=["POST"]),
            Route(REST_PATH + "/", file_endpoint, methods=["POST"]),
            Route(LEGACY_REST_PATH, file_endpoint, methods=["POST"]),
            WebSocketRoute(LIVE_PATH, stream_endpoint),
            WebSocketRoute(LIVE_PATH + "/", stream_endpoint),
            WebSocketRoute(LEGACY_PATH, stream_endpoint),
            WebSocketRoute(LEGACY_PATH + "/", stream_endpoint),
        ],
    )
    app.state.ctx = ctx
    return app
