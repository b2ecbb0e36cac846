// The dashboard page: the live view from the event stream, the other views on demand.
import { getJSON, openStream, postCommand, setToken, token } from "/static/api.js";
import { LiveChart, lineChart } from "/static/chart.js";

const $ = (id) => document.getElementById(id);
const state = { snap: null, lastEventMs: 0, serverOffsetMs: 0, session: null, conn: "connecting", chart: null, perf: null };

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
const num = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
const pct = (x, d = 1) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(d)}%`);
const when = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 16) : "–");
function ago(ms) {
  if (ms === null || ms === undefined) return "–";
  const s = Math.max(0, ms / 1000);
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}
function kv(table, pairs) {
  table.replaceChildren(...pairs.map(([k, v]) => { const tr = el("tr"); tr.append(el("td", k), el("td", v)); return tr; }));
}
function rows(table, columns, data) {
  const head = el("tr");
  for (const [title] of columns) head.append(el("th", title));
  const body = data.map((r) => {
    const tr = el("tr");
    for (const [, fn, cls] of columns) { const v = fn(r); tr.append(el("td", v, typeof cls === "function" ? cls(r) : cls)); }
    return tr;
  });
  table.replaceChildren(head, ...body);
}
const serverNow = () => Date.now() + state.serverOffsetMs;

// ------------------------------------------------------------ the live view
function renderSnapshot(snap) {
  state.snap = snap;
  if (!snap.session_id) { $("decision-side").textContent = "no live session yet"; return; }
  renderSessions(snap.sessions, snap.session_id);
  $("mode").textContent = snap.mode === "real" ? "REAL MONEY" : (snap.mode || "–");
  $("mode").className = "badge " + (snap.mode === "real" ? "warn" : "ok");
  $("run").textContent = `run ${snap.run_id || "–"}`;
  $("gate").textContent = snap.gate ? `gate: ${snap.gate}` : "gate: –";
  $("gate").className = "gate" + (snap.gate && !/deployable/.test(snap.gate.split("(")[0]) ? " no" : "");
  const guard = snap.kill_file ? `stopped (kill file ${snap.kill_file})` : snap.paused ? "paused" : "running";
  $("guard").textContent = `guard: ${guard}` + (snap.lease ? "" : " · runner not running");
  $("guard").className = "badge " + (snap.kill_file || snap.paused || !snap.lease ? "warn" : "ok");
  const sup = snap.support;
  $("support").textContent = sup
    ? `out of training support: ${pct(sup.share)} of ${sup.bars} bars since the runner started` +
      (Object.keys(sup.top_columns).length ? ` (${Object.entries(sup.top_columns).map(([c, x]) => `${c} ${pct(x)}`).join(", ")})` : "")
    : `forced WAIT outside the training support: ${pct(snap.totals.outside_support_share)} of decisions`;

  const d = snap.decision;
  if (d) {
    $("decision-side").textContent = d.side;
    $("decision-side").className = `side ${d.side}`;
    $("decision-side").dataset.id = d.id;
    $("decision-time").textContent = `#${d.id} · bar closed ${when(d.ts)}`;
    kv($("decision-kv"), [
      ["status", d.status], ["leverage", `${d.leverage}x`], ["profile", d.profile || "–"],
      ["entry", num(d.entry_price, 4)], ["stop", num(d.stop_price, 4)], ["target", num(d.target_price, 4)],
      ["P(side)", d.confidence === null ? "–" : pct(d.confidence)], ["value", num(d.value_estimate, 3)],
      ["risk", d.risk || "–"],
    ]);
    $("decision-why").textContent = d.reasoning || "";
  }
  $("readings").replaceChildren(...(snap.readings.length ? snap.readings : [{ tentacle: "", text: "(no readings stored)" }]).map((r) => {
    const li = el("li");
    if (r.tentacle) li.append(el("b", `${r.tentacle} `));
    li.append(el("span", r.text));
    return li;
  }));
  renderEffects(snap.effects || []);
  const p = snap.position;
  kv($("position"), p ? [
    ["side", `${p.side} ${p.leverage}x (${p.profile})`], ["entry", num(p.entry_price, 4)], ["last close", num(p.last_close, 4)],
    ["move", `${num(p.move_pct)}% (${num(p.margin_pct)}% of margin, before costs)`],
    ["stop / target", `${num(p.stop_price, 4)} / ${num(p.target_price, 4)}`], ["to stop", `${num(p.stop_distance_pct)}%`],
    ["to liquidation", `≈ ${num(p.liquidation_distance_pct)}% (1 / leverage)`],
  ] : [["", "flat"]]);
  const t = snap.totals;
  const tbody = [["equity", `${num(snap.equity)} USD`], ["closed P&L", `${num(t.pnl_usd)} USD`], ["fees", `${num(t.fees_usd)} USD`],
    ["funding", `${num(t.funding_usd)} USD`]];
  for (const [k, v] of tbody) { const tr = el("tr"); tr.append(el("td", k), el("td", v)); $("position").append(tr); }
  $("winrate").textContent = t.closed_trades ? `win rate ${pct(t.win_rate)} of ${t.closed_trades} closed trades` : "no closed trades yet";
  rows($("recent"), [
    ["#", (r) => r.id], ["bar close", (r) => when(r.ts)], ["side", (r) => r.side, (r) => r.side], ["lev", (r) => r.leverage],
    ["P(side)", (r) => (r.confidence === null ? "–" : pct(r.confidence)), "num"], ["status", (r) => r.status, (r) => r.status],
    ["P&L", (r) => num(r.pnl_usd), "num"], ["exit", (r) => r.exit_reason || ""],
  ], snap.recent);
  if (!state.chart) state.chart = new LiveChart($("chart"));
  state.chart.update(snap);
  $("chart-legend").textContent = `${snap.candles.length} bars to ${when(snap.last_bar_ts)} (open time, UTC) · markers: fills and exits`;
  renderCommands(snap.commands);
  renderAge();
}

