"""One fake OpenAI Realtime session (GA interface) on one socket: the client-event dispatch,
session updates and expiry, input audio with server VAD over the DTMF dialect, and conversation
items; the responses are in providers/fakes/openai_responses.py (docs/providers/openai.md).

Its state changes only under its lock (timers and faults run as separate tasks); all timing
decisions use input stream time.
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

from providers.fakes.common import ConnectionRecord, DialectRecognizer, FakeServer, SpeechStart, Utterance
from providers.fakes.openai_audio_wire import InputDecoder, SpokenReply, recognize_buffer
from providers.fakes.openai_items import RealtimeItems
from providers.fakes.openai_response_wire import ResponseOptions, transcription_usage
from providers.fakes.openai_responses import RealtimeResponses, Reply, UserTurn
from providers.fakes.openai_session_wire import apply_session_update, default_session
from providers.fakes.openai_wire import (
    DEFAULT_MODEL,
    MIN_COMMIT_MS,
    SESSION_EXPIRED_MESSAGE,
    SESSION_MAX_S,
    Ids,
    WireError,
    audio_format,
    error_payload,
)

BETA_MESSAGE = "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
SEMANTIC_EAGERNESS_SILENCE_MS = {"low": 1000, "medium": 500, "auto": 500, "high": 300}


class RealtimeConnection(RealtimeItems, RealtimeResponses):
    """One GA Realtime session on one socket."""

    def __init__(self, server: FakeServer, ws: ServerConnection, record: ConnectionRecord) -> None:
        self.server, self.ws, self.record = server, ws, record
        self.ids = Ids(random.Random(server.seed * 1_000_003 + record.number))
        self.lock = asyncio.Lock()
        self.model = record.query.get("model", "")
        self.session = default_session(session_id=self.ids.new("sess"), model=self.model or DEFAULT_MODEL,
                                       expires_at=int(time.time()) + SESSION_MAX_S)
        self.conversation_id = self.ids.new("conv")
        self.items: list[dict[str, Any]] = []
        self.user_turns: dict[str, UserTurn] = {}
        self.reply_audio: dict[str, SpokenReply] = {}  # assistant item id -> what it said
        self.decoder = InputDecoder(audio_format(self.session["audio"]["input"]["format"]))
        self.buffer = bytearray()  # PCM16 input since the last commit
        self.input_s = 0.0  # stream time: seconds of input audio received
        self.recognizer: DialectRecognizer | None = None
        self.recognizer_offset_s = 0.0
        self.speech_item_id: str | None = None
        self.response: Reply | None = None
        self.audio_sent = False
        self.tasks: set[asyncio.Task[None]] = set()
        record.extra.update(session=self.session, conversation=self.items, truncations=[], responses=[])
        self.handlers = {
            "session.update": self.on_session_update,
            "input_audio_buffer.append": self.on_append,
            "input_audio_buffer.commit": self.on_commit,
            "input_audio_buffer.clear": self.on_clear,
            "conversation.item.create": self.on_item_create,
            "conversation.item.retrieve": self.on_item_retrieve,
            "conversation.item.delete": self.on_item_delete,
            "conversation.item.truncate": self.on_item_truncate,
            "response.create": self.on_response_create,
            "response.cancel": self.on_response_cancel,
        }

    # -- plumbing -------------------------------------------------------------------------------------
    async def emit(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "event_id": self.ids.new("event"), **fields}
        await self.server.send(self.ws, orjson.dumps(event).decode())

    async def error(self, err: WireError, client_event_id: str | None = None) -> None:
        await self.emit("error", error=error_payload(err, client_event_id))

    async def fatal(self, err: WireError, close_code: int) -> None:
        """§4: fatal request errors send `error`, then close with reason `<type>.<code>`."""
        await self.error(err)
        await self.ws.close(close_code, f"{err.type}.{err.code}")

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def run(self) -> None:
        if self.record.extra.get("beta"):
            return await self.fatal(WireError("beta_api_shape_disabled", BETA_MESSAGE), 4000)
        if not self.record.extra.get("key_ok"):
            return await self.fatal(WireError("invalid_api_key", "Incorrect API key provided. You can find your "
                                              "API key at https://platform.openai.com/account/api-keys."), 3000)
        if not self.model:  # [unsure] the SDK always sends one; treated as a fatal request error (§4)
            return await self.fatal(WireError("missing_required_parameter", "Missing required parameter: 'model'.",
                                              "model"), 4000)
        await self.emit("session.created", session=self.session)
        await self.server.session_ready(self.ws, self.record)
        if self.server.max_session_s is not None:
            self.spawn(self.expire_after(self.server.max_session_s))
        try:
            async for message in self.ws:
                async with self.lock:
                    audio_bytes = await self.on_message(message)
                await self.server.fault_tick(self.ws, self.record, messages=1, audio_bytes=audio_bytes)
        finally:
            for task in list(self.tasks):
                task.cancel()

    async def on_message(self, message: str | bytes) -> int:
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            self.record.messages.append(message if isinstance(message, str) else repr(message[:64]))
            await self.error(WireError("invalid_json", "We could not parse the JSON body of your request. The "
                                       "Realtime API expects each message to be a JSON object."))
            return 0
        self.record.messages.append(event)
        client_event_id = event.get("event_id") if isinstance(event, dict) else None
        try:
            if not isinstance(event, dict):
                raise WireError("invalid_type", "Invalid type for event: expected an object.", None)
            kind = event.get("type")
            if kind is None:
                raise WireError("missing_required_parameter", "Missing required parameter: 'type'.", "type")
            handler = self.handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                supported = ", ".join(f"'{name}'" for name in self.handlers)
                raise WireError("invalid_value", f"Invalid value: '{kind}'. Supported values are: {supported}.",
                                "type")
            return await handler(event) or 0
        except WireError as err:
            await self.error(err, client_event_id)
            return 0

    # -- session ----------------------------------------------------------------------------------------
    @property
    def turn_detection(self) -> dict[str, Any] | None:
        return self.session["audio"]["input"]["turn_detection"]

    async def on_session_update(self, event: dict[str, Any]) -> None:
        if "session" not in event:
            raise WireError("missing_required_parameter", "Missing required parameter: 'session'.", "session")
        old = self.session
        self.session = apply_session_update(old, event["session"], audio_sent=self.audio_sent)
        self.record.setup = event["session"]
        self.record.extra["session"] = self.session
        if self.session["audio"]["input"]["format"] != old["audio"]["input"]["format"]:
            self.decoder = InputDecoder(audio_format(self.session["audio"]["input"]["format"]))
            self.buffer.clear()
            self.recognizer = None
        if self.session["audio"]["input"]["turn_detection"] != old["audio"]["input"]["turn_detection"]:
            self.recognizer = None  # re-created with the new end-of-turn silence at the next append
        await self.emit("session.updated", session=self.session)

    async def expire_after(self, seconds: float) -> None:
        await self.server.clock.sleep(seconds)
        await self.expire()

    async def expire(self) -> None:
        """§4: `error` session_expired, then close 1001 with the same message."""
        async with self.lock:
            self.record.extra["expired"] = True
            await self.error(WireError("session_expired", SESSION_EXPIRED_MESSAGE))
            await self.ws.close(1001, SESSION_EXPIRED_MESSAGE)

    # -- input audio ------------------------------------------------------------------------------------
    async def on_append(self, event: dict[str, Any]) -> int:
        audio = event.get("audio")
        if audio is None:
            raise WireError("missing_required_parameter", "Missing required parameter: 'audio'.", "audio")
        if not isinstance(audio, str):
            raise WireError("invalid_type", "Invalid type for 'audio': expected a string.", "audio")
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise WireError("invalid_value", "Invalid 'audio'. Expected base64-encoded audio bytes.", "audio") from None
        pcm = self.decoder.decode(raw)  # §2.1: no acknowledgement for append
        if not self.record.audio:
            self.record.audio_rate_hz = self.decoder.rate_hz
        self.record.audio += pcm
        self.record.audio_chunks += 1
        self.buffer += pcm
        self.input_s += len(pcm) / 2 / self.decoder.rate_hz
        if self.turn_detection is not None:
            await self.listen(pcm)
        elif self.response is not None:
            await self.finish_if_played(self.input_s)
        return len(raw)

    def end_silence_ms(self) -> int:
        td = self.turn_detection or {}
        if td.get("type") == "semantic_vad":
            return SEMANTIC_EAGERNESS_SILENCE_MS.get(td.get("eagerness", "auto"), 500)
        return int(td.get("silence_duration_ms") or 500)

    async def listen(self, pcm: bytes) -> None:
        """Server VAD over the DTMF dialect (§2.3): speech_started … committed, then the response."""
        if self.recognizer is None:
            self.recognizer = DialectRecognizer(self.decoder.rate_hz, end_silence_ms=self.end_silence_ms())
            self.recognizer_offset_s = self.input_s - len(pcm) / 2 / self.decoder.rate_hz
        offset = self.recognizer_offset_s
        for ev in self.recognizer.feed(pcm):
            if isinstance(ev, SpeechStart):
                await self.finish_if_played(offset + ev.at_s)
                await self.on_speech_start(offset + ev.at_s)
            elif isinstance(ev, Utterance):
                heard_at_s = offset + ev.end_s + self.recognizer.end_silence_s
                await self.finish_if_played(heard_at_s)
                await self.on_utterance(ev, heard_at_s)
        await self.finish_if_played(self.input_s)
        if not self.recognizer.in_utterance:  # keep only what prefix padding would include
            keep = int(self.decoder.rate_hz * 2 * (self.turn_detection or {}).get("prefix_padding_ms", 300) / 1000)
            del self.buffer[: max(0, len(self.buffer) - keep)]

    async def on_speech_start(self, at_s: float) -> None:
        self.speech_item_id = self.ids.new("item")
        padding_ms = (self.turn_detection or {}).get("prefix_padding_ms", 300) or 0
        await self.emit("input_audio_buffer.speech_started", audio_start_ms=max(0, round(at_s * 1000) - padding_ms),
                        item_id=self.speech_item_id)
        if self.response is not None and (self.turn_detection or {}).get("interrupt_response", True):
            await self.finish_response("cancelled", "turn_detected")  # barge-in (§2.3)

    async def on_utterance(self, utterance: Utterance, heard_at_s: float) -> None:
        item_id = self.speech_item_id or self.ids.new("item")
        self.speech_item_id = None
        await self.emit("input_audio_buffer.speech_stopped", audio_end_ms=round(heard_at_s * 1000), item_id=item_id)
        digits = utterance.text if utterance.is_dtmf else ""
        heard = None if digits else await self.server.hear(self.record, utterance.audio, self.decoder.rate_hz)
        await self.commit_user_turn(item_id, UserTurn(digits, b"" if digits else utterance.audio,
                                                      self.decoder.rate_hz, heard or ""),
                                    utterance.end_s - utterance.start_s)
        self.buffer.clear()
        if (self.turn_detection or {}).get("create_response", True):
            if self.response is not None:  # interrupt_response off: let the old reply finish first
                await self.finish_response("completed")
            await self.start_response(ResponseOptions())

    async def commit_user_turn(self, item_id: str, turn: UserTurn, duration_s: float) -> None:
        previous = self.items[-1]["id"] if self.items else None
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}
        self.items.append(item)
        self.user_turns[item_id] = turn
        if turn.digits:
            self.record.digits += turn.digits
            self.record.transcripts.append(turn.digits)
        await self.emit("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        await self.emit("conversation.item.added", previous_item_id=previous, item=item)
        await self.emit("conversation.item.done", previous_item_id=previous, item=item)
        transcription = self.session["audio"]["input"]["transcription"]
        if transcription is None:  # input transcription is off unless the session asks for it
            return
        words = turn.digits or turn.text
        for delta in (turn.digits or ([turn.text] if turn.text else [])):
            await self.emit("conversation.item.input_audio_transcription.delta", item_id=item_id, content_index=0,
                            delta=delta)
        item["content"][0]["transcript"] = words
        await self.emit("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0,
                        transcript=words,
                        usage=transcription_usage(transcription.get("model"), duration_s, words))

    async def on_commit(self, event: dict[str, Any]) -> None:
        buffered_ms = len(self.buffer) / 2 / self.decoder.rate_hz * 1000
        if buffered_ms < MIN_COMMIT_MS:
            raise WireError("input_audio_buffer_commit_empty", "Error committing input audio buffer: buffer too "
                            f"small. Expected at least 100ms of audio, but buffer only has {buffered_ms:.2f}ms of "
                            "audio.", None)
        digits, plain = recognize_buffer(bytes(self.buffer), self.decoder.rate_hz, self.end_silence_ms())
        item_id = self.speech_item_id or self.ids.new("item")
        self.speech_item_id = None
        heard = None if digits or not plain else await self.server.hear(self.record, plain, self.decoder.rate_hz)
        await self.commit_user_turn(item_id, UserTurn(digits, b"" if digits else plain, self.decoder.rate_hz,
                                                      heard or ""), buffered_ms / 1000)
        self.buffer.clear()
        self.recognizer = None  # a manual commit ends any turn the VAD was following

    async def on_clear(self, event: dict[str, Any]) -> None:
        self.buffer.clear()
        self.recognizer = None
        self.speech_item_id = None
        await self.emit("input_audio_buffer.cleared")
