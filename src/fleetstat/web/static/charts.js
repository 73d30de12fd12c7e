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
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const two = (n) => String(n).padStart(2, "0");
  const day = (d) => MONTHS[d.getUTCMonth()] + " " + d.getUTCDate();
  const clock = (d) => two(d.getUTCHours()) + ":" + two(d.getUTCMinutes());
  const stamp = (d) => d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" +
    two(d.getUTCDate()) + " " + clock(d) + " UTC";

  // The time axis, in UTC like the rest of the page and on a 24-hour clock: ticks
  // at least AXIS_SPACE px apart, on whole UTC hours/days (tzDate below); "HH:MM"
  // while a tick step is under a day, with the date under the first tick and under
  // each midnight; only dates ("Dec 2") for longer steps.
  const AXIS_SPACE = 64;
  const HEIGHT = 190;
  function timeLabels(figure, splits, incr) {
    let previous = null;
    const labels = splits.map((v) => {
      const d = new Date(v * 1000);
      const date = day(d);
      if (incr >= 86400) return date;
      const label = previous === date ? clock(d) : clock(d) + "\n" + date;
      previous = date;
      return label;
    });
    figure.dataset.xTicks = labels.join("|");  // read by the browser tests
    return labels;
  }

  for (const [key, title, unit] of payload.charts) {
    const figure = document.getElementById("chart-" + key);
    if (!figure) continue;
    const target = figure.querySelector(".plot");
    const percent = unit === "%";
    const options = {
      width: Math.max(240, target.clientWidth),
      height: HEIGHT,
      // Tick positions worked out in UTC (uPlot's own helper), not the browser's zone.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: () => [start, end] },
        y: percent ? { range: [0, 100] } : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
      },
      axes: [
        { stroke: "#333", grid: { stroke: "#e4e4e4" }, space: AXIS_SPACE, size: 44,
          values: (u, splits, axis, space, incr) => timeLabels(figure, splits, incr) },
        { stroke: "#333", grid: { stroke: "#e4e4e4" }, size: 58,
          values: (u, ticks) => ticks.map((v) => percent ? v + " %" : v.toFixed(1)) },
      ],
      series: [
        { label: "Time", value: (u, v) => v == null ? "–" : stamp(new Date(v * 1000)) },
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
      for (const [target, plot] of plots) plot.setSize({ width: Math.max(240, target.clientWidth), height: HEIGHT });
    }, 100);
  });
  // For tests and bench/dashboard_bench.py: when the charts were on screen.
  requestAnimationFrame(() => {
    document.documentElement.dataset.chartsDrawn = String(plots.length);
    performance.mark("fleetstat:charts");
  });
})();
