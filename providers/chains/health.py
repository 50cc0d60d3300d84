"""Cheap authenticated requests for `voice-gateway providers check` that no chain translator covers."""

from __future__ import annotations

from providers.chains.base import ChainEndpoint, HttpRequest


def gemini_health_request(endpoint: ChainEndpoint) -> HttpRequest:
    """The models list of the Gemini Developer API (one entry): a cheap authenticated GET."""
    return HttpRequest(method="GET", url=f"{endpoint.base_url}/v1beta/models?pageSize=1",
                       headers=(("x-goog-api-key", endpoint.api_key),))
