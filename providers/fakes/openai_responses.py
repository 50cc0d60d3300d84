"""The response half of the fake OpenAI Realtime session (providers/fakes/openai_connection.py):
planning a reply to the user's digits or speech, streaming its audio or text, function calls, and
finishing or cancelling it (docs/providers/openai.md). A reply stays active until its audio has
"played" in input stream time.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any

import orjson

from audio.convert import convert
from audio.formats import AudioFormat
from providers.fakes.openai_audio_wire import SpokenReply, render_reply
from providers.fakes.openai_response_wire import (
    RATE_LIMITS,
    ResponseOptions,
    parse_response_options,
    response_object,
    usage,
)
from providers.fakes.openai_wire import WireError, audio_format

KEYPAD_CHARACTERS = "0123456789*#"


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


class RealtimeResponses:
    """The responses of a `RealtimeConnection` (which inherits this): its state lives there."""

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

