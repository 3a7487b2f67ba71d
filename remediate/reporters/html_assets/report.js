/* The HTML report's script: draws the charts and the table from the JSON in #run-data.
   Inline in the page, nothing fetched. SVG is written as markup (the HTML parser puts
   it in the SVG namespace), so the page names no URL at all. When it has drawn
   everything it sets data-rendered="ok" on <body> (a failure: "failed", and says why
   in #errors), which the tests read from a headless browser. */
(function () {
  "use strict";
  var COLORS = { succeeded: "#2e7d32", failed: "#c62828", rolled_back: "#ef6c00",
                 interrupted: "#6a1b9a", refused: "#546e7a", skipped: "#90a4ae",
                 planned: "#1565c0", pending: "#cfd8dc" };
  var ORDER = ["failed", "rolled_back", "interrupted", "refused", "skipped", "pending",
               "planned", "succeeded"];
  var LABEL = { succeeded: "fixed", failed: "failed", rolled_back: "rolled back",
                interrupted: "interrupted", refused: "refused", skipped: "skipped",
                planned: "planned", pending: "not started" };
  var W = 640, H = 240, L = 48, R = 16, T = 12, B = 34;

  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function $(id) { return document.getElementById(id); }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) { return ""; }
    var s = Math.round(seconds);
    if (s < 60) { return s + "s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m" + (s % 60 ? " " + (s % 60) + "s" : ""); }
    return Math.floor(s / 3600) + "h" + (Math.floor(s % 3600 / 60) ? " " + Math.floor(s % 3600 / 60) + "m" : "");
  }
  function niceMax(value) {
    if (value <= 0) { return 1; }
    var step = Math.pow(10, Math.floor(Math.log10(value)));
    var options = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < options.length; i++) {
      if (options[i] * step >= value) { return options[i] * step; }
    }
    return 10 * step;
  }
  function svg(name, label, body, height) {
    var h = height || H;
    return '<svg data-chart="' + name + '" role="img" aria-label="' + esc(label) +
      '" viewBox="0 0 ' + W + " " + h + '">' + body + "</svg>";
  }
  function axes(xmax, ymax, xfmt, yfmt, height) {
    var h = height || H, out = "", i;
    for (i = 0; i <= 4; i++) {
      var y = h - B - (h - T - B) * i / 4;
      out += '<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + y + '" y2="' + y + '"/>';
      out += '<text x="' + (L - 6) + '" y="' + (y + 4) + '" text-anchor="end">' + esc(yfmt(ymax * i / 4)) + "</text>";
      var x = L + (W - L - R) * i / 4;
      out += '<text x="' + x + '" y="' + (h - B + 16) + '" text-anchor="' + (i === 4 ? "end" : "middle") +
        '">' + esc(xfmt(xmax * i / 4)) + "</text>";
    }
    out += '<line class="axis" x1="' + L + '" x2="' + L + '" y1="' + T + '" y2="' + (h - B) + '"/>';
    out += '<line class="axis" x1="' + L + '" x2="' + (W - R) + '" y1="' + (h - B) + '" y2="' + (h - B) + '"/>';
    return out;
  }
  function legend(entries) {
    return '<div class="legend">' + entries.map(function (e) {
      return '<span><i style="background:' + e[1] + '"></i>' + esc(e[0]) + "</span>";
    }).join("") + "</div>";
  }
  function integer(v) { return String(Math.round(v)); }
  /* A count axis's top: a multiple of 4, so its five ticks are whole numbers. */
  function countMax(value) { return Math.max(4, Math.ceil(niceMax(value) / 4) * 4); }

  /* Targets fixed (and failed) over time: cumulative step lines. */
  function overTime(data) {
    var end = data.duration || 0, series = [["succeeded", "fixed"], ["failed", "failed"],
                                              ["rolled_back", "rolled back"]];
    var lines = series.map(function (s) {
      var times = data.targets.filter(function (t) { return t.status === s[0] && t.finished !== null; })
        .map(function (t) { return t.finished; }).sort(function (a, b) { return a - b; });
      if (times.length) { end = Math.max(end, times[times.length - 1]); }
      return { key: s[0], name: s[1], times: times };
    });
    var ymax = countMax(Math.max.apply(null, lines.map(function (l) { return l.times.length; }).concat([1])));
    var xmax = end || 1, body = axes(xmax, ymax, duration, integer);
    function X(t) { return L + (W - L - R) * t / xmax; }
    function Y(n) { return H - B - (H - T - B) * n / ymax; }
    lines.forEach(function (l) {
      if (!l.times.length) { return; }
      var d = "M" + X(0) + "," + Y(0);
      l.times.forEach(function (t, i) { d += " H" + X(t) + " V" + Y(i + 1); });
      d += " H" + X(xmax);
      body += '<path data-series="' + l.key + '" d="' + d + '" fill="none" stroke="' +
        COLORS[l.key] + '" stroke-width="2"/>';
    });
    return svg("fixed-over-time", "targets fixed over time", body) +
      legend(lines.map(function (l) { return [l.name + " (" + l.times.length + ")", COLORS[l.key]]; }));
  }

  function quantile(sorted, q) {
    var at = (sorted.length - 1) * q, lo = Math.floor(at), hi = Math.ceil(at);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
  }
  /* Per-step duration distribution: a box plot per step (min, quartiles, median, max). */
  function stepDurations(data) {
    var steps = Object.keys(data.step_durations);
    if (!steps.length) { return '<p class="empty">No step finished.</p>' + svg("step-durations", "no steps", "", 40); }
    var row = 26, h = T + B + row * steps.length, xmax = 0;
    /* A loop, not Math.max.apply: JS engines cap the number of arguments of a call. */
    steps.forEach(function (s) { data.step_durations[s].forEach(function (v) { xmax = Math.max(xmax, v); }); });
    xmax = niceMax(xmax);
    var left = 120, body = "";
    function X(v) { return left + (W - left - R) * v / xmax; }
    for (var i = 0; i <= 4; i++) {
      var x = X(xmax * i / 4);
      body += '<line class="grid" x1="' + x + '" x2="' + x + '" y1="' + T + '" y2="' + (h - B) + '"/>';
      body += '<text x="' + x + '" y="' + (h - B + 16) + '" text-anchor="' + (i === 4 ? "end" : "middle") +
        '">' + esc(duration(xmax * i / 4)) + "</text>";
    }
    steps.forEach(function (s, i) {
      var v = data.step_durations[s].slice().sort(function (a, b) { return a - b; });
      var y = T + row * i + row / 2, q1 = quantile(v, .25), q3 = quantile(v, .75), med = quantile(v, .5);
      body += '<g data-step="' + esc(s) + '"><title>' + esc(s + ": median " + duration(med) + ", " +
        v.length + " target(s), " + duration(v[0]) + " to " + duration(v[v.length - 1])) + "</title>";
      body += '<text x="' + (left - 8) + '" y="' + (y + 4) + '" text-anchor="end">' + esc(s) + "</text>";
      body += '<line stroke="#607d8b" x1="' + X(v[0]) + '" x2="' + X(v[v.length - 1]) + '" y1="' + y + '" y2="' + y + '"/>';
      body += '<rect fill="#90caf9" stroke="#1565c0" x="' + X(q1) + '" y="' + (y - 8) + '" width="' +
        Math.max(1, X(q3) - X(q1)) + '" height="16"/>';
      body += '<line stroke="#0d47a1" stroke-width="2" x1="' + X(med) + '" x2="' + X(med) + '" y1="' + (y - 8) + '" y2="' + (y + 8) + '"/></g>';
    });
    return svg("step-durations", "per-step duration distribution", body, h);
  }

  /* Throttles and retries over time: stacked bars in 30 slices of the run. */
  function retries(data) {
    var kinds = [["throttled", "throttled API calls", "#ef6c00"], ["api", "other API retries", "#fbc02d"],
                 ["step", "step retries", "#6a1b9a"]];
    var end = data.duration || 0;
    data.retries.forEach(function (r) { end = Math.max(end, r[0] || 0); });
    var bins = 30, xmax = end || 1, counts = [], i;
    for (i = 0; i < bins; i++) { counts.push({ throttled: 0, api: 0, step: 0 }); }
    data.retries.forEach(function (r) {
      var at = Math.min(bins - 1, Math.floor((r[0] || 0) / xmax * bins));
      counts[at][r[1]] = (counts[at][r[1]] || 0) + 1;
    });
    var ymax = countMax(Math.max.apply(null, counts.map(function (c) { return c.throttled + c.api + c.step; }).concat([1])));
    var body = axes(xmax, ymax, duration, integer), width = (W - L - R) / bins;
    counts.forEach(function (c, i) {
      var base = 0;
      kinds.forEach(function (k) {
        var n = c[k[0]];
        if (!n) { return; }
        var y0 = H - B - (H - T - B) * base / ymax, y1 = H - B - (H - T - B) * (base + n) / ymax;
        body += '<rect data-kind="' + k[0] + '" fill="' + k[2] + '" x="' + (L + width * i + 1) + '" y="' + y1 +
          '" width="' + Math.max(1, width - 2) + '" height="' + (y0 - y1) + '"><title>' + n + " " + esc(k[1]) + "</title></rect>";
        base += n;
      });
    });
    var totals = data.retry_totals;
    var text = data.retries.length ? "" : '<p class="empty">No throttles or retries in this run.</p>';
    return text + svg("retries-over-time", "throttles and retries over time", body) +
      legend([["throttled (" + totals.throttled + ")", "#ef6c00"],
              ["other API retries (" + (totals.api - totals.throttled) + ")", "#fbc02d"],
              ["step retries (" + totals.steps + ")", "#6a1b9a"]]);
  }

  /* Outcome per account and AZ: a stacked bar per place. */
  function outcomes(data) {
    var places = {}, names;
    data.targets.forEach(function (t) {
      places[t.where] = places[t.where] || {};
      places[t.where][t.status] = (places[t.where][t.status] || 0) + 1;
    });
    names = Object.keys(places).sort();
    var row = 24, h = T + B + row * Math.max(1, names.length), left = 200, body = "", xmax = 1;
    names.forEach(function (n) {
      var total = 0;
      Object.keys(places[n]).forEach(function (s) { total += places[n][s]; });
      xmax = Math.max(xmax, total);
    });
    xmax = countMax(xmax);
    function X(v) { return left + (W - left - R) * v / xmax; }
    names.forEach(function (n, i) {
      var y = T + row * i + 4, base = 0;
      body += '<text x="' + (left - 8) + '" y="' + (y + 12) + '" text-anchor="end">' + esc(n) + "</text>";
      ORDER.forEach(function (s) {
        var count = places[n][s];
        if (!count) { return; }
        body += '<rect data-status="' + s + '" fill="' + COLORS[s] + '" x="' + X(base) + '" y="' + y +
          '" width="' + (X(base + count) - X(base)) + '" height="' + (row - 8) + '"><title>' +
          esc(n + ": " + count + " " + LABEL[s]) + "</title></rect>";
        base += count;
      });
    });
    for (var i = 0; i <= 4; i++) {
      body += '<text x="' + X(xmax * i / 4) + '" y="' + (h - B + 16) + '" text-anchor="' + (i === 4 ? "end" : "middle") +
        '">' + integer(xmax * i / 4) + "</text>";
    }
    var present = ORDER.filter(function (s) { return data.summary_statuses[s]; });
    return svg("outcome-per-place", "outcome per account and availability zone", body, h) +
      legend(present.map(function (s) { return [LABEL[s], COLORS[s]]; }));
  }

  /* The per-target table: sortable by any column, filtered by text and status. */
  var COLUMNS = [["id", "Target"], ["where", "Account / AZ"], ["status", "Status"],
                 ["seconds", "Took"], ["steps", "Steps"], ["outcome", "What happened"]];
  var LIMIT = 2000;
  function table(data) {
    var sortKey = "status", ascending = true, rows = data.targets.slice();
    var rank = {};
    ORDER.forEach(function (s, i) { rank[s] = i; });
    var head = COLUMNS.map(function (c) { return '<th data-key="' + c[0] + '">' + esc(c[1]) + "</th>"; }).join("");
    $("targets").innerHTML = "<thead><tr>" + head + "</tr></thead><tbody></tbody>";
    var statuses = Object.keys(data.summary_statuses).filter(function (s) { return data.summary_statuses[s]; });
    $("status-filter").innerHTML = '<option value="">every status</option>' + statuses.map(function (s) {
      return '<option value="' + s + '">' + esc(LABEL[s] || s) + " (" + data.summary_statuses[s] + ")</option>";
    }).join("");
    function value(t, key) { return key === "status" ? rank[t.status] : t[key]; }
    function draw() {
      var text = $("text-filter").value.toLowerCase(), status = $("status-filter").value;
      var shown = rows.filter(function (t) {
        return (!status || t.status === status) && (!text ||
          (t.id + " " + t.where + " " + t.outcome + " " + t.region).toLowerCase().indexOf(text) >= 0);
      });
      shown.sort(function (a, b) {
        var x = value(a, sortKey), y = value(b, sortKey);
        var order = x < y ? -1 : x > y ? 1 : (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
        return ascending ? order : -order;
      });
      $("targets").tBodies[0].innerHTML = shown.slice(0, LIMIT).map(function (t) {
        return '<tr data-status="' + t.status + '"><td>' + esc(t.id) + "</td><td>" + esc(t.where) +
          '</td><td class="status s-' + t.status + '">' + esc(LABEL[t.status] || t.status) +
          "</td><td>" + esc(t.took) + "</td><td>" + t.steps + "</td><td>" + esc(t.outcome) + "</td></tr>";
      }).join("");
      $("shown").textContent = shown.length > LIMIT ? "showing " + LIMIT + " of " + shown.length +
        " (filter to narrow)" : shown.length + " of " + rows.length + " targets";
      Array.prototype.forEach.call($("targets").tHead.rows[0].cells, function (th) {
        th.setAttribute("aria-sort", th.dataset.key === sortKey ? (ascending ? "ascending" : "descending") : "none");
      });
    }
    $("targets").tHead.addEventListener("click", function (e) {
      var key = e.target.dataset && e.target.dataset.key;
      if (!key) { return; }
      ascending = key === sortKey ? !ascending : true;
      sortKey = key;
      draw();
    });
    $("text-filter").addEventListener("input", draw);
    $("status-filter").addEventListener("change", draw);
    draw();
  }

  /* The headline numbers: one card per status a target ended in (they add up to the
     total: no target is counted twice), then how long the run took. */
  function cards(data) {
    var counts = data.summary_statuses, items = [["targets", data.targets.length]];
    ["succeeded", "failed", "rolled_back", "interrupted", "refused", "skipped", "pending", "planned"]
      .forEach(function (s) { if (counts[s] || s === "succeeded" || s === "failed") { items.push([LABEL[s], counts[s] || 0]); } });
    items.push(["took", data.took || "-"]);
    $("cards").innerHTML = items.map(function (c) {
      return '<div class="card"><b>' + esc(c[1]) + "</b><span>" + esc(c[0]) + "</span></div>";
    }).join("");
    $("notes").innerHTML = ["alarm", "budget", "interrupted"].filter(function (k) { return data.notes[k]; })
      .map(function (k) { return '<p class="note">' + esc(data.notes[k]) + "</p>"; }).join("");
  }

  try {
    var data = JSON.parse($("run-data").textContent);
    data.summary_statuses = {};
    data.targets.forEach(function (t) { data.summary_statuses[t.status] = (data.summary_statuses[t.status] || 0) + 1; });
    cards(data);
    $("chart-fixed").innerHTML = overTime(data);
    $("chart-steps").innerHTML = stepDurations(data);
    $("chart-retries").innerHTML = retries(data);
    $("chart-places").innerHTML = outcomes(data);
    table(data);
    document.body.setAttribute("data-rendered", "ok");
  } catch (error) {
    $("errors").textContent = "The report could not be drawn: " + error;
    document.body.setAttribute("data-rendered", "failed");
  }
}());
