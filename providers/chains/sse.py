"""Server-sent events, sans-I/O (the WHATWG event-stream format): bytes in, events out.

Streaming chain answers (OpenAI/OpenRouter chat completions, Anthropic messages) arrive as SSE. The
decoder keeps partial lines between `feed()` calls, so chunk boundaries anywhere (inside a line, between
CR and LF, inside a UTF-8 sequence) give the same events as the whole stream at once.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_EOL = re.compile(r"[\r\n]")


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str  # "message" unless the stream named it
    data: str
    id: str | None = None


class SseDecoder:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._seen_field = False

    def feed(self, data: bytes) -> list[SseEvent]:
        self._buffer += self._text.decode(data)
        return self._lines(final=False)

    def finish(self) -> list[SseEvent]:
        """End of stream: a last line without its terminator still counts; an event without its
        blank line is dropped, as the format says."""
        self._buffer += self._text.decode(b"", final=True)
        return self._lines(final=True)

    def _lines(self, *, final: bool) -> list[SseEvent]:
        out: list[SseEvent] = []
        while True:
            cut = _line_end(self._buffer, final)
            if cut is None:
                return out
            line, self._buffer = self._buffer[: cut[0]], self._buffer[cut[1]:]
            event = self._line(line)
            if event is not None:
                out.append(event)

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._seen_field:
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data), self._id) if self._data else None
            self._event, self._data, self._seen_field = "", [], False
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        self._seen_field = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def _line_end(text: str, final: bool) -> tuple[int, int] | None:
    """(end of the first line, start of the next) or None while the line may still grow."""
    match = _EOL.search(text)
    if match is None:
        return (len(text), len(text)) if final and text else None
    i = match.start()
    if text[i] == "\n":
        return i, i + 1
    if i + 1 < len(text):
        return (i, i + 2) if text[i + 1] == "\n" else (i, i + 1)
    return (i, i + 1) if final else None  # a CR at the end may be the first half of CRLF
