// The dashboard's API client: JSON fetches and the server-sent event stream (same origin).
// The control token lives in sessionStorage only (this tab), pasted by the user.

const TOKEN_KEY = "aster_rl.dashboard.token";

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h["Authorization"] = `Bearer ${t}`;
  return h;
}

export async function getJSON(path, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const r = await fetch(q.toString() ? `${path}?${q}` : path, { headers: headers() });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).detail || r.statusText}`);
  return r.json();
}

export async function postCommand(sessionId, command) {
  const r = await fetch("/api/commands", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ session_id: sessionId, command }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${r.status}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`);
  return body;
}

// Server-sent events over fetch (so the token header can go with them), resumed with
// Last-Event-ID after a drop. onEvent(name, data, id); onState("live" | "reconnecting" | ...).
export function openStream(params, onEvent, onState) {
  let lastId = null;
  let stopped = false;
  let controller = null;
  let delay = 500;
  let needsToken = false;
  let restarting = false;

  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const q = new URLSearchParams(Object.entries(params()).filter(([, v]) => v));
        const h = headers({ Accept: "text/event-stream" });
        if (lastId !== null) h["Last-Event-ID"] = lastId;
        const r = await fetch(`/api/stream${q.toString() ? "?" + q : ""}`, { headers: h, signal: controller.signal });
        needsToken = r.status === 401;
        if (needsToken) { onState("token"); throw new Error("stream: the token is required"); }
        if (!r.ok) throw new Error(`stream: ${r.status}`);
        onState("live");
        delay = 500;
        const reader = r.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
            const ev = { event: "message", data: "", id: null };
            for (const line of block.split(/\r?\n/)) {
              if (!line || line.startsWith(":")) continue;
              const i = line.indexOf(":");
              const key = i < 0 ? line : line.slice(0, i);
              const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
              if (key === "data") ev.data += (ev.data ? "\n" : "") + val;
              else if (key === "event") ev.event = val;
              else if (key === "id") ev.id = val;
            }
            if (ev.id !== null) lastId = ev.id;
            if (ev.data) onEvent(ev.event, JSON.parse(ev.data), ev.id);
          }
        }
      } catch (e) {
        if (stopped || e.name === "AbortError") { if (stopped) return; }
        else console.warn(`stream dropped: ${e.message}`);
      }
      if (stopped) return;
      if (restarting) { restarting = false; continue; } // asked for: reconnect at once
      if (!needsToken) onState("reconnecting");
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
  run();
  return {
    restart(resetId = true) { if (resetId) lastId = null; restarting = true; if (controller) controller.abort(); },
    close() { stopped = true; if (controller) controller.abort(); },
  };
}
