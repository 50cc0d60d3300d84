"""Fake OpenAI Realtime server (GA interface) speaking the DTMF dialect.

Wire reference: docs/providers/openai.md (section numbers below refer to it).
Invariants: every server event is a GA event that validates against the openai SDK's models; all timing
decisions (VAD, barge-in, "is the reply still playing") use input stream time, so a client streaming
faster than real time gets the same events; one connection is served by one `RealtimeConnection`, whose
state changes only under its lock (timers and faults run as separate tasks).

Per-connection state for tests lives in `record.extra`: "session" (effective GA session), "conversation"
(the ordered item list), "truncations", "responses" ([{id, status, reason, transcript}]).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from audio.convert import convert
from audio.formats import AudioFormat
from providers.fakes.common import (
    ConnectionRecord,
    DialectRecognizer,
    FakeServer,
    Fault,
    SpeechStart,
    Utterance,
    header,
)
from providers.fakes.openai_wire import (
    DEFAULT_MODEL,
    MIN_COMMIT_MS,
    RATE_LIMITS,
    SESSION_EXPIRED_MESSAGE,
    SESSION_MAX_S,
    Ids,
    InputDecoder,
    ResponseOptions,
    SpokenReply,
    WireError,
    apply_session_update,
    audio_format,
    default_session,
    error_payload,
    parse_response_options,
    recognize_buffer,
    render_reply,
    response_object,
    transcription_usage,
    usage,
    validate_client_item,
)

BETA_MESSAGE = "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
KEYPAD_CHARACTERS = "0123456789*#"
SEMANTIC_EAGERNESS_SILENCE_MS = {"low": 1000, "medium": 500, "auto": 500, "high": 300}


def _credentials(request: Request) -> tuple[str | None, str, bool]:
    """(key, how it was sent, beta shape requested) — §1: Bearer header or browser subprotocols."""
    offered = [p.strip() for value in request.headers.get_all("Sec-WebSocket-Protocol") for p in value.split(",")]
    beta = "realtime=v1" in (header(request, "OpenAI-Beta") or "") or "openai-beta.realtime-v1" in offered
    auth = header(request, "Authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), "header:authorization", beta
    for proto in offered:
        if proto.startswith("openai-insecure-api-key."):
            return proto.removeprefix("openai-insecure-api-key."), "subprotocol", beta
    return None, "none", beta


class FakeOpenAI(FakeServer):
    """`wss://api.openai.com/v1/realtime?model=...` on loopback.

    max_session_s: wall-time cap after which the session expires (§4: error `session_expired`, close 1001).
    reply_playback_factor: wall seconds a reply "plays" per second of reply audio when no input audio moves
      stream time forward (0 = replies complete as soon as their audio is sent)."""

    provider = "openai"

    def __init__(self, *, max_session_s: float | None = None, reply_playback_factor: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_session_s = max_session_s
        self.reply_playback_factor = reply_playback_factor
        self._live_sessions: dict[int, RealtimeConnection] = {}

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        if record.path.rstrip("/") != "/v1/realtime":
            return connection.respond(404, self.refusal_body(404))
        key, how, beta = _credentials(request)
        record.auth = how
        # §4: a bad key still gets the upgrade; the session then sends `error` and closes 3000.
        record.extra.update(key_ok=self.key_ok(key), beta=beta)
        return None

    def select_subprotocol(self, connection: ServerConnection, offered: Any) -> str | None:
        return "realtime" if "realtime" in offered else None

    def refusal_body(self, status: int) -> str:
        code, kind, message = {
            401: ("invalid_api_key", "invalid_request_error", "Incorrect API key provided."),
            403: ("model_not_found", "invalid_request_error", "You do not have access to this model."),
            404: ("not_found", "invalid_request_error", "Not found."),
            429: ("rate_limit_exceeded", "requests", "Rate limit reached for requests."),
            500: ("server_error", "server_error", "The server had an error while processing your request."),
            503: ("overloaded", "server_error", "The engine is currently overloaded, please try again later."),
        }.get(status, ("error", "server_error", "Error."))
        return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).decode()

    async def handler(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        session = RealtimeConnection(self, ws, record)
        self._live_sessions[record.number] = session
        try:
            await session.run()
        finally:
            self._live_sessions.pop(record.number, None)

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        session = self._live_sessions.get(record.number)
        if session is None:
            return
        if fault.kind == "expire":
            await session.expire()
        elif fault.kind == "malformed":
            await self.send(ws, '{"type": "response.output_audio.delta", "event_id": "event_')
        # `goaway` is Gemini-only: OpenAI has no such message, so the fault does nothing here.


@dataclass(slots=True)
class Reply:
    """One response in flight. Audio replies stay active until they have "played" (stream time)."""

    id: str
    item: dict[str, Any]
    modalities: list[str]
    out_format: dict[str, Any]
    voice: str
    in_conversation: bool
    metadata: dict[str, str] | None
    spoken: SpokenReply
    play_end_s: float = 0.0
    timer: asyncio.Task[None] | None = None


@dataclass(slots=True)
class UserTurn:
    digits: str
    audio: bytes  # PCM16 at `rate_hz`, for the parrot echo of plain speech
    rate_hz: int
    text: str = ""  # plain speech as the speech engine heard it (providers/fakes/speech.py)


@dataclass(slots=True)
class ReplyPlan:
    digits: str = ""
    echo: bytes = b""
    echo_rate_hz: int = 24000
    call: tuple[str, str] | None = None  # (tool name, digits) for a function call
    heard: str | None = None  # answer this transcript in synthesized speech (a fake with a speech engine)


class RealtimeConnection:
    """One GA Realtime session on one socket."""

    def __init__(self, server: FakeOpenAI, ws: ServerConnection, record: ConnectionRecord) -> None:
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

    # -- conversation items -----------------------------------------------------------------------------
    def find_item(self, item_id: Any) -> dict[str, Any] | None:
        return next((item for item in self.items if item["id"] == item_id), None)

    def _no_item(self, param: str, item_id: Any) -> WireError:  # [unsure] exact real code/message
        return WireError("invalid_value", f"Invalid '{param}': no conversation item with id '{item_id}'.", param)

    async def on_item_create(self, event: dict[str, Any]) -> None:
        if "item" not in event:
            raise WireError("missing_required_parameter", "Missing required parameter: 'item'.", "item")
        item = validate_client_item(event["item"])
        item_id = item.get("id") or self.ids.new("item")
        if self.find_item(item_id) is not None:
            raise WireError("invalid_value", f"Item with id '{item_id}' already exists.", "item.id")
        after = event.get("previous_item_id")
        if after is None:
            index = len(self.items)
        elif after == "root":  # §2.1: insert at the beginning
            index = 0
        elif (anchor := self.find_item(after)) is not None:
            index = self.items.index(anchor) + 1
        else:
            raise self._no_item("previous_item_id", after)
        stored = {**item, "id": item_id, "object": "realtime.item", "status": "completed"}
        self.items.insert(index, stored)
        self.record.items.append(stored)
        previous = self.items[index - 1]["id"] if index > 0 else None
        await self.emit("conversation.item.added", previous_item_id=previous, item=stored)
        await self.emit("conversation.item.done", previous_item_id=previous, item=stored)

    async def on_item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.find_item(event.get("item_id"))
        if item is None:
            raise self._no_item("item_id", event.get("item_id"))
        await self.emit("conversation.item.retrieved", item=item)

    async def on_item_delete(self, event: dict[str, Any]) -> None:
        item = self.find_item(event.get("item_id"))
        if item is None:
            raise self._no_item("item_id", event.get("item_id"))
        self.items.remove(item)
        await self.emit("conversation.item.deleted", item_id=item["id"])

    async def on_item_truncate(self, event: dict[str, Any]) -> None:
        item_id, content_index, end_ms = event.get("item_id"), event.get("content_index"), event.get("audio_end_ms")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise WireError("invalid_type", "Invalid type for 'audio_end_ms': expected a non-negative integer.",
                            "audio_end_ms")
        item = self.find_item(item_id)
        if item is None:
            raise self._no_item("item_id", item_id)
        spoken = self.reply_audio.get(item_id)
        if spoken is None:  # field report (livekit/agents#6157)
            raise WireError("unsupported_content_type", "Only model output audio messages can be truncated", None)
        if content_index != 0:
            raise WireError("invalid_value", f"Invalid 'content_index': {content_index}.", "content_index")
        if end_ms > spoken.duration_ms:  # field report (twilio-samples python #45)
            raise WireError("invalid_value", f"Audio content of {spoken.duration_ms}ms is already shorter than "
                            f"{end_ms}ms", "audio_end_ms")
        # The server drops the transcript the caller never heard (§2.1).
        item["content"][0]["transcript"] = spoken.heard_until(end_ms)
        self.record.extra["truncations"].append({"item_id": item_id, "content_index": 0, "audio_end_ms": end_ms})
        await self.emit("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms)

    # -- responses ----------------------------------------------------------------------------------------
    async def on_response_create(self, event: dict[str, Any]) -> None:
        options = parse_response_options(event.get("response"))
        if options.in_conversation and self.response is not None:
            raise WireError("conversation_already_has_active_response", "Conversation already has an active "
                            f"response in progress: {self.response.id}. Wait until the response is finished before "
                            "creating a new one.", None)
        await self.start_response(options)

    async def on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self.response is None or (wanted is not None and wanted != self.response.id):
            raise WireError("response_cancel_not_active", "Cancellation failed: no active response found.", None)
        await self.finish_response("cancelled", "client_cancelled")

    def plan_reply(self, tools: list[dict[str, Any]], tool_choice: Any) -> ReplyPlan:
        """What the fake assistant says: the digits of the latest user turn (or the tool call they ask for),
        the digits of a tool call once its output arrived, or an echo of plain speech."""
        for item in reversed(self.items):
            if item["type"] == "function_call_output":
                call = next((i for i in self.items if i["type"] == "function_call"
                             and i.get("call_id") == item["call_id"]), None)
                try:
                    digits = str(orjson.loads(call["arguments"]).get("digits", "")) if call else ""
                except (orjson.JSONDecodeError, AttributeError):
                    digits = ""
                return ReplyPlan(digits=digits)
            if item["type"] == "message" and item["role"] == "user":
                turn = self.user_turns.get(item["id"])
                if turn is None:  # a text turn: its keypad characters are the words (not the letters A-D,
                    # which ordinary text is full of)
                    text = "".join(p.get("text") or "" for p in item["content"] if isinstance(p, dict))
                    turn = UserTurn("".join(c for c in text if c in KEYPAD_CHARACTERS), b"", 24000)
                functions = [t for t in tools if t.get("type") == "function"]
                if turn.digits.endswith("#") and functions and tool_choice != "none":
                    name = tool_choice.get("name") if isinstance(tool_choice, dict) else None
                    return ReplyPlan(call=(name or functions[0]["name"], turn.digits[:-1]))
                if not turn.digits and turn.audio and self.server.speech is not None:
                    return ReplyPlan(heard=turn.text)
                return ReplyPlan(digits=turn.digits, echo=turn.audio, echo_rate_hz=turn.rate_hz)
        return ReplyPlan()

    async def start_response(self, options: ResponseOptions) -> None:
        session_out = self.session["audio"]["output"]
        out_format = options.out_format or session_out["format"]
        plan = self.plan_reply(self.session["tools"] if options.tools is None else options.tools,
                               self.session["tool_choice"] if options.tool_choice is None else options.tool_choice)
        voice = options.voice or session_out["voice"]
        if plan.heard is not None:
            spoken = await self.speak(plan.heard, audio_format(out_format), voice)
        else:
            spoken = render_reply(plan.digits, plan.echo, plan.echo_rate_hz, audio_format(out_format))
        reply = Reply(
            id=self.ids.new("resp"), item={}, out_format=out_format,
            modalities=options.modalities or list(self.session["output_modalities"]),
            voice=voice, in_conversation=options.in_conversation,
            metadata=options.metadata, spoken=spoken,
        )
        await self.emit("response.created", response=self.response_body(reply, "in_progress", []))
        await self.emit("rate_limits.updated", rate_limits=RATE_LIMITS)
        if plan.call is not None:
            return await self.run_function_call(reply, *plan.call)
        reply.item = {"id": self.ids.new("item"), "object": "realtime.item", "type": "message",
                      "status": "in_progress", "role": "assistant", "content": []}
        await self.add_output_item(reply)
        if reply.in_conversation:
            self.response = reply
        if "audio" in reply.modalities:
            await self.stream_audio(reply)
        else:
            await self.stream_text(reply)

    async def speak(self, heard: str, out_fmt: AudioFormat, voice: str) -> SpokenReply:
        """The speech engine's answer to `heard`, in `out_fmt`; each transcript character's onset spread
        evenly over the audio (good enough for truncation to cut near what the caller heard)."""
        rate = out_fmt.sample_rate_hz
        text, pcm = await self.server.speak(self.record, heard, rate, voice)
        audio = convert(pcm, AudioFormat(encoding="pcm16", sample_rate_hz=rate), out_fmt) if pcm else b""
        duration_ms = len(audio) * 1000 // out_fmt.bytes_per_second
        onsets = tuple(i * duration_ms // max(1, len(text)) for i in range(len(text)))
        return SpokenReply(text, audio, out_fmt.bytes_per_second, onsets)

    def response_body(self, reply: Reply, status: str, output: list[dict[str, Any]], *,
                      details: dict[str, Any] | None = None, done: bool = False) -> dict[str, Any]:
        spoken = reply.spoken
        return response_object(
            response_id=reply.id, status=status, output=output, status_details=details,
            conversation_id=self.conversation_id if reply.in_conversation else None, modalities=reply.modalities,
            out_format=reply.out_format, voice=reply.voice, metadata=reply.metadata,
            usage=usage(10 + len(self.record.digits), len(spoken.transcript), spoken.duration_ms // 50) if done
            else None)

    async def add_output_item(self, reply: Reply) -> None:
        await self.emit("response.output_item.added", response_id=reply.id, output_index=0, item=reply.item)
        if reply.in_conversation:
            previous = self.items[-1]["id"] if self.items else None
            self.items.append(reply.item)
            await self.emit("conversation.item.added", previous_item_id=previous, item=reply.item)

    def _part_ids(self, reply: Reply) -> dict[str, Any]:
        return {"response_id": reply.id, "item_id": reply.item["id"], "output_index": 0, "content_index": 0}

    async def stream_audio(self, reply: Reply) -> None:
        """§2.3: audio deltas (100 ms chunks, as fast as produced) interleaved with transcript deltas. The
        closing half of the ladder waits until the reply has played, so new speech can still cancel it."""
        ids = self._part_ids(reply)
        await self.emit("response.content_part.added", **ids, part={"type": "audio", "transcript": ""})
        for chunk, words in reply.spoken.chunks():
            for word in words:
                await self.emit("response.output_audio_transcript.delta", **ids, delta=word)
            if chunk:
                await self.emit("response.output_audio.delta", **ids, delta=base64.b64encode(chunk).decode())
                self.audio_sent = True
        if reply.in_conversation:
            self.reply_audio[reply.item["id"]] = reply.spoken
        duration_s = reply.spoken.duration_ms / 1000
        reply.play_end_s = self.input_s + duration_s
        if not reply.in_conversation or duration_s == 0 or self.server.reply_playback_factor <= 0:
            return await self.finish_response("completed", reply=reply)
        reply.timer = self.spawn(self.finish_after(reply, duration_s * self.server.reply_playback_factor))

    async def stream_text(self, reply: Reply) -> None:
        ids = self._part_ids(reply)
        await self.emit("response.content_part.added", **ids, part={"type": "text", "text": ""})
        for word in reply.spoken.transcript:
            await self.emit("response.output_text.delta", **ids, delta=word)
        await self.finish_response("completed", reply=reply)

    async def finish_after(self, reply: Reply, wall_s: float) -> None:
        """Nobody is moving stream time forward: the reply finishes playing in wall time instead."""
        await self.server.clock.sleep(wall_s)
        async with self.lock:
            if self.response is reply:
                reply.timer = None
                await self.finish_response("completed")

    async def finish_if_played(self, now_s: float) -> None:
        if self.response is not None and self.response.play_end_s and now_s >= self.response.play_end_s:
            await self.finish_response("completed")

    async def finish_response(self, status: str, reason: str | None = None, *, reply: Reply | None = None) -> None:
        """The closing half of the ladder (§2.3), for a finished or cancelled reply."""
        reply = reply or self.response
        if reply is None:
            return
        if self.response is reply:
            self.response = None
        if reply.timer is not None and reply.timer is not asyncio.current_task():
            reply.timer.cancel()
        ids, text = self._part_ids(reply), reply.spoken.transcript
        if "audio" in reply.modalities:
            await self.emit("response.output_audio.done", **ids)
            await self.emit("response.output_audio_transcript.done", **ids, transcript=text)
            part = {"type": "audio", "transcript": text}
            reply.item["content"] = [{"type": "output_audio", "transcript": text}]
        else:
            await self.emit("response.output_text.done", **ids, text=text)
            part = {"type": "text", "text": text}
            reply.item["content"] = [{"type": "output_text", "text": text}]
        await self.emit("response.content_part.done", **ids, part=part)
        reply.item["status"] = "completed" if status == "completed" else "incomplete"
        await self.close_output(reply, status, reason)

    async def close_output(self, reply: Reply, status: str, reason: str | None) -> None:
        await self.emit("response.output_item.done", response_id=reply.id, output_index=0, item=reply.item)
        if reply.in_conversation:
            index = self.items.index(reply.item) if reply.item in self.items else 0
            previous = self.items[index - 1]["id"] if index > 0 else None
            await self.emit("conversation.item.done", previous_item_id=previous, item=reply.item)
        details = {"type": status, "reason": reason} if status != "completed" else None
        await self.emit("response.done", response=self.response_body(reply, status, [reply.item], details=details,
                                                                     done=True))
        self.record.extra["responses"].append({"id": reply.id, "status": status, "reason": reason,
                                               "transcript": reply.spoken.transcript})

    async def run_function_call(self, reply: Reply, name: str, digits: str) -> None:
        """§2.2: a function_call output item, its arguments, response.done; the client then sends a
        `function_call_output` item and `response.create`, which speaks the digits."""
        call_id = self.ids.new("call")
        arguments = orjson.dumps({"digits": digits}).decode()
        reply.item = {"id": self.ids.new("item"), "object": "realtime.item", "type": "function_call",
                      "status": "in_progress", "name": name, "call_id": call_id, "arguments": ""}
        reply.spoken = SpokenReply.silent()
        await self.add_output_item(reply)
        fields = {"response_id": reply.id, "item_id": reply.item["id"], "output_index": 0, "call_id": call_id}
        await self.emit("response.function_call_arguments.delta", **fields, delta=arguments)
        await self.emit("response.function_call_arguments.done", **fields, name=name, arguments=arguments)
        reply.item.update(status="completed", arguments=arguments)
        await self.close_output(reply, "completed", None)

