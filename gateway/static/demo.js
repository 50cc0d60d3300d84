// Demo page for /v1/voice (docs/protocol.md): microphone -> PCM16 16 kHz binary frames (or, with
// "compressed upload", a MediaRecorder WebM/Opus stream); reply audio (binary PCM16 24 kHz, or
// `audio.delta` base64) -> a scheduled playback queue, flushed on `turn.interrupted`. Transcripts,
// connection events and the reply latency of each turn are rendered as they arrive; the provider
// settings come from demo-config.js. window.vg exposes the state for browser tests.
"use strict";

const INPUT_RATE = 16000;
const OUTPUT_RATE = 24000;
const LOGGED = (type) => type.startsWith("connection.") || type.startsWith("session.")
  || type === "provider.switched" || type === "error" || type === "warning";

const vg = window.vg = {
  sessionId: null, events: [], transcripts: [], state: "idle", audioBytesReceived: 0, protocol: null,
  calls: 0, latenciesMs: [], micLevelMax: 0, sessionStart: null, uploadedBytes: 0,
};
// What session.ended reasons mean to the person on the call.
const END_REASONS = {
  client_ended: "you ended the call",
  client_disconnected: "the connection to the gateway closed",
  caller_hung_up: "the caller hung up",
  operator_hangup: "an operator ended the call from the console",
  idle_timeout: "no audio or messages arrived for too long (idle timeout)",
  server_shutdown: "the gateway shut down",
  server_draining: "the gateway is restarting (drain): please call again",
};
function endReason(reason) { return END_REASONS[reason] || String(reason || "unknown reason").replaceAll("_", " "); }
const $ = (id) => document.getElementById(id);
let ws = null;
let audioCtx = null;
let micStream = null;
let worklet = null;
let playHead = 0;
let playing = [];
let sessionStartSent = false;
let recorder = null;
let analyser = null;
let meterFrame = 0;
let pendingTurns = []; // user finals still waiting for a reply, oldest first: {at, line}
let replyOpen = false; // the current assistant turn already counted its first reply
let providerSpeaks = true; // from `capabilities`: otherwise the assistant's transcript is the reply

function setStatus(text, bad = false) {
  $("status").textContent = text;
  $("status").classList.toggle("bad", bad);
}

// `capabilities` from session.started / provider.switched (docs/architecture.md): after a switch to a
// transcripts-only provider the caller must learn why the spoken replies stopped.
function setProvider(name, capabilities) {
  $("provider").textContent = name || "none";
  const speaks = !capabilities || capabilities.audio_output !== false;
  providerSpeaks = speaks;
  $("provider-note").textContent = speaks ? "" : "(transcripts only: no spoken reply)";
}

function setRunning(running) {
  $("start").disabled = running;
  $("stop").disabled = !running;
  $("provider-select").disabled = running;
  $("token").disabled = running;
  $("compressed").disabled = running;
}

// -- transcript ------------------------------------------------------------------------------
function partialLine(role) {
  let el = $("transcript").querySelector(`p.partial[data-role="${role}"]`);
  if (!el) {
    el = document.createElement("p");
    el.className = "partial";
    el.dataset.role = role;
    $("transcript").appendChild(el);
  }
  return el;
}

function onTranscript(ev, final) {
  const role = ev.role === "assistant" ? "assistant" : "user";
  const panel = $("transcript");
  if (!final) {
    partialLine(role).textContent = ev.text;
  } else {
    const partial = panel.querySelector(`p.partial[data-role="${role}"]`);
    if (partial) partial.remove();
    const line = document.createElement("p");
    line.className = "final";
    line.dataset.role = role;
    line.textContent = ev.text;
    panel.appendChild(line);
    vg.transcripts.push({ role, text: ev.text, start: ev.start, end: ev.end });
    if (role === "user") pendingTurns.push({ at: performance.now(), line });
    else if (!providerSpeaks) { replyArrived(); replyOpen = false; } // a text-only reply is the turn
  }
  panel.scrollTop = panel.scrollHeight;
}

