"""Fake Gemini Live server (BidiGenerateContent over WebSocket) speaking the DTMF dialect.

Wire reference: docs/providers/gemini.md (its fake-server checklist is implemented here and
in gemini_wire.py). Behaviour, per connection:
- Handshake: any `{version}` on the BidiGenerateContent / ...Constrained path (else HTTP 404); a key from
  `?key=`, `x-goog-api-key`, `?access_token=` or `Authorization: Token|Bearer`. No credential at all →
  HTTP 403 (Google's "unregistered callers" error). A wrong key is let through the upgrade and closed with
  1007 `API key not valid. Please pass a valid API key.` right after `setup` arrives (docs/providers/gemini.md §4).
- `setup` first (else 1007); unknown model → 1008 with the documented reason; `setupComplete` is the
  first server message (pretty-printed, binary frame, like the real server). With `sessionResumption`
  the server sends `sessionResumptionUpdate {newHandle, resumable: true}` once after setupComplete and
  after every turnComplete. Handles are shared by all connections of one server instance; resuming with
  one restores the conversation as it was when the handle was issued (`record.extra["restored_turns"]`);
  an unknown handle → 1008 `BidiGenerateContent session not found`.
- Audio in (`audio/pcm;rate=N`, either base64 alphabet) feeds a DialectRecognizer at the first chunk's
  rate. Each recognised digit is sent as an `inputTranscription` fragment (with `inputAudioTranscription`
  in setup); the utterance end sends `{"text": "", "finished": true}` so concatenated fragments stay the
  utterance text. The model then answers: DTMF → the same digits as 24 kHz DTMF tones; plain speech →
  the speech itself (parrot), both in `reply_chunk_ms` inlineData chunks sent as fast as produced, with
  `outputTranscription` (the digits), `generationComplete`, `turnComplete` + `usageMetadata`.
- Typed turns (`clientContent` with turnComplete, `realtimeInput.text`) are answered by speaking back
  their digits, `*` and `#` ("0" when there are none). clientContent turns are recorded in `record.items`.
- Tools: digits ending in `#` with at least one declared function → `toolCall` of the first function with
  `{"digits": <digits without #>}`; the reply (those digits) follows the matching `toolResponse`.
- Barge-in ("still playing" is decided in STREAM time): a reply counts as playing from the input stream
  time it started at (end of the user's utterance + the end-of-speech silence, or the stream time when a
  typed turn / tool response arrived) until the client has sent as much further input audio as the
  reply lasts. New user speech that starts in that window (and is not disabled by `activityHandling:
  NO_INTERRUPTION`) cuts the reply: unsent chunks are dropped, a pending tool call gets
  `toolCallCancellation`, then `interrupted: true` and `turnComplete` are sent.
- `max_connection_s` (wall time): `goAway {timeLeft}` `goaway_time_left_s` before it, then a close with
  1008 and the reason seen in the field (reachy_mini_conversation_app#357). Faults: `goaway` sends goAway
  with the fault's time_left and closes after it; `expire` is the same with no time left; `malformed`
  sends a truncated JSON binary frame.
- Bad client input: invalid JSON / unknown field / bad base64 / non-PCM audio / malformed tool response →
  close 1007 with a protobuf-style reason, like the real server (no in-band error messages exist).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from audio.dtmf import generate_dtmf
from audio.resample import ResampleStream, resample
from providers.fakes.common import (
    MAX_REPLY_DIGITS,
    ConnectionRecord,
    DialectRecognizer,
    FakeServer,
    Fault,
    FaultFired,
    PartialWords,
    SpeechStart,
    Utterance,
)
from providers.fakes.gemini_wire import (
    BAD_KEY,
    INVALID_ARGUMENT,
    MISSING_KEY_BODY,
    OUTPUT_RATE_HZ,
    PATH_RE,
    SESSION_NOT_FOUND,
    WireError,
    audio_part,
    content_text,
    decode_bytes,
    duration,
    first_function_name,
    fit_reason,
    frame,
    is_true,
    model_not_found,
    parse_json,
    pcm_rate,
    split_message,
    unknown_field,
    usage_metadata,
)

log = logging.getLogger("providers.fakes.gemini")

# Live-capable model names (docs/providers/gemini.md §1 "Models"); anything else is "not found".
LIVE_MODEL_RE = re.compile(r"^models/gemini-[a-z0-9.-]*(live|native-audio|audio-dialog)[a-z0-9.-]*$")
GOAWAY_CLOSE = (1008, "Connection aborted because the client failed to close the connection after "
                      "receiving a GoAway signal once the session duration expired")
TYPED_DIGITS = "0123456789*#"  # DTMF letters A-D are too common in prose to count in typed turns
_STATUS_NAMES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(status: int, message: str) -> str:
    """Google's JSON error body for an HTTP refusal."""
    return frame({"error": {"code": status, "message": message,
                            "status": _STATUS_NAMES.get(status, "UNKNOWN")}}, pretty=True).decode()


