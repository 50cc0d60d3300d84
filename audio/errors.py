"""The audio layer's one error: input that cannot be processed as the declared audio.

`audio/` is the bottom layer and imports nothing of ours, so it cannot raise the gateway's
`BadAudio`; the call session maps `AudioError` to `BadAudio` at its edge (gateway/session.py).
"""

from __future__ import annotations


class AudioError(ValueError):
    """Audio that does not fit its declared format (odd PCM16 length, unsupported rate or encoding)."""