// Why this action: P(side | all) − P(side | tentacle blanked), one bar per tentacle, scaled to the largest.
function renderEffects(effects) {
  const top = Math.max(1e-9, ...effects.map((e) => Math.abs(e.effect)));
  $("effects-line").textContent = effects.length
    ? "why: " + effects.map((e) => `${e.tentacle} ${e.effect >= 0 ? "+" : "−"}${Math.abs(e.effect).toFixed(top < 0.05 ? 3 : 2)}`).join(", ")
    : "why: (not stored for this policy)";
  $("effects").replaceChildren(...effects.map((e) => {
    const li = el("li");
    const bar = el("span", "", `bar ${e.effect >= 0 ? "up" : "down"}`);
    bar.style.width = `${(100 * Math.abs(e.effect)) / top}%`;
    li.append(el("span", e.tentacle, "name"), el("span", "", "track"), el("span", `${e.effect >= 0 ? "+" : "−"}${Math.abs(e.effect).toFixed(3)}`, "num"));
    li.children[1].append(bar);
    return li;
  }));
}

function renderSessions(sessions, current) {
  const sel = $("session");
  const ids = sessions.map((s) => s.session_id);
  if (sel.dataset.ids !== ids.join("\n")) {
    sel.replaceChildren(...ids.map((id) => { const o = el("option", id); o.value = id; return o; }));
    sel.dataset.ids = ids.join("\n");
  }
  sel.value = current;
}

function renderCommands(cmds) {
  rows($("commands"), [["#", (c) => c.id], ["command", (c) => c.command], ["asked", (c) => when(c.requested_at)],
    ["status", (c) => c.status], ["handled", (c) => when(c.handled_at)], ["note", (c) => c.note || ""]], cmds || []);
}

