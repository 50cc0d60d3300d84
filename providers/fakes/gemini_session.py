"""One fake Gemini Live (BidiGenerateContent) connection: setup, client messages (realtime input,
client content, tool responses), goAway and the connection cap; what the model hears and says is in
providers/fakes/gemini_turns.py (docs/providers/gemini.md).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from audio.resample import ResampleStream
from providers.fakes.common import (
    MAX_REPLY_DIGITS,
    ConnectionRecord,
    DialectRecognizer,
    FakeServer,
    FaultFired,
)
from providers.fakes.gemini_turns import TYPED_DIGITS, GeminiTurns, PlayingReply, dtmf_reply_audio
from providers.fakes.gemini_wire import (
    BAD_KEY,
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    WireError,
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
)

log = logging.getLogger("providers.fakes.gemini")

# Live-capable model names (docs/providers/gemini.md §1 "Models"); anything else is "not found".
LIVE_MODEL_RE = re.compile(r"^models/gemini-[a-z0-9.-]*(live|native-audio|audio-dialog)[a-z0-9.-]*$")
GOAWAY_CLOSE = (1008, "Connection aborted because the client failed to close the connection after "
                      "receiving a GoAway signal once the session duration expired")


class GeminiSession(GeminiTurns):
    """One BidiGenerateContent connection: setup, the dialect, replies, tools, resumption, goAway."""

    def __init__(self, server: FakeServer, ws: ServerConnection, record: ConnectionRecord) -> None:
        self.server, self.ws, self.record = server, ws, record
        self.history: list[dict[str, Any]] = []
        self.recognizer: DialectRecognizer | None = None
        self.voice: str | None = None  # setup's prebuilt voice name (the speech engine's speaker)
        self.resamplers: dict[int, ResampleStream] = {}
        self.reply: PlayingReply | None = None
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
