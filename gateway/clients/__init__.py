"""Client-facing protocols: the native `/v1/voice` protocol and the telephony media streams."""
