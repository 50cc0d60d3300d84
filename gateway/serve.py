"""Start the gateway under uvicorn (uvloop, httptools, sans-I/O websockets)."""

from __future__ import annotations


def serve(*, host: str, port: int, ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> int:
    import uvicorn

    from gateway.app import create_app

    uvicorn.run(
        create_app(), host=host, port=port, loop="uvloop", http="httptools", ws="websockets-sansio",
        ws_max_size=64 * 1024, ws_per_message_deflate=False, ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile, log_config=None, access_log=False, lifespan="on",
    )
    return 0
