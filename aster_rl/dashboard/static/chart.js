// The live chart: candles, the open trade's entry / stop / target / liquidation lines, fill markers.
import { createChart, LineStyle } from "/static/vendor/lightweight-charts.standalone.production.mjs";

// attributionLogo off: it injects an inline <style> (blocked by the CSP); the page footer carries the attribution and link
const DARK = { layout: { background: { color: "#181c23" }, textColor: "#d8dde6", attributionLogo: false },
  grid: { vertLines: { color: "#222831" }, horzLines: { color: "#222831" } },
  timeScale: { timeVisible: true, secondsVisible: false }, rightPriceScale: { borderColor: "#333" } };

export class LiveChart {
  constructor(element) {
    this.chart = createChart(element, { ...DARK, autoSize: true });
    this.candles = this.chart.addCandlestickSeries({ upColor: "#26a69a", downColor: "#ef5350", wickUpColor: "#26a69a",
      wickDownColor: "#ef5350", borderVisible: false });
    this.lines = [];
    // under the candles: P(side) of each decision (bars, coloured by side) and the value estimate (line)
    this.prob = this.chart.addHistogramSeries({ priceScaleId: "p", priceFormat: { type: "percent" }, title: "P(side)" });
    this.value = this.chart.addLineSeries({ priceScaleId: "v", color: "#b48ead", lineWidth: 1, title: "value" });
    this.chart.priceScale("p").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    this.chart.priceScale("v").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 }, visible: false });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.22 } });
  }

  update(snap) {
    const rows = snap.candles || [];
    this.candles.setData(rows); // 300 bars: redrawn whole, cheap
    const colour = { BUY: "#26a69a", SELL: "#ef5350", WAIT: "#555d6b" };
    const ds = snap.decision_series || [];
    this.prob.setData(ds.filter((d) => d.p !== null).map((d) => ({ time: d.time, value: 100 * d.p, color: colour[d.side] })));
    this.value.setData(ds.filter((d) => d.value !== null).map((d) => ({ time: d.time, value: d.value })));
    this.drawLines(snap.position);
    this.drawMarkers(snap.markers || [], rows.length ? rows[0].time : null);
  }

  drawLines(pos) {
    for (const l of this.lines) this.candles.removePriceLine(l);
    this.lines = [];
    if (!pos) return;
    const add = (price, title, color, style) => {
      if (price === null || price === undefined) return;
      this.lines.push(this.candles.createPriceLine({ price, title, color, lineWidth: 1, lineStyle: style, axisLabelVisible: true }));
    };
    add(pos.entry_price, "entry", "#7ab7ff", LineStyle.Solid);
    add(pos.stop_price, "stop", "#ef5350", LineStyle.Dashed);
    add(pos.target_price, "target", "#26a69a", LineStyle.Dashed);
    if (pos.liquidation_distance_pct !== undefined && pos.entry_price) {
      const lev = pos.leverage || 1;
      const liq = pos.side === "BUY" ? pos.entry_price * (1 - 1 / lev) : pos.entry_price * (1 + 1 / lev);
      add(liq, "≈ liq.", "#f0b429", LineStyle.Dotted);
    }
  }

  drawMarkers(markers, first) {
    const out = [];
    for (const m of markers) {
      const t = Math.floor(m.t / 1000);
      if (first === null || t < first) continue;
      const snapped = this.snap(t) ?? t;
      if (m.kind === "entry") {
        out.push({ time: snapped, position: m.side === "BUY" ? "belowBar" : "aboveBar", color: m.side === "BUY" ? "#26a69a" : "#ef5350",
          shape: m.side === "BUY" ? "arrowUp" : "arrowDown", text: `${m.side} #${m.id}` });
      } else {
        out.push({ time: snapped, position: "aboveBar", color: (m.pnl_usd ?? 0) > 0 ? "#26a69a" : "#ef5350", shape: "circle",
          text: `exit ${m.pnl_usd === null || m.pnl_usd === undefined ? "" : m.pnl_usd.toFixed(2)}` });
      }
    }
    out.sort((a, b) => a.time - b.time);
    this.candles.setMarkers(out);
  }

  snap(t) {
    // the open time of the bar holding t: the chart only places markers on existing bars
    const data = this.candles.data();
    let lo = 0, hi = data.length - 1, best = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (data[mid].time <= t) { best = data[mid].time; lo = mid + 1; } else hi = mid - 1;
    }
    return best;
  }
}

export function lineChart(element, series) {
  const chart = createChart(element, { ...DARK, autoSize: true });
  const out = {};
  for (const [name, color] of series) out[name] = chart.addLineSeries({ color, lineWidth: 2, title: name });
  return { chart, series: out };
}
