"""What the fake Gemini Live model hears and says (providers/fakes/gemini_session.py): the DTMF
dialect in input stream time, plain speech through the speech engine, tool calls, replies as tones
or speech with their transcripts, turnComplete, barge-in and resumption updates
(docs/providers/gemini.md).
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass

from audio.dtmf import generate_dtmf
from audio.resample import resample
from providers.fakes.common import PartialWords, SpeechStart, Utterance
from providers.fakes.gemini_wire import OUTPUT_RATE_HZ, audio_part, usage_metadata

TYPED_DIGITS = "0123456789*#"  # DTMF letters A-D are too common in prose to count in typed turns


def dtmf_reply_audio(digits: str) -> bytes:
    return generate_dtmf(digits, OUTPUT_RATE_HZ, tone_ms=100, gap_ms=100)


@dataclass(slots=True)
class PlayingReply:
    start_s: float  # input stream time at which playback starts
    duration_s: float
    task: asyncio.Task[None] | None = None

    def sending(self) -> bool:
        return self.task is not None and not self.task.done()

    def playing_at(self, stream_s: float) -> bool:
        return stream_s < self.start_s + self.duration_s


class GeminiTurns:
    """The turns of a `GeminiSession` (which inherits this): its state lives there."""

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
        self.reply = PlayingReply(start_s, len(audio) / (2 * OUTPUT_RATE_HZ))
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

