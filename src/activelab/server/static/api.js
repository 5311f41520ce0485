// The one way pages talk to the server: the REST API (see /docs).
"use strict";
const api = {
  async call(method, path, body) {
    const opts = { method, headers: { "X-Activelab-Client": "1" }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
    if (!res.ok) {
      const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : res.statusText;
      const err = new Error(detail);
      err.status = res.status;
      throw err;
    }
    return data;
  },
  get(path) { return this.call("GET", path); },
  post(path, body) { return this.call("POST", path, body || {}); },
};

// Pages never parse server or user text as HTML (stored XSS, strict CSP): every node is
// built here, text goes in as text nodes and attributes through setAttribute.
function node(tag, attrs, ...children) {
  const el = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => { if (v != null && v !== false) el.setAttribute(k, String(v)); });
  children.forEach((c) => { if (c != null && c !== "") el.append(c instanceof Node ? c : String(c)); });
  return el;
}

// A URL from the server is used only when it is a path on this server (no other origin, no javascript:).
function localUrl(url) {
  if (typeof url !== "string" || !url.startsWith("/") || url.startsWith("//") || url.startsWith("/\\")) return null;
  const u = new URL(url, location.origin);
  return u.origin === location.origin ? u.pathname + u.search : null;
}

function toast(text, kind) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = "toast show " + (kind || "");
  clearTimeout(toast._t);
  toast._t = setTimeout(() => { el.className = "toast"; }, 2500);
}

function currentUser() {
  const params = new URLSearchParams(location.search);
  const input = document.getElementById("user");
  const given = params.get("author") || params.get("user");  // ?user= is the old spelling, still read
  let name = given || localStorage.getItem("activelab.user") || "";
  if (given) localStorage.setItem("activelab.user", name);
  input.value = name;
  input.addEventListener("change", () => {
    localStorage.setItem("activelab.user", input.value.trim());
    document.dispatchEvent(new CustomEvent("userchange"));
  });
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") input.blur(); });
  return () => input.value.trim();
}

// What a round's model learned from besides its labels (null: labels only): the unlabeled images of a
// semi-supervised fit and the feature extractor chosen by model.representation: auto.
function trainingText(m) {
  const parts = [];
  if (m.semi_supervised && m.semi_supervised !== "none") {
    parts.push(`semi-supervised (${m.semi_supervised}): ${Number(m.n_unlabeled || 0).toLocaleString("en-US")} unlabeled images`);
  }
  if (m.representation) parts.push(`representation ${m.representation}`);
  return parts.length ? parts.join(" · ") : null;
}

function trainerText(t) {
  let s = t.paused ? "trainer: paused" : t.state === "training" ? `trainer: training round ${t.round}…` : "trainer: idle";
  const m = t.last_metrics;
  if (m) {
    // single-label rounds report accuracy; multi-label ones macro F1 over the classes; detection COCO mAP;
    // segmentation mIoU (and, for a region round, the pixels it asks for)
    const acc = m.accuracy != null ? `eval accuracy ${(100 * m.accuracy).toFixed(1)}% on ${m.n_eval}`
      : m.macro_f1 != null ? `eval macro F1 ${(100 * m.macro_f1).toFixed(1)}% on ${m.n_eval}`
      : m.map != null ? `eval mAP ${(100 * m.map).toFixed(1)}% on ${m.n_eval}`
      : m.miou != null ? `eval mIoU ${(100 * m.miou).toFixed(1)}% on ${m.n_eval}` : "no eval labels";
    s += ` · last round ${m.round}: ${acc}, ${m.n_labeled} labels`;
    if (m.asked_pixels != null) s += ` · asks for ${Number(m.asked_pixels).toLocaleString("en-US")} px`;
    const training = trainingText(m);
    if (training) s += ` · ${training}`;
  }
  s += ` · retrains every ${t.retrain_every} labels`;
  if (t.last_error) s += ` · last error: ${t.last_error}`;
  return s;
}

async function refreshTrainer() {
  try {
    const t = await api.get("/api/trainer");
    const box = document.getElementById("trainer");
    document.getElementById("trainer-text").textContent = trainerText(t);
    box.dataset.state = t.paused ? "paused" : t.state;
    box.classList.toggle("error", !!t.last_error);
    document.getElementById("trainer-pause").textContent = t.paused ? "Resume" : "Pause";
    document.getElementById("trainer-pause").dataset.paused = t.paused ? "1" : "";
    if (refreshTrainer.lastRound !== undefined && t.last_round !== refreshTrainer.lastRound) {
      document.dispatchEvent(new CustomEvent("newround", { detail: t }));
    }
    refreshTrainer.lastRound = t.last_round;
    return t;
  } catch (e) { return null; }
}

function setupTrainerControls() {
  document.getElementById("trainer-run").addEventListener("click", async () => {
    await api.post("/api/trainer/run"); toast("a round will start shortly"); refreshTrainer();
  });
  document.getElementById("trainer-pause").addEventListener("click", async (e) => {
    await api.post(e.target.dataset.paused ? "/api/trainer/resume" : "/api/trainer/pause"); refreshTrainer();
  });
  refreshTrainer();
  setInterval(refreshTrainer, 3000);
}

async function refreshHeader() {
  try {
    const p = await api.get("/api/project");
    document.getElementById("project-name").textContent = `${p.name} · ${p.strategy}`;
    const r = await api.get("/api/review?limit=1");
    document.getElementById("nav-flags").textContent = r.waiting.total ? String(r.waiting.total) : "";
    return p;
  } catch (e) { toast(e.message, "error"); return null; }
}