// Reply latency: from the user's final transcript to the first reply audio (or the assistant's
// transcript when the provider does not speak), shown on the user's line.
// Each assistant turn answers the oldest user turn still waiting.
function replyArrived() {
  if (replyOpen) return;
  replyOpen = true;
  const turn = pendingTurns.shift();
  if (!turn) return;
  const ms = Math.round(performance.now() - turn.at);
  vg.latenciesMs.push(ms);
  const note = document.createElement("div");
  note.className = "latency";
  note.textContent = `reply after ${ms} ms`;
  turn.line.after(note);
}

function separateCalls(provider) {
  vg.calls += 1;
  if (vg.calls === 1) return;
  const when = new Date().toLocaleTimeString();
  const rule = document.createElement("p");
  rule.className = "call-separator";
  rule.textContent = `call ${vg.calls} (${provider}, ${when})`;
  $("transcript").appendChild(rule);
  const li = document.createElement("li");
  li.className = "call-separator";
  li.textContent = `call ${vg.calls}`;
  $("events").appendChild(li);
}

// -- event log -------------------------------------------------------------------------------
function describe(ev) {
  switch (ev.type) {
    case "session.started": return `provider ${ev.provider}; fallback ${(ev.fallback || []).join(", ")}`;
    case "connection.reconnecting":
      return `${ev.provider}: attempt ${ev.attempt}/${ev.max_attempts}, waiting ${ev.backoff_delay}s, `
        + `${ev.buffered_audio_chunks} chunks buffered`;
    case "connection.reconnected":
      return `${ev.provider}: after ${ev.attempts} attempt(s), ${ev.replayed_audio_chunks} replayed, `
        + `${ev.dropped_audio_chunks} dropped`;
    case "connection.failed": return `${ev.provider}: ${ev.reason} after ${ev.total_attempts} attempts`;
    case "provider.switched": return `${ev.from} -> ${ev.to} (${ev.reason}), ${ev.carried_turns} turns carried; `
      + `your ${window.vgConfig.label(ev.to)} settings apply`;
    case "error": return `${ev.code}: ${ev.message}`;
    case "warning": return `${ev.code}: ${ev.message}`; // e.g. a provider option the provider does not take
    case "session.ended": return endReason(ev.reason);
    default: return "";
  }
}

function logEvent(ev) {
  const li = document.createElement("li");
  li.dataset.type = ev.type;
  const when = new Date((ev.ts || Date.now() / 1000) * 1000).toLocaleTimeString();
  const detail = describe(ev);
  li.textContent = `${when} ${ev.type}${detail ? " - " + detail : ""}`;
  $("events").appendChild(li);
  $("events").scrollTop = $("events").scrollHeight;
}

// -- playback --------------------------------------------------------------------------------
function playPcm16(buffer) {
  if (!audioCtx || buffer.byteLength < 2) return;
  vg.audioBytesReceived += buffer.byteLength;
  replyArrived();
  const samples = new Int16Array(buffer, 0, buffer.byteLength >> 1);
  const audio = audioCtx.createBuffer(1, samples.length, OUTPUT_RATE);
  const channel = audio.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 0x8000;
  const source = audioCtx.createBufferSource();
  source.buffer = audio;
  source.connect(audioCtx.destination);
  // A little lead keeps network jitter from cutting gaps into the reply.
  playHead = Math.max(playHead, audioCtx.currentTime + 0.05);
  source.start(playHead);
  playHead += audio.duration;
  playing.push(source);
  source.onended = () => { playing = playing.filter((s) => s !== source); };
}

function flushPlayback() {
  for (const s of playing) { try { s.stop(); } catch (_) { /* already stopped */ } }
  playing = [];
  playHead = 0;
}

