"""A small Python client for the voice gateway's `/v1/voice` protocol (docs/protocol.md).

Depends only on `websockets` and `orjson`; imports nothing of the gateway itself, so it can be
used from any application (a Pipecat/LiveKit agent, a test, a CLI).
"""

from voice_gateway_client.client import GatewayRefused, VoiceGatewayClient, connect, session_start
from voice_gateway_client.events import (
    AudioChunk,
    ConnectionFailed,
    ConnectionReconnected,
    ConnectionReconnecting,
    Error,
    Event,
    GatewayDisconnected,
    GatewayReconnected,
    ProviderSwitched,
    SessionEnded,
    SessionStarted,
    ToolCall,
    Transcript,
    TurnCompleted,
    TurnInterrupted,
    TurnStarted,
    UnknownEvent,
    parse_event,
)

__all__ = [
    "AudioChunk", "ConnectionFailed", "ConnectionReconnected", "ConnectionReconnecting", "Error", "Event",
    "GatewayDisconnected", "GatewayReconnected", "GatewayRefused", "ProviderSwitched", "SessionEnded",
    "SessionStarted", "ToolCall", "Transcript", "TurnCompleted", "TurnInterrupted", "TurnStarted",
    "UnknownEvent", "VoiceGatewayClient", "connect", "parse_event", "session_start",
]
