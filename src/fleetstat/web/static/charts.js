// The host page's charts: one uPlot per figure, from the JSON the server put in the
// page (averages per bucket, computed in SQL; null where the host was silent).
"use strict";
(function () {
  const source = document.getElementById("chart-data");
  if (!source || typeof uPlot === "undefined") return;
  const payload = JSON.parse(source.textContent);
  const data = payload.data;
  const end = payload.end;
  // The window's start, or the first sample when the host is younger than the window
  // (a new host's few points would otherwise sit in a sliver at the right).
  const start = Math.max(end - payload.window, data.t.length ? data.t[0] - 60 : end - payload.window);
  const plots = [];
  const colour = "#0072B2";  // Okabe-Ito blue: readable with red-green colour blindness

  for (const [key, title, unit] of payload.charts) {
    const figure = document.getElementById("chart-" + key);
    if (!figure) continue;
    const target = figure.querySelector(".plot");
    const percent = unit === "%";
    const options = {
      width: Math.max(240, target.clientWidth),
      height: 170,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: () => [start, end] },
        y: percent ? { range: [0, 100] } : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
      },
      axes: [
        { stroke: "#333", grid: { stroke: "#e4e4e4" } },
        { stroke: "#333", grid: { stroke: "#e4e4e4" }, size: 50,
          values: (u, ticks) => ticks.map((v) => percent ? v + " %" : v.toFixed(1)) },
      ],
      series: [
        {},
        { label: title, stroke: colour, width: 1.5, fill: "rgba(0, 114, 178, 0.12)",
          spanGaps: false, points: { show: data.t.length < 60 },
          value: (u, v) => v == null ? "–" : (percent ? v.toFixed(1) + " %" : v.toFixed(2)) },
      ],
    };
    plots.push([target, new uPlot(options, [data.t, data[key]], target)]);
  }
  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      for (const [target, plot] of plots) plot.setSize({ width: Math.max(240, target.clientWidth), height: 170 });
    }, 100);
  });
  // For tests and bench/dashboard_bench.py: when the charts were on screen.
  requestAnimationFrame(() => {
    document.documentElement.dataset.chartsDrawn = String(plots.length);
    performance.mark("fleetstat:charts");
  });
})();