function base64ToBuffer(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

// -- socket ----------------------------------------------------------------------------------
function onMessage(msg) {
  if (typeof msg.data !== "string") { playPcm16(msg.data); return; }
  let ev;
  try { ev = JSON.parse(msg.data); } catch (_) { return; }
  if (!ev || typeof ev.type !== "string") return;
  vg.events.push(ev);
  if (LOGGED(ev.type)) logEvent(ev);
  switch (ev.type) {
    case "session.started":
      vg.sessionId = ev.session_id;
      vg.state = "live";
      setProvider(ev.provider, ev.capabilities);
      setStatus(`Connected: session ${ev.session_id}. Speak now.`);
      break;
    case "transcript.partial": onTranscript(ev, false); break;
    case "transcript.final": onTranscript(ev, true); break;
    case "audio.delta": playPcm16(base64ToBuffer(ev.audio)); break;
    case "turn.interrupted": flushPlayback(); replyOpen = false; break;
    case "turn.completed": replyOpen = false; break;
    case "provider.switched":
      setProvider(ev.to || ev.provider, ev.capabilities);
      break;
    case "error": setStatus(`Error: ${ev.message}`, true); break;
    case "session.ended": vg.state = "ended"; setStatus(`Session ended: ${endReason(ev.reason)}.`); break;
    default: break;
  }
}

async function startMicrophone() {
  micStream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  await audioCtx.audioWorklet.addModule("/static/audio-worklet.js");
  const source = audioCtx.createMediaStreamSource(micStream);
  worklet = new AudioWorkletNode(audioCtx, "pcm16-capture", { processorOptions: { targetRate: INPUT_RATE } });
  // Audio only after session.start: it must be the first message (docs/protocol.md).
  worklet.port.onmessage = (e) => {
    if (ws && sessionStartSent && !recorder && ws.readyState === WebSocket.OPEN) {
      ws.send(e.data);
      vg.uploadedBytes += e.data.byteLength;
    }
  };
  source.connect(worklet);
  // Not connected to the destination: the caller must not hear their own microphone.
  analyser = audioCtx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const tick = () => {
    if (!analyser) return;
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const v of samples) sum += v * v;
    const rms = Math.sqrt(sum / samples.length);
    const level = Math.min(1, rms * 4); // speech sits around 0.05-0.2 RMS: spread it over the meter
    $("mic-level").value = level;
    vg.micLevelMax = Math.max(vg.micLevelMax, level);
    meterFrame = requestAnimationFrame(tick);
  };
  tick();
}

// "Compressed upload": MediaRecorder's WebM/Opus stream, sent as it is produced (100 ms pieces, in
// order) instead of the worklet's PCM frames. The gateway decodes it (audio.input.encoding webm).
const WEBM_OPUS = "audio/webm;codecs=opus";
function compressedWanted() { return $("compressed").checked; }

function startRecorder() {
  if (!window.MediaRecorder || !MediaRecorder.isTypeSupported(WEBM_OPUS)) {
    throw new Error("this browser cannot record WebM/Opus: untick compressed upload");
  }
  recorder = new MediaRecorder(micStream, { mimeType: WEBM_OPUS, audioBitsPerSecond: 32000 });
  let chain = Promise.resolve();
  recorder.ondataavailable = (e) => {
    if (!e.data || !e.data.size) return;
    chain = chain.then(() => e.data.arrayBuffer()).then((buf) => {
      if (ws && ws.readyState === WebSocket.OPEN) { ws.send(buf); vg.uploadedBytes += buf.byteLength; }
    });
  };
  recorder.start(100);
}