// Age and connection: shown at all times; stale data is marked.
function renderAge() {
  const snap = state.snap;
  const conn = $("conn");
  const silentMs = Date.now() - state.lastEventMs;
  const connected = state.conn === "live" && silentMs < 5000;
  conn.textContent = connected ? "connected" : state.conn === "connecting" ? "connecting…"
    : state.conn === "token" ? "token required: paste it in the Controls tab"
    : `disconnected ${ago(silentMs)} ago: reconnecting`;
  conn.className = "badge " + (connected ? "ok" : "bad");
  if (!snap || !snap.session_id) return;
  const barAge = snap.last_bar_ts ? serverNow() - (snap.last_bar_ts + snap.bar_ms) : null;
  const writeAge = snap.updated_at ? serverNow() - snap.updated_at : null;
  // a live session writes at least every bar; a replay that stopped writing is over or stuck
  const limit = snap.mode === "replay" ? 15000 : 2 * snap.bar_ms + 30000;
  const stale = !connected || writeAge === null || writeAge > limit;
  $("age").textContent = `last bar ${snap.mode === "replay" ? when(snap.last_bar_ts + snap.bar_ms) : ago(barAge) + " ago"} · written ${ago(writeAge)} ago` +
    (stale ? " · STALE" : "");
  $("age").className = "badge " + (stale ? "stale" : "ok");
  document.body.classList.toggle("stale-data", stale);
}

// ------------------------------------------------------------ the other views
async function loadLedger() {
  const params = { session: state.session, side: $("f-side").value, status: $("f-status").value, limit: 500 };
  const data = await getJSON("/api/predictions", params);
  const q = new URLSearchParams(Object.entries(params).filter(([k, v]) => v && k !== "limit"));
  $("csv").href = `/api/predictions.csv?${q}`;
  rows($("ledger"), [
    ["#", (r) => r.id], ["bar close", (r) => when(r.ts)], ["side", (r) => r.side, (r) => r.side], ["lev", (r) => r.leverage],
    ["profile", (r) => r.profile || ""], ["entry", (r) => num(r.entry_price, 4), "num"], ["stop", (r) => num(r.stop_price, 4), "num"],
    ["target", (r) => num(r.target_price, 4), "num"], ["P(side)", (r) => (r.confidence === null ? "–" : pct(r.confidence)), "num"],
    ["status", (r) => r.status, (r) => r.status], ["P&L", (r) => num(r.pnl_usd), "num"], ["exit", (r) => r.exit_reason || ""],
    ["win rate", (r) => (r.running_win_rate === null ? "–" : pct(r.running_win_rate)), "num"], ["risk", (r) => r.risk || ""],
  ], data);
}

async function loadPerformance() {
  const perf = await getJSON("/api/performance", { session: state.session });
  if (!state.perf) {
    state.perf = { eq: lineChart($("perf-chart"), [["equity", "#7ab7ff"], ["buy and hold", "#8a93a3"]]),
      dd: lineChart($("dd-chart"), [["drawdown %", "#ef5350"]]) };
  }
  const pts = (xs) => {
    const out = [];
    for (const p of xs) {
      const time = Math.floor(p.t / 1000);
      if (out.length && out[out.length - 1].time >= time) out[out.length - 1].value = p.v; else out.push({ time, value: p.v });
    }
    return out;
  };
  state.perf.eq.series["equity"].setData(pts(perf.equity));
  state.perf.eq.series["buy and hold"].setData(pts(perf.buy_and_hold));
  state.perf.dd.series["drawdown %"].setData(pts(perf.drawdown));
  state.perf.eq.chart.timeScale().fitContent();
  state.perf.dd.chart.timeScale().fitContent();
  rows($("daily"), [["day", (r) => r.day], ["P&L (USD)", (r) => num(r.pnl_usd), (r) => (r.pnl_usd > 0 ? "num win" : "num loss")]], perf.daily);
  const cal = perf.calibration;
  rows($("calibration"), [["P(side) bin", (b) => `${pct(b.low, 0)}–${pct(b.high, 0)}`], ["mean P", (b) => pct(b.mean_p), "num"],
    ["won", (b) => pct(b.win_share), "num"], ["trades", (b) => b.n, "num"]], cal ? cal.bins : []);
  $("ece").textContent = cal ? `ECE ${cal.ece.toFixed(3)}, Brier ${cal.brier.toFixed(3)} over ${cal.trades} closed trades` : "no closed trades with P(side)";
}

async function loadRisk() {
  const data = await getJSON("/api/risk", { session: state.session });
  rows($("risk"), [["time", (r) => when(r.ts)], ["rule", (r) => r.rule], ["action", (r) => r.action], ["reason", (r) => r.reason]], data);
}

