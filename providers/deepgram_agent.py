"""Deepgram Voice Agent (`wss://agent.deepgram.com/v1/agent/converse`) as a sans-I/O adapter
(deepgram.md §5; message shapes from the deepgram-sdk agent v1 types).

Invariants: the link is established at `SettingsApplied`; audio goes out untouched in the client's own
format and comes back as binary frames in the session's output format (container none), so telephony
μ-law 8 kHz passes through both ways; the agent acknowledges no audio, so a user turn counts as consumed
when its `ConversationText` (role user) arrives; parse() never raises.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from audio.formats import AudioFormat
from gateway.errors import ProviderError, ProviderProtocolError, ProviderRejected, ProviderUnavailable
from gateway.events import (
    AudioAcknowledged,
    ConversationItem,
    ProviderEvent,
    ProviderFailed,
    ReplyAudio,
    SetupComplete,
    ToolCall,
    ToolCallCancelled,
    Transcript,
    TurnCompleted,
    TurnInterrupted,
    TurnStarted,
    UserSpeechStarted,
    UserTurn,
)
from gateway.session_config import SessionConfig
from providers.base import Capabilities, ConnectRequest, Endpoint, Frame, ProviderAdapter, ws_url
from providers.common_wire import close_message, decode_object, dumps, protocol_failure, scrub
from providers.deepgram_agent_wire import (
    AGENT_PATH,
    ENCODING,
    AgentEndpoint,
    settings_message,
    speak_model,
)

KEEPALIVE = dumps({"type": "KeepAlive"})


class DeepgramAgentAdapter(ProviderAdapter):
    name: ClassVar[str] = "deepgram_agent"
    breaker_name: ClassVar[str] = "deepgram_agent"
    capabilities: ClassVar[Capabilities] = Capabilities(
        audio_output=True, transcripts=True, assistant_transcripts=True, tools=True)
    keepalive_idle_s: ClassVar[float | None] = 5.0  # KeepAlive after 5 s without audio (design §5)

    def __init__(self, config: SessionConfig, endpoint: Endpoint) -> None:
        super().__init__(config, endpoint)
        self._agent_endpoint = endpoint if isinstance(endpoint, AgentEndpoint) else AgentEndpoint(
            base_url=endpoint.base_url, api_key=endpoint.api_key, model=endpoint.model, simulated=endpoint.simulated)
        self._set_up = False
        self._in_turn = False  # an agent reply has started and not finished sending
        self._input_s = 0.0  # seconds of input audio sent on this connection (stream time)
        self._audible_until_s = 0.0  # stream time at which the reply audio received so far ends playing
        self._injected: deque[str] = deque(maxlen=16)  # typed turns whose ConversationText echo we expect

    # -- formats ----------------------------------------------------------------------------------
    @property
    def input_format(self) -> AudioFormat:
        return self.config.input_format  # linear16/mulaw/alaw at any of our rates: no transcoding

    @property
    def output_format(self) -> AudioFormat:
        return self.config.output_format  # Settings asks for exactly this, container none

    # -- opening ----------------------------------------------------------------------------------
    def connect_request(self) -> ConnectRequest:
        return ConnectRequest(url=f"{ws_url(self.endpoint.base_url)}{AGENT_PATH}",
                              headers=(("Authorization", f"Token {self.endpoint.api_key}"),))

    def open_frames(self, *, history: Sequence[ConversationItem], resume_handle: str | None) -> list[Frame]:
        out = self.output_format
        answered = history[:-1] if _unanswered(history) else history
        return [dumps(settings_message(self.config, self._agent_endpoint, answered,
                                       output_encoding=ENCODING[out.encoding], output_rate_hz=out.sample_rate_hz))]

    def ready_frames(self, *, history: Sequence[ConversationItem], resumed: bool) -> list[Frame]:
        """A user turn the previous connection never answered (cut between the user's words and the
        reply, or typed while the link was down) is asked again, so the call keeps talking."""
        last = _unanswered(history)
        return self.text_frames(last.text) if last is not None else []

    # -- during the call ---------------------------------------------------------------------------
    def audio_frame(self, data: bytes) -> Frame:
        self._input_s += len(data) / self.input_format.bytes_per_second
        return data

    def keepalive_frame(self) -> Frame:
        return KEEPALIVE

    def commit_frames(self) -> list[Frame]:
        """audio.commit (client-side VAD): end the user's turn now (deepgram-sdk AgentV1ForceEndTurn)."""
        return [dumps({"type": "ForceEndTurn"})]

    def text_frames(self, text: str) -> list[Frame]:
        self._injected.append(text.strip())
        return [dumps({"type": "InjectUserMessage", "content": text})]

    def tool_result_frames(self, call_id: str, name: str, output: str) -> list[Frame]:
        return [dumps({"type": "FunctionCallResponse", "id": call_id, "name": name, "content": output})]

    def update_prompt_frames(self, prompt: str) -> list[Frame]:
        """Mid-call instructions change (answered by PromptUpdated)."""
        return [dumps({"type": "UpdatePrompt", "prompt": prompt})]

    def update_speak_frames(self, voice: str | None) -> list[Frame]:
        """Mid-call voice change (answered by SpeakUpdated)."""
        options = {**self.config.options_for("deepgram"), "speak_model": voice}
        return [dumps({"type": "UpdateSpeak",
                       "speak": {"provider": {"type": "deepgram", "model": speak_model(self.config, options)}}})]

    # -- receiving ---------------------------------------------------------------------------------
    def parse(self, frame: Frame) -> list[ProviderEvent]:
        if isinstance(frame, bytes):
            return self._reply_audio(frame)
        message = decode_object(frame)
        kind = message.get("type") if message is not None else None
        if message is None or not isinstance(kind, str):
            return [protocol_failure(self.name, "the deepgram agent sent a frame that is not a typed JSON message")]
        events: list[ProviderEvent] = []
        try:
            self._dispatch(kind, message, events)
        except Exception as exc:  # the contract: parse() never raises
            events.append(protocol_failure(self.name, f"the deepgram agent sent a malformed "
                                                      f"{scrub(kind, limit=60)} ({type(exc).__name__})"))
        return events

    def _dispatch(self, kind: str, message: dict[str, Any], events: list[ProviderEvent]) -> None:
        if kind == "SettingsApplied":
            self._set_up = True
            events.append(SetupComplete())
        elif kind == "ConversationText":
            self._conversation_text(message, events)
        elif kind == "UserStartedSpeaking":
            # barge-in: flush playback when the reply may still be sounding at the caller
            if self._in_turn or self._input_s < self._audible_until_s:
                events.append(TurnInterrupted())
            self._in_turn = False
            self._audible_until_s = self._input_s
            events.append(UserSpeechStarted())
        elif kind == "AgentStartedSpeaking":
            self._start_turn(events)
        elif kind == "AgentAudioDone":
            if self._in_turn:
                self._in_turn = False
                events.append(TurnCompleted(role="assistant"))
        elif kind == "FunctionCallRequest":
            for call in message["functions"]:
                if call.get("client_side") is True:  # server-side functions run at Deepgram
                    args = orjson.loads(call.get("arguments") or "{}")
                    events.append(ToolCall(call_id=str(call["id"]), name=str(call["name"]),
                                           arguments=args if isinstance(args, dict) else {"value": args}))
        elif kind == "FunctionCallCancelled":
            events.append(ToolCallCancelled(call_ids=tuple(str(f["id"]) for f in message["functions"])))
        elif kind == "InjectionRefused":
            if self._injected:  # the refused turn will not be echoed
                self._injected.popleft()
            error = ProviderProtocolError("the agent refused the typed turn (it was speaking or listening)",
                                          provider=self.name, error_type="protocol", breaker_failure=False,
                                          provider_code="INJECTION_REFUSED")
            events.append(ProviderFailed(error=error, fatal_for_link=False))
        elif kind == "Error":
            events.append(self._error(message))
        # Welcome, AgentThinking, PromptUpdated, SpeakUpdated, History, Warning, LatencyReport, server-side
        # FunctionCallResponse and newer types (Think Live, ...) carry nothing a caller needs.

    def _conversation_text(self, message: dict[str, Any], events: list[ProviderEvent]) -> None:
        role, content = message["role"], message["content"]
        if not isinstance(content, str):
            raise TypeError("content")
        if role == "user":
            if self._injected and self._injected[0] == content.strip():
                self._injected.popleft()  # our own typed turn: already in the conversation record
                return
            events.append(Transcript(role="user", text=content, final=True))
            events.append(AudioAcknowledged(until_s=None))  # the turn is finalized: its audio is consumed
            events.append(TurnCompleted(role="user"))
        elif role == "assistant":
            self._start_turn(events)
            events.append(Transcript(role="assistant", text=content, final=True))

    def _start_turn(self, events: list[ProviderEvent]) -> None:
        if not self._in_turn:
            self._in_turn = True
            self._audible_until_s = max(self._audible_until_s, self._input_s)
            events.append(TurnStarted(role="assistant"))

    def _reply_audio(self, data: bytes) -> list[ProviderEvent]:
        if not data:
            return []
        events: list[ProviderEvent] = []
        self._start_turn(events)
        self._audible_until_s += len(data) / self.output_format.bytes_per_second
        events.append(ReplyAudio(data=data, fmt=self.output_format))
        return events

    def _error(self, message: dict[str, Any]) -> ProviderFailed:
        code = scrub(message.get("code") or "unknown", limit=80)
        detail = scrub(message.get("description"), self.endpoint.api_key)
        text = f"deepgram agent error {code}: {detail}"
        if not self._set_up:  # the Settings were refused (UNPARSABLE_CLIENT_MESSAGE): our configuration
            return ProviderFailed(error=ProviderRejected(text, provider=self.name, error_type="protocol",
                                                         provider_code=code), fatal_for_link=True)
        error = ProviderProtocolError(text, provider=self.name, error_type="protocol", breaker_failure=False,
                                      provider_code=code)
        return ProviderFailed(error=error, fatal_for_link=False)

    # -- failures -----------------------------------------------------------------------------------
    def classify_close(self, code: int | None, reason: str) -> ProviderError | None:
        message = close_message(self.name, code, reason, self.endpoint.api_key)
        if code in (1000, 1001):  # the agent ended the session without an error: reconnect, no failure
            return ProviderUnavailable(message, provider=self.name, error_type="network",
                                       breaker_failure=False, provider_close_code=code)
        if code == 1008:
            return ProviderRejected(message, provider=self.name, error_type="protocol", provider_close_code=code)
        if code == 1011:
            return ProviderUnavailable(message, provider=self.name, error_type="server", provider_close_code=code)
        if code is None or code == 1006:
            return ProviderUnavailable(message, provider=self.name, error_type="network", provider_close_code=code)
        return ProviderUnavailable(message, provider=self.name, error_type="protocol", provider_close_code=code)


def _unanswered(history: Sequence[ConversationItem]) -> UserTurn | None:
    last = history[-1] if history else None
    return last if isinstance(last, UserTurn) and last.text.strip() else None
