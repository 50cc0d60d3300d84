"""OpenAI Realtime, GA interface, as a sans-I/O adapter (docs/providers/openai.md).

Invariants: G.711 client audio is exchanged as-is (no transcoding), anything else as PCM16 24 kHz;
the link is established at the first `session.updated` (our session.update was applied, not just
`session.created`); a response we reported as interrupted emits nothing more; parse() never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import orjson
import pybase64

from audio.formats import AudioFormat
from gateway.errors import ProviderError, ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AudioAcknowledged,
    ConversationItem,
    ProviderEvent,
    ProviderFailed,
    ReplyAudio,
    SessionExpiring,
    SetupComplete,
    ToolCall,
    Transcript,
    TurnCompleted,
    TurnInterrupted,
    TurnStarted,
    UserSpeechStarted,
)
from gateway.session_config import SessionConfig
from providers import openai_wire as wire
from providers.base import Capabilities, ConnectRequest, Endpoint, Frame, ProviderAdapter, ws_url
from providers.common_wire import (
    b64decode_any,
    b64encode,
    close_message,
    decode_object,
    dumps,
    number,
    protocol_failure,
    scrub,
)

_APPEND_PREFIX = '{"type":"input_audio_buffer.append","audio":"'  # hot path, base64 needs no escaping
_APPEND_SUFFIX = '"}'
# §4 "Non-fatal request errors": harmless when our cancel races the response's own end.
_IGNORED_ERROR_CODES = frozenset({"response_cancel_not_active"})
_RATE_LIMIT_CODES = frozenset({"rate_limit_exceeded", "insufficient_quota"})

Events = list[ProviderEvent]


class OpenAIAdapter(ProviderAdapter):
    name: ClassVar[str] = "openai"
    breaker_name: ClassVar[str] = "openai_provider"
    # the carried function_call item makes a later function_call_output valid (history.py)
    carries_pending_tool_calls: ClassVar[bool] = True
    capabilities: ClassVar[Capabilities] = Capabilities(
        audio_output=True, transcripts=True, assistant_transcripts=True, tools=True)

    def __init__(self, config: SessionConfig, endpoint: Endpoint) -> None:
        super().__init__(config, endpoint)
        self._input_format = wire.provider_format(config.input_format)
        self._output_format = wire.provider_format(config.output_format)
        self._session_id: str | None = None
        self._setup_done = False
        self._expiring = False  # session_expired seen: the 1001 close that follows is planned
        self._active_response: str | None = None
        self._interrupted: set[str] = set()  # responses already reported as interrupted
        self._speech_ms: dict[str, list[float | None]] = {}  # user item → [start_ms, end_ms] from VAD
        self._user_text: dict[str, str] = {}  # user item → transcript deltas so far
        self._assistant_text: dict[str, tuple[str, str]] = {}  # item → (response id, deltas so far)
        self._tool_names: dict[str, str] = {}  # call id → name (from response.output_item.added)
        self._handlers: dict[str, Callable[[dict[str, Any], Events], None]] = {
            "session.created": self._on_session,
            "session.updated": self._on_session,
            "error": self._on_error,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.committed": self._on_committed,
            "conversation.item.input_audio_transcription.delta": self._on_user_delta,
            "conversation.item.input_audio_transcription.completed": self._on_user_completed,
            "conversation.item.input_audio_transcription.failed": self._on_user_failed,
            "response.created": self._on_response_created,
            "response.output_item.added": self._on_output_item,
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_audio_transcript.delta": self._on_transcript_delta,
            "response.output_audio_transcript.done": self._on_transcript_done,
            "response.function_call_arguments.done": self._on_function_call,
            "response.done": self._on_response_done,
        }

    # -- formats ----------------------------------------------------------------------------------
    @property
    def input_format(self) -> AudioFormat:
        return self._input_format

    @property
    def output_format(self) -> AudioFormat:
        return self._output_format

    # -- opening ----------------------------------------------------------------------------------
    @property
    def model_name(self) -> str | None:
        return wire.model_name(self.config, self.endpoint.model)

    def connect_request(self) -> ConnectRequest:
        # §1: no OpenAI-Beta header: that selects the retired beta shape.
        model = quote(wire.model_name(self.config, self.endpoint.model), safe="-._~")
        return ConnectRequest(url=f"{ws_url(self.endpoint.base_url)}/realtime?model={model}",
                              headers=(("Authorization", f"Bearer {self.endpoint.api_key}"),))

    def open_frames(self, *, history: Sequence[ConversationItem], resume_handle: str | None) -> list[Frame]:
        update = wire.session_update(self.config, input_format=self._input_format, output_format=self._output_format)
        return [dumps(update), *(dumps(item) for item in wire.history_items(history))]

    # -- during the call ---------------------------------------------------------------------------
    def audio_frame(self, data: bytes) -> Frame:
        return _APPEND_PREFIX + b64encode(data) + _APPEND_SUFFIX

    def commit_frames(self) -> list[Frame]:
        # §2.1: commit does not itself create a response.
        return [dumps({"type": "input_audio_buffer.commit"}), dumps({"type": "response.create"})]

    def text_frames(self, text: str) -> list[Frame]:
        return [dumps(m) for m in wire.user_text(text)]

    def tool_result_frames(self, call_id: str, name: str, output: str) -> list[Frame]:
        return [dumps(m) for m in wire.tool_output(call_id, output)]

    def cancel_frames(self) -> list[Frame]:
        return [dumps({"type": "response.cancel"})]

    def truncate_frames(self, item_id: str, audio_end_ms: int) -> list[Frame]:
        return [dumps({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                       "audio_end_ms": max(0, int(audio_end_ms))})]

    # -- receiving ---------------------------------------------------------------------------------
    def parse(self, frame: Frame) -> list[ProviderEvent]:
        message = decode_object(frame)
        kind = message.get("type") if message is not None else None
        if message is None or not isinstance(kind, str):
            return [protocol_failure(self.name, "openai sent a frame that is not a typed JSON event")]
        if kind == "response.output_audio.delta":  # 50 a second: the handler, inline
            response_id, delta, item_id = message.get("response_id"), message.get("delta"), message.get("item_id")
            if type(delta) is str and type(response_id) is str and response_id not in self._interrupted:
                try:
                    data = pybase64.b64decode(delta, validate=True)
                except ValueError:
                    pass  # not strict standard base64: the handler's decode takes the rest
                else:
                    return [ReplyAudio(data=data, fmt=self._output_format,
                                       item_id=item_id if type(item_id) is str else None)] if data else []
        handler = self._handlers.get(kind)
        events: Events = []
        if handler is None:
            return events  # the many informational events (§2.2) carry nothing we relay
        try:
            handler(message, events)
        except Exception as exc:  # the contract: parse() never raises
            events.append(protocol_failure(self.name, f"openai sent a malformed {scrub(kind, limit=60)} "
                                                      f"({type(exc).__name__})"))
        return events

    def _on_session(self, message: dict[str, Any], events: Events) -> None:
        session = message.get("session")
        if isinstance(session, dict) and isinstance(session.get("id"), str):
            self._session_id = session["id"]
        if message["type"] == "session.updated" and not self._setup_done:
            self._setup_done = True
            events.append(SetupComplete(provider_session_id=self._session_id))

    def _on_error(self, message: dict[str, Any], events: Events) -> None:
        error = message.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        if code in _IGNORED_ERROR_CODES:
            return
        if code == "session_expired":
            self._expiring = True
            events.append(SessionExpiring())
            return
        label = scrub(code or error.get("type") or "unknown", limit=80)
        text = f"openai error {label}: {scrub(error.get('message'), self.endpoint.api_key)}"
        if code == "invalid_api_key":
            events.append(ProviderFailed(ProviderRejected(text, provider=self.name, error_type="auth", provider_code=label),
                                         fatal_for_link=True))
        elif error.get("event_id") == wire.SESSION_UPDATE_EVENT_ID:
            # Our session configuration was refused: retrying the same config cannot help.
            events.append(ProviderFailed(ProviderRejected(text, provider=self.name, error_type="protocol", provider_code=label),
                                         fatal_for_link=True))
        else:
            events.append(ProviderFailed(ProviderProtocolError(text, provider=self.name, error_type="protocol",
                                                               breaker_failure=False, provider_code=label)))

    def _on_speech_started(self, message: dict[str, Any], events: Events) -> None:
        start_ms = number(message.get("audio_start_ms"))
        item_id = message.get("item_id")
        if isinstance(item_id, str):
            self._speech_ms[item_id] = [start_ms, None]
        events.append(UserSpeechStarted(at_s=None if start_ms is None else start_ms / 1000))
        response = self._active_response
        if response is not None and response not in self._interrupted:
            # Barge-in (§2.3): stop playback now, once; the cancelled response.done adds nothing.
            self._interrupted.add(response)
            self._finish_assistant_text(response, events)
            events.append(TurnInterrupted())

    def _on_speech_stopped(self, message: dict[str, Any], events: Events) -> None:
        item_id = message.get("item_id")
        if isinstance(item_id, str):
            self._speech_ms.setdefault(item_id, [None, None])[1] = number(message.get("audio_end_ms"))

    def _on_committed(self, message: dict[str, Any], events: Events) -> None:
        # OpenAI never acknowledges audio; a committed buffer is consumed up to where VAD saw the
        # speech end (None after a manual commit: everything sent so far).
        _, end_s = self._speech_span(message.get("item_id"))
        events.append(AudioAcknowledged(until_s=end_s))

    def _on_user_delta(self, message: dict[str, Any], events: Events) -> None:
        item_id, delta = message.get("item_id"), message.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        key = item_id if isinstance(item_id, str) else ""
        text = self._user_text.get(key, "") + delta
        self._user_text[key] = text
        start_s, end_s = self._speech_span(item_id)
        events.append(Transcript(role="user", text=text.strip(), final=False, start_s=start_s, end_s=end_s))

    def _on_user_completed(self, message: dict[str, Any], events: Events) -> None:
        item_id, transcript = message.get("item_id"), message.get("transcript")
        self._user_text.pop(item_id if isinstance(item_id, str) else "", None)
        start_s, end_s = self._speech_span(item_id)
        if isinstance(item_id, str):
            self._speech_ms.pop(item_id, None)
        if isinstance(transcript, str) and transcript.strip():
            events.append(Transcript(role="user", text=transcript.strip(), final=True, start_s=start_s, end_s=end_s))

    def _on_user_failed(self, message: dict[str, Any], events: Events) -> None:
        raw = message.get("error")
        error = raw if isinstance(raw, dict) else {}
        label = scrub(error.get("code") or error.get("type") or "unknown", limit=80)
        events.append(protocol_failure(self.name, f"openai input transcription failed: {label}"))

    def _on_response_created(self, message: dict[str, Any], events: Events) -> None:
        response = message.get("response")
        response_id = response.get("id") if isinstance(response, dict) else None
        self._active_response = response_id if isinstance(response_id, str) else ""
        events.append(TurnStarted(role="assistant"))

    def _on_output_item(self, message: dict[str, Any], events: Events) -> None:
        item = message.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            if isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str):
                self._tool_names[item["call_id"]] = item["name"]

    def _on_audio_delta(self, message: dict[str, Any], events: Events) -> None:
        if self._response_of(message) in self._interrupted:
            return  # audio of a response the caller already cut off
        delta, item_id = message.get("delta"), message.get("item_id")
        data = b64decode_any(delta) if isinstance(delta, str) else b""
        if data:
            events.append(ReplyAudio(data=data, fmt=self._output_format,
                                     item_id=item_id if isinstance(item_id, str) else None))

    def _on_transcript_delta(self, message: dict[str, Any], events: Events) -> None:
        response, delta = self._response_of(message), message.get("delta")
        if response in self._interrupted or not isinstance(delta, str) or not delta:
            return
        item_id = str(message.get("item_id") or "")
        text = self._assistant_text.get(item_id, (response, ""))[1] + delta
        self._assistant_text[item_id] = (response, text)
        events.append(Transcript(role="assistant", text=text.strip(), final=False))

    def _on_transcript_done(self, message: dict[str, Any], events: Events) -> None:
        response = self._response_of(message)
        item_id = str(message.get("item_id") or "")
        so_far = self._assistant_text.pop(item_id, (response, ""))[1]
        transcript = message.get("transcript")
        text = (transcript if isinstance(transcript, str) else so_far).strip()
        if response not in self._interrupted and text:
            events.append(Transcript(role="assistant", text=text, final=True))

    def _on_function_call(self, message: dict[str, Any], events: Events) -> None:
        if self._response_of(message) in self._interrupted:
            return  # a cancelled response's call must not run
        call_id = str(message.get("call_id") or "")
        raw_name = message.get("name")
        name = raw_name if isinstance(raw_name, str) else self._tool_names.get(call_id, "")
        raw = message.get("arguments")
        raw = raw if isinstance(raw, str) else ""
        try:
            arguments = orjson.loads(raw)
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            arguments = {"_raw": raw}  # the tool gets what the model wrote, to answer with an error
        events.append(ToolCall(call_id=call_id, name=name, arguments=arguments))

    def _on_response_done(self, message: dict[str, Any], events: Events) -> None:
        response = message.get("response")
        response = response if isinstance(response, dict) else {}
        raw_id = response.get("id")
        response_id = raw_id if isinstance(raw_id, str) else (self._active_response or "")
        status = response.get("status")
        if response_id == self._active_response:
            self._active_response = None
        if response_id in self._interrupted:
            self._interrupted.discard(response_id)
            return
        self._finish_assistant_text(response_id, events)
        if status == "cancelled":
            events.append(TurnInterrupted())
            return
        if status == "failed":
            events.append(ProviderFailed(self._response_failure(response)))
        events.append(TurnCompleted(role="assistant"))

    # -- helpers ----------------------------------------------------------------------------------
    def _response_of(self, message: dict[str, Any]) -> str:
        response_id = message.get("response_id")
        return response_id if isinstance(response_id, str) else (self._active_response or "")

    def _speech_span(self, item_id: object) -> tuple[float | None, float | None]:
        start_ms, end_ms = self._speech_ms.get(item_id, (None, None)) if isinstance(item_id, str) else (None, None)
        return (None if start_ms is None else start_ms / 1000, None if end_ms is None else end_ms / 1000)

    def _finish_assistant_text(self, response_id: str, events: Events) -> None:
        for item_id, (owner, text) in list(self._assistant_text.items()):
            if owner == response_id:
                del self._assistant_text[item_id]
                if text.strip():
                    events.append(Transcript(role="assistant", text=text.strip(), final=True))

    def _response_failure(self, response: dict[str, Any]) -> ProviderUnavailable:
        details = response.get("status_details")
        error = details.get("error") if isinstance(details, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        error_type = "rate_limit" if code in _RATE_LIMIT_CODES else "server"
        text = f"openai response failed ({scrub(code or error.get('type') or 'no code', limit=80)}): " \
               f"{scrub(error.get('message'), self.endpoint.api_key)}"
        return ProviderUnavailable(text, provider=self.name, error_type=error_type)

    # -- failures -----------------------------------------------------------------------------------
    def classify_close(self, code: int | None, reason: str) -> ProviderError | None:
        """docs/providers/openai.md §4: 3000 invalid key, 4000 fatal request error, 1001 session cap."""
        message = close_message(self.name, code, reason, self.endpoint.api_key)
        if code == 3000:
            return ProviderRejected(message, provider=self.name, error_type="auth", provider_close_code=code)
        if code == 4000:
            return ProviderRejected(message, provider=self.name, error_type="protocol", provider_close_code=code)
        if code == 1001 and self._expiring:
            return None  # the planned end announced by session_expired: rotate, no failure
        if code in (1000, 1001):
            return ProviderUnavailable(message, provider=self.name, error_type="network",
                                       breaker_failure=False, provider_close_code=code)
        if code == 1011:
            return ProviderUnavailable(message, provider=self.name, error_type="server", provider_close_code=code)
        if code is None or code == 1006:
            return ProviderUnavailable(message, provider=self.name, error_type="network", provider_close_code=code)
        return ProviderUnavailable(message, provider=self.name, error_type="protocol", provider_close_code=code)

