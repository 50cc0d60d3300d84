"""The chat fakes' dialect: deterministic answers a test can check.

Reasoning: simple arithmetic ("What is 2+2?" → "4", "(3 + 4) * 2" → "14") and counting stories
("5 apples, give 2 away" → "3"; "I have 3 pens and buy 4 more" → "7"); anything else gets a stable echo.
Vision: facts the fake can compute from the image bytes: format, width × height and, for PNG and GIF-less
cases it can decode (8-bit PNG), the dominant colour by name ("A PNG image, 8×8 pixels, mostly red.").
Usage: input tokens = ceil(characters / 4) of the text plus 85 per image, output tokens =
ceil(characters / 4) of the answer, at least 1, so costs are exact and predictable.
"""

from __future__ import annotations

import ast
import base64
import math
import operator
import re
import struct
import zlib
from collections import Counter
from typing import Any

ECHO_PREFIX = "You said: "
IMAGE_TOKENS = 85
_NUMBER = r"(\d+(?:\.\d+)?)"
_ARITH = re.compile(r"[\d\s.+\-*/×x÷()^]+")
_TAKE = re.compile(_NUMBER + r"\s+(\w+)[^.?!]*?\b(?:give|gives|gave|eat|eats|ate|lose|loses|lost|sell|sells|sold|"
                   r"take|takes|took|remove|removes|removed|use|uses|used)\b[^\d]*" + _NUMBER, re.I)
_ADD = re.compile(_NUMBER + r"\s+(\w+)[^.?!]*?\b(?:buy|buys|bought|get|gets|got|find|finds|found|add|adds|added|"
                  r"receive|receives|received)\b[^\d]*" + _NUMBER, re.I)
_COUNT_LETTER = re.compile(r"how many (?:times does the letter )?['\"]?(\w)['\"]?s?\b.*?\bin\b\s+['\"]?(\w+)", re.I)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}
_COLOURS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (240, 220, 40),
            "orange": (245, 140, 20), "purple": (130, 50, 170), "pink": (245, 150, 190), "cyan": (40, 210, 220),
            "white": (250, 250, 250), "black": (10, 10, 10), "gray": (128, 128, 128), "brown": (120, 75, 35)}


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


# -- reasoning ----------------------------------------------------------------------------------------
def answer(prompt: str) -> str:
    """The fake's answer to the last user message."""
    text = prompt.strip()
    for pattern, op in ((_TAKE, operator.sub), (_ADD, operator.add)):
        if m := pattern.search(text):
            return _fmt(op(float(m.group(1)), float(m.group(3))))
    if m := _COUNT_LETTER.search(text):
        return str(m.group(2).lower().count(m.group(1).lower()))
    if (value := _arithmetic(text)) is not None:
        return _fmt(value)
    return ECHO_PREFIX + " ".join(text.split())[:120]


def _arithmetic(text: str) -> float | None:
    candidates = [c.strip() for c in _ARITH.findall(text) if re.search(r"\d\s*[-+*/×x÷^]\s*[\d(]", c)]
    if not candidates:
        return None
    expr = max(candidates, key=len).replace("×", "*").replace("x", "*").replace("÷", "/").replace("^", "**")
    try:
        return _eval(ast.parse(expr, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponent too large")
        return float(_OPS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand)
    raise ValueError("not arithmetic")


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.6g}"


# -- vision -------------------------------------------------------------------------------------------
def describe_image(data: bytes) -> str:
    kind, size = _kind_and_size(data)
    if kind is None:
        return "I could not read that image."
    parts = [f"A {kind} image"]
    if size:
        parts.append(f"{size[0]}×{size[1]} pixels")
    colour = dominant_colour(data) if kind == "PNG" else None
    if colour:
        parts.append(f"mostly {colour}")
    return ", ".join(parts) + "."


def image_from_url(url: str) -> bytes | None:
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or ";base64" not in head:
        return None
    try:
        return base64.b64decode(payload)
    except ValueError:
        return None


def _kind_and_size(data: bytes) -> tuple[str | None, tuple[int, int] | None]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return "PNG", struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return "GIF", struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP", None
    if data[:3] == b"\xff\xd8\xff":
        pos = 2
        while pos + 9 < len(data) and data[pos] == 0xFF:
            marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2:pos + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                h, w = struct.unpack(">HH", data[pos + 5:pos + 9])
                return "JPEG", (w, h)
            pos += 2 + length
        return "JPEG", None
    return None, None


def dominant_colour(png: bytes) -> str | None:
    """The named colour nearest the most common pixel of an 8-bit, non-interlaced PNG."""
    try:
        pixels = _png_pixels(png)
    except (ValueError, zlib.error, struct.error, IndexError):
        return None
    if not pixels:
        return None
    rgb = Counter(pixels).most_common(1)[0][0]
    return min(_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(_COLOURS[n], rgb, strict=True)))


