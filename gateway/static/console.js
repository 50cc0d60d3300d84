// Operator console (docs/protocol.md): polls /admin/sessions, /admin/circuits and /readyz every second;
// switches a call's provider (POST /admin/sessions/{id}/switch) and resets breakers
// (POST /admin/circuits/{provider}/reset). The admin token lives in sessionStorage only.
// Rows are updated in place so a provider <select> the operator is using is not rebuilt under them.
// window.vgConsole exposes the last poll for browser tests.
"use strict";

const TOKEN_KEY = "vg.adminToken";
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const state = window.vgConsole = { sessions: [], circuits: [], ready: null, polls: 0, lastError: null };

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
  });
}

// -- sessions --------------------------------------------------------------------------------
function switchControl(row, session) {
  let select = row.querySelector("select");
  if (!select) {
    const c = cell(row, 7, "");
    select = document.createElement("select");
    select.setAttribute("aria-label", `provider for call ${session.id}`);
    select.addEventListener("change", () => switchProvider(select.dataset.sessionId, select.value, select));
    c.appendChild(select);
  }
  select.dataset.sessionId = session.id;
  // The providers this gateway has, as /readyz lists them (the server's registry decides).
  const names = Object.keys((state.ready && state.ready.providers) || {});
  if (names.length && [...select.options].map((o) => o.value).join() !== names.join()) {
    select.replaceChildren(...names.map((p) => new Option(p, p)));
  }
  // Leave it alone while the operator is choosing or a switch is in flight.
  if (document.activeElement !== select && !select.disabled) select.value = session.provider;
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
    cell(row, 0, s.id);
    cell(row, 1, s.provider || "-");
    cell(row, 2, s.state || "-");
    cell(row, 3, s.client || "-");
    cell(row, 4, formatDuration(s.duration_s), "num");
    cell(row, 5, s.replay_depth ?? 0, "num");
    cell(row, 6, s.last_event || "-");
    switchControl(row, s);
  }
  for (const gone of byId.values()) gone.remove();
  $("session-count").textContent = String(sessions.length);
  $("no-sessions").hidden = sessions.length > 0;
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

$("admin-token").value = token();
$("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("admin-token").value.trim());
  poll();
});
$("forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  $("admin-token").value = "";
  poll();
});
poll();
setInterval(poll, POLL_MS);
