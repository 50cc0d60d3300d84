"""Telephony media streams (docs/telephony.md): one sans-I/O serializer per vendor over a shared layer.

`serializer_for(vendor)` gives a fresh serializer for one connection. The endpoint feeds every
frame to `parse` (logging and skipping BadMessage/BadAudio: vendors have no error channel) and
sends what `media_frames`/`flush_media`/`mark`/`clear` return.
"""

from __future__ import annotations

from gateway.telephony.common import (
    CALL_OPTIONS,
    CallStarted,
    CallStopped,
    Cleared,
    Connected,
    DtmfReceived,
    Frame,
    MarkPlayed,
    MediaReceived,
    MediaStreamSerializer,
    PlayoutTracker,
    StreamState,
    TelephonyError,
    TelephonyEvent,
)
from gateway.telephony.telnyx import TelnyxMediaStream
from gateway.telephony.twilio import TwilioMediaStream
from gateway.telephony.vonage import VonageMediaStream

SERIALIZERS: dict[str, type[MediaStreamSerializer]] = {
    "twilio": TwilioMediaStream,
    "telnyx": TelnyxMediaStream,
    "vonage": VonageMediaStream,
}


def serializer_for(vendor: str) -> MediaStreamSerializer:
    return SERIALIZERS[vendor]()


__all__ = [
    "CALL_OPTIONS", "SERIALIZERS", "CallStarted", "CallStopped", "Cleared", "Connected", "DtmfReceived",
    "Frame", "MarkPlayed", "MediaReceived", "MediaStreamSerializer", "PlayoutTracker", "StreamState",
    "TelephonyError", "TelephonyEvent", "TelnyxMediaStream", "TwilioMediaStream", "VonageMediaStream",
    "serializer_for",
]
