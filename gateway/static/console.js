// Operator console (docs/operations.md): polls /admin/sessions, /admin/circuits and /readyz every second;
// switches a call's provider (POST /admin/sessions/{id}/switch) or hangs it up (POST .../end), each after
// a confirmation; resets breakers (POST /admin/circuits/{provider}/reset); a drawer shows one call's
// transcript and event timeline (GET /admin/sessions/{id}, also for recently ended calls); live SVG
// charts of calls and circuit states. Also: every breaker at once (POST /admin/circuits/reset) and a
// provider disabled/enabled (PATCH /admin/providers/{name}); in fleet mode the lists cover every
// replica (docs/fleet.md) and the Replica columns say which one holds the call or breaker.
// The admin token lives in sessionStorage only.
// Rows are updated in place so a provider <select> the operator is using is not rebuilt under them.
// window.vgConsole exposes the last poll for browser tests.
"use strict";

// Shown beside a provider in the switch dropdown: what a call moved there gets (its capabilities).
const PROVIDER_NOTES = { deepgram_agent: "voice agent: speaks, transcripts, tools" };
const TOKEN_KEY = "vg.adminToken";
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const state = window.vgConsole = {
  sessions: [], ended: [], circuits: [], ready: null, polls: 0, lastError: null, history: [], drawer: null,
};
const HISTORY = 120; // chart samples: two minutes at one poll per second
const END_REASONS = {
  client_ended: "caller ended it", client_disconnected: "caller's connection closed", caller_hung_up: "caller hung up",
  operator_hangup: "operator hung up", idle_timeout: "idle timeout", server_shutdown: "gateway shut down",
  server_draining: "gateway drained",
};
const BREAKER_REASONS = {
  auth: (p) => `API key rejected: fix ${p.toUpperCase()}_API_KEY, then reset`,
  failure_threshold: () => "too many consecutive failures; retries by itself",
  half_open_failure: () => "a trial call failed while half-open",
};

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function setStatus(text, bad = false, id = "console-status") {
  $(id).textContent = text;
  $(id).classList.toggle("bad", bad);
}

// Results of operator actions stay put; the poll status line is rewritten every second.
function actionStatus(text, bad = false) { setStatus(text, bad, "action-status"); }

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  cache: "no-store" });
  let data = null;
  try { data = await res.json(); } catch (_) { /* empty or not JSON */ }
  return { status: res.status, ok: res.ok, data };
}

function authMessage(status) {
  if (status === 401) return "The admin API needs a token: enter VG_ADMIN_TOKEN above.";
  if (status === 403) return "The admin token was refused (or the admin API is disabled on this bind).";
  return `The gateway answered ${status}.`;
}

function cell(row, index, text, className) {
  while (row.cells.length <= index) row.insertCell();
  const c = row.cells[index];
  if (c.textContent !== String(text)) c.textContent = String(text);
  if (className !== undefined) c.className = className;
  return c;
}

