// Demo page for /v1/voice (docs/protocol.md): microphone -> PCM16 16 kHz binary frames; reply audio
// (binary PCM16 24 kHz, or `audio.delta` base64) -> a scheduled playback queue, flushed on
// `turn.interrupted`. Transcripts and connection events are rendered as they arrive.
// window.vg exposes the state for browser tests.
"use strict";

const INPUT_RATE = 16000;
const OUTPUT_RATE = 24000;
const LOGGED = (type) => type.startsWith("connection.") || type.startsWith("session.")
  || type === "provider.switched" || type === "error";

const vg = window.vg = {
  sessionId: null, events: [], transcripts: [], state: "idle", audioBytesReceived: 0, protocol: null,
};
const $ = (id) => document.getElementById(id);
let ws = null;
let audioCtx = null;
let micStream = null;
let worklet = null;
let playHead = 0;
let playing = [];
let sessionStartSent = false;

function setStatus(text, bad = false) {
  $("status").textContent = text;
  $("status").classList.toggle("bad", bad);
}

// `capabilities` from session.started / provider.switched (docs/architecture.md): after a switch to a
// transcripts-only provider the caller must learn why the spoken replies stopped.
function setProvider(name, capabilities) {
  $("provider").textContent = name || "none";
  const speaks = !capabilities || capabilities.audio_output !== false;
  $("provider-note").textContent = speaks ? "" : "(transcripts only: no spoken reply)";
}

function setRunning(running) {
  $("start").disabled = running;
  $("stop").disabled = !running;
  $("provider-select").disabled = running;
  $("token").disabled = running;
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
  }
  panel.scrollTop = panel.scrollHeight;
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
    case "provider.switched": return `${ev.from} -> ${ev.to} (${ev.reason}), ${ev.carried_turns} turns carried`;
    case "error": return `${ev.code}: ${ev.message}`;
    case "session.ended": return `${ev.reason}`;
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
    case "turn.interrupted": flushPlayback(); break;
    case "provider.switched": setProvider(ev.to || ev.provider, ev.capabilities); break;
    case "error": setStatus(`Error: ${ev.message}`, true); break;
    case "session.ended": vg.state = "ended"; setStatus(`Session ended: ${ev.reason}`); break;
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
    if (ws && sessionStartSent && ws.readyState === WebSocket.OPEN) ws.send(e.data);
  };
  source.connect(worklet);
  // Not connected to the destination: the caller must not hear their own microphone.
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
  setRunning(true);
  setStatus("Starting...");
  flushPlayback();
  vg.sessionId = null;
  vg.state = "connecting";
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
    const provider = $("provider-select").value;
    ws.send(JSON.stringify({
      type: "session.start",
      provider,
      audio: { input: { encoding: "pcm16", sample_rate: INPUT_RATE },
               output: { encoding: "pcm16", sample_rate: OUTPUT_RATE } },
    }));
    sessionStartSent = true;
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

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
