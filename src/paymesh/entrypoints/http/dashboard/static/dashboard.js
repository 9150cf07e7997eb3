// The overview's live charts: one point from /dashboard/live every 2 s, drawn with uPlot.
// No inline script anywhere (the Content-Security-Policy forbids it): this file finds its
// charts by their data attributes, and starts again each time htmx swaps a page in.
(function () {
  "use strict";
  const POINTS = 150; // 5 minutes at one point every 2 s
  const PERIOD_MS = 2000;
  const SERIES = {
    throughput: [["payments/s", "#3257d6", (d) => d.payments_per_second]],
    latency: [
      ["p50", "#127a3f", (d) => d.latency_ms.p50],
      ["p95", "#a15c00", (d) => d.latency_ms.p95],
      ["p99", "#b42318", (d) => d.latency_ms.p99],
    ],
    declines: [["decline rate", "#b42318", (d) => d.decline_rate]],
    fraud: [
      ["allow", "#127a3f", (d) => d.fraud_per_second.allow],
      ["review", "#a15c00", (d) => d.fraud_per_second.review],
      ["block", "#b42318", (d) => d.fraud_per_second.block],
    ],
    outbox: [["outbox lag (s)", "#3257d6", (d) => d.outbox_lag_seconds]],
    dlq: [["dead letters", "#b42318", (d) => d.dead_letters]],
  };
  let timer = null;

  function fmt(v, digits) {
    return v === null || v === undefined ? "–" : Number(v).toFixed(digits);
  }

  function tiles(root, d) {
    const set = (name, text) => {
      const el = root.querySelector(`[data-figure="${name}"]`);
      if (el) el.textContent = text;
    };
    set("payments_per_second", fmt(d.payments_per_second, 1));
    set("latency", `${fmt(d.latency_ms.p50, 1)} / ${fmt(d.latency_ms.p95, 1)} / ${fmt(d.latency_ms.p99, 1)}`);
    set("decline_rate", d.decline_rate === null ? "–" : `${(d.decline_rate * 100).toFixed(1)} %`);
    set("fraud", `${fmt(d.fraud_per_second.allow, 1)} / ${fmt(d.fraud_per_second.review, 1)} / ${fmt(d.fraud_per_second.block, 1)}`);
    set("outbox", `${fmt(d.outbox_lag_seconds, 1)} / ${d.outbox_backlog}`);
    set("dead_letters", String(d.dead_letters));
  }

  function start() {
    if (timer) { clearInterval(timer); timer = null; }
    const root = document.getElementById("charts");
    if (!root || typeof uPlot === "undefined") return;
    const charts = {};
    for (const el of root.querySelectorAll("[data-chart]")) {
      const spec = SERIES[el.dataset.chart];
      const data = [[]].concat(spec.map(() => []));
      const plot = new uPlot({
        width: Math.max(el.clientWidth, 280), height: 180,
        series: [{}].concat(spec.map(([label, stroke]) => ({ label, stroke, width: 2, spanGaps: true }))),
        axes: [{}, { size: 50 }],
        legend: { live: false },
      }, data, el);
      charts[el.dataset.chart] = { plot, data, spec };
    }
    const tick = async () => {
      if (!document.body.contains(root)) { clearInterval(timer); timer = null; return; }
      let d;
      try {
        const r = await fetch(root.dataset.source, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (r.redirected || !r.ok) return;
        d = await r.json();
      } catch (e) { return; }
      tiles(document, d);
      for (const { plot, data, spec } of Object.values(charts)) {
        data[0].push(d.at);
        spec.forEach(([, , pick], i) => data[i + 1].push(pick(d)));
        if (data[0].length > POINTS) data.forEach((s) => s.shift());
        plot.setData(data);
      }
      root.dataset.points = String(Object.values(charts)[0].data[0].length);
    };
    tick();
    timer = setInterval(tick, PERIOD_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:afterSettle", start);
})();
