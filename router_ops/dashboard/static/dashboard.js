/* RouterOps dashboard: progressive enhancement only. Pages work without it. */
(function () {
  "use strict";

  // Router version picker: submit on change (a button is shown when scripts are off).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });

  // Sortable tables: click a header with data-sort; cells carry their raw value in data-v.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("th[data-sort]");
    heads.forEach(function (th) {
      th.setAttribute("tabindex", "0");
      function sort() {
        var index = Array.prototype.indexOf.call(th.parentNode.children, th);
        var numeric = th.dataset.sort === "num";
        var dir = th.getAttribute("aria-sort") === "descending" ? 1 : -1;  // first click: largest first
        if (!numeric && !th.hasAttribute("aria-sort")) dir = 1;              // text: A→Z first
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[index].dataset.v, y = b.cells[index].dataset.v;
          if (numeric) {
            // Rows without a value (no judged pairs) always go last.
            var nx = x === "" || x === undefined ? null : parseFloat(x), ny = y === "" || y === undefined ? null : parseFloat(y);
            if (nx === null || ny === null) return (nx === null) - (ny === null);
            return dir * (nx - ny);
          }
          return dir * String(x || "").localeCompare(String(y || ""));
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sort(); });
    });
  });

  if (typeof Chart === "undefined") return;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 11.5;
  Chart.defaults.color = "#667085";
  Chart.defaults.animation = false;

  function pct(v) { return v === null || v === undefined ? "—" : v.toFixed(1) + " %"; }
  var grid = { color: "#f2f4f7" };

  // A rate with its 95 % interval as a shaded band (low/high datasets filled between).
  function bandChart(canvas, data, series, color, threshold) {
    var s = data[series];
    var datasets = [
      { label: "upper", data: s.high, borderWidth: 0, pointRadius: 0, fill: false, spanGaps: true },
      { label: "95 % interval", data: s.low, borderWidth: 0, pointRadius: 0, fill: "-1", backgroundColor: color + "26", spanGaps: true },
      { label: "estimate", data: s.estimate, borderColor: color, backgroundColor: color, borderWidth: 2,
        pointRadius: data.labels.length > 40 ? 0 : 2.5, spanGaps: true, cubicInterpolationMode: "monotone" },
    ];
    if (threshold !== undefined && threshold !== null) {
      datasets.push({ label: "alert level", data: data.labels.map(function () { return threshold; }),
        borderColor: "#b42318", borderDash: [4, 4], borderWidth: 1, pointRadius: 0, fill: false });
    }
    return new Chart(canvas, {
      type: "line",
      data: { labels: data.labels, datasets: datasets },
      options: {
        maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, ticks: { callback: function (v) { return v + " %"; } }, grid: grid },
                  x: { grid: { display: false }, ticks: { maxTicksLimit: 8, maxRotation: 0 } } },
        plugins: {
          legend: { labels: { boxWidth: 12, filter: function (item) { return item.text !== "upper"; } } },
          tooltip: { filter: function (item) { return item.datasetIndex === 2; },
            callbacks: { label: function (ctx) {
              var i = ctx.dataIndex;
              return "estimate " + pct(s.estimate[i]) + " (" + pct(s.low[i]) + "–" + pct(s.high[i]) + "), " + s.n[i] + " judged";
            } } },
        },
      },
    });
  }

  function trafficChart(canvas, data) {
    return new Chart(canvas, {
      data: { labels: data.labels, datasets: [
        { type: "bar", label: "decisions", data: data.decisions, backgroundColor: "#c7d2fe", borderRadius: 3, yAxisID: "y" },
        { type: "line", label: "cheap share", data: data.cheap_share, borderColor: "#12805c", backgroundColor: "#12805c",
          borderWidth: 2, pointRadius: data.labels.length > 40 ? 0 : 2.5, yAxisID: "share", spanGaps: true, cubicInterpolationMode: "monotone" },
      ] },
      options: {
        maintainAspectRatio: false, interaction: { mode: "index", intersect: false },
        scales: {
          y: { beginAtZero: true, grid: grid, title: { display: true, text: "decisions" } },
          share: { position: "right", min: 0, max: 100, grid: { display: false }, ticks: { callback: function (v) { return v + " %"; } } },
          x: { grid: { display: false }, ticks: { maxTicksLimit: 8, maxRotation: 0 } },
        },
        plugins: { legend: { labels: { boxWidth: 12 } } },
      },
    });
  }

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var data = JSON.parse(document.getElementById(canvas.dataset.source).textContent);
    var kind = canvas.dataset.chart;
    var threshold = canvas.dataset.threshold ? parseFloat(canvas.dataset.threshold) : null;
    if (kind === "regret") bandChart(canvas, data, "regret", "#3552d4", threshold);
    else if (kind === "disagreement") bandChart(canvas, data, "disagreement", "#7a5af8", null);
    else if (kind === "traffic") trafficChart(canvas, data);
  });
})();
