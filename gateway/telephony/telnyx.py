"""Telnyx Media Streaming (docs/telephony.md §2): Twilio's event set in snake_case with `stream_id`.

Inbound codec from `start.media_format`: PCMU → μ-law 8 kHz, PCMA → A-law 8 kHz, L16 → PCM16 at
`sample_rate`. L16 travels as an RTP payload, i.e. big-endian (RFC 3551 §4.5.11; Telnyx does not
say otherwise [unsure]); we swap to our little-endian PCM16 on the way in and back on the way out.
Outbound messages carry no stream id. The bidirectional codec is set in Call Control, not
announced on the socket, so it defaults to the inbound one unless the endpoint passes
`output_format`. Frame order is not guaranteed by Telnyx; we pass media on in arrival order.
"""

from __future__ import annotations

from typing import Any

import orjson
import pybase64

from audio.formats import SAMPLE_RATES_HZ, AudioFormat
from gateway.errors import BadAudio, BadMessage
from gateway.telephony.common import (
    CallStarted,
    Frame,
    JsonMediaStream,
    TelephonyError,
    TelephonyEvent,
    get_object,
    get_str,
    string_params,
    swap_bytes16,
)

_G711 = {"PCMU": "mulaw", "PCMA": "alaw"}


def telnyx_format(encoding: object, sample_rate: object) -> AudioFormat:
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool):
        raise BadMessage("`media_format.sample_rate` must be an integer")
    if not isinstance(encoding, str):
        raise BadMessage("`media_format.encoding` must be a string")
    encoding = encoding.upper()
    if encoding in _G711:
        if sample_rate != 8000:
            raise BadAudio("PCMU/PCMA must be 8000 Hz")
        return AudioFormat(encoding=_G711[encoding], sample_rate_hz=8000)  # type: ignore[arg-type]
    if encoding == "L16" and sample_rate in SAMPLE_RATES_HZ:
        return AudioFormat(encoding="pcm16", sample_rate_hz=sample_rate)
    raise BadAudio("unsupported Telnyx codec; use PCMU, PCMA or L16 at 8/16/24 kHz")


class TelnyxMediaStream(JsonMediaStream):
    vendor = "telnyx"
    stream_id_key = "stream_id"

    def __init__(self, *, output_format: AudioFormat | None = None) -> None:
        super().__init__()
        self._forced_output = output_format

    def _on_start(self, msg: dict[str, Any]) -> CallStarted:
        start = get_object(msg, "start")
        stream_id = msg.get("stream_id", start.get("stream_id"))
        if not isinstance(stream_id, str) or not stream_id:
            raise BadMessage("`stream_id` must be a non-empty string")
        media_format = start.get("media_format", {"encoding": "PCMU", "sample_rate": 8000})
        if not isinstance(media_format, dict):
            raise BadMessage("`media_format` must be an object")
        if media_format.get("channels", 1) != 1:
            raise BadAudio("Telnyx media must be mono")
        fmt = telnyx_format(media_format.get("encoding", "PCMU"), media_format.get("sample_rate", 8000))
        return self._started(
            stream_id=stream_id,
            call_id=get_str(start, "call_control_id", default=""),
            params=_custom_parameters(start.get("custom_parameters")),
            input_format=fmt,
            output_format=self._forced_output or fmt,
        )

    def _on_event(self, event: str, msg: dict[str, Any]) -> list[TelephonyEvent]:
        if event == "error":
            return [TelephonyError(_error_reason(msg))]
        return super()._on_event(event, msg)

    def _inbound_audio(self, payload: bytes) -> bytes:
        assert self.input_format is not None
        if self.input_format.encoding == "pcm16":
            if len(payload) % 2:
                raise BadAudio("L16 payload has an odd number of bytes")
            return swap_bytes16(payload)
        return payload

    def _media_message(self, frame: bytes) -> Frame:
        # Per outbound frame: a template instead of two dicts and orjson (Telnyx's media carries no id)
        assert self.output_format is not None
        if self.output_format.encoding == "pcm16":
            frame = swap_bytes16(frame)
        return '{"event":"media","media":{"payload":"' + pybase64.b64encode_as_string(frame) + '"}}'

    def _envelope(self, message: dict[str, Any]) -> str:
        return orjson.dumps(message).decode()


def _custom_parameters(raw: object) -> dict[str, str]:
    # Shape [unsure]: accept an object, or TeXML-style [{"name": ..., "value": ...}].
    if isinstance(raw, list):
        out: dict[str, str] = {}
        for item in raw:
            if not isinstance(item, dict):
                raise BadMessage("`custom_parameters` entries must be objects")
            out[get_str(item, "name")] = get_str(item, "value", default="")
        return out
    return string_params(raw, what="`custom_parameters`")


def _error_reason(msg: dict[str, Any]) -> str:
    # Shape [unsure]: take short scalar fields from `payload` or `error`, never the whole message.
    parts: list[str] = []
    for key in ("payload", "error"):
        body = msg.get(key)
        if isinstance(body, dict):
            parts += [str(body[k]) for k in ("code", "title", "detail", "message")
                      if isinstance(body.get(k), str | int) and not isinstance(body.get(k), bool)]
    return " ".join(parts)[:200] or "Telnyx reported an error on the media stream"
