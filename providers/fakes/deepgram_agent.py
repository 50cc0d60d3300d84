"""Fake Deepgram Voice Agent server (`/v1/agent/converse`, deepgram.md §5) speaking the DTMF dialect.

Flow: `Welcome` at the upgrade → the client's `Settings` (validated; refused with the real `Error` shape
and the connection ended) → `SettingsApplied` → binary audio both ways plus JSON events. Digits heard
become the user's `ConversationText`; the agent answers by speaking them back as DTMF tones
(`ConversationText` assistant, `AgentStartedSpeaking`, binary audio, `AgentAudioDone`); digits ending in
`#` become a `FunctionCallRequest` and the reply waits for the `FunctionCallResponse`; plain speech is
echoed. Timing decisions (end of utterance, "is the agent still audible" for barge-in) use input stream
time, so results do not depend on how fast a client sends.

Per-connection state for tests in `record.extra`: "settings" (the Settings with endpoint header values
masked), "context" (its agent.context.messages), "replies" (assistant texts spoken), "barge_ins",
"prompts", "speaks", "keepalives". `record.setup` is the masked Settings too; `record.items` the context.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from providers.deepgram_agent_wire import masked_settings
from providers.fakes.common import (
    MAX_REPLY_DIGITS,
    ConnectionRecord,
    DialectEvent,
    DialectRecognizer,
    FakeServer,
    Fault,
    SpeechStart,
    Utterance,
)
from providers.fakes.deepgram_agent_wire import (
    IDLE_CODE,
    IDLE_DESCRIPTION,
    UNMATCHED_TEXT,
    UNPARSABLE,
    AgentSettings,
    SettingsError,
    agent_started_speaking,
    conversation_text,
    error,
    function_call_request,
    parse_settings,
    simple,
    warning,
    welcome,
)
from providers.fakes.deepgram_messages import SPEECH_WORD
from providers.fakes.deepgram_wire import (
    INVALID_CREDENTIALS,
    ListenAudioDecoder,
    ListenParams,
    credential_from,
)
from providers.fakes.openai_audio_wire import render_reply

log = logging.getLogger("providers.fakes.deepgram_agent")

AGENT_PATH = "/v1/agent/converse"
KEYPAD = "0123456789*#"
_MALFORMED = '{"type":"ConversationText","role":'
_ENCODING_NAMES = {"pcm16": "linear16", "mulaw": "mulaw", "alaw": "alaw"}


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class FakeDeepgramAgent(FakeServer):
    """`/v1/agent/converse` on loopback. Beyond the base's arguments: `idle_timeout_s` (wall seconds
    without any client message before the idle Error and close) and `end_silence_ms` (end of utterance)."""

    provider = "deepgram_agent"

    def __init__(self, *, idle_timeout_s: float = 10.0, end_silence_ms: int = 300, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.idle_timeout_s = idle_timeout_s
        self.end_silence_ms = end_silence_ms

    def request_id(self, record: ConnectionRecord) -> str:
        if "request_id" not in record.extra:
            record.extra["request_id"] = _uuid4(self.rng)
        return record.extra["request_id"]

    def refusal_body(self, status: int) -> str:
        return orjson.dumps({"err_code": "REFUSED", "err_msg": f"{status}"}).decode()

    def select_subprotocol(self, connection: ServerConnection, offered: Iterable[str]) -> str | None:
        offered = list(offered)
        return next((marker for marker in ("token", "bearer") if marker in offered), None)

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        self.request_id(record)
        if record.path != AGENT_PATH:
            return connection.respond(404, orjson.dumps({"err_code": "NOT_FOUND",
                                                         "err_msg": f"No such endpoint: {record.path}"}).decode())
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        offered = [p.strip() for p in ",".join(request.headers.get_all("Sec-WebSocket-Protocol")).split(",")
                   if p.strip()]
        if not self.key_ok(credential_from(headers, offered)):
            return connection.respond(401, orjson.dumps({"err_code": "INVALID_AUTH",
                                                         "err_msg": INVALID_CREDENTIALS}).decode())
        scheme = headers.get("authorization", "").split(" ", 1)[0].lower()
        record.auth = f"header:authorization-{scheme}" if scheme in ("token", "bearer") else "subprotocol"
        return None

    def decorate_response(self, connection: ServerConnection, request: Request, response: Response,
                          record: ConnectionRecord) -> None:
        response.headers["dg-request-id"] = self.request_id(record)

    async def handler(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        await AgentConnection(self, ws, record).run()

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        """malformed → a truncated ConversationText; expire → the idle-timeout Error and close; goaway
        has no agent equivalent and is ignored."""
        if fault.kind == "malformed":
            await self.send(ws, _MALFORMED)
        elif fault.kind == "expire":
            await self.send(ws, orjson.dumps(error(IDLE_CODE, IDLE_DESCRIPTION)).decode())
            record.closed_by = "fault"
            await ws.close(1000)
        else:
            log.info("fake deepgram agent conn %d: fault %s has no agent form; ignored", record.number, fault.kind)


class AgentConnection:
    """One agent session: Settings, then audio and control messages, answered in the DTMF dialect."""

    def __init__(self, server: FakeDeepgramAgent, ws: ServerConnection, record: ConnectionRecord) -> None:
        self.server, self.ws, self.record = server, ws, record
        self.settings: AgentSettings | None = None
        self.decoder: ListenAudioDecoder | None = None
        self.recognizer: DialectRecognizer | None = None
        self.input_s = 0.0  # seconds of input audio received (stream time)
        self.audible_until_s = 0.0  # stream time until which the last reply plays at the caller
        self.pending_calls: dict[str, str] = {}  # FunctionCallRequest id → the digits to speak after it
        self.calls = 0
        record.extra.update(replies=[], barge_ins=0, prompts=[], speaks=[], keepalives=0, context=[])

    async def emit(self, message: dict[str, Any]) -> None:
        await self.server.send(self.ws, orjson.dumps(message).decode())

    async def run(self) -> None:
        await self.emit(welcome(self.server.request_id(self.record)))
        while True:
            try:
                async with asyncio.timeout(self.server.idle_timeout_s):
                    frame = await self.ws.recv()
            except TimeoutError:
                await self.emit(error(IDLE_CODE, IDLE_DESCRIPTION))
                self.record.closed_by = "server"
                await self.ws.close(1000)
                return
            if isinstance(frame, bytes):
                if self.settings is None:  # audio before Settings cannot be interpreted
                    await self.refuse(SettingsError("Settings").message())
                    return
                await self.server.fault_tick(self.ws, self.record, audio_bytes=await self.on_audio(frame))
                continue
            try:
                message = orjson.loads(frame)
            except orjson.JSONDecodeError:
                message = None
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "Settings" and self.settings is None:
                if not await self.on_settings(message):  # type: ignore[arg-type]
                    return
            else:
                self.record.messages.append(message if message is not None else frame)
                if self.settings is None:
                    await self.refuse(error(UNPARSABLE, UNMATCHED_TEXT))
                    return
                await self.on_control(kind, message)
            await self.server.fault_tick(self.ws, self.record)

    async def refuse(self, message: dict[str, Any]) -> None:
        await self.emit(message)
        self.record.closed_by = "server"
        await self.ws.close(1000)

    async def on_settings(self, message: dict[str, Any]) -> bool:
        masked = masked_settings(message)  # LLM keys in think endpoint headers are never recorded
        self.record.messages.append(masked)
        self.record.setup = masked
        self.record.extra["settings"] = masked
        try:
            settings = parse_settings(message)
        except SettingsError as exc:
            await self.refuse(exc.message())
            return False
        self.settings = settings
        self.record.items = list(settings.context)
        self.record.extra["context"] = list(settings.context)
        fmt = settings.input_format
        self.decoder = ListenAudioDecoder(ListenParams(encoding=_ENCODING_NAMES[fmt.encoding],
                                                       sample_rate_hz=fmt.sample_rate_hz))
        self.record.audio_rate_hz = fmt.sample_rate_hz
        await self.emit(simple("SettingsApplied"))
        await self.server.session_ready(self.ws, self.record)
        if settings.greeting:
            await self.speak(settings.greeting, "", b"", fmt.sample_rate_hz)
        return True

    # -- audio ----------------------------------------------------------------------------------------
    async def on_audio(self, frame: bytes) -> int:
        assert self.decoder is not None
        pcm = self.decoder.feed(frame)
        self.record.audio += pcm
        self.record.audio_chunks += 1
        rate = self.decoder.sample_rate_hz
        if self.recognizer is None:
            self.recognizer = DialectRecognizer(rate, end_silence_ms=self.server.end_silence_ms)
        self.input_s += len(pcm) / 2 / rate
        await self.on_dialect(self.recognizer.feed(pcm), rate)
        return len(pcm)

    async def on_dialect(self, events: list[DialectEvent], rate: int) -> None:
        for ev in events:
            if isinstance(ev, SpeechStart):
                await self.on_speech_start(ev.at_s)
            elif isinstance(ev, Utterance):
                await self.on_utterance(ev, rate)

    async def on_speech_start(self, at_s: float) -> None:
        if at_s < self.audible_until_s:  # the caller talks over the agent: barge-in
            self.record.extra["barge_ins"] += 1
            self.audible_until_s = at_s
        await self.emit(simple("UserStartedSpeaking"))

    async def on_utterance(self, utterance: Utterance, rate: int) -> None:
        # plain speech: the shared speech engine's words (providers/fakes/speech.py), when this fake has one
        heard = None if utterance.is_dtmf else await self.server.hear(self.record, utterance.audio, rate)
        if heard:
            await self.emit(conversation_text("user", heard))
            assert self.settings is not None
            out_rate = self.settings.output_format.sample_rate_hz
            reply, pcm = await self.server.speak(self.record, heard, out_rate)
            await self.speak(reply, "", pcm, out_rate)
            return
        text = utterance.text if utterance.is_dtmf else SPEECH_WORD
        self.record.transcripts.append(text)
        if utterance.is_dtmf:
            self.record.digits += utterance.text
        await self.emit(conversation_text("user", text))
        await self.respond(utterance.text, b"" if utterance.is_dtmf else utterance.audio, rate)

    # -- replies --------------------------------------------------------------------------------------
    async def respond(self, digits: str, echo: bytes, echo_rate_hz: int) -> None:
        assert self.settings is not None
        if digits.endswith("#") and self.settings.functions:
            self.calls += 1
            call_id = f"call_{self.record.number}_{self.calls}"
            self.pending_calls[call_id] = digits[:-1]
            name = str(self.settings.functions[0]["name"])
            await self.emit(function_call_request(call_id, name, orjson.dumps({"digits": digits[:-1]}).decode()))
            return
        digits = digits[:MAX_REPLY_DIGITS]
        await self.speak(digits or SPEECH_WORD, digits, echo, echo_rate_hz)

    async def speak(self, text: str, digits: str, echo: bytes, echo_rate_hz: int) -> None:
        """ConversationText, AgentStartedSpeaking, the audio as binary frames, AgentAudioDone."""
        assert self.settings is not None
        spoken = render_reply(digits, echo, echo_rate_hz, self.settings.output_format)
        self.record.extra["replies"].append(text)
        await self.emit(conversation_text("assistant", text))
        await self.emit(agent_started_speaking())
        for chunk, _words in spoken.chunks():
            if chunk:
                await self.server.send(self.ws, chunk)
        self.audible_until_s = max(self.audible_until_s, self.input_s) + spoken.duration_ms / 1000
        await self.emit(simple("AgentAudioDone"))

    # -- control messages -----------------------------------------------------------------------------
    async def on_control(self, kind: str | None, message: Any) -> None:
        if kind == "KeepAlive":
            self.record.extra["keepalives"] += 1
        elif kind == "ForceEndTurn":  # the client ends the user's turn: what was heard is the utterance
            if self.recognizer is not None and self.decoder is not None:
                await self.on_dialect(self.recognizer.flush(), self.decoder.sample_rate_hz)
        elif kind == "InjectUserMessage" and isinstance(message.get("content"), str):
            if self.recognizer is not None and self.recognizer.in_utterance:
                await self.emit({"type": "InjectionRefused", "message": "The user is speaking."})
                return
            content = message["content"]
            await self.emit(conversation_text("user", content))
            await self.respond("".join(c for c in content if c in KEYPAD), b"", 16000)
        elif kind == "FunctionCallResponse" and isinstance(message.get("content"), str):
            digits = self.pending_calls.pop(str(message.get("id")), None)
            if digits is None:  # [unsure] the real reaction to an unknown id
                await self.emit(warning("FUNCTION_CALL_ID_UNKNOWN", "No function call is waiting for that id."))
                return
            await self.speak(digits, digits, b"", 16000)
        elif kind == "UpdatePrompt" and isinstance(message.get("prompt"), str):
            self.record.extra["prompts"].append(message["prompt"])
            await self.emit(simple("PromptUpdated"))
        elif kind == "UpdateSpeak" and isinstance(message.get("speak"), dict | list):
            self.record.extra["speaks"].append(message["speak"])
            await self.emit(simple("SpeakUpdated"))
        elif kind == "InjectAgentMessage" and isinstance(message.get("message"), str):
            await self.speak(message["message"], "", b"", 16000)
        else:
            await self.emit(error(UNPARSABLE, UNMATCHED_TEXT))