// RFC 7230 tchar: the only characters a Sec-WebSocket-Protocol value may hold.
const SUBPROTOCOL_SAFE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function openSocket(token) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/voice`;
  if (!token) return new WebSocket(url);
  // Browsers cannot set headers on a WebSocket: the token rides as a subprotocol value and the
  // gateway echoes only `voice-gateway.v1` (docs/protocol.md). A token with other characters ("/", "=")
  // would make the constructor throw, so it goes as `?token=`, the other form docs/protocol.md allows.
  if (SUBPROTOCOL_SAFE.test(token)) return new WebSocket(url, ["voice-gateway.v1", `token.${token}`]);
  return new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
}

async function start() {
  const provider = $("provider-select").value;
  const settings = window.vgConfig.sessionStart(provider);
  // the form being edited counts too: its invalid values were not saved, and the caller expects them
  if (!window.vgConfig.check(false)) settings.problems.push("see the fields marked in Provider settings.");
  if (settings.problems.length) {
    setStatus(`Fix the provider settings first: ${settings.problems.join(" ")}`, true);
    $("config-panel").open = true;
    return;
  }
  if (!window.isSecureContext || !navigator.mediaDevices) {
    $("secure-warning").hidden = false;
    setStatus("The microphone is blocked: this page is not on HTTPS or localhost.", true);
    return;
  }
  setRunning(true);
  setStatus("Starting...");
  flushPlayback();
  separateCalls(provider);
  vg.sessionId = null;
  vg.state = "connecting";
  pendingTurns = [];
  replyOpen = false;
  sessionStartSent = false;
  try {
    audioCtx = new AudioContext();
    await audioCtx.resume();
    await startMicrophone();
  } catch (err) {
    setStatus(`Microphone unavailable: ${err.message || err}`, true);
    await stop();
    return;
  }
  try {
    ws = openSocket($("token").value.trim());
  } catch (err) {
    setStatus(`Could not connect: ${err.message || err}`, true);
    await stop();
    return;
  }
  ws.binaryType = "arraybuffer";
  let opened = false;
  ws.onopen = () => {
    opened = true;
    vg.protocol = ws.protocol || null;
    const compressed = compressedWanted();
    vg.sessionStart = {
      type: "session.start",
      provider,
      audio: { input: { encoding: compressed ? "webm" : "pcm16", sample_rate: INPUT_RATE },
               output: { encoding: "pcm16", sample_rate: OUTPUT_RATE } },
      ...settings.fields,
    };
    ws.send(JSON.stringify(vg.sessionStart));
    sessionStartSent = true;
    if (compressed) {
      try { startRecorder(); } catch (err) { setStatus(`Compressed upload unavailable: ${err.message}`, true); stop(); return; }
    }
    setStatus("Connecting to the provider...");
  };
  ws.onmessage = onMessage;
  ws.onerror = () => setStatus("WebSocket error (see the browser console)", true);
  ws.onclose = (e) => {
    if (!opened) {
      // A refused upgrade (403 for a missing or wrong token, a foreign origin; 503 while draining)
      // reaches a page only as close code 1006: say what the likely causes are.
      setStatus("Could not connect: the gateway refused the call or is unreachable. "
        + "Check the client token, or try again later.", true);
    } else if (vg.state !== "ended") {
      setStatus(e.code === 1000 ? "Disconnected." : `Disconnected (code ${e.code}${e.reason ? ": " + e.reason : ""})`,
        e.code !== 1000);
    }
    vg.state = "closed";
    ws = null;
    stopAudio();
    setRunning(false);
  };
}

function stopAudio() {
  if (recorder) { try { recorder.stop(); } catch (_) { /* already inactive */ } recorder = null; }
  if (meterFrame) { cancelAnimationFrame(meterFrame); meterFrame = 0; }
  analyser = null;
  $("mic-level").value = 0;
  if (worklet) { worklet.port.postMessage("stop"); worklet.disconnect(); worklet = null; }
  if (micStream) { micStream.getTracks().forEach((t) => t.stop()); micStream = null; }
  flushPlayback();
  if (audioCtx) { audioCtx.close(); audioCtx = null; }
}

async function stop() {
  $("stop").disabled = true;
  const socket = ws;
  stopAudio();
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "session.end" }));
    setStatus("Ending the session...");
    // The gateway answers with session.ended and closes; close ourselves if it does not.
    setTimeout(() => { if (socket.readyState === WebSocket.OPEN) socket.close(1000); }, 2000);
  } else {
    if (socket) socket.close();
    setRunning(false);
  }
}

// Browsers give the microphone only to secure contexts (HTTPS, or http://localhost / 127.0.0.1).
if (!window.isSecureContext) $("secure-warning").hidden = false;
$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
