"""Conversation items of the fake OpenAI Realtime session (docs/providers/openai.md): create,
retrieve, delete and truncate, with the GA errors for a missing item.
"""

from __future__ import annotations

from typing import Any

from providers.fakes.openai_response_wire import validate_client_item
from providers.fakes.openai_wire import WireError


class RealtimeItems:
    """The conversation items of a `RealtimeConnection` (which inherits this): its state lives there."""

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

