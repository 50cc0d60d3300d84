"""Twilio Media Streams, bidirectional `<Connect><Stream>` (docs/telephony.md §1).

Audio is G.711 μ-law 8 kHz mono both ways, base64 in JSON text frames. Every outbound message
carries the `streamSid` from `start`; outbound `media` payloads are exactly 160 bytes (20 ms), the
framing Twilio itself uses, so marks land on frame boundaries.
"""

from __future__ import annotations

from typing import Any

import orjson
import pybase64

from audio.formats import MULAW_8K
from gateway.errors import BadAudio, BadMessage
from gateway.telephony.common import CallStarted, JsonMediaStream, get_object, get_str, string_params


class TwilioMediaStream(JsonMediaStream):
    vendor = "twilio"
    stream_id_key = "streamSid"

    def _on_start(self, msg: dict[str, Any]) -> CallStarted:
        start = get_object(msg, "start")
        stream_id = start.get("streamSid", msg.get("streamSid"))
        if not isinstance(stream_id, str) or not stream_id:
            raise BadMessage("`streamSid` must be a non-empty string")
        media_format = start.get("mediaFormat")
        if media_format is not None:
            if not isinstance(media_format, dict):
                raise BadMessage("`mediaFormat` must be an object")
            if (media_format.get("encoding", "audio/x-mulaw") != "audio/x-mulaw"
                    or media_format.get("sampleRate", 8000) != 8000
                    or media_format.get("channels", 1) != 1):
                raise BadAudio("Twilio media must be audio/x-mulaw, 8000 Hz, mono")
        return self._started(
            stream_id=stream_id,
            call_id=get_str(start, "callSid", default=""),
            params=string_params(start.get("customParameters"), what="`customParameters`"),
            input_format=MULAW_8K,
            output_format=MULAW_8K,
        )

    _media_prefix: str | None = None  # built once per stream by _media_message
    _sid_json: str | None = None  # the stream id as a JSON string, built once per stream by mark

    def mark(self, name: str) -> str:
        # One each 100 ms of reply audio: a template, as _envelope would write it (no dicts, one orjson)
        if self._sid_json is None:
            self._sid_json = orjson.dumps(self.stream_id).decode()
        return '{"event":"mark","streamSid":' + self._sid_json + ',"mark":{"name":' + orjson.dumps(name).decode() + '}}'

    def _envelope(self, message: dict[str, Any]) -> str:
        return orjson.dumps({"event": message["event"], "streamSid": self.stream_id,
                             **{k: v for k, v in message.items() if k != "event"}}).decode()

    def _media_message(self, frame: bytes) -> str:
        # Per outbound frame: a template instead of two dicts and orjson (1.8 → 0.3 µs).
        if self._media_prefix is None:  # the vendor's id, JSON-escaped once
            self._media_prefix = '{"event":"media","streamSid":' + orjson.dumps(self.stream_id).decode() + \
                ',"media":{"payload":"'
        return self._media_prefix + pybase64.b64encode_as_string(frame) + '"}}'