def _png_pixels(png: bytes) -> list[tuple[int, int, int]]:
    pos, idat, header = 8, bytearray(), None
    palette: list[tuple[int, int, int]] = []
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        chunk = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"PLTE":
            palette = [tuple(chunk[i:i + 3]) for i in range(0, len(chunk) - 2, 3)]  # type: ignore[misc]
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("no IHDR")
    width, height, depth, colour_type, _, _, interlace = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    if depth != 8 or interlace or width * height > 4096 * 4096:
        raise ValueError("unsupported PNG")
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    prev = bytearray(stride)
    out: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        for x in range(0, stride, channels):
            px = line[x:x + channels]
            if colour_type == 3:
                out.append(palette[px[0]])
            elif channels <= 2:
                out.append((px[0], px[0], px[0]))
            else:
                out.append((px[0], px[1], px[2]))
        prev = line
    return out


# -- one request --------------------------------------------------------------------------------------
# Test directives in a user message (never in real traffic): `[[refuse]]` a refusal, `[[empty]]` an empty
# answer, `[[confidence=0.3]]` a reported confidence (field `confidence` of the answer).
_DIRECTIVE = re.compile(r"\[\[(refuse|empty|confidence=([0-9.]+))\]\]")
REFUSAL = "I can't help with that."


def directives(messages: list[Any]) -> tuple[str | None, float | None]:
    """(`refuse` | `empty` | None, confidence | None) from the messages' text."""
    text = orjson_free_text(messages)
    kind, confidence = None, None
    for m in _DIRECTIVE.finditer(text):
        if m.group(2):
            confidence = float(m.group(2))
        else:
            kind = m.group(1)
    return kind, confidence


def orjson_free_text(messages: list[Any]) -> str:
    out = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return " ".join(out)


def reply(messages: list[Any]) -> tuple[str, int]:
    """(answer, input tokens) for OpenAI-shaped or Anthropic-shaped messages."""
    texts: list[str] = []
    images: list[bytes | None] = []
    last_user = ""
    for m in messages:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        user_text = []
        for p in parts:
            if not isinstance(p, dict):
                continue
            if p.get("type") == "text" and isinstance(p.get("text"), str):
                texts.append(p["text"])
                user_text.append(p["text"])
            elif p.get("type") == "image_url":
                images.append(image_from_url(str((p.get("image_url") or {}).get("url", ""))))
            elif p.get("type") == "image":
                source = p.get("source") or {}
                images.append(base64.b64decode(source["data"]) if source.get("type") == "base64" else None)
        if m.get("role") == "user" and user_text:
            last_user = " ".join(user_text)
    input_tokens = tokens(" ".join(texts)) + IMAGE_TOKENS * len(images)
    kind, _ = directives(messages)
    if kind == "refuse":
        return REFUSAL, input_tokens
    if kind == "empty":
        return "", input_tokens
    if images:
        text = " ".join(describe_image(i) if i else "An image I was given by URL and did not fetch." for i in images)
    else:
        text = answer(last_user)
    return text, input_tokens
