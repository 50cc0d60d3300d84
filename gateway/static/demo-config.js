// Per-provider settings panel of the demo page. One form, re-filled for the provider chosen in
// #config-provider; values are validated as they are typed and kept per provider in localStorage
// (key vg.demo.config.<provider>) only when valid. demo.js asks `vgConfig.sessionStart(provider)` for
// the session.start fields: the top-level instructions/voice/language/tools come from the provider the
// call starts on, and `provider_options` carries every provider's settings (voice and instructions too),
// so after a switch the gateway sets the new provider up with its own.
// The option names are the gateway's provider_options names (docs/protocol.md).
"use strict";

(() => {
  const STORAGE = "vg.demo.config.";
  const PROVIDERS = ["gemini", "openai", "deepgram", "openai_live"];
  // Which fields each provider has. Temperature: Gemini only (OpenAI's GA Realtime API has none;
  // Deepgram transcribes). Voice/instructions/tools: the speech-to-speech providers only.
  const SCHEMA = {
    gemini: {
      label: "Gemini Live",
      fields: ["model", "voice", "instructions", "language", "temperature", "tools", "proactive_audio",
               "thinking_budget"],
      voices: ["Puck", "Charon", "Kore", "Fenrir", "Aoede", "Leda", "Orus", "Zephyr"],
      model: "models/gemini-2.5-flash-native-audio-preview-12-2025",
    },
    openai: {
      label: "OpenAI Realtime",
      fields: ["model", "voice", "instructions", "language", "tools", "noise_reduction", "semantic_vad"],
      voices: ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"],
      model: "gpt-realtime",
    },
    deepgram: {
      label: "Deepgram (transcripts only)",
      fields: ["model", "language", "keyterm", "smart_format"],
      voices: [],
      model: "nova-3",
    },
    openai_live: {
      label: "OpenAI GPT-Live",
      fields: ["model", "voice", "instructions", "tools"],
      voices: ["marin", "cedar", "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"],
      model: "gpt-live-1",
    },
  };
  // Fields that go top-level in session.start (the others are provider_options only).
  const TOP_LEVEL = ["instructions", "voice", "language", "tools"];
  const LANGUAGE = /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/;
  const $ = (id) => document.getElementById(id);

  // Each validator takes the raw form value and returns [value, error]: value undefined = not set.
  const FIELDS = {
    model: { read: (v) => text(v, 200, "Model") },
    voice: { read: (v) => text(v, 60, "Voice") },
    instructions: { read: (v) => text(v, 8000, "Instructions") },
    language: {
      read: (v) => {
        const t = v.trim();
        if (!t) return [undefined, null];
        return LANGUAGE.test(t) ? [t, null] : [undefined, "Language must be a BCP-47 tag such as en-US or de."];
      },
    },
    temperature: { read: (v) => number(v, 0, 2, false, "Temperature") },
    thinking_budget: { read: (v) => number(v, -1, 32768, true, "Thinking budget") },
    tools: {
      read: (v) => {
        const t = v.trim();
        if (!t) return [undefined, null];
        let parsed;
        try { parsed = JSON.parse(t); } catch (err) { return [undefined, `Tools must be JSON: ${err.message}`]; }
        if (!Array.isArray(parsed)) return [undefined, "Tools must be a JSON array of {name, description, parameters}."];
        for (const [i, tool] of parsed.entries()) {
          if (!tool || typeof tool !== "object" || typeof tool.name !== "string" || !tool.name) {
            return [undefined, `Tool ${i + 1} needs a "name" (a non-empty string).`];
          }
          if (tool.parameters !== undefined && (typeof tool.parameters !== "object" || Array.isArray(tool.parameters))) {
            return [undefined, `Tool "${tool.name}": "parameters" must be a JSON schema object.`];
          }
        }
        return [parsed, null];
      },
    },
    proactive_audio: { read: (v) => [v ? true : undefined, null], checkbox: true },
    smart_format: { read: (v) => [v ? true : undefined, null], checkbox: true },
    noise_reduction: { read: (v) => [v === "" ? undefined : (v === "off" ? null : v), null] },
    semantic_vad: { read: (v) => [v === "" ? undefined : (v === "server_vad" ? false : v), null] },
    keyterm: {
      read: (v) => {
        const terms = v.split(",").map((s) => s.trim()).filter(Boolean);
        if (!terms.length) return [undefined, null];
        if (terms.length > 100) return [undefined, "At most 100 keyterms."];
        const long = terms.find((s) => s.length > 200);
        return long ? [undefined, `Keyterm too long: ${long.slice(0, 20)}...`] : [terms, null];
      },
    },
  };

  function text(v, max, name) {
    const t = v.trim();
    if (!t) return [undefined, null];
    return t.length > max ? [undefined, `${name} is longer than ${max} characters.`] : [t, null];
  }

  function number(v, lo, hi, integer, name) {
    const t = String(v).trim();
    if (!t) return [undefined, null];
    const n = Number(t);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < lo || n > hi) {
      return [undefined, `${name} must be ${integer ? "an integer" : "a number"} from ${lo} to ${hi}.`];
    }
    return [n, null];
  }

  function stored(provider) {
    try { return JSON.parse(localStorage.getItem(STORAGE + provider) || "{}") || {}; } catch (_) { return {}; }
  }

  // The raw form values of the shown provider (strings / booleans, as typed).
  function formValues() {
    const out = {};
    for (const name of Object.keys(FIELDS)) {
      const el = $(`cfg-${name}`);
      if (el) out[name] = FIELDS[name].checkbox ? el.checked : el.value;
    }
    return out;
  }

  // Validate raw values for `provider`: {values (parsed, set fields only), errors {field: message}}.
  function validate(provider, raw) {
    const values = {};
    const errors = {};
    for (const name of SCHEMA[provider].fields) {
      const [value, error] = FIELDS[name].read(raw[name] ?? (FIELDS[name].checkbox ? false : ""));
      if (error) errors[name] = error;
      else if (value !== undefined) values[name] = value;
    }
    return { values, errors };
  }

  let shown = "gemini";

  function show(provider) {
    shown = provider;
    $("config-provider").value = provider;
    const schema = SCHEMA[provider];
    const raw = stored(provider).raw || {};
    for (const name of Object.keys(FIELDS)) {
      const el = $(`cfg-${name}`);
      if (!el) continue;
      const row = el.closest("[data-field]");
      row.hidden = !schema.fields.includes(name);
      if (FIELDS[name].checkbox) el.checked = Boolean(raw[name]);
      else el.value = raw[name] ?? "";
    }
    $("cfg-model").placeholder = schema.model;
    const voices = $("cfg-voices");
    voices.replaceChildren(...schema.voices.map((v) => new Option(v, v)));
    $("cfg-voice").placeholder = schema.voices[0] || "";
    check(false);
  }

  // Validate the form; save when valid. Returns true when valid.
  function check(save = true) {
    const raw = formValues();
    const { values, errors } = validate(shown, raw);
    const list = $("config-errors");
    list.replaceChildren();
    for (const name of Object.keys(FIELDS)) {
      const el = $(`cfg-${name}`);
      if (el) el.setAttribute("aria-invalid", errors[name] ? "true" : "false");
    }
    for (const [name, message] of Object.entries(errors)) {
      const li = document.createElement("li");
      li.dataset.field = name;
      li.textContent = message;
      list.appendChild(li);
    }
    const ok = Object.keys(errors).length === 0;
    if (ok && save) {
      localStorage.setItem(STORAGE + shown, JSON.stringify({ raw, values }));
      $("config-status").textContent = `Saved for ${SCHEMA[shown].label}; applied at the next Start.`;
      const status = $("status");
      if (status.textContent.startsWith("Fix the provider settings")) {  // that complaint is settled now
        status.textContent = "Idle. Press Start and allow the microphone.";
        status.classList.remove("bad");
      }
    } else if (!ok) {
      $("config-status").textContent = "Not saved: fix the fields marked below.";
    }
    return ok;
  }

  // The settings kept for `provider` (validated again: storage may hold an older shape).
  function settings(provider) {
    const { values, errors } = validate(provider, stored(provider).raw || {});
    return { values, errors };
  }

  // session.start fields for a call starting on `provider` ("auto" starts on `fallbackFirst`).
  function sessionStart(provider, fallbackFirst = "gemini") {
    const first = provider === "auto" ? fallbackFirst : provider;
    const problems = [];
    const options = {};
    for (const p of PROVIDERS) {
      const { values, errors } = settings(p);
      for (const message of Object.values(errors)) problems.push(`${SCHEMA[p].label}: ${message}`);
      const opts = {};
      for (const [name, value] of Object.entries(values)) {
        if (name !== "tools" && name !== "language") opts[name] = value;
      }
      if (Object.keys(opts).length) options[p] = opts;
    }
    const top = {};
    const mine = settings(first).values;
    for (const name of TOP_LEVEL) if (mine[name] !== undefined) top[name] = mine[name];
    return { fields: { ...top, ...(Object.keys(options).length ? { provider_options: options } : {}) }, problems };
  }

  function reset() {
    localStorage.removeItem(STORAGE + shown);
    show(shown);
    $("config-status").textContent = `Defaults restored for ${SCHEMA[shown].label}.`;
  }

  $("config-provider").addEventListener("change", (e) => show(e.target.value));
  $("config-form").addEventListener("input", () => check(true));
  $("config-form").addEventListener("change", () => check(true));
  $("config-form").addEventListener("submit", (e) => { e.preventDefault(); check(true); });
  $("config-reset").addEventListener("click", reset);
  window.vgConfig = { show, check, settings, sessionStart, validate, SCHEMA, label: (p) => (SCHEMA[p] || {}).label || p };
  show(PROVIDERS.includes($("provider-select").value) ? $("provider-select").value : "gemini");
})();