def dtmf_reply_audio(digits: str) -> bytes:
    return generate_dtmf(digits, OUTPUT_RATE_HZ, tone_ms=100, gap_ms=100)


class FakeGemini(FakeServer):
    provider = "gemini"

    def __init__(self, *, max_connection_s: float | None = None, goaway_time_left_s: float = 10.0,
                 end_silence_ms: int = 300, reply_chunk_ms: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_connection_s = max_connection_s
        self.goaway_time_left_s = goaway_time_left_s
        self.end_silence_ms = end_silence_ms
        self.reply_chunk_ms = reply_chunk_ms
        self.resumption_snapshots: dict[str, list[dict[str, Any]]] = {}  # handle → conversation
        self._sessions: dict[int, GeminiSession] = {}

    def check_request(self, connection: ServerConnection, request: Request,
                      record: ConnectionRecord) -> Response | None:
        match = PATH_RE.match(record.path)
        if match is None:
            return connection.respond(404, google_error(404, "Method not found."))
        record.extra.update(version=match["version"], method=match["method"])
        query = dict(parse_qsl(urlsplit(request.path).query))
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        for source, key in (("query:key", query.get("key")), ("header:x-goog-api-key", request.headers.get(
                "x-goog-api-key")), ("query:access_token", query.get("access_token")),
                ("header:authorization", token if scheme.lower() in ("token", "bearer") else None)):
            if key:
                record.auth = source
                record.extra["key_ok"] = self.key_ok(key)
                return None
        return connection.respond(403, google_error(403, MISSING_KEY_BODY))

    def refusal_body(self, status: int) -> str:
        messages = {429: "Resource has been exhausted (e.g. check quota).", 500: "Internal error encountered.",
                    503: "The service is currently unavailable.", 401: "Request had invalid authentication "
                    "credentials.", 403: "The caller does not have permission"}
        return google_error(status, messages.get(status, "Error"))

    async def handler(self, ws: ServerConnection, record: ConnectionRecord) -> None:
        session = GeminiSession(self, ws, record)
        self._sessions[record.number] = session
        try:
            await session.run()
        finally:
            self._sessions.pop(record.number, None)

    async def inject_fault(self, ws: ServerConnection, record: ConnectionRecord, fault: Fault) -> None:
        session = self._sessions.get(record.number)
        if fault.kind == "malformed":
            await self.send(ws, b'{"serverContent": {"modelTurn": {"parts": [{"inlineDa')
        elif session is not None and fault.kind in ("goaway", "expire"):
            await session.go_away(fault.time_left if fault.kind == "goaway" else 0.0)


@dataclass(slots=True)
class _Reply:
    start_s: float  # input stream time at which playback starts
    duration_s: float
    task: asyncio.Task[None] | None = None

    def sending(self) -> bool:
        return self.task is not None and not self.task.done()

    def playing_at(self, stream_s: float) -> bool:
        return stream_s < self.start_s + self.duration_s


class GeminiSession:
    """One BidiGenerateContent connection: setup, the dialect, replies, tools, resumption, goAway."""

    def __init__(self, server: FakeGemini, ws: ServerConnection, record: ConnectionRecord) -> None:
        self.server, self.ws, self.record = server, ws, record
        self.history: list[dict[str, Any]] = []
        self.recognizer: DialectRecognizer | None = None
        self.voice: str | None = None  # setup's prebuilt voice name (the speech engine's speaker)
        self.resamplers: dict[int, ResampleStream] = {}
        self.reply: _Reply | None = None
        self.pending_tools: dict[str, str] = {}  # call id → digits to speak once answered
        self.tasks: set[asyncio.Task[None]] = set()
        self.tool_name: str | None = None
        self.input_transcription = self.output_transcription = self.resumption = False
        self.interrupts = True
        self.utterance_digits = ""
        self.input_audio_s = 0.0  # user speech since the last turnComplete (usage metadata)
        self.calls = 0

    async def send(self, message: dict[str, Any], *, pretty: bool = False) -> None:
        await self.server.send(self.ws, frame(message, pretty=pretty))

    async def run(self) -> None:
        if self.server.max_connection_s is not None:
            self._spawn(self._expire_connection(self.server.max_connection_s))
        try:
            await self.on_setup(await self.ws.recv())
            async for raw in self.ws:
                await self.server.fault_tick(self.ws, self.record, audio_bytes=await self.on_message(raw))
        except WireError as err:
            await self.ws.close(err.code, err.reason)
        finally:
            for task in self.tasks:
                task.cancel()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if task.cancelled() or isinstance(task.exception(), ConnectionClosed | FaultFired):
            return  # the connection ended under it
        if task.exception() is not None:
            log.error("fake gemini conn %d: task failed", self.record.number, exc_info=task.exception())

    def _parse(self, raw: str | bytes) -> tuple[str, str, Any]:
        try:
            message = parse_json(raw)
        except WireError:
            self.record.messages.append(raw)
            raise
        self.record.messages.append(message)
        return split_message(message)

    # -- setup -------------------------------------------------------------------------------------------
    async def on_setup(self, raw: str | bytes) -> None:
        _, name, setup = self._parse(raw)
        if name != "setup" or not isinstance(setup, dict):
            raise WireError(INVALID_ARGUMENT)
        self.record.setup = setup
        if not self.record.extra.get("key_ok"):
            raise WireError(BAD_KEY)
        model = setup.get("model")
        if not isinstance(model, str) or not LIVE_MODEL_RE.match(model):
            raise WireError(model_not_found(str(model), self.record.extra["version"]))
        resumption = setup.get("session_resumption")
        if resumption is not None and not isinstance(resumption, dict):
            raise WireError(INVALID_ARGUMENT)
        if resumption and resumption.get("handle"):
            snapshot = self.server.resumption_snapshots.get(resumption["handle"])
            if snapshot is None:
                raise WireError(SESSION_NOT_FOUND)
            self.history = copy.deepcopy(snapshot)
            self.record.extra.update(resumed_from=resumption["handle"], restored_turns=copy.deepcopy(snapshot))
        self.tool_name = first_function_name(setup.get("tools"))
        voice_config = ((setup.get("generation_config") or {}).get("speech_config") or {}).get("voice_config") or {}
        self.voice = (voice_config.get("prebuilt_voice_config") or {}).get("voice_name")
        self.input_transcription = "input_audio_transcription" in setup
        self.output_transcription = "output_audio_transcription" in setup
        self.resumption = resumption is not None
        realtime = setup.get("realtime_input_config") or {}
        self.interrupts = realtime.get("activity_handling") != "NO_INTERRUPTION"
        await self.send({"setupComplete": {}}, pretty=True)
        await self.server.session_ready(self.ws, self.record)
        if self.resumption:
            await self.send_resumption_update()
        await self.server.fault_tick(self.ws, self.record)

    # -- client messages --------------------------------------------------------------------------------
    async def on_message(self, raw: str | bytes) -> int:
        """Handle one client message; returns the bytes of input audio it carried."""
        sent_name, name, body = self._parse(raw)
        if not isinstance(body, dict):
            raise WireError(INVALID_ARGUMENT)
        if name == "realtime_input":
            return await self.on_realtime_input(body)
        if name == "client_content":
            await self.on_client_content(body)
        elif name == "tool_response":
            await self.on_tool_response(body)
        elif name == "context_update":
            pass  # recorded; the dialect has no instructions to update
        elif name == "setup":
            raise WireError(INVALID_ARGUMENT)  # setup is allowed once, first
        else:
            raise WireError(unknown_field(sent_name))
        return 0

    async def on_realtime_input(self, body: dict[str, Any]) -> int:
        blobs = ([body["audio"]] if "audio" in body else []) + list(body.get("media_chunks") or [])
        received = 0
        for blob in blobs:
            if not isinstance(blob, dict):
                raise WireError(INVALID_ARGUMENT)
            data = decode_bytes(blob.get("data", ""))
            if str(blob.get("mime_type", "")).startswith(("image/", "video/")):
                continue  # video frames: accepted, not part of the dialect
            await self.on_audio(data, pcm_rate(blob.get("mime_type")))
            received += len(data)
        if "text" in body:
            if not isinstance(body["text"], str):
                raise WireError(INVALID_ARGUMENT)
            await self.on_typed_turn([{"role": "user", "parts": [{"text": body["text"]}]}])
        if "activity_start" in body and self.interrupts and self._reply_active(self._stream_time()):
            await self.barge_in()
        if (is_true(body.get("audio_stream_end")) or "activity_end" in body) and self.recognizer is not None:
            await self.on_dialect(self.recognizer.flush())
        return received

    async def on_audio(self, pcm16: bytes, rate_hz: int) -> None:
        if self.recognizer is None:
            self.recognizer = DialectRecognizer(rate_hz, end_silence_ms=self.server.end_silence_ms)
            self.record.audio_rate_hz = rate_hz
        if rate_hz != self.recognizer.sample_rate_hz:
            stream = self.resamplers.setdefault(rate_hz, ResampleStream(rate_hz, self.recognizer.sample_rate_hz))
            pcm16 = stream.process(pcm16)
        self.record.audio += pcm16
        self.record.audio_chunks += 1
        await self.on_dialect(self.recognizer.feed(pcm16))

    async def on_client_content(self, body: dict[str, Any]) -> None:
        turns = body.get("turns") or []
        if not isinstance(turns, list):
            raise WireError(INVALID_ARGUMENT)
        for turn in turns:
            content_text(turn)  # validates the Content shape
        if self.reply is not None and self.reply.sending():
            await self.barge_in()  # new client content interrupts the current generation
        if is_true(body.get("turn_complete")):
            await self.on_typed_turn(turns)
        else:
            self._remember(turns)

    async def on_typed_turn(self, turns: list[dict[str, Any]]) -> None:
        self._remember(turns)
        text = "".join(content_text(t) for t in turns if t.get("role", "user") == "user")
        digits = ("".join(c for c in text if c in TYPED_DIGITS) or "0")[:MAX_REPLY_DIGITS]
        self.start_reply(dtmf_reply_audio(digits), digits, self._stream_time())

    def _remember(self, turns: list[dict[str, Any]]) -> None:
        self.record.items.extend(copy.deepcopy(turns))
        self.history.extend(copy.deepcopy(turns))

    async def on_tool_response(self, body: dict[str, Any]) -> None:
        responses = body.get("function_responses")
        if not isinstance(responses, list) or not responses:
            raise WireError(INVALID_ARGUMENT)
        for response in responses:
            # A malformed tool result closes the socket with 1007 (vercel/ai#20695).
            if not isinstance(response, dict) or not isinstance(response.get("id"), str) or not isinstance(
                    response.get("response", {}), dict):
                raise WireError(INVALID_ARGUMENT)
        for response in responses:
            self.record.items.append({"function_response": copy.deepcopy(response)})
            self.history.append({"role": "user", "parts": [{"function_response": copy.deepcopy(response)}]})
            digits = self.pending_tools.pop(response["id"], None)
            if digits is not None and not self.pending_tools:
                digits = digits[:MAX_REPLY_DIGITS]
                self.start_reply(dtmf_reply_audio(digits), digits, self._stream_time())

    # -- the dialect ------------------------------------------------------------------------------------
    def _stream_time(self) -> float:
        return self.recognizer.stream_time_s if self.recognizer is not None else 0.0

    def _reply_active(self, stream_s: float) -> bool:
        return bool(self.pending_tools) or (self.reply is not None and (
            self.reply.sending() or self.reply.playing_at(stream_s)))

    async def on_dialect(self, events: list[SpeechStart | PartialWords | Utterance]) -> None:
        for event in events:
            match event:
                case SpeechStart(at_s=at_s):
                    if self.interrupts and self._reply_active(at_s):
                        await self.barge_in()
                case PartialWords(text=text):
                    new = text[len(self.utterance_digits):]
                    self.utterance_digits = text
                    self.record.digits += new
                    if self.input_transcription:
                        await self.send({"serverContent": {"inputTranscription": {"text": new}}})
                case Utterance():
                    await self.on_utterance(event)

    async def on_utterance(self, utterance: Utterance) -> None:
        self.utterance_digits = ""
        self.input_audio_s += utterance.end_s - utterance.start_s
        start_s = utterance.end_s + self.server.end_silence_ms / 1000.0
        if not utterance.is_dtmf and self.server.speech is not None:
            # off the read loop: recognition takes a while and barge-in must still be heard meanwhile
            self._spawn(self._answer_speech(utterance, start_s))
            return
        self.record.transcripts.append(utterance.text)
        if self.input_transcription:
            await self.send({"serverContent": {"inputTranscription": {"text": "", "finished": True}}})
        self.history.append({"role": "user", "parts": [{"text": utterance.text}]})
        if utterance.is_dtmf and utterance.text.endswith("#") and self.tool_name:
            await self.call_tool(utterance.text[:-1])
        elif utterance.is_dtmf:
            self.start_reply(dtmf_reply_audio(utterance.text), utterance.text, start_s)
        else:
            assert self.recognizer is not None
            self.start_reply(resample(utterance.audio, self.recognizer.sample_rate_hz, OUTPUT_RATE_HZ), None, start_s)

    async def _answer_speech(self, utterance: Utterance, start_s: float) -> None:
        """Plain speech with a speech engine: its words as input transcription, then a spoken answer."""
        assert self.recognizer is not None
        rate_hz = self.recognizer.sample_rate_hz
        heard = await self.server.hear(self.record, utterance.audio, rate_hz)
        if self.input_transcription:
            if heard:
                await self.send({"serverContent": {"inputTranscription": {"text": heard}}})
            await self.send({"serverContent": {"inputTranscription": {"text": "", "finished": True}}})
        self.history.append({"role": "user", "parts": [{"text": heard or ""}]})
        if heard is None:
            self.start_reply(resample(utterance.audio, rate_hz, OUTPUT_RATE_HZ), None, start_s)
            return
        text, audio = await self.server.speak(self.record, heard, OUTPUT_RATE_HZ, self.voice)
        if self.reply is not None and self.reply.sending():
            await self.barge_in()  # a newer turn's answer replaces one still being generated
        self.start_reply(audio, text, max(start_s, self._stream_time()))

    async def call_tool(self, digits: str) -> None:
        assert self.tool_name is not None
        self.calls += 1
        call_id = f"fc-{self.record.number}-{self.calls}"
        self.pending_tools[call_id] = digits
        await self.send({"toolCall": {"functionCalls": [
            {"id": call_id, "name": self.tool_name, "args": {"digits": digits}}]}})

    # -- replies ------------------------------------------------------------------------------------------
    def start_reply(self, audio: bytes, transcript: str | None, start_s: float) -> None:
        self.history.append({"role": "model", "parts": [{"text": transcript or ""}]})
        self.reply = _Reply(start_s, len(audio) / (2 * OUTPUT_RATE_HZ))
        self.reply.task = self._spawn(self._send_reply(audio, transcript))

    async def _send_reply(self, audio: bytes, transcript: str | None) -> None:
        chunk_bytes = 2 * OUTPUT_RATE_HZ * self.server.reply_chunk_ms // 1000
        for index, offset in enumerate(range(0, len(audio), chunk_bytes)):
            part = audio_part(audio[offset:offset + chunk_bytes])
            await self.send({"serverContent": {"modelTurn": {"role": "model", "parts": [part]}}})
            if index == 0 and transcript and self.output_transcription:
                await self.send({"serverContent": {"outputTranscription": {"text": transcript}}})
        await self.send({"serverContent": {"generationComplete": True}})
        await self.complete_turn(len(audio) / (2 * OUTPUT_RATE_HZ))

    async def complete_turn(self, reply_audio_s: float) -> None:
        usage = usage_metadata(self.input_audio_s, reply_audio_s)
        self.input_audio_s = 0.0
        await self.send({"serverContent": {"turnComplete": True}, "usageMetadata": usage})
        if self.resumption:
            await self.send_resumption_update()

    async def barge_in(self) -> None:
        reply, self.reply = self.reply, None
        if reply is not None and reply.task is not None and not reply.task.done():
            reply.task.cancel()
            await asyncio.wait([reply.task])
        if self.pending_tools:
            await self.send({"toolCallCancellation": {"ids": list(self.pending_tools)}})
            self.pending_tools.clear()
        await self.send({"serverContent": {"interrupted": True}})
        await self.complete_turn(0.0)

    async def send_resumption_update(self) -> None:
        handle = f"fake-gemini-{self.server.rng.getrandbits(64):016x}"
        self.server.resumption_snapshots[handle] = copy.deepcopy(self.history)
        await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

    # -- planned closes ------------------------------------------------------------------------------------
    async def go_away(self, time_left_s: float) -> None:
        await self.send({"goAway": {"timeLeft": duration(time_left_s)}})
        self._spawn(self._close_after(time_left_s))

    async def _close_after(self, seconds: float) -> None:
        await self.server.clock.sleep(seconds)
        self.record.closed_by = "server"
        await self.ws.close(GOAWAY_CLOSE[0], fit_reason(GOAWAY_CLOSE[1]))

    async def _expire_connection(self, max_connection_s: float) -> None:
        time_left = min(self.server.goaway_time_left_s, max_connection_s)
        await self.server.clock.sleep(max_connection_s - time_left)
        await self.go_away(time_left)
