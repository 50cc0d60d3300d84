"""Reply audio on its way to the client: converted from the provider's format to the call's output
format and handed to the client's sink — or, when the client asked for it, as `audio.delta` events.

Invariants: one converter per reply format, kept across chunks (no click at chunk boundaries); a
sink that needs exact frames gets whole frames from the first chunk on (the resampler is primed
with its own delay in silence); a barge-in drops what the converter holds, a switch sends it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pybase64

from audio.convert import FormatConverter
from audio.formats import AudioFormat
from audio.resample import group_delay_s
from gateway.events import AudioDelta, ClientEvent
from gateway.sink import ClientSink


class ReplyPlayback:
    def __init__(self, *, sink: ClientSink, output_format: AudioFormat, json_audio: bool,
                 emit: Callable[[ClientEvent], Awaitable[None]]) -> None:
        self._sink = sink
        self._output = output_format
        self._json = json_audio
        self._emit = emit
        self._conv: FormatConverter | None = None
        self._fmt: AudioFormat | None = None

    def play(self, provider: str, data: bytes, fmt: AudioFormat, item_id: str | None) -> Awaitable[None] | None:
        """Convert a reply chunk and send it; returns None, or what to await (the sink's send, when
        it must wait: gateway/ws_direct.py)."""
        conv = self._conv
        if conv is None or (self._fmt is not fmt and self._fmt != fmt):  # adapters reuse their format objects
            conv = self._conv = FormatConverter(fmt, self._output)
            self._fmt = fmt
            if self._sink.exact_frames and fmt.encoding == "pcm16":
                # Telephony sends exact 20 ms frames: feed the resampler its hold-back as leading
                # silence, so every whole 20 ms in gives whole 20 ms out from the first chunk on
                # (otherwise each frame waits for the next reply: +20 ms on every frame).
                lead = round(group_delay_s(fmt.sample_rate_hz, self._output.sample_rate_hz) * fmt.sample_rate_hz)
                conv.convert(b"\x00\x00" * lead)
        out = data  # the same format both sides: no call
        if not conv.identity:
            convert = conv.convert  # (a callable attribute: `conv.convert(…)` is not specialised on 3.11)
            out = convert(data)
        if not out:
            return None
        if self._json:
            return self._emit(AudioDelta(provider=provider, audio=pybase64.b64encode_as_string(out)))
        return self._sink.send_audio_now(out, item_id)

    def drop(self) -> None:
        """Barge-in: what the converter holds is never played."""
        self._conv = None

    async def flush(self, provider: str, item_id: str | None) -> None:
        """A switch (unlike a barge-in) keeps what the old provider already said: send the few ms
        the old reply resampler still holds before a new one replaces it."""
        conv, self._conv = self._conv, None
        tail = conv.flush() if conv is not None else b""
        if tail:
            await self._send(provider, tail, item_id)

    async def _send(self, provider: str, audio: bytes, item_id: str | None) -> None:
        if self._json:
            await self._emit(AudioDelta(provider=provider, audio=pybase64.b64encode_as_string(audio)))
        else:
            await self._sink.send_audio(audio, item_id)
