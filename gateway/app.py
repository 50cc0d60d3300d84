"""The ASGI app (starlette)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import metrics


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def metrics_endpoint(_: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def create_app() -> Starlette:
    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics_endpoint)])
