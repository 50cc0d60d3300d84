"""Gemini Live (Developer API, BidiGenerateContent) as a sans-I/O adapter (docs/providers/gemini.md).

Invariants: input is always PCM16 16 kHz; every field of a server message is processed (several
may arrive together, §2); transcripts are fragments, accumulated here per turn and emitted as the
turn's whole text so far; parse() never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
import pybase64

from audio.formats import PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat
from gateway.errors import ProviderError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AudioAcknowledged,
    ConversationItem,
    GoAway,
    ProviderEvent,
    ReplyAudio,
    ResumptionHandle,
    SetupComplete,
    ToolCall,
    ToolCallCancelled,
    Transcript,
    TurnCompleted,
    TurnInterrupted,
    TurnStarted,
    UserSpeechStarted,
)
from gateway.session_config import SessionConfig
from providers import gemini_wire as wire
from providers.base import Capabilities, ConnectRequest, Endpoint, Frame, ProviderAdapter, ws_url
from providers.common_wire import (
    b64decode_any,
    b64encode,
    close_message,
    decode_object,
    dumps,
    protocol_failure,
    scrub,
)

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
# Hot path: one audio frame per input chunk, built without a JSON encoder (base64 needs no escaping).
_AUDIO_PREFIX = '{"realtimeInput":{"audio":{"data":"'
MIN_OUTPUT_RATE_HZ, MAX_OUTPUT_RATE_HZ = 8000, 48000
_AUDIO_STREAM_END = dumps({"realtimeInput": {"audioStreamEnd": True}})


class GeminiAdapter(ProviderAdapter):
    name: ClassVar[str] = "gemini"
    breaker_name: ClassVar[str] = "gemini_provider"
    # Gemini answers pings late now and then (design §5): a longer wait before the stall ping.
    stall_ping_after_s: ClassVar[float] = 6.0
    # a result for a call another provider issued goes in as a user text turn (tool_result_frames)
    carries_pending_tool_calls: ClassVar[bool] = True
    capabilities: ClassVar[Capabilities] = Capabilities(
        audio_output=True, transcripts=True, assistant_transcripts=True, tools=True)

    def __init__(self, config: SessionConfig, endpoint: Endpoint) -> None:
        super().__init__(config, endpoint)
        self._user_text = ""  # inputTranscription fragments of the current user turn
        self._assistant_text = ""  # outputTranscription fragments of the current model turn
        self._turn_started = False  # TurnStarted emitted for the current model turn
        self._turn_interrupted = False  # the current model turn ended by `interrupted`
        self._tool_names: dict[str, str] = {}  # call id → name, for calls made on this connection
        self._go_away_seen = False
        self._sent_handle = False  # open_frames() asked to resume a session
        self._formats: dict[int, AudioFormat] = {24000: PCM16_24K}
        self._mime_formats: dict[str, AudioFormat] = {}  # reply MIME type → format, as _model_part read it
        # 8 kHz callers (telephony) are sent as declared 8 kHz: the server resamples (§1 audio formats)
        self._input_format = PCM16_8K if config.input_format.sample_rate_hz == 8000 else PCM16_16K
        self._audio_suffix = f'","mimeType":"audio/pcm;rate={self._input_format.sample_rate_hz}"}}}}}}'

    # -- formats ----------------------------------------------------------------------------------
    @property
    def input_format(self) -> AudioFormat:
        return self._input_format

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_24K

    # -- opening ----------------------------------------------------------------------------------
    @property
    def model_name(self) -> str | None:
        return wire.model_name(self.config, self.endpoint.model)

    def connect_request(self) -> ConnectRequest:
        # The key goes in a header, never the URL (§1 "Authentication": what the SDK sends).
        return ConnectRequest(url=ws_url(self.endpoint.base_url) + PATH,
                              headers=(("x-goog-api-key", self.endpoint.api_key),))

    def open_frames(self, *, history: Sequence[ConversationItem], resume_handle: str | None) -> list[Frame]:
        model = wire.model_name(self.config, self.endpoint.model)
        self._sent_handle = resume_handle is not None
        seed = resume_handle is None and wire.history_content(history) is not None
        return [dumps(wire.setup_message(self.config, model=model, resume_handle=resume_handle, seed_history=seed))]

    def ready_frames(self, *, history: Sequence[ConversationItem], resumed: bool) -> list[Frame]:
        # A resumed session already holds the conversation server-side.
        content = None if resumed else wire.history_content(history)
        return [dumps(content)] if content else []

    # -- during the call ---------------------------------------------------------------------------
    def audio_frame(self, data: bytes) -> Frame:
        return _AUDIO_PREFIX + b64encode(data) + self._audio_suffix

    def commit_frames(self) -> list[Frame]:
        # §2.1 realtimeInput.audioStreamEnd: the mic stopped; the server flushes and ends the turn.
        return [_AUDIO_STREAM_END]

    def text_frames(self, text: str) -> list[Frame]:
        return [dumps(wire.user_text_content(text))]

    def tool_result_frames(self, call_id: str, name: str, output: str) -> list[Frame]:
        name = name or self._tool_names.get(call_id, "")
        if call_id not in self._tool_names:
            # A call made on another connection or provider: this session has no such id (a
            # resumption handle is never issued mid-tool-call, §2.2), so tell the model as text.
            return [dumps(wire.user_text_content(f"[tool {name} returned: {output}]"))]
        response = {"id": call_id, "name": name, "response": {"output": _tool_output_object(output)}}
        return [dumps({"toolResponse": {"functionResponses": [response]}})]

    # -- receiving ---------------------------------------------------------------------------------
    def parse(self, frame: Frame) -> list[ProviderEvent]:
        message = decode_object(frame)
        if message is not None and len(message) == 1 and type(content := message.get("serverContent")) is dict:
            fast = self._reply_audio(content)
            if fast is not None:
                return fast
        if message is None:
            return [protocol_failure(self.name, "gemini sent a frame that is not a JSON object")]
        events: list[ProviderEvent] = []
        try:
            self._parse_message(message, events)
        except Exception as exc:  # the contract: parse() never raises; keep what was parsed so far
            events.append(protocol_failure(self.name, f"gemini sent a malformed message ({type(exc).__name__})"))
        return events

    def _parse_message(self, message: dict[str, Any], events: list[ProviderEvent]) -> None:
        if len(message) == 1 and type(content := message.get("serverContent")) is dict:
            # the reply-audio message, 50 a second: no other field is there to look for
            self._server_content(content, events)
            return
        # §2.2: several top-level fields may arrive together; handle each (no elif).
        setup = wire.field(message, "setupComplete")
        if isinstance(setup, dict):
            session_id = setup.get("sessionId")
            events.append(SetupComplete(provider_session_id=session_id if isinstance(session_id, str) else None))
        content = wire.field(message, "serverContent")
        if isinstance(content, dict):
            self._server_content(content, events)
        tool_call = wire.field(message, "toolCall")
        if isinstance(tool_call, dict):
            self._tool_call(tool_call, events)
        cancellation = wire.field(message, "toolCallCancellation")
        if isinstance(cancellation, dict):
            ids = cancellation.get("ids")
            if isinstance(ids, list):
                events.append(ToolCallCancelled(call_ids=tuple(str(i) for i in ids)))
        go_away = wire.field(message, "goAway")
        if isinstance(go_away, dict):
            self._go_away_seen = True
            left = wire.parse_duration_s(wire.field(go_away, "timeLeft"))
            events.append(GoAway(time_left_s=0.0 if left is None else left))
        update = wire.field(message, "sessionResumptionUpdate")
        if isinstance(update, dict):
            handle = wire.field(update, "newHandle")
            if wire.truthy(update.get("resumable")) and isinstance(handle, str) and handle:
                events.append(ResumptionHandle(handle=handle))
        activity = wire.field(message, "voiceActivity")
        if isinstance(activity, dict) and activity.get("type") == "ACTIVITY_START":
            events.append(UserSpeechStarted(at_s=wire.parse_duration_s(wire.field(activity, "audioOffset"))))
        error = message.get("error")
        if error is not None:
            # No in-band error type exists (§2.2); the SDK treats such a payload as an error.
            detail = scrub(error.get("message") if isinstance(error, dict) else error, self.endpoint.api_key)
            events.append(protocol_failure(self.name, f"gemini reported an error: {detail}"))

    def _server_content(self, content: dict[str, Any], events: list[ProviderEvent]) -> None:
        if len(content) == 1 and type(model_turn := content.get("modelTurn")) is dict:
            # audio only (the common message): what the general path below would do with it
            parts = model_turn.get("parts")
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, dict):
                    self._model_part(part, events)
            return
        heard = wire.field(content, "inputTranscription")
        if isinstance(heard, dict):
            self._input_transcription(heard, events)
        model_turn = wire.field(content, "modelTurn")
        if isinstance(model_turn, dict):
            parts = model_turn.get("parts")
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, dict):
                    self._model_part(part, events)
        spoken = wire.field(content, "outputTranscription")
        if isinstance(spoken, dict):
            text = spoken.get("text")
            if isinstance(text, str) and text:
                self._start_model_turn(events)
                self._assistant_text += text
                events.append(Transcript(role="assistant", text=self._assistant_text.strip(), final=False))
            if wire.truthy(spoken.get("finished")):
                self._finish_assistant_text(events)
        if wire.truthy(wire.field(content, "generationComplete")):
            self._finish_assistant_text(events)
        if wire.truthy(content.get("interrupted")):
            # Barge-in (§2.2): flush playback now; keep what was said so far as the final text.
            self._finish_user_text(events)
            self._finish_assistant_text(events)
            events.append(TurnInterrupted())
            self._turn_interrupted = True
            self._turn_started = False  # any later output belongs to a new turn
        if wire.truthy(wire.field(content, "turnComplete")):
            self._finish_user_text(events)
            self._finish_assistant_text(events)
            # An interrupted turn ends interrupted → turnComplete (§2.2); it was reported already.
            if not (self._turn_interrupted and not self._turn_started):
                events.append(TurnCompleted(role="assistant"))
            self._turn_started = False
            self._turn_interrupted = False

    def _input_transcription(self, heard: dict[str, Any], events: list[ProviderEvent]) -> None:
        text = heard.get("text")
        if isinstance(text, str) and text:
            self._user_text += text
            events.append(Transcript(role="user", text=self._user_text.strip(), final=False))
        if wire.truthy(heard.get("finished")):
            self._finish_user_text(events)

    def _reply_audio(self, content: dict[str, Any]) -> list[ProviderEvent] | None:
        """The reply-audio message (50 a second): `{"serverContent": {"modelTurn": {"parts":
        [{"inlineData": {...}}]}}}` in the middle of a model turn, decoded with no detour. None when
        the message is anything else (or unusual in any way): the general path handles it."""
        if len(content) != 1 or type(turn := content.get("modelTurn")) is not dict:
            return None
        parts = turn.get("parts")
        if type(parts) is not list or len(parts) != 1 or type(part := parts[0]) is not dict:
            return None
        blob = part.get("inlineData")
        if type(blob) is not dict or not self._turn_started or self._user_text:
            return None
        fmt = self._mime_formats.get(blob.get("mimeType"))  # type: ignore[arg-type]
        data = blob.get("data")
        if fmt is None or type(data) is not str:
            return None
        try:  # the standard alphabet, padded: what Gemini sends (b64decode_any takes the rest)
            audio = pybase64.b64decode(data, validate=True)
        except ValueError:
            return None
        return [ReplyAudio(data=audio, fmt=fmt)] if audio else []

    def _model_part(self, part: dict[str, Any], events: list[ProviderEvent]) -> None:
        # Text parts (thoughts, or stray text in AUDIO mode) are not the answer: the spoken words
        # come from outputTranscription.
        blob = wire.field(part, "inlineData")
        if not isinstance(blob, dict):
            return
        mime = wire.field(blob, "mimeType")
        data = blob.get("data")
        if not (isinstance(mime, str) and mime.startswith("audio/pcm") and isinstance(data, str)):
            return
        audio = b64decode_any(data)
        rate = wire.output_rate_hz(mime)
        if not MIN_OUTPUT_RATE_HZ <= rate <= MAX_OUTPUT_RATE_HZ:
            raise ValueError("implausible output sample rate")  # reported as a protocol failure
        fmt = self._formats.get(rate) or self._formats.setdefault(rate, AudioFormat(encoding="pcm16", sample_rate_hz=rate))
        if len(self._mime_formats) < 8:  # for _reply_audio; bounded: the MIME text is the provider's
            self._mime_formats[mime] = fmt
        self._start_model_turn(events)
        if audio:
            events.append(ReplyAudio(data=audio, fmt=fmt))

    def _tool_call(self, tool_call: dict[str, Any], events: list[ProviderEvent]) -> None:
        calls = wire.field(tool_call, "functionCalls")
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                events.append(protocol_failure(self.name, "gemini sent a function call without a name"))
                continue
            self._finish_user_text(events)  # the model answering with a tool call ends the user turn
            call_id = str(call.get("id") or "")
            args = call.get("args")
            self._tool_names[call_id] = call["name"]
            events.append(ToolCall(call_id=call_id, name=call["name"], arguments=args if isinstance(args, dict) else {}))

    def _start_model_turn(self, events: list[ProviderEvent]) -> None:
        # The model starting to answer closes the user's turn (its words so far are final).
        self._finish_user_text(events)
        if not self._turn_started:
            self._turn_started = True
            self._turn_interrupted = False
            events.append(TurnStarted(role="assistant"))

    def _finish_user_text(self, events: list[ProviderEvent]) -> None:
        text = self._user_text.strip()
        self._user_text = ""
        if text:
            events.append(Transcript(role="user", text=text, final=True))
            # Gemini acknowledges no audio; a finalized user turn means all audio sent so far was
            # consumed (docs/architecture.md "Replay").
            events.append(AudioAcknowledged(until_s=None))

    def _finish_assistant_text(self, events: list[ProviderEvent]) -> None:
        text = self._assistant_text.strip()
        self._assistant_text = ""
        if text:
            events.append(Transcript(role="assistant", text=text, final=True))

    # -- failures -----------------------------------------------------------------------------------
    def classify_close(self, code: int | None, reason: str) -> ProviderError | None:
        """docs/providers/gemini.md §4 close-code table."""
        if self._go_away_seen:
            return None  # §4: any close after goAway is the announced one: reconnect with the handle
        message = close_message(self.name, code, reason, self.endpoint.api_key)
        lowered = reason.lower()
        if code == 1007 and "api key" in lowered:
            return ProviderRejected(message, provider=self.name, error_type="auth", provider_close_code=code)
        stale = "session not found" in lowered or (
            self._sent_handle and "not found" in lowered and "models/" not in lowered)
        if code == 1008 and stale:
            # A stale resumption handle (§4: "BidiGenerateContent session not found", or "Requested
            # entity was not found." after a resume): not a provider failure; retry without it.
            return ProviderUnavailable(message, provider=self.name, error_type="protocol",
                                       breaker_failure=False, stale_handle=True, provider_close_code=code)
        if code in (1007, 1008):
            return ProviderRejected(message, provider=self.name, error_type="protocol", provider_close_code=code)
        if code == 1011:
            quota = "resource_exhausted" in lowered or "quota" in lowered
            return ProviderUnavailable(message, provider=self.name,
                                       error_type="rate_limit" if quota else "server", provider_close_code=code)
        if code is None or code == 1006:
            return ProviderUnavailable(message, provider=self.name, error_type="network", provider_close_code=code)
        if code in (1000, 1001):
            return ProviderUnavailable(message, provider=self.name, error_type="network",
                                       breaker_failure=False, provider_close_code=code)
        return ProviderUnavailable(message, provider=self.name, error_type="protocol", provider_close_code=code)


def _tool_output_object(output: str) -> dict[str, Any]:
    """toolResponse.response must be a JSON object (§2.1; a malformed one closes with 1007)."""
    try:
        parsed = orjson.loads(output)
    except (orjson.JSONDecodeError, TypeError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {"result": output}