async function loadRuns() {
  const data = await getJSON("/api/runs");
  rows($("runs"), [["run", (r) => r.name], ["created", (r) => when(r.created_at * 1000)], ["gate", (r) => r.gate || "–"],
    ["evaluations", (r) => (r.evaluations || []).join(", ")]], data);
}

// Parity: the session's decisions against the backtester's on the same bars (computed on the server, cached per bar).
async function loadParity() {
  $("parity-state").textContent = "replaying the session's bars through the backtester…";
  let p;
  try {
    p = await getJSON("/api/parity", { session: state.session });
  } catch (e) {
    $("parity-state").textContent = e.message;
    kv($("parity"), []);
    rows($("parity-drift"), [], []);
    return;
  }
  $("parity-state").textContent = `run ${p.run_id} (${p.weights} weights${p.same_weights ? "" : ", NOT the weights the session names"})`;
  const f = p.first_divergence;
  kv($("parity"), [
    ["bars compared", `${p.bars_compared}` + (p.not_compared ? ` (${p.not_compared} decisions without a backtest bar)` : "")],
    ["divergent decisions", `${p.divergent} (${pct(p.divergent_share)})` + (p.divergent ? `, ${p.divergent_by_guard} of them by the risk guard` : "")],
    ["first divergence", f ? `bar closed ${when(f.ts)}: live ${f.live}, backtest ${f.backtest}` + (f.risk ? ` (guard: ${f.risk})` : "") : "none"],
    ["outside the training ranges", p.drift ? `${pct(p.drift.outside_share)} of ${p.drift.bars} bars` : "– (the run has no support.json)"],
  ]);
  const drift = p.drift ? Object.entries(p.drift.tentacles).map(([tentacle, share]) => ({ tentacle, share })) : [];
  rows($("parity-drift"), [["tentacle", (r) => r.tentacle], ["bars outside its training ranges", (r) => pct(r.share), "num"]], drift);
}

const LOADERS = { ledger: loadLedger, performance: loadPerformance, guard: loadRisk, runs: loadRuns, parity: loadParity };

function showTab(name) {
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.classList.toggle("active", s.id === `tab-${name}`);
  if (LOADERS[name]) LOADERS[name]().catch((e) => { console.warn(e.message); $("command-result").textContent = e.message; });
}

// ------------------------------------------------------------ controls
async function command(name) {
  const session = state.snap && state.snap.session_id;
  if (!session) { $("command-result").textContent = "no session to command"; return; }
  if (!token()) { $("command-result").textContent = "paste the token first"; return; }
  const what = { pause: "stop opening new positions", resume: "allow new positions again",
    flatten: "close the open position now (market order)", stop: "close the position and STOP the runner" }[name];
  if (!window.confirm(`${name.toUpperCase()} session ${session}: ${what}?`)) return;
  try {
    const row = await postCommand(session, name);
    $("command-result").textContent = `command #${row.id} (${row.command}) stored; the runner acts on it at its next bar`;
  } catch (e) {
    $("command-result").textContent = `refused: ${e.message}`;
  }
}

function init() {
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  for (const b of document.querySelectorAll("[data-command]")) b.addEventListener("click", () => command(b.dataset.command));
  $("f-apply").addEventListener("click", () => loadLedger().catch((e) => console.warn(e.message)));
  $("token-save").addEventListener("click", () => { setToken($("token").value.trim()); $("token").value = ""; tokenState(); });
  $("token-forget").addEventListener("click", () => { setToken(""); tokenState(); });
  tokenState();
  const stream = openStream(() => ({ session: state.session }), (event, data) => {
    state.lastEventMs = Date.now();
    if (data.server_ms) state.serverOffsetMs = data.server_ms - Date.now();
    if (event === "snapshot") {
      renderSnapshot(data);
      if (!state.session && data.session_id) { // stay on this session when another one writes
        state.session = data.session_id;
        stream.restart(false);
      }
    }
    else if (event === "problem") $("conn").textContent = `database: ${data.error}`;
    else renderAge();
  }, (s) => { state.conn = s; renderAge(); });
  $("session").addEventListener("change", () => { state.session = $("session").value; stream.restart(true); });
  setInterval(renderAge, 1000);
}

function tokenState() { $("token-state").textContent = token() ? "token kept for this tab" : "no token"; }

init();
