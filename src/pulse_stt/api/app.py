"""The ASGI application: routes only; everything it serves with lives in ServerContext."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from pulse_stt import __version__
from pulse_stt.api.browser import browser_routes
from pulse_stt.api.context import ServerContext
from pulse_stt.api.handshake import LEGACY_PATH, LIVE_PATH
from pulse_stt.api.rest import LEGACY_REST_PATH, REST_PATH, file_endpoint
from pulse_stt.api.tokens import TOKENS_PATH, mint_token_endpoint
from pulse_stt.api.websocket import stream_endpoint


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


async def ready(request: Request) -> JSONResponse:
    """200 once the model is loaded and its decode workers take work; 503 otherwise
    (shutting down, a worker is gone, or the store is unreachable)."""
    ctx: ServerContext = request.app.state.ctx
    if not ctx.ready:
        return JSONResponse({"status": "not_ready"}, status_code=503)
    if not await ctx.store_guard.reachable():
        return JSONResponse({"status": "not_ready", "store": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ready", "model": model_name(ctx.engine.model_dir)})


def model_name(model_dir: object) -> str:
    """The model's directory name, without the path (which is nobody's business outside
    the host: `/ready` answers without credentials)."""
    return re.split(r"[\\/]", str(model_dir).rstrip("\\/"))[-1]


async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this server's registry."""
    ctx: ServerContext = request.app.state.ctx
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)


def create_app(ctx: ServerContext) -> Starlette:
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            *([Route("/metrics", metrics)] if ctx.settings.metrics_enabled else []),
            Route(REST_PATH, file_endpoint, methods=["POST"]),
            Route(REST_PATH + "/", file_endpoint, methods=["POST"]),
            Route(LEGACY_REST_PATH, file_endpoint, methods=["POST"]),
            WebSocketRoute(LIVE_PATH, stream_endpoint),
            WebSocketRoute(LIVE_PATH + "/", stream_endpoint),
            WebSocketRoute(LEGACY_PATH, stream_endpoint),
            WebSocketRoute(LEGACY_PATH + "/", stream_endpoint),
            Route(TOKENS_PATH, mint_token_endpoint, methods=["POST"]),
            *browser_routes(),
        ],
    )
    app.state.ctx = ctx
    return app
