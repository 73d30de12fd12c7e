// The fleet page: filter and sort the rows in place, and fetch new rows after each
// round (polling a version number) without reloading the page. Rows come from the
// server's HTML (escaped there); nothing here builds markup from text.
"use strict";
(function () {
  const form = document.getElementById("filters");
  const table = document.getElementById("hosts");
  if (!form || !table) return;
  document.documentElement.classList.add("js");
  const status = document.getElementById("f-status");
  const name = document.getElementById("f-name");
  const firing = document.getElementById("f-firing");
  const sortInput = document.getElementById("f-sort");
  const shown = document.getElementById("shown");
  const POLL_MS = 10000;

  function apply() {
    const needle = name.value.trim().toLowerCase();
    const rows = table.tBodies[0].rows;
    let count = 0;
    for (const row of rows) {
      const ok = (!status.value || row.dataset.kind === status.value) &&
        (!needle || row.dataset.name.includes(needle)) &&
        (!firing.checked || row.dataset.alerts !== "0");
      row.hidden = !ok;
      if (ok) count++;
    }
    shown.textContent = count + " of " + rows.length + " shown";
    const params = new URLSearchParams();
    if (status.value) params.set("status", status.value);
    if (needle) params.set("q", name.value.trim());
    if (firing.checked) params.set("firing", "true");
    if (sortInput.value) params.set("sort", sortInput.value);
    const query = params.toString();
    history.replaceState(null, "", query ? "?" + query : location.pathname);
  }

  function sortRows() {
    const [key, order] = sortInput.value.split(":");
    for (const th of table.tHead.rows[0].cells) th.removeAttribute("aria-sort");
    if (!key) return;
    const link = table.tHead.querySelector('a.sort[data-key="' + key + '"]');
    if (link) link.parentElement.setAttribute("aria-sort", order === "desc" ? "descending" : "ascending");
    const body = table.tBodies[0];
    const KINDS = { failed: 0, never: 1, ok: 2 };  // the worst first, as the server sorts
    const value = (row) => {
      if (key === "status") return KINDS[row.dataset.kind];
      const raw = row.dataset[key];
      if (raw === "" || raw === undefined) return null;
      return key === "name" ? raw : parseFloat(raw);
    };
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === null || y === null) return x === null ? (y === null ? 0 : 1) : -1;  // blanks last
      const c = x < y ? -1 : x > y ? 1 : 0;
      return order === "desc" ? -c : c;
    });
    body.append(...rows);
  }

  table.tHead.addEventListener("click", (event) => {
    const link = event.target.closest("a.sort");
    if (!link) return;
    event.preventDefault();
    const [key, order] = sortInput.value.split(":");
    sortInput.value = link.dataset.key + (key === link.dataset.key && order !== "desc" ? ":desc" : "");
    sortRows();
    apply();
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
  status.addEventListener("change", apply);
  firing.addEventListener("change", apply);
  name.addEventListener("input", apply);

  // The 24-hour CPU lines: drawn on each row's canvas from its data-spark (whole
  // percents, "" where there was no sample) when the row comes into view; 500 of
  // them drawn at once would hold the page up. A line broken at gaps, a dot at the
  // newest value (a host with a single half-hour still shows its figure).
  const SPARK_PAD = 3;
  function drawSpark(canvas) {
    const values = canvas.dataset.spark.split(",").map((v) => (v === "" ? null : Number(v)));
    const w = canvas.width, h = canvas.height, ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    const x = (i) => SPARK_PAD + (i * (w - 2 * SPARK_PAD)) / Math.max(1, values.length - 1);
    const y = (v) => SPARK_PAD + ((100 - v) * (h - 2 * SPARK_PAD)) / 100;
    ctx.strokeStyle = ctx.fillStyle = "#0072b2";  // Okabe-Ito blue, as the charts
    ctx.lineWidth = 1.5;
    ctx.lineJoin = ctx.lineCap = "round";
    ctx.beginPath();
    let last = null, penUp = true;
    values.forEach((v, i) => {
      if (v === null) { penUp = true; return; }
      if (penUp) ctx.moveTo(x(i), y(v)); else ctx.lineTo(x(i), y(v));
      if (penUp) ctx.lineTo(x(i) + 0.01, y(v));  // a lone point: its round cap is a dot
      penUp = false;
      last = i;
    });
    ctx.stroke();
    if (last !== null) {
      ctx.beginPath();
      ctx.arc(x(last), y(values[last]), 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    canvas.dataset.drawn = "1";
  }
  const sparkWatch = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        sparkWatch.unobserve(entry.target);
        drawSpark(entry.target);
      }
    }, { rootMargin: "200px" })
    : null;
  function watchSparks() {
    for (const canvas of table.tBodies[0].querySelectorAll("canvas.spark")) {
      if (sparkWatch) sparkWatch.observe(canvas); else drawSpark(canvas);
    }
  }

  // "Last round" as an age, like the rest of the fleet at a glance; the server sends
  // the UTC time (its rows are rendered once per round), kept here as the tooltip.
  function ago(seconds) {
    if (seconds < 90) return Math.max(0, Math.round(seconds)) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    if (seconds < 2 * 86400) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  }
  function ages() {
    const now = Date.now() / 1000;
    for (const row of table.tBodies[0].rows) {
      const last = row.dataset.last;
      const cell = row.querySelector("td.last");
      if (!last || !cell) continue;
      if (!cell.title) cell.title = cell.textContent;
      cell.textContent = ago(now - parseFloat(last));
    }
  }

  async function refresh() {
    if (document.visibilityState !== "visible") return;
    const counts = document.getElementById("counts");
    let answer = await fetch("/fleet/version", { credentials: "same-origin", cache: "no-store" });
    if (answer.status === 401) { location.reload(); return; }
    if (!answer.ok) return;
    const { version } = await answer.json();
    if (String(version) === counts.dataset.version) return;
    answer = await fetch("/", { credentials: "same-origin", cache: "no-store" });
    if (!answer.ok || answer.redirected) { location.reload(); return; }
    const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
    const newCounts = fresh.getElementById("counts");
    const newBody = fresh.querySelector("#hosts tbody");
    if (!newCounts || !newBody) return;
    counts.replaceWith(document.adoptNode(newCounts));
    table.tBodies[0].replaceWith(document.adoptNode(newBody));
    ages();
    watchSparks();
    sortRows();
    apply();
    table.dispatchEvent(new CustomEvent("fleetstat:refreshed"));
  }
  setInterval(() => { refresh().catch(() => {}); }, POLL_MS);
  document.addEventListener("visibilitychange", () => { refresh().catch(() => {}); });
  // A filter or a sort in the URL (or kept by the browser's form restore) is applied
  // now; without one the server's rows stand as they are, untouched.
  ages();
  watchSparks();
  setInterval(() => { if (document.visibilityState === "visible") ages(); }, 15000);
  if (sortInput.value) sortRows();
  if (status.value || name.value.trim() || firing.checked) apply();
  performance.mark("fleetstat:fleet-ready");  // handlers attached: bench/dashboard_bench.py
})();
