// Dashboard: counts, learning curve, labels over time, per-class bars (inline SVG), export.
"use strict";
(function () {
  currentUser();
  const NS = "http://www.w3.org/2000/svg";
  const W = 460, H = 220, P = { l: 44, r: 12, t: 12, b: 30 };

  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text != null) e.textContent = text;
    return e;
  }

  function axes(svg, xmin, xmax, ymin, ymax, xfmt, yfmt, xticks) {
    const sx = (x) => P.l + (xmax === xmin ? 0.5 : (x - xmin) / (xmax - xmin)) * (W - P.l - P.r);
    const sy = (y) => H - P.b - (ymax === ymin ? 0.5 : (y - ymin) / (ymax - ymin)) * (H - P.t - P.b);
    svg.appendChild(el("line", { x1: P.l, y1: H - P.b, x2: W - P.r, y2: H - P.b, class: "axis" }));
    svg.appendChild(el("line", { x1: P.l, y1: P.t, x2: P.l, y2: H - P.b, class: "axis" }));
    for (let i = 0; i <= 4; i++) {
      const y = ymin + (i / 4) * (ymax - ymin);
      svg.appendChild(el("line", { x1: P.l, y1: sy(y), x2: W - P.r, y2: sy(y), class: "grid" }));
      svg.appendChild(el("text", { x: P.l - 6, y: sy(y) + 4, "text-anchor": "end" }, yfmt(y)));
    }
    const nx = Math.max(1, Math.min(4, xticks ?? 4));
    for (let i = 0; i <= nx; i++) {
      const x = xmin + (i / nx) * (xmax - xmin);
      svg.appendChild(el("text", { x: sx(x), y: H - P.b + 16, "text-anchor": "middle" }, xfmt(x)));
    }
    return { sx, sy };
  }

  // series: [{ name, points: [[x, y], ...] }]; the n-th series is drawn with class "s<n>", named in a legend
  // when there are several.
  function lineChart(id, series, opts) {
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label });
    document.getElementById(id).replaceChildren(svg);
    const all = series.flatMap((s) => s.points);
    if (!all.length) {
      svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted" }, opts.empty));
      return;
    }
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const xmin = Math.min(...xs), xmax = Math.max(...xs);
    const ymin = opts.ymin ?? Math.min(...ys), ymax = opts.ymax ?? Math.max(...ys);
    const { sx, sy } = axes(svg, xmin, xmax, ymin, ymax, opts.xfmt, opts.yfmt,
      opts.integerX ? xmax - xmin : 4);
    series.forEach((s, n) => {
      const cls = `s${n}`;
      svg.appendChild(el("polyline", { points: s.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" "), class: `line ${cls}` }));
      if (opts.dots) s.points.forEach((p) => svg.appendChild(el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3.5, class: `dot ${cls}` })));
      if (series.length > 1) svg.appendChild(el("text", { x: P.l + 8 + n * 90, y: P.t + 10, class: `legend ${cls}` }, s.name));
    });
  }

  const percent = (v) => (v == null ? "—" : (100 * v).toFixed(1) + "%");

  function barChart(id, perClass) {
    const names = Object.keys(perClass);
    const width = Math.max(W, names.length * 56 + P.l + P.r);
    const svg = el("svg", { viewBox: `0 0 ${width} ${H}`, role: "img", "aria-label": "labels per class" });
    document.getElementById(id).replaceChildren(svg);
    const max = Math.max(1, ...names.map((n) => perClass[n].pool + perClass[n].eval));
    const bw = (width - P.l - P.r) / Math.max(1, names.length);
    const sy = (v) => (v / max) * (H - P.t - P.b);
    names.forEach((n, i) => {
      const x = P.l + i * bw + 4, pool = perClass[n].pool, ev = perClass[n].eval;
      svg.appendChild(el("rect", { x, y: H - P.b - sy(pool), width: bw - 8, height: sy(pool), class: "bar" }));
      svg.appendChild(el("rect", { x, y: H - P.b - sy(pool) - sy(ev), width: bw - 8, height: sy(ev), class: "bar eval" }));
      svg.appendChild(el("text", { x: x + (bw - 8) / 2, y: H - P.b - sy(pool + ev) - 4, "text-anchor": "middle" }, String(pool + ev)));
      const name = el("text", { x: x + (bw - 8) / 2, y: H - P.b + 16, "text-anchor": "middle" }, n.length > 9 ? n.slice(0, 8) + "…" : n);
      name.appendChild(el("title", {}, n));
      svg.appendChild(name);
    });
    svg.appendChild(el("line", { x1: P.l, y1: H - P.b, x2: width - P.r, y2: H - P.b, class: "axis" }));
  }

  function card(title, value, sub) {
    return node("div", { class: "card" }, node("div", { class: "card-title" }, title),
      node("div", { class: "card-value" }, value), node("div", { class: "muted" }, sub));
  }

  // the latest round's model: trained on labels only, or on unlabeled pool images too (and with which extractor)
  function trainingCard(r) {
    if (!r) return card("Training", "—", "no round yet");
    const semi = r.semi_supervised && r.semi_supervised !== "none";
    return card("Training", semi ? "semi-supervised" : "supervised",
      trainingText(r) || `round ${r.number}: labeled images only`);
  }

  async function refresh() {
    let s;
    try { s = await api.get("/api/stats"); } catch (e) { toast(e.message, "error"); return; }
    const last = s.curve.length ? s.curve[s.curve.length - 1] : null;
    const t = s.trainer;
    document.getElementById("cards").replaceChildren(
      card("Labeled (pool)", s.labeled.pool, `of ${s.images.pool} pool images`),
      card("Eval labels", s.labeled.eval, s.holdout.enabled ? `held out: ${Math.round(100 * s.holdout.fraction)}% of human labels` : "eval split"),
      ...s.curve_metrics.map((m) => card(`Eval ${m.name}`, percent(last && last[m.key]), last ? `at ${last.n_labeled} labels` : "no round yet")),
      card("Strategy", s.strategy, `model ${s.model}`),
      trainingCard(s.latest_round),
      card("Trainer", t.paused ? "paused" : t.state === "training" ? `training round ${t.round}` : "idle",
           t.last_error ? `last error: ${t.last_error}` : `${s.rounds} rounds · queue ${s.queue_length}`),
      card("Review", s.review.total, `${s.review.flagged} flagged (disagreement) · ${s.review.label_errors} likely label errors`),
    );
    document.getElementById("cards").dataset.rounds = s.rounds;
    document.getElementById("curve-metrics").textContent = s.curve_metrics.map((m) => m.name).join(" and ");
    const curves = s.curve_metrics.map((m) => ({
      name: m.name, points: s.curve.filter((p) => p[m.key] != null).map((p) => [p.n_labeled, p[m.key]]),
    }));
    lineChart("chart-curve", curves,
      { label: "learning curve", empty: "no round finished yet", ymin: 0, ymax: 1, dots: true, integerX: true,
        xfmt: (x) => String(Math.round(x)), yfmt: (y) => Math.round(100 * y) + "%" });
    const t0 = s.labels_over_time.length ? Date.parse(s.labels_over_time[0].t) : 0;
    const times = s.labels_over_time.map((p) => [(Date.parse(p.t) - t0) / 1000, p.n]);
    const span = times.length ? times[times.length - 1][0] : 0;
    const unit = span < 120 ? [1, "s"] : span < 7200 ? [60, "min"] : [3600, "h"];
    lineChart("chart-time", [{ name: "labels", points: times.map(([x, n]) => [x / unit[0], n]) }],
      { label: "labels over time", empty: "no human labels yet", ymin: 0, dots: false,
        xfmt: (x) => Math.round(x) + " " + unit[1], yfmt: (y) => String(Math.round(y)) });
    barChart("chart-classes", s.per_class);
    document.getElementById("evaluation").textContent = (s.holdout.enabled
      ? `Evaluation: ${Math.round(100 * s.holdout.fraction)}% of human labels are held out (never trained on).`
      : "Evaluation: on the project's eval split (never trained on).") + (s.stop_reason ? ` Stop signal: ${s.stop_reason}.` : "");
  }

  setupTrainerControls();
  refreshHeader();
  refresh().then(() => { document.getElementById("dashboard").dataset.ready = "1"; });
  setInterval(refresh, 4000);
})();
