"""The conversation record rendered as text lines, for carrying a call into a fresh provider session.

Both speaking providers get the prior conversation as text (neither can be given past audio):
Gemini as alternating user/model `clientContent` turns, OpenAI packed into one user message. Tool
traffic becomes short bracketed lines so the model knows what it already looked up. A tool call
still waiting for its output is reported separately: OpenAI can take it as a real `function_call`
item that the pending result then completes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from gateway.events import AssistantTurn, ConversationItem, Role, ToolInvocation, ToolOutput, UserTurn

TOOL_TEXT_MAX_CHARS = 500  # a long tool output is context, not content: keep the carry-over small


@dataclass(frozen=True, slots=True)
class HistoryLine:
    role: Role  # the side of the user/model alternation the line belongs to
    label: str  # how the line is introduced in a packed transcript: User / Assistant / Tool
    text: str


def _clip(text: str) -> str:
    return text if len(text) <= TOOL_TEXT_MAX_CHARS else text[: TOOL_TEXT_MAX_CHARS - 1] + "…"


def pending_tool_calls(history: Sequence[ConversationItem]) -> list[ToolInvocation]:
    """Tool invocations with no output in the record yet, in order."""
    answered = {item.call_id for item in history if isinstance(item, ToolOutput)}
    return [item for item in history if isinstance(item, ToolInvocation) and item.call_id not in answered]


def history_lines(history: Sequence[ConversationItem], *, skip_pending_calls: bool = False) -> list[HistoryLine]:
    """One line per item with text; empty turns are dropped."""
    pending = {call.call_id for call in pending_tool_calls(history)} if skip_pending_calls else set()
    lines: list[HistoryLine] = []
    for item in history:
        match item:
            case UserTurn(text=text) if text.strip():
                lines.append(HistoryLine("user", "User", text.strip()))
            case AssistantTurn(text=text) if text.strip():
                lines.append(HistoryLine("assistant", "Assistant", text.strip()))
            case ToolInvocation(call_id=call_id, name=name, arguments=arguments) if call_id not in pending:
                args = orjson.dumps(arguments, default=str).decode()
                lines.append(HistoryLine("assistant", "Assistant", _clip(f"[called tool {name} with {args}]")))
            case ToolOutput(name=name, output=output):
                lines.append(HistoryLine("user", "Tool", _clip(f"[tool {name} returned: {output}]")))
    return lines


def alternating_turns(lines: Sequence[HistoryLine]) -> list[tuple[Role, str]]:
    """Consecutive lines of the same side merged into one turn (Gemini wants alternation)."""
    turns: list[tuple[Role, str]] = []
    for line in lines:
        if turns and turns[-1][0] == line.role:
            turns[-1] = (line.role, turns[-1][1] + "\n" + line.text)
        else:
            turns.append((line.role, line.text))
    return turns


def packed_transcript(lines: Sequence[HistoryLine], *, heading: str) -> str:
    """'heading\\nUser: ...\\nAssistant: ...' as one block of text."""
    return "\n".join([heading, *(f"{line.label}: {line.text}" for line in lines)])
