"""Vonage Voice API WebSockets (docs/telephony.md §3).

The first text message is `websocket:connected`, whose `content-type` (`audio/l16;rate=N`) fixes
the format both ways: PCM16 little-endian mono at N Hz, raw in binary frames. NCCO `headers` are
flattened into that message and become the call's params. Outbound audio goes in frames of exactly
20 ms (320/640/960 bytes at 8/16/24 kHz). Our marks travel as `notify` actions whose payload
`{"name": ...}` comes back in `websocket:notify`. Vonage sends no stop message: the socket closing
is the end of the call.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from audio.formats import AudioFormat
from gateway.errors import BadAudio, BadMessage
from gateway.telephony.common import (
    Cleared,
    Connected,
    Frame,
    MarkPlayed,
    MediaReceived,
    MediaStreamSerializer,
    StreamState,
    TelephonyEvent,
    check_digits,
    get_str,
    load_json_object,
)

VONAGE_RATES_HZ = (8000, 16000, 24000)
_CONTENT_TYPE = re.compile(r"\s*audio/l16\s*;\s*rate\s*=\s*(\d{4,5})\s*", re.IGNORECASE)
_CALL_ID_KEYS = ("uuid", "call_uuid", "conversation_uuid", "call_id")


def vonage_format(content_type: str) -> AudioFormat:
    match = _CONTENT_TYPE.fullmatch(content_type)
    if match is None or int(match.group(1)) not in VONAGE_RATES_HZ:
        raise BadAudio("unsupported content-type; expected audio/l16;rate=8000|16000|24000")
    return AudioFormat(encoding="pcm16", sample_rate_hz=int(match.group(1)))


class VonageMediaStream(MediaStreamSerializer):
    vendor = "vonage"

    def _parse(self, frame: Frame) -> list[TelephonyEvent]:
        if isinstance(frame, bytes):
            self._require_streaming("audio")
            if len(frame) % 2:
                raise BadAudio("L16 frame has an odd number of bytes")
            assert self.input_format is not None
            return [MediaReceived(frame, self.input_format)] if frame else []
        msg = load_json_object(frame)
        event = msg.get("event")
        if not isinstance(event, str):
            raise BadMessage("`event` must be a string")
        match event:
            case "websocket:connected":
                return self._on_connected(msg)
            case "websocket:dtmf":
                self._require_streaming(event)
                return list(check_digits(_dtmf_digits(msg)))
            case "websocket:notify":
                self._require_streaming(event)
                payload = msg.get("payload")
                if not isinstance(payload, dict):
                    raise BadMessage("`payload` must be an object")
                return [MarkPlayed(get_str(payload, "name"))]
            case "websocket:cleared":
                self._require_streaming(event)
                return [Cleared()]
            case _:
                return []

    def _on_connected(self, msg: dict[str, Any]) -> list[TelephonyEvent]:
        if self.state is not StreamState.AWAITING_START:
            raise BadMessage("`websocket:connected` twice")
        fmt = vonage_format(get_str(msg, "content-type"))
        params: dict[str, str] = {}
        for key, value in msg.items():
            text = _scalar(value)
            if key not in ("event", "content-type") and text is not None:
                params[key] = text
        call_id = next((params[k] for k in _CALL_ID_KEYS if params.get(k)), "")
        started = self._started(stream_id=call_id, call_id=call_id, params=params,
                                input_format=fmt, output_format=fmt)
        return [Connected(), started]

    def _media_message(self, frame: bytes) -> Frame:
        return frame

    def _clear_message(self) -> Frame:
        return '{"action":"clear"}'

    def mark(self, name: str) -> Frame:
        return orjson.dumps({"action": "notify", "payload": {"name": name}}).decode()


def _scalar(value: object) -> str | None:
    """NCCO header values as strings; nested values are not call parameters."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def _dtmf_digits(msg: dict[str, Any]) -> str:
    # Shape [unsure] (docs/telephony.md §3): a top-level `digit`, or a `dtmf` object with `digit`/`digits`.
    if "digit" in msg:
        return get_str(msg, "digit")
    dtmf = msg.get("dtmf")
    if isinstance(dtmf, dict):
        for key in ("digit", "digits"):
            if key in dtmf:
                return get_str(dtmf, key)
    raise BadMessage("`websocket:dtmf` without a digit")
