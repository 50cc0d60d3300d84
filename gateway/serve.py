"""Start the gateway under uvicorn (uvloop, httptools, sans-I/O websockets)."""

from __future__ import annotations

import dataclasses


def serve(*, host: str, port: int, ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.config import load_settings
    from gateway.errors import ConfigError
    from gateway.logs import configure_logging

    try:
        settings = dataclasses.replace(load_settings(), host=host, port=port)
    except ConfigError as e:
        print(f"voice-gateway: invalid configuration: {e.message}")
        return 2
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings), host=host, port=port, loop="uvloop", http="httptools", ws="websockets-sansio",
        ws_max_size=settings.max_message_bytes, ws_per_message_deflate=False, ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile, log_config=None, access_log=False, lifespan="on",
    )
    return 0
