"""Fake Deepgram pre-recorded API: `POST /v1/listen` (raw audio body) and `GET /v1/projects`.

Auth `Token K` or `Bearer K`, else 401 `INVALID_AUTH`; errors flat (`err_code`, `err_msg`, `request_id`);
`application/json` bodies must carry `{"url"}` (the fake cannot fetch it: 400). The transcript follows
the DTMF dialect (providers/fakes/transcribe_dialect.py); `metadata.duration` is the file's length.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from providers.fakes.rest_common import RequestRecord, RestFake
from providers.fakes.transcribe_dialect import FileTranscript, UndecodableAudio, transcribe_file

LISTEN_PATH = "/v1/listen"
PROJECTS_PATH = "/v1/projects"
KNOWN_MODELS = ("nova-3", "nova-2", "nova-2-phonecall", "nova-2-general", "nova", "enhanced", "base",
                "whisper", "whisper-large")
_ERR_CODES = {400: "Bad Request", 401: "INVALID_AUTH", 402: "ASR_PAYMENT_REQUIRED",
              403: "INSUFFICIENT_PERMISSIONS", 413: "Payload Too Large", 429: "TOO_MANY_REQUESTS",
              500: "INTERNAL_SERVER_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE",
              504: "GATEWAY_TIMEOUT"}


class FakeDeepgramRest(RestFake):
    provider = "deepgram"
    max_body_bytes = 64 * 1024 * 1024  # the real cap is 2 GB; a fake needs no more than this

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_concurrent", 100)  # pre-recorded concurrency per project (PAYG/Growth)
        super().__init__(**kwargs)
        self._rng = random.Random(self.seed)

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", LISTEN_PATH, self._listen), ("GET", PROJECTS_PATH, self._projects)]

    def credential(self, request: web.Request) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() in ("token", "bearer") and value.strip() else None

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        err_code = _ERR_CODES.get(status, "ERROR") if code is None or status != 400 else code
        if status == 401:
            message = "Invalid credentials."
        body = {"err_code": err_code, "err_msg": message, "request_id": self._uuid()}
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json",
                            headers={"dg-request-id": body["request_id"]})

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    async def _projects(self, request: web.Request, record: RequestRecord) -> web.Response:
        return web.json_response({"projects": [{"project_id": self._uuid(), "name": "fake project"}]})

    async def _listen(self, request: web.Request, record: RequestRecord) -> web.Response:
        body = await self.read_body(request)
        if isinstance(body, web.Response):
            return body
        record.body_bytes = len(body)
        if request.content_type == "application/json":
            return self.error_response(400, "Bad Request: remote URLs are not fetched by the fake", "INVALID_JSON")
        model = request.query.get("model", "base")
        if model not in KNOWN_MODELS:
            return self.error_response(400, f"Bad Request: No such model/language/tier combination found "
                                            f"({model[:40]})", "INVALID_QUERY_PARAMETER")
        try:
            transcript = transcribe_file(body)
        except UndecodableAudio:
            return self.error_response(400, "Bad Request: failed to process audio: corrupt or unsupported data")
        record.transcript = transcript.text
        return web.Response(body=orjson.dumps(self._result(transcript, body, model, request.query)),
                            content_type="application/json")

    def _result(self, t: FileTranscript, audio: bytes, model: str, query: Any) -> dict[str, Any]:
        punctuate = query.get("punctuate") == "true" or query.get("smart_format") == "true"
        diarize = query.get("diarize") == "true"
        model_id = str(uuid.UUID(bytes=hashlib.md5(model.encode()).digest(), version=4))
        words = []
        for w in t.words:
            entry: dict[str, Any] = {"word": w.text, "start": round(w.start_s, 3), "end": round(w.end_s, 3),
                                     "confidence": 0.99}
            if punctuate:
                entry["punctuated_word"] = w.text
            if diarize:
                entry["speaker"], entry["speaker_confidence"] = 0, 0.9
            words.append(entry)
        alternative = {"transcript": t.text, "confidence": 0.99 if t.text else 0.0, "words": words}
        results: dict[str, Any] = {"channels": [{"alternatives": [alternative]}]}
        if query.get("utterances") == "true":
            results["utterances"] = [{"id": self._uuid(), "start": w["start"], "end": w["end"], "confidence": 0.99,
                                      "channel": 0, "transcript": w["word"], "words": [w],
                                      **({"speaker": 0} if diarize else {})} for w in words]
        return {"metadata": {
            "transaction_key": "deprecated", "request_id": self._uuid(),
            "sha256": hashlib.sha256(audio).hexdigest(),
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "duration": round(t.duration_s, 3), "channels": t.channels, "models": [model_id],
            "model_info": {model_id: {"name": f"general-{model}", "version": "2025-01-01.0", "arch": model}}},
            "results": results}