function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const m = Math.floor(s / 60);
  return m ? `${m}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

// -- confirmation ----------------------------------------------------------------------------
// One pending action at a time, confirmed in the page (not window.confirm: it blocks the polling).
let pending = null;

function askConfirm(text, onYes, onNo) {
  if (pending && pending.onNo) pending.onNo();
  pending = { onYes, onNo };
  $("confirm-text").textContent = text;
  $("confirm-bar").hidden = false;
  $("confirm-yes").focus();
}

function settleConfirm(yes) {
  const action = pending;
  pending = null;
  $("confirm-bar").hidden = true;
  if (!action) return;
  if (yes) action.onYes();
  else if (action.onNo) action.onNo();
}

// -- health ----------------------------------------------------------------------------------
function renderHealth(res) {
  state.ready = res.data;
  const ready = res.status === 200;
  $("ready").textContent = res.data ? `(${res.data.status || (ready ? "ready" : "not ready")})` : `(${res.status})`;
  const body = $("health").tBodies[0];
  const providers = (res.data && res.data.providers) || {};
  const names = Object.keys(providers);
  while (body.rows.length > names.length) body.deleteRow(-1);
  names.forEach((name, i) => {
    const row = body.rows[i] || body.insertRow();
    row.dataset.provider = name;
    const p = providers[name] || {};
    cell(row, 0, name);
    cell(row, 1, p.mode || "?");
    cell(row, 2, p.circuit || "?", `state-${p.circuit || ""}`);
    providerControl(row, name, p.status || "enabled");
  });
}

// -- operator controls: disable/enable a provider, reset every breaker (audited, fleet-wide) ----
function providerControl(row, name, status) {
  cell(row, 3, status, `status-${status}`);
  let button = row.querySelector("button");
  if (!button) {
    button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.addEventListener("click", () => setProviderStatus(name, button.dataset.next, button));
    cell(row, 4, "").appendChild(button);
  }
  const next = status === "disabled" ? "enabled" : "disabled";
  button.dataset.next = next;
  button.textContent = next === "disabled" ? "Disable" : "Enable";
  button.setAttribute("aria-label", `${next === "disabled" ? "disable" : "enable"} ${name}`);
}

async function setProviderStatus(name, status, button) {
  button.disabled = true;
  try {
    // live calls on a disabled provider move at their next turn boundary (live_calls: "switch")
    const res = await api("PATCH", `/admin/providers/${encodeURIComponent(name)}`, { status, live_calls: "switch" });
    if (res.ok) actionStatus(`${name} ${status}.`);
    else actionStatus(`Refused: ${(res.data && res.data.message) || authMessage(res.status)}`, true);
  } catch (err) {
    actionStatus(`Failed: ${err.message || err}`, true);
  } finally {
    button.disabled = false;
  }
  poll();
}

async function resetAllCircuits() {
  try {
    const res = await api("POST", "/admin/circuits/reset");
    if (res.ok) actionStatus("Every circuit breaker reset.");
    else actionStatus(`Reset refused: ${(res.data && res.data.message) || authMessage(res.status)}`, true);
  } catch (err) {
    actionStatus(`Reset failed: ${err.message || err}`, true);
  }
  poll();
}

// -- sessions --------------------------------------------------------------------------------
function switchControl(row, session) {
  let select = row.querySelector("select");
  if (!select) {
    const c = cell(row, 7, "");
    select = document.createElement("select");
    select.setAttribute("aria-label", `provider for call ${session.id}`);
    select.addEventListener("change", () => {
      const from = select.dataset.provider;
      askConfirm(`Switch call ${select.dataset.sessionId} from ${from} to ${select.value}?`,
        () => switchProvider(select.dataset.sessionId, select.value, select),
        () => { select.value = from; select.blur(); });
    });
    c.appendChild(select);
  }
  select.dataset.sessionId = session.id;
  select.dataset.provider = session.provider;
  // The providers this gateway has, as /readyz lists them (the server's registry decides).
  const names = Object.keys((state.ready && state.ready.providers) || {});
  if (names.length && [...select.options].map((o) => o.value).join() !== names.join()) {
    select.replaceChildren(...names.map((p) => new Option(PROVIDER_NOTES[p] ? `${p} (${PROVIDER_NOTES[p]})` : p, p)));
  }
  // Leave it alone while the operator is choosing, confirming, or a switch is in flight.
  if (document.activeElement !== select && !select.disabled && !pending) select.value = session.provider;
}

function hangUpControl(row, session) {
  let button = row.querySelector("button.hang-up");
  if (!button) {
    button = document.createElement("button");
    button.type = "button";
    button.className = "secondary hang-up";
    button.textContent = "Hang up";
    button.addEventListener("click", () => askConfirm(`Hang up call ${button.dataset.sessionId}?`,
      () => hangUp(button.dataset.sessionId, button)));
    cell(row, 8, "").appendChild(button);
  }
  button.dataset.sessionId = session.id;
  button.setAttribute("aria-label", `hang up call ${session.id}`);
}

async function hangUp(sessionId, button) {
  button.disabled = true;
  try {
    const res = await api("POST", `/admin/sessions/${encodeURIComponent(sessionId)}/end`);
    if (res.ok) actionStatus(`Hung up ${sessionId}.`);
    else actionStatus(`Hang-up refused: ${(res.data && res.data.message) || authMessage(res.status)}`, true);
  } catch (err) {
    actionStatus(`Hang-up failed: ${err.message || err}`, true);
  } finally {
    button.disabled = false;
  }
  poll();
}

function idCell(row, index, id) {
  let button = row.cells[index] && row.cells[index].querySelector("button.link");
  if (!button) {
    button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.addEventListener("click", () => openDrawer(button.dataset.sessionId));
    cell(row, index, "").appendChild(button);
  }
  button.dataset.sessionId = id;
  button.textContent = id;
  button.setAttribute("aria-label", `details of call ${id}`);
}

function replayCell(row, session) {
  const limit = session.replay_limit || 100;
  const depth = session.replay_depth ?? 0;
  const c = cell(row, 5, "", "num");
  let label = c.querySelector("span");
  let meter = c.querySelector("meter");
  if (!label) {
    label = document.createElement("span");
    meter = document.createElement("meter");
    meter.className = "replay";
    c.append(label, meter);
  }
  label.textContent = `${depth} / ${limit}`;
  meter.max = limit;
  meter.high = limit * 0.8;
  meter.value = depth;
  meter.setAttribute("aria-label", `replay buffer ${depth} of ${limit} chunks`);
}

function renderSessions(res) {
  const sessions = (res.data && res.data.sessions) || [];
  state.sessions = sessions;
  const body = $("sessions").tBodies[0];
  const byId = new Map([...body.rows].map((r) => [r.dataset.sessionId, r]));
  for (const s of sessions) {
    let row = byId.get(s.id);
    if (!row) { row = body.insertRow(); row.dataset.sessionId = s.id; }
    byId.delete(s.id);
    idCell(row, 0, s.id);
    cell(row, 1, s.provider || "-");
    cell(row, 2, s.state || "-");
    cell(row, 3, s.client || "-");
    cell(row, 4, formatDuration(s.duration_s), "num");
    replayCell(row, s);
    cell(row, 6, s.last_event || "-");
    switchControl(row, s);
    hangUpControl(row, s);
    cell(row, 9, s.replica || "-");
  }
  for (const gone of byId.values()) gone.remove();
  $("session-count").textContent = String(sessions.length);
  $("no-sessions").hidden = sessions.length > 0;
  renderEnded((res.data && res.data.recently_ended) || []);
  const costs = res.data && res.data.costs;
  $("spend").hidden = !costs;
  if (costs) $("spend-body").textContent = JSON.stringify(costs);
}

function renderEnded(ended) {
  state.ended = ended;
  const body = $("ended").tBodies[0];
  while (body.rows.length > ended.length) body.deleteRow(-1);
  ended.forEach((s, i) => {
    const row = body.rows[i] || body.insertRow();
    row.dataset.sessionId = s.id;
    idCell(row, 0, s.id);
    cell(row, 1, s.provider || "-");
    cell(row, 2, s.client || "-");
    cell(row, 3, formatDuration(s.duration_s), "num");
    cell(row, 4, END_REASONS[s.ended_reason] || s.ended_reason || "-");
    cell(row, 5, s.ended_at ? new Date(s.ended_at * 1000).toLocaleTimeString() : "-");
  });
  $("no-ended").hidden = ended.length > 0;
}

// -- the call drawer ---------------------------------------------------------------------------
function openDrawer(sessionId) {
  state.drawer = sessionId;
  $("drawer").hidden = false;
  $("drawer-title").textContent = `Call ${sessionId}`;
  refreshDrawer();
}

function describeEvent(e) {
  switch (e.type) {
    case "transcript.final": return `${e.role}: ${e.text}`;
    case "provider.switched": return `${e.from} -> ${e.to} (${e.reason})`;
    case "connection.reconnecting": return `attempt ${e.attempt}/${e.max_attempts}`;
    case "connection.failed": return e.reason;
    case "error": return `${e.code}: ${e.message}`;
    case "session.ended": return END_REASONS[e.reason] || e.reason;
    case "session.started": return `on ${e.provider}`;
    case "dtmf": return `digit ${e.digit}`;
    default: return "";
  }
}

async function refreshDrawer() {
  const sessionId = state.drawer;
  if (!sessionId) return;
  const res = await api("GET", `/admin/sessions/${encodeURIComponent(sessionId)}`);
  if (state.drawer !== sessionId) return;
  if (!res.ok) { $("drawer-summary").textContent = authMessage(res.status); return; }
  const d = res.data;
  $("drawer-summary").textContent = `${d.provider || "-"} · ${d.client} · ${d.state}`
    + ` · ${formatDuration(d.duration_s)} · replay ${d.replay_depth}/${d.replay_limit || 100}`
    + (d.ended_reason ? ` · ended: ${END_REASONS[d.ended_reason] || d.ended_reason}` : "");
  const transcript = (d.transcript || []).map((t) => {
    const li = document.createElement("li");
    li.dataset.role = t.role;
    li.textContent = `${t.role}: ${t.text}`;
    return li;
  });
  $("drawer-transcript").replaceChildren(...transcript);
  const events = (d.recent_events || []).filter((e) => e.type !== "transcript.partial").map((e) => {
    const li = document.createElement("li");
    li.dataset.type = e.type;
    const when = e.ts ? new Date(e.ts * 1000).toLocaleTimeString() : "";
    const detail = describeEvent(e);
    li.textContent = `${when} ${e.type}${detail ? " - " + detail : ""}`;
    return li;
  });
  $("drawer-events").replaceChildren(...events);
}

// -- charts (plain SVG, no library) -------------------------------------------------------------
const STATE_LEVEL = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2 };

function sample(sessions, circuits) {
  const health = {};
  // a provider's row shows its worst breaker (live and chain breakers share the provider name)
  for (const c of circuits) {
    const prev = health[c.provider];
    if (prev === undefined || (STATE_LEVEL[c.state] ?? 0) > (STATE_LEVEL[prev] ?? 0)) health[c.provider] = c.state;
  }
  state.history.push({ calls: sessions.length, health });
  if (state.history.length > HISTORY) state.history.shift();
  drawCharts();
}

function drawCharts() {
  const h = state.history;
  const step = 240 / (HISTORY - 1);
  const peak = Math.max(1, ...h.map((x) => x.calls));
  const offset = HISTORY - h.length;
  const points = h.map((x, i) => `${((offset + i) * step).toFixed(1)},${(58 - (x.calls / peak) * 54).toFixed(1)}`);
  $("chart-calls").querySelector("polyline").setAttribute("points", points.join(" "));
  $("chart-calls-now").textContent = String(h.length ? h[h.length - 1].calls : 0);
  $("chart-calls-peak").textContent = String(Math.max(0, ...h.map((x) => x.calls)));
  const svg = $("chart-health");
  const providers = [...new Set(h.flatMap((x) => Object.keys(x.health)))];
  const rowH = 60 / Math.max(1, providers.length);
  const rects = [];
  providers.forEach((p, r) => {
    h.forEach((x, i) => {
      const st = x.health[p];
      if (st === undefined) return;
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      rect.setAttribute("x", ((offset + i) * step).toFixed(1));
      rect.setAttribute("y", (r * rowH + 1).toFixed(1));
      rect.setAttribute("width", (step + 0.3).toFixed(2));
      rect.setAttribute("height", (rowH - 2).toFixed(1));
      rect.setAttribute("class", `h-${st}`);
      rect.dataset.provider = p;
      rect.dataset.level = String(STATE_LEVEL[st] ?? 0);
      rects.push(rect);
    });
  });
  svg.replaceChildren(...rects);
  $("chart-health-rows").textContent = providers.join(", ") || "-";
}

async function switchProvider(sessionId, provider, select) {
  select.disabled = true;
  actionStatus(`Switching ${sessionId} to ${provider}...`);
  try {
    const res = await api("POST", `/admin/sessions/${encodeURIComponent(sessionId)}/switch`, { provider });
    if (res.ok) actionStatus(`Switched ${sessionId} to ${provider}.`);
    else actionStatus(`Switch refused: ${(res.data && res.data.message) || authMessage(res.status)}`, true);
  } catch (err) {
    actionStatus(`Switch failed: ${err.message || err}`, true);
  } finally {
    select.disabled = false;
    select.blur();
  }
}

// -- circuits --------------------------------------------------------------------------------
// A breaker forced open by a rejected key never half-opens by itself (docs/architecture.md): its
// retry_after_s is only advisory, so say that it waits for the operator instead of counting down.
function retryAfter(c) {
  if (c.state === "OPEN" && c.opened_reason === "auth") return "after reset (key rejected)";
  return c.retry_after_s ? `${Math.ceil(c.retry_after_s)}s` : "-";
}

function renderCircuits(res) {
  const circuits = (res.data && res.data.circuits) || [];
  state.circuits = circuits;
  const body = $("circuits").tBodies[0];
  while (body.rows.length > circuits.length) body.deleteRow(-1);
  circuits.forEach((c, i) => {
    const row = body.rows[i] || body.insertRow();
    row.dataset.provider = c.reset_id || c.provider;
    cell(row, 0, c.chain ? `${c.provider} (${c.chain})` : c.provider);
    cell(row, 1, c.name || "-");
    cell(row, 2, c.state || "?", `state-${c.state || ""}`);
    cell(row, 3, c.failures ?? 0, "num");
    cell(row, 4, retryAfter(c), "num");
    const why = c.state === "CLOSED" ? "-" : (BREAKER_REASONS[c.opened_reason] || (() => c.opened_reason || "-"))(c.provider);
    cell(row, 6, why, c.opened_reason === "auth" && c.state === "OPEN" ? "why bad" : "why");
    let button = row.querySelector("button");
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = "Reset";
      button.addEventListener("click", () => resetCircuit(button.dataset.provider, button));
      cell(row, 5, "").appendChild(button);
    }
    button.dataset.provider = c.reset_id || c.provider;
    button.setAttribute("aria-label", `reset the ${c.reset_id || c.provider} circuit breaker`);
    // another replica's breaker: the row's Reset acts on this replica; "Reset all" reaches every one
    button.hidden = Boolean(c.replica && state.ready && state.ready.fleet && c.replica !== state.ready.fleet.replica);
    cell(row, 7, c.replica ? `${c.replica}${c.advisory ? ` (advisory from ${c.advisory.source})` : ""}` : "-");
  });
}

async function resetCircuit(provider, button) {
  button.disabled = true;
  try {
    const res = await api("POST", `/admin/circuits/${encodeURIComponent(provider)}/reset`);
    if (res.ok) actionStatus(`Circuit for ${provider} reset.`);
    else actionStatus(`Reset refused: ${(res.data && res.data.message) || authMessage(res.status)}`, true);
  } catch (err) {
    actionStatus(`Reset failed: ${err.message || err}`, true);
  } finally {
    button.disabled = false;
  }
  poll();
}

// -- costs (GET /admin/costs, POST /admin/costs/reset-mode; docs/costs.md) ----------------------
function renderCosts(res) {
  if (!res.ok || !res.data) return;
  const b = res.data.budget;
  state.costs = res.data;
  $("cost-spent").textContent = `$${b.spent_today_usd.toFixed(6)}`;
  $("cost-budget").textContent = b.daily_budget_usd === null ? "none" : `$${b.daily_budget_usd}`;
  $("cost-ratio").textContent = b.daily_budget_usd === null ? "no budget" : `${(b.used_ratio * 100).toFixed(1)}%`;
  $("cost-mode").textContent = b.mode === "cost_preservation" ? "cost preservation (primary providers only)"
    : "normal";
  $("cost-mode").className = b.mode === "cost_preservation" ? "bad" : "";
  $("reset-mode").hidden = b.mode !== "cost_preservation";
}

$("reset-mode").addEventListener("click", async () => {
  const res = await api("POST", "/admin/costs/reset-mode");
  actionStatus(res.ok ? "Cost preservation mode ended for today." : authMessage(res.status), !res.ok);
  poll();
});

// -- polling ---------------------------------------------------------------------------------
let polling = false;

async function poll() {
  if (polling) return;
  polling = true;
  try {
    const [sessions, circuits, ready] = await Promise.all([
      api("GET", "/admin/sessions"), api("GET", "/admin/circuits"), api("GET", "/readyz"),
    ]);
    renderHealth(ready);
    if (!sessions.ok || !circuits.ok) {
      state.lastError = sessions.ok ? circuits.status : sessions.status;
      setStatus(authMessage(state.lastError), true);
    } else {
      state.lastError = null;
      renderSessions(sessions);
      renderCircuits(circuits);
      sample(state.sessions, state.circuits);
      refreshDrawer();
      renderCosts(await api("GET", "/admin/costs"));
      setStatus(`Updated ${new Date().toLocaleTimeString()}.`);
    }
    state.polls += 1;
  } catch (err) {
    setStatus(`Gateway unreachable: ${err.message || err}`, true);
  } finally {
    polling = false;
  }
}

$("confirm-yes").addEventListener("click", () => settleConfirm(true));
$("confirm-no").addEventListener("click", () => settleConfirm(false));
$("drawer-close").addEventListener("click", () => { state.drawer = null; $("drawer").hidden = true; });
$("admin-token").value = token();
$("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("admin-token").value.trim());
  poll();
});
$("reset-all").addEventListener("click", resetAllCircuits);
$("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  $("admin-token").value = "";
  poll();
});
poll();
setInterval(poll, POLL_MS);
