// The operator console: a view of the admin API, polled every two seconds.
// No build step, no framework: DOM calls only, and every text from the
// server goes in as text (never as markup).
"use strict";

const POLL_MS = 2000;
// Lag samples kept per projection: five minutes at one every two seconds.
const SAMPLES = 150;

const state = { token: null, email: null, lag: new Map(), timer: null };

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (response.status === 401 && state.token) {
    logout("Your session ended: log in again.");
  }
  if (!response.ok) {
    const detail = data && (data.detail || data.title);
    throw new Error(`${response.status} ${detail || response.statusText}`);
  }
  return data;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const email = $("login-email").value.trim();
  try {
    const tokens = await api("POST", "/v1/auth/token", {
      email,
      password: $("login-password").value,
    });
    state.token = tokens.access_token;
    state.email = email;
    // Only admins may use the admin API: find out now, not on the first poll.
    await api("GET", "/v1/admin/projections");
  } catch (e) {
    state.token = null;
    $("login-error").textContent = e.message.startsWith("403")
      ? "This account is not an admin."
      : `Could not log in: ${e.message}`;
    return;
  }
  $("login-password").value = "";
  $("login-section").hidden = true;
  $("console").hidden = false;
  $("who").hidden = false;
  $("who-email").textContent = email;
  refresh();
}

function logout(why = "") {
  state.token = null;
  clearTimeout(state.timer);
  state.lag.clear();
  $("console").hidden = true;
  $("who").hidden = true;
  $("login-section").hidden = false;
  $("login-error").textContent = why;
}

function sparkline(samples) {
  const width = 160, height = 28;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const base = document.createElementNS(ns, "line");
  base.setAttribute("x1", 0);
  base.setAttribute("x2", width);
  base.setAttribute("y1", height - 1);
  base.setAttribute("y2", height - 1);
  svg.append(base);
  const top = Math.max(1, ...samples);
  const step = width / (SAMPLES - 1);
  const offset = SAMPLES - samples.length;
  const points = samples
    .map((v, i) => `${((offset + i) * step).toFixed(1)},${(height - 1 - (v / top) * (height - 4)).toFixed(1)}`)
    .join(" ");
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points);
  svg.append(line);
  const title = document.createElementNS(ns, "title");
  title.textContent = `most ${top} events behind`;
  svg.append(title);
  return svg;
}

function rebuildCell(rebuild) {
  if (!rebuild) return "";
  const done = rebuild.events_done ?? 0;
  const total = rebuild.events_total ?? 0;
  const share = total > 0 ? Math.min(1, done / total) : 0;
  const bar = el("div", { class: "bar" }, el("div"));
  bar.firstChild.style.width = `${(share * 100).toFixed(1)}%`;
  let text = `${done.toLocaleString()} of ${total.toLocaleString()} events`;
  if (rebuild.events_per_second) text += `, ${Math.round(rebuild.events_per_second).toLocaleString()}/s`;
  if (rebuild.eta_seconds !== undefined) text += `, ${rebuild.eta_seconds} s left`;
  return el("div", { class: "progress", "data-field": "rebuild" }, bar, el("span", {}, text));
}

function button(label, action, onClick, disabled = false) {
  const b = el("button", { type: "button", "data-action": action, disabled }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    $("action-error").textContent = "";
    try {
      await onClick();
    } catch (e) {
      $("action-error").textContent = `${label} failed: ${e.message}`;
    }
    refresh();
  });
  return b;
}

function projectionRow(p) {
  const samples = state.lag.get(p.name) || [];
  samples.push(p.lag_events);
  if (samples.length > SAMPLES) samples.shift();
  state.lag.set(p.name, samples);
  const path = `/v1/admin/projections/${encodeURIComponent(p.name)}`;
  const paused = p.status === "paused" || p.status === "failed";
  return el(
    "tr",
    { "data-projection": p.name },
    el("td", {}, p.name),
    el("td", { class: `status status-${p.status}`, "data-field": "status" }, p.status),
    el("td", { class: "num", "data-field": "generation" }, p.generation),
    el("td", { class: "num" }, p.checkpoint.toLocaleString()),
    el("td", { class: "num" }, p.lag_events.toLocaleString()),
    el("td", { class: "num" }, p.lag_ms.toLocaleString()),
    el("td", {}, sparkline(samples)),
    el("td", { class: "num" }, p.dead_letters),
    el("td", {}, rebuildCell(p.rebuild)),
    el(
      "td",
      { class: "actions" },
      paused
        ? button("Resume", "resume", () => api("POST", `${path}/resume`))
        : button("Pause", "pause", () => api("POST", `${path}/pause`)),
      button("Rebuild", "rebuild", () => api("POST", `${path}/rebuild`), p.status === "rebuilding"),
    ),
  );
}

function letterRow(l) {
  const path = `/v1/admin/dead-letters/${encodeURIComponent(l.projection)}/${encodeURIComponent(l.event_id)}`;
  const open = l.status === "open" || l.status === "retrying";
  return el(
    "tr",
    { "data-letter": l.event_id },
    el("td", {}, l.projection),
    el("td", { class: "num" }, l.position.toLocaleString()),
    el("td", {}, l.event_type),
    el("td", { class: `status status-${l.status}`, "data-field": "status" }, l.status),
    el("td", {}, new Date(l.set_aside_at).toLocaleString()),
    el("td", { class: "error-text" }, l.error),
    el(
      "td",
      { class: "actions" },
      button("Retry", "retry", () => api("POST", `${path}/retry`), l.status === "retried" || l.status === "retrying"),
      button("Skip", "skip", () => api("POST", `${path}/skip`), !open),
    ),
  );
}

async function refresh() {
  clearTimeout(state.timer);
  if (!state.token) return;
  try {
    const [projections, letters] = await Promise.all([
      api("GET", "/v1/admin/projections"),
      api("GET", "/v1/admin/dead-letters"),
    ]);
    $("projections").tBodies[0].replaceChildren(...projections.map(projectionRow));
    $("letters").tBodies[0].replaceChildren(...letters.map(letterRow));
    $("no-letters").hidden = letters.length > 0;
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $("updated").textContent = `not updated: ${e.message}`;
  }
  if (state.token) state.timer = setTimeout(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout());
});
