"""Delegation and appended context of the fake GPT-Live session (providers/fakes/openai_live_connection.py):
`#` handed to the client or to the Responses backend's function tool, the backend's response items,
and the instructions, thinking and commentary a client appends (docs/providers/openai-live.md).
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.fakes.openai_live_wire import LiveWireError, backend_response

KEYPAD = "0123456789*#"


def _keys(text: str) -> str:
    return "".join(c for c in text if c in KEYPAD)


class LiveDelegation:
    """Delegation and appended context of a `LiveConnection` (which inherits this): its state lives there."""

    # -- delegation ------------------------------------------------------------------------------------
    async def delegate_to_client(self) -> None:
        delegation_id = self.ids.new("dlg")
        self.client_delegations.add(delegation_id)
        self.record.extra["delegations"].append({"id": delegation_id, "target": "client"})
        await self.emit("session.delegation.created", offset_ms=self.now_ms,
                        delegation={"id": delegation_id, "target": "client", "type": "delegation"})

    async def delegate_to_responses(self, name: str, digits: str) -> None:
        """The backend calls our function tool: the call streams out as nested Responses events."""
        delegation_id, response_id = self.ids.new("dlg"), self.ids.new("resp")
        call_id, item_id = self.ids.new("call"), self.ids.new("fc")
        model = self.config["delegation"]["responses"]["model"] if self.config else ""
        self.record.extra["delegations"].append({"id": delegation_id, "target": "responses", "call_id": call_id})
        await self.emit("session.delegation.created", offset_ms=self.now_ms,
                        delegation={"id": delegation_id, "target": "responses", "type": "delegation",
                                    "response_id": response_id})
        arguments = orjson.dumps({"digits": digits}).decode()
        item = {"id": item_id, "type": "function_call", "status": "in_progress", "call_id": call_id,
                "name": name, "arguments": ""}
        done = {**item, "status": "completed", "arguments": arguments}
        where = {"item_id": item_id, "output_index": 0}
        for seq, nested in enumerate([
            {"type": "response.created", "response": backend_response(response_id, model, "in_progress", [])},
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            {"type": "response.function_call_arguments.delta", **where, "delta": arguments},
            {"type": "response.function_call_arguments.done", **where, "arguments": arguments},
            {"type": "response.output_item.done", "output_index": 0, "item": done},
            {"type": "response.completed", "response": backend_response(response_id, model, "completed", [done])},
        ]):
            await self.emit("response.event", delegation_id=delegation_id, event={**nested, "sequence_number": seq})
        self.pending_calls[call_id] = digits

    def _responses_only(self, kind: str) -> None:
        if ((self.config or {}).get("delegation") or {}).get("type") != "responses":
            raise LiveWireError("invalid_request_error", f"{kind} requires Responses delegation.")  # [unsure] code

    async def on_response_item(self, event: dict[str, Any]) -> int:
        self._responses_only("response.item.create")
        item = event.get("item")
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise LiveWireError("invalid_value", "item must be a Responses input item.", "item")
        if item["type"] == "function_call_output":
            if item.get("call_id") not in self.pending_calls:
                raise LiveWireError("invalid_value", "No function call with this call_id.", "item.call_id")
            output = item.get("output")
            self.outputs[item["call_id"]] = output if isinstance(output, str) else orjson.dumps(output).decode()
            self.record.extra["tool_outputs"].append(self.outputs[item["call_id"]])
        self.record.items.append(item)
        return 0

    async def on_response_create(self, event: dict[str, Any]) -> int:
        """Continue the delegated response: the backend answers and the model speaks the call's digits."""
        self._responses_only("response.create")
        answered = [call_id for call_id in self.pending_calls if call_id in self.outputs]
        if not answered:
            return 0
        call_id = answered[0]
        digits = self.pending_calls.pop(call_id)
        output = self.outputs.pop(call_id)
        response_id, item_id = self.ids.new("resp"), self.ids.new("msg")
        model = self.config["delegation"]["responses"]["model"] if self.config else ""
        message = {"id": item_id, "type": "message", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": output, "annotations": []}]}
        for seq, nested in enumerate([
            {"type": "response.created", "response": backend_response(response_id, model, "in_progress", [])},
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {"type": "response.completed", "response": backend_response(response_id, model, "completed", [message])},
        ]):
            await self.emit("response.event", event={**nested, "sequence_number": seq})
        await self.speak(digits)
        return 0

    # -- appended context ------------------------------------------------------------------------------
    async def on_instructions(self, event: dict[str, Any]) -> int:
        content = self._content(event)
        await self.emit("session.instructions.appended", start_ms=self.now_ms, end_ms=self.now_ms)
        keys = _keys(content)
        if keys:  # a typed turn: answered like speech
            self.conversation.append({"role": "user", "text": keys})
            self.record.transcripts.append(keys)
            await self.respond(keys)
        return 0

    async def on_thinking(self, event: dict[str, Any]) -> int:
        self._content(event)
        await self.emit("session.thinking.appended", start_ms=self.now_ms, end_ms=self.now_ms)
        return 0

    async def on_commentary(self, event: dict[str, Any]) -> int:
        content = self._content(event)
        delegation_id = event.get("delegation_id")
        if delegation_id is not None and delegation_id not in self.client_delegations:
            raise LiveWireError("invalid_value", "Unknown delegation_id.", "delegation_id")  # [unsure]
        self.client_delegations.discard(delegation_id)
        self.record.extra["tool_outputs"].append(content)
        await self.emit("session.commentary.appended", start_ms=self.now_ms, end_ms=self.now_ms)
        await self.speak(_keys(content))
        return 0

    @staticmethod
    def _content(event: dict[str, Any]) -> str:
        content = event.get("content")
        if not isinstance(content, str):
            raise LiveWireError("invalid_type", "content must be a string.", "content")
        if "delegation_id" not in event:
            raise LiveWireError("missing_required_parameter", "Missing required parameter: 'delegation_id'.",
                                "delegation_id")
        return content
