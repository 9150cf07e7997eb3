// The fraud page's chart: the daily alert rate and mean score, both 0-100 on one axis, from
// the figures the server wrote into the chart's data-series attribute (the
// Content-Security-Policy allows no inline script). htmx runs this file again each time it
// swaps the page in, so it draws whatever chart is there and adds its listener only once.
(function () {
  "use strict";
  function draw() {
    const el = document.getElementById("fraud-chart");
    if (!el || el.dataset.drawn || typeof uPlot === "undefined") return;
    const s = JSON.parse(el.dataset.series);
    el.dataset.drawn = "1";
    new uPlot({
      width: Math.max(el.clientWidth, 280), height: 220,
      series: [
        {},
        { label: "alert rate (%)", stroke: "#b42318", width: 2, points: { show: true } },
        { label: "mean score", stroke: "#3257d6", width: 2, points: { show: true } },
      ],
      // The x axis spans the days asked for, half a day beyond each end so no point sits on
      // the frame; both figures are 0-100, so they share one y axis.
      scales: { x: { time: true, range: [s.from - 43200, s.to + 43200] }, y: { range: [0, 100] } },
      axes: [{}, { size: 50 }],
    }, [s.at, s.alerted, s.mean], el);
  }
  if (!window.paymeshFraudChart) {
    window.paymeshFraudChart = true;
    document.addEventListener("DOMContentLoaded", draw);
    document.addEventListener("htmx:afterSettle", draw);
  }
  draw();
})();
