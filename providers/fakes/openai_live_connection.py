"""One fake GPT-Live session on one socket (docs/providers/openai-live.md): the client-event dispatch,
session start, update and close, input audio in the DTMF dialect (or plain speech), and the spoken
replies; delegation and appended context are in providers/fakes/openai_live_delegation.py.

Its state changes only under its lock; the session timeline is input stream time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
import time
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection

from audio.formats import AudioFormat
from providers.fakes.common import (
    ConnectionRecord,
    DialectRecognizer,
    FakeServer,
    PartialWords,
    SpeechStart,
    Utterance,
)
from providers.fakes.openai_audio_wire import TONE_MS, InputDecoder, render_reply
from providers.fakes.openai_live_delegation import LiveDelegation
from providers.fakes.openai_live_wire import (
    SESSION_MAX_S,
    LiveWireError,
    apply_update,
    audio_format,
    function_tools,
    parse_session_start,
    resource,
)
from providers.fakes.openai_wire import Ids

END_SILENCE_MS = 400


class LiveConnection(LiveDelegation):
    """One GPT-Live session on one primary WebSocket."""

    def __init__(self, server: FakeServer, ws: ServerConnection, record: ConnectionRecord) -> None:
        self.server, self.ws, self.record = server, ws, record
        self.ids = Ids(random.Random(server.seed * 1_000_003 + record.number))
        self.lock = asyncio.Lock()
        self.config: dict[str, Any] | None = None
        self.session_id = self.ids.new("sess")
        self.expires_at = int(time.time()) + SESSION_MAX_S
        self.fmt: AudioFormat | None = None
        self.decoder: InputDecoder | None = None
        self.recognizer: DialectRecognizer | None = None
        self.heard = ""  # digits of the current utterance already sent as transcript deltas
        self.heard_end_s = 0.0
        self.reply_end_s = 0.0  # timeline end of the latest reply's last tone
        self.reply_index: int | None = None  # its entry in the conversation record
        self.reply_start_s = 0.0
        self.reply_onsets: tuple[int, ...] = ()
        self.usage_at_s = 0.0
        self.closed = False
        self.pending_calls: dict[str, str] = {}  # function call id → its digits
        self.outputs: dict[str, str] = {}  # call id → function_call_output received
        self.client_delegations: set[str] = set()
        self.conversation: list[dict[str, str]] = []
        record.extra.update(conversation=self.conversation, tool_outputs=[], delegations=[], interruptions=0)
        self.handlers = {
            "session.start": self.on_start,
            "session.update": self.on_update,
            "session.input_audio.append": self.on_append,
            "session.input_audio.mute": self.on_ack("session.input_audio.muted"),
            "session.input_audio.unmute": self.on_ack("session.input_audio.unmuted"),
            "session.instructions.append": self.on_instructions,
            "session.thinking.append": self.on_thinking,
            "session.commentary.append": self.on_commentary,
            "response.item.create": self.on_response_item,
            "response.create": self.on_response_create,
            "session.close": self.on_close,
        }

    # -- plumbing -------------------------------------------------------------------------------------
    @property
    def now_s(self) -> float:
        return self.recognizer.stream_time_s if self.recognizer is not None else 0.0

    @property
    def now_ms(self) -> int:
        return int(self.now_s * 1000)

    async def emit(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "event_id": self.ids.new("event"), **fields}
        await self.server.send(self.ws, orjson.dumps(event).decode())

    async def run(self) -> None:
        async for message in self.ws:
            async with self.lock:
                audio_bytes = await self.on_message(message)
            if self.closed:
                return
            await self.server.fault_tick(self.ws, self.record, messages=1, audio_bytes=audio_bytes)

    async def on_message(self, message: str | bytes) -> int:
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            self.record.messages.append(message if isinstance(message, str) else repr(message[:64]))
            await self.error(LiveWireError("invalid_json", "The message is not valid JSON."), None)
            return 0
        self.record.messages.append(event)
        client_event_id = event.get("event_id") if isinstance(event, dict) else None
        try:
            kind = event.get("type") if isinstance(event, dict) else None
            handler = self.handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise LiveWireError("invalid_event_type", f"Unknown client event type {str(kind)[:40]!r}.", "type")
            if self.config is None and kind != "session.start":
                raise LiveWireError("session_not_started", "Send session.start first.")  # [unsure] code
            return await handler(event)
        except LiveWireError as err:
            await self.error(err, client_event_id if isinstance(client_event_id, str) else None)
            return 0

    async def error(self, err: LiveWireError, client_event_id: str | None) -> None:
        fields: dict[str, Any] = {"error": err.payload(client_event_id)}
        if client_event_id is not None:
            fields["client_event_id"] = client_event_id
        await self.emit("error", **fields)

    def resource(self) -> dict[str, Any]:
        return resource(self.config or {}, session_id=self.session_id, expires_at=self.expires_at)

    # -- session ---------------------------------------------------------------------------------------
    async def on_start(self, event: dict[str, Any]) -> int:
        if self.config is not None:
            raise LiveWireError("session_already_started", "session.start was already accepted.")  # [unsure]
        self.config = parse_session_start(event.get("session"))
        self.record.setup = self.config
        self.record.items = list(self.config.get("input") or [])
        self.fmt = audio_format(self.config["audio"]["format"])
        self.decoder = InputDecoder(self.fmt)
        self.recognizer = DialectRecognizer(self.fmt.sample_rate_hz, end_silence_ms=END_SILENCE_MS)
        self.record.audio_rate_hz = self.fmt.sample_rate_hz
        fields: dict[str, Any] = {"session": self.resource()}
        if isinstance(event.get("event_id"), str):
            fields["client_event_id"] = event["event_id"]
        await self.emit("session.started", **fields)
        await self.server.session_ready(self.ws, self.record)
        return 0

    async def on_update(self, event: dict[str, Any]) -> int:
        assert self.config is not None
        self.config = apply_update(self.config, event.get("session"))
        self.record.setup = self.config
        await self.emit("session.updated", session=self.resource())
        return 0

    def on_ack(self, kind: str) -> Any:
        async def ack(event: dict[str, Any]) -> int:
            await self.emit(kind)
            return 0
        return ack

    async def on_close(self, event: dict[str, Any]) -> int:
        await self.close_session("close_requested")
        return 0

    async def close_session(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self.config is not None:
            await self.emit("session.closed", reason=reason, session=self.resource(),
                            usage={"seconds": float(int(self.now_s))})
        await self.ws.close(1000, reason)

    # -- audio in --------------------------------------------------------------------------------------
    async def on_append(self, event: dict[str, Any]) -> int:
        assert self.decoder is not None and self.recognizer is not None
        audio = event.get("audio")
        try:
            raw = base64.b64decode(audio, validate=True) if isinstance(audio, str) else None
        except (binascii.Error, ValueError):
            raw = None
        if raw is None:
            raise LiveWireError("invalid_value", "audio must be base64-encoded raw audio.", "audio")
        pcm = self.decoder.decode(raw)
        self.record.audio += pcm
        self.record.audio_chunks += 1
        for dialect_event in self.recognizer.feed(pcm):
            await self.on_dialect(dialect_event)
        if self.now_s - self.usage_at_s >= self.server.usage_every_s:
            self.usage_at_s = self.now_s
            await self.emit("session.usage.updated", usage={"seconds": float(int(self.now_s))})
        if self.server.max_session_s is not None and self.now_s >= self.server.max_session_s:
            await self.close_session("expired")
        return len(pcm)

    async def on_dialect(self, event: SpeechStart | PartialWords | Utterance) -> None:
        match event:
            case SpeechStart(at_s=at_s):
                self.heard, self.heard_end_s = "", at_s
                self.cut_reply(at_s)
            case PartialWords(text=text, end_s=end_s):
                new = text[len(self.heard):]
                if new:
                    start_ms = int(self.heard_end_s * 1000)
                    await self.emit("session.input_transcript.delta", delta=new, start_ms=start_ms,
                                    end_ms=max(start_ms, int(end_s * 1000)))
                    self.heard, self.heard_end_s = text, end_s
            case Utterance(text=text, audio=audio, is_dtmf=is_dtmf, start_s=start_s, end_s=end_s):
                self.heard = ""
                if is_dtmf:
                    self.record.digits += text
                    self.record.transcripts.append(text)
                    self.conversation.append({"role": "user", "text": text})
                    await self.respond(text)
                else:
                    await self.answer_speech(audio, start_s, end_s)

    def cut_reply(self, at_s: float) -> None:
        """The caller started speaking over the reply: the model stops; only what sounded is kept."""
        if at_s >= self.reply_end_s or self.reply_index is None:
            return
        heard_ms = (at_s - self.reply_start_s) * 1000
        entry = self.conversation[self.reply_index]
        entry["text"] = entry["text"][: sum(1 for onset in self.reply_onsets if onset < heard_ms)]
        self.reply_end_s = at_s
        self.record.extra["interruptions"] += 1

    # -- replies ---------------------------------------------------------------------------------------
    async def answer_speech(self, audio: bytes, start_s: float, end_s: float) -> None:
        """Plain speech: the shared speech engine's words and spoken answer (providers/fakes/speech.py),
        or the parrot echo when this fake has no engine."""
        assert self.fmt is not None
        rate = self.fmt.sample_rate_hz
        heard = await self.server.hear(self.record, audio, rate)
        if not heard:
            await self.speak("", echo=audio)
            return
        await self.emit("session.input_transcript.delta", delta=heard, start_ms=int(start_s * 1000),
                        end_ms=max(int(start_s * 1000), int(end_s * 1000)))
        self.conversation.append({"role": "user", "text": heard})
        reply, pcm = await self.server.speak(self.record, heard, rate, (self.config or {}).get("voice"))
        start_ms = self.now_ms
        await self.emit("session.output_transcript.delta", delta=reply, start_ms=start_ms, end_ms=start_ms)
        await self.speak("", echo=pcm)
        self.conversation.append({"role": "assistant", "text": reply})

    async def respond(self, digits: str) -> None:
        if digits.endswith("#"):
            tools = function_tools(self.config or {})
            if tools:
                return await self.delegate_to_responses(tools[0]["name"], digits[:-1])
            if ((self.config or {}).get("delegation") or {}).get("type") == "client":
                return await self.delegate_to_client()
        await self.speak(digits)

    async def speak(self, digits: str, *, echo: bytes = b"") -> None:
        """The model's reply, generated at once, placed on the timeline from now."""
        assert self.fmt is not None
        rate = self.fmt.sample_rate_hz
        spoken = render_reply(digits, echo, rate, self.fmt)
        start_s = self.now_s
        onsets = dict(enumerate(spoken.onsets_ms))
        index = 0
        for chunk, words in spoken.chunks():
            for word in words:
                start_ms = int(start_s * 1000) + onsets[index]
                await self.emit("session.output_transcript.delta", delta=word, start_ms=start_ms,
                                end_ms=start_ms + TONE_MS)
                index += 1
            if chunk:  # primary-socket audio deltas carry no event_id and no timestamps
                await self.server.send(self.ws, orjson.dumps({"type": "session.output_audio.delta",
                                                              "delta": base64.b64encode(chunk).decode()}).decode())
        if spoken.transcript:
            self.reply_index = len(self.conversation)
            self.conversation.append({"role": "assistant", "text": spoken.transcript})
        self.reply_start_s, self.reply_onsets = start_s, spoken.onsets_ms
        self.reply_end_s = start_s + spoken.duration_ms / 1000
