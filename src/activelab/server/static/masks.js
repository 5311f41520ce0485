// Masks over an image (segmentation projects: the task's model outputs "masks"). A mask is one class position per
// image pixel, 255 = not labeled; the editor keeps it as a Uint8Array of width * height and paints it over the
// image on a canvas. It is sent as a PNG in the VOC colours (the server reads them back through the same palette)
// and read back the same way: the PNGs the server serves (GET /api/masks/{key}) are palette PNGs in those colours.
"use strict";
// the longest side, in screen pixels, the labeling page shows an image at
const MASK_VIEW_MAX = 512;
// the pixel value of "not labeled"
const MASK_IGNORE = 255;
// edits kept for undo, per image
const MASK_UNDO_LIMIT = 50;
// brush diameters in image pixels (+ and - step through them)
const BRUSH_SIZES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];
// how strongly labels, the model's mask and the dimmed area show over the image (0..255)
const ALPHA = { label: 150, model: 70, dim: 200, outline: 255 };
// pixels not asked for are washed out in the page's background colour (no class colour looks like it); the
// asked area's edge is drawn in the accent colour
const DIM_COLOUR = [246, 247, 249];
const OUTLINE_COLOUR = [47, 111, 222];

// The Pascal VOC colour map (bit-interleaved class index), 255 -> VOC's void colour: the server's palette.
const VOC = Array.from({ length: 256 }, (_, index) => {
  if (index === MASK_IGNORE) return [224, 224, 192];
  let r = 0, g = 0, b = 0, v = index;
  for (let bit = 0; bit < 8; bit++) {
    r |= ((v >> 0) & 1) << (7 - bit);
    g |= ((v >> 1) & 1) << (7 - bit);
    b |= ((v >> 2) & 1) << (7 - bit);
    v >>= 3;
  }
  return [r, g, b];
});
const VOC_INDEX = new Map(VOC.map((c, i) => [(c[0] << 16) | (c[1] << 8) | c[2], i]));

// a mask as text: how many pixels it labels
function maskText(m) { return `mask, ${Number(m.labeled).toLocaleString("en-US")} px labeled`; }

// The (width * height) class positions of a mask PNG served by this server (its colours through the VOC map;
// a colour outside it is "not labeled"). Decoded without colour management, so colours stay exact.
async function fetchMask(url, width, height) {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`could not load the mask (${res.status})`);
  const bitmap = await createImageBitmap(await res.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  if (bitmap.width !== width || bitmap.height !== height) throw new Error("the mask does not have the image's size");
  const c = document.createElement("canvas");
  c.width = width;
  c.height = height;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const px = ctx.getImageData(0, 0, width, height).data;
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) {
    const v = VOC_INDEX.get((px[4 * i] << 16) | (px[4 * i + 1] << 8) | px[4 * i + 2]);
    out[i] = v === undefined ? MASK_IGNORE : v;
  }
  return out;
}

// region ids from the runs of GET /api/images/{id}/regions ([id, length, id, length, ...], row-major)
function decodeRuns(runs, n) {
  const out = new Int32Array(n);
  let at = 0;
  for (let i = 0; i + 1 < runs.length && at < n; i += 2) {
    out.fill(runs[i], at, Math.min(n, at + runs[i + 1]));
    at += runs[i + 1];
  }
  return out;
}

// base64 of a mask as an RGBA PNG in the VOC colours (what POST /api/labels takes as mask.png)
async function encodeMask(labels, width, height) {
  const c = document.createElement("canvas");
  c.width = width;
  c.height = height;
  const ctx = c.getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < labels.length; i++) {
    const col = VOC[labels[i]];
    image.data.set([col[0], col[1], col[2], 255], 4 * i);
  }
  ctx.putImageData(image, 0, 0);
  const blob = await new Promise((resolve) => c.toBlob(resolve, "image/png"));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// The mask editor of the labeling page. Tools: "brush" (paint a disk; the eraser paints 255), "polygon" (click
// points, close() fills it) and "fill" (a click paints the superpixel under it). In region mode (the round asked
// for some pixels: `asked`) only asked pixels take paint; the rest stays 255, dimmed on screen, the asked area
// outlined. Everything an item needs (its draft, the model's mask, its regions, the asked pixels) lives on the
// item, so moving to another image and back keeps the painting and fetches nothing twice.
function MaskEditor(canvas, img, onChange) {
  const ed = { item: null, width: 0, height: 0, labels: null, tool: "brush", eraser: false, brushIndex: 4,
               classIndex: 1, nClasses: 0, showModel: true, polygon: [], cursor: null, loading: false };
  const layer = document.createElement("canvas");
  let stroke = null;

  const data = () => ed.item.maskData;
  ed.brush = () => BRUSH_SIZES[ed.brushIndex];

  function fit() {
    const scale = Math.min(MASK_VIEW_MAX / ed.width, MASK_VIEW_MAX / ed.height);
    const w = Math.round(ed.width * scale), h = Math.round(ed.height * scale);
    img.style.width = `${w}px`;
    img.style.height = `${h}px`;
    canvas.width = w;
    canvas.height = h;
    layer.width = ed.width;
    layer.height = ed.height;
  }

  function changed() { render(); onChange(); }

  // pixels outside the asked area never take paint
  function paintable(p) { const a = data().asked; return !a || a[p] === 1; }

  function set(p, v) { if (paintable(p)) ed.labels[p] = v; }

  function remember() {
    const history = data().history;
    history.push(ed.labels.slice());
    if (history.length > MASK_UNDO_LIMIT) history.shift();
  }

  function value() { return ed.eraser ? MASK_IGNORE : ed.classIndex; }

  // the image pixel under a pointer event, as floats (0..width, 0..height)
  function point(e) {
    const r = canvas.getBoundingClientRect();
    return { x: Math.min(ed.width - 1e-6, Math.max(0, ((e.clientX - r.left) / r.width) * ed.width)),
             y: Math.min(ed.height - 1e-6, Math.max(0, ((e.clientY - r.top) / r.height) * ed.height)) };
  }

  function index(p) { return Math.floor(p.y) * ed.width + Math.floor(p.x); }

  function dab(x, y) {
    const r = ed.brush() / 2, v = value();
    set(Math.floor(y) * ed.width + Math.floor(x), v);
    for (let py = Math.max(0, Math.floor(y - r)); py < Math.min(ed.height, Math.ceil(y + r)); py++) {
      for (let px = Math.max(0, Math.floor(x - r)); px < Math.min(ed.width, Math.ceil(x + r)); px++) {
        if ((px + 0.5 - x) ** 2 + (py + 0.5 - y) ** 2 <= r * r) set(py * ed.width + px, v);
      }
    }
  }

  // a brush stroke from a to b: dabs close enough together to leave no gap
  function line(a, b) {
    const step = Math.max(0.5, ed.brush() / 4);
    const n = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / step));
    for (let i = 1; i <= n; i++) dab(a.x + ((b.x - a.x) * i) / n, a.y + ((b.y - a.y) * i) / n);
  }

  function fillRegion(p, from) {
    const regions = data().regions;
    if (!regions) return false;
    const id = regions[p];
    for (let q = 0; q < regions.length; q++) if (regions[q] === id) set(q, from ? from[q] : value());
    return true;
  }

  // load(item): the image's draft (or, reviewing, its current mask), then the model's mask, its regions and the
  // asked pixels, each fetched once per item; the canvas's data-loaded says when all are there
  ed.load = function (item, { current, regionsUrl }) {
    ed.item = item;
    ed.width = item.width;
    ed.height = item.height;
    ed.polygon = [];
    ed.cursor = null;
    stroke = null;
    if (!item.maskData) {
      item.maskData = { labels: new Uint8Array(item.width * item.height).fill(MASK_IGNORE), history: [],
                        model: null, regions: null, asked: null, outline: null, pending: null };
      item.maskData.pending = fetchAll(item, current, regionsUrl);
    }
    ed.labels = item.maskData.labels;
    ed.loading = true;
    canvas.dataset.loaded = "";
    fit();
    render();
    item.maskData.pending.then(() => {
      if (ed.item !== item) return;
      ed.labels = item.maskData.labels;
      ed.loading = false;
      canvas.dataset.loaded = "1";
      changed();
    });
  };

  async function fetchAll(item, current, regionsUrl) {
    const d = item.maskData, n = item.width * item.height;
    const jobs = [
      current ? fetchMask(current, item.width, item.height).then((m) => { d.labels.set(m); }) : null,
      item.prediction && item.prediction.mask
        ? fetchMask(localUrl(item.prediction.mask.url), item.width, item.height).then((m) => { d.model = m; }) : null,
      item.asked ? fetchMask(localUrl(item.asked), item.width, item.height).then((m) => {
        d.asked = m;
        d.outline = outline(m, item.width, item.height);
      }) : null,
      regionsUrl ? api.get(regionsUrl).then((r) => { d.regions = decodeRuns(r.runs, n); }) : null,
    ];
    const results = await Promise.allSettled(jobs.filter(Boolean));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) toast(failed.reason.message, "error");
  }

  // asked pixels with a neighbour that is not asked: the edge drawn around the asked area
  function outline(asked, width, height) {
    const out = new Uint8Array(asked.length);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = y * width + x;
        if (asked[p] !== 1) continue;
        out[p] = (x > 0 && asked[p - 1] !== 1) || (x < width - 1 && asked[p + 1] !== 1) ||
          (y > 0 && asked[p - width] !== 1) || (y < height - 1 && asked[p + width] !== 1) ? 1 : 0;
      }
    }
    return out;
  }

  ed.setClasses = function (classes) {
    ed.nClasses = classes.length;
    if (ed.classIndex >= ed.nClasses) ed.classIndex = Math.min(1, ed.nClasses - 1);
  };

  // a number key: the class painted next (and the eraser off)
  ed.setClass = function (i) {
    if (i < 0 || i >= ed.nClasses) return false;
    ed.classIndex = i;
    ed.eraser = false;
    changed();
    return true;
  };

  ed.setTool = function (tool) {
    if (tool !== "polygon") ed.polygon = [];
    ed.tool = tool;
    changed();
  };

  ed.toggleEraser = function () { ed.eraser = !ed.eraser; changed(); };

  ed.resize = function (step) {
    ed.brushIndex = Math.min(BRUSH_SIZES.length - 1, Math.max(0, ed.brushIndex + step));
    changed();
  };

  ed.setShowModel = function (on) { ed.showModel = on; render(); };

  ed.hasModel = () => !!(ed.item && ed.item.maskData && ed.item.maskData.model);

  // "accept the model's mask": over the whole image (the asked part of it), or over the region under the cursor
  ed.acceptModel = function (where) {
    if (!ed.item || ed.loading || !ed.hasModel()) return false;
    const model = data().model;
    if (where === "region") {
      if (ed.cursor == null || !data().regions) return false;
      remember();
      fillRegion(ed.cursor, model);
    } else {
      remember();
      for (let p = 0; p < model.length; p++) set(p, model[p]);
    }
    changed();
    return true;
  };

  ed.polygonOpen = () => ed.polygon.length > 0;

  // close the polygon: every pixel whose centre lies inside it (even-odd rule) takes the class
  ed.closePolygon = function () {
    const pts = ed.polygon;
    ed.polygon = [];
    if (pts.length < 3) { changed(); return false; }
    remember();
    const ys = pts.map((q) => q.y), xs = pts.map((q) => q.x);
    const v = value();
    for (let py = Math.max(0, Math.floor(Math.min(...ys))); py < Math.min(ed.height, Math.ceil(Math.max(...ys))); py++) {
      for (let px = Math.max(0, Math.floor(Math.min(...xs))); px < Math.min(ed.width, Math.ceil(Math.max(...xs))); px++) {
        const cx = px + 0.5, cy = py + 0.5;
        let inside = false;
        for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
          const a = pts[i], b = pts[j];
          if ((a.y > cy) !== (b.y > cy) && cx < ((b.x - a.x) * (cy - a.y)) / (b.y - a.y) + a.x) inside = !inside;
        }
        if (inside) set(py * ed.width + px, v);
      }
    }
    changed();
    return true;
  };

  ed.cancelPolygon = function () { ed.polygon = []; changed(); };

  // undo the last edit on this image; false when there is none (the page then undoes the last label sent)
  ed.undo = function () {
    if (ed.polygon.length) { ed.polygon.pop(); changed(); return true; }
    const history = ed.item && ed.item.maskData ? data().history : [];
    if (!history.length) return false;
    ed.labels.set(history.pop());
    changed();
    return true;
  };

  ed.labeledCount = function () {
    let n = 0;
    if (ed.labels) for (let p = 0; p < ed.labels.length; p++) if (ed.labels[p] !== MASK_IGNORE) n++;
    return n;
  };

  ed.askedCount = function () {
    const a = ed.item && ed.item.maskData ? data().asked : null;
    if (!a) return null;
    let n = 0;
    for (let p = 0; p < a.length; p++) if (a[p] === 1) n++;
    return n;
  };

  ed.png = () => encodeMask(ed.labels, ed.width, ed.height);

  function render() {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!ed.item || !ed.labels) return;
    const d = data();
    const lctx = layer.getContext("2d");
    const image = lctx.createImageData(ed.width, ed.height);
    const px = image.data;
    const model = ed.showModel ? d.model : null;
    for (let p = 0; p < ed.labels.length; p++) {
      let col = null, alpha = 0;
      if (d.asked && d.asked[p] !== 1) { col = DIM_COLOUR; alpha = ALPHA.dim; }
      else if (d.outline && d.outline[p]) { col = OUTLINE_COLOUR; alpha = ALPHA.outline; }
      else if (ed.labels[p] !== MASK_IGNORE) { col = VOC[ed.labels[p]]; alpha = ALPHA.label; }
      else if (model) { col = VOC[model[p]]; alpha = ALPHA.model; }
      if (col) { px[4 * p] = col[0]; px[4 * p + 1] = col[1]; px[4 * p + 2] = col[2]; px[4 * p + 3] = alpha; }
    }
    lctx.putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(layer, 0, 0, canvas.width, canvas.height);
    const k = canvas.width / ed.width;  // screen pixels per image pixel
    if (ed.polygon.length) {
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ed.polygon.forEach((q, i) => (i ? ctx.lineTo(q.x * k, q.y * k) : ctx.moveTo(q.x * k, q.y * k)));
      if (ed.hover) ctx.lineTo(ed.hover.x * k, ed.hover.y * k);
      ctx.stroke();
      ctx.fillStyle = "#fff";
      ed.polygon.forEach((q) => ctx.fillRect(q.x * k - 3, q.y * k - 3, 6, 6));
    }
    if (ed.hover && ed.tool === "brush") {
      ctx.strokeStyle = ed.eraser ? "#fff" : `rgb(${VOC[ed.classIndex].join(",")})`;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.arc(ed.hover.x * k, ed.hover.y * k, Math.max(2, (ed.brush() / 2) * k), 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || !ed.item || ed.loading) return;
    e.preventDefault();
    const p = point(e);
    ed.cursor = index(p);
    if (ed.tool === "brush") {
      canvas.setPointerCapture(e.pointerId);
      remember();
      stroke = p;
      dab(p.x, p.y);
    } else if (ed.tool === "polygon") {
      const last = ed.polygon[ed.polygon.length - 1];
      if (!last || Math.hypot(last.x - p.x, last.y - p.y) * (canvas.width / ed.width) > 2) ed.polygon.push(p);
    } else if (ed.tool === "fill") {
      if (!data().regions) { toast("the superpixels are still loading", "warn"); return; }
      remember();
      fillRegion(ed.cursor, null);
    }
    changed();
  });

  canvas.addEventListener("pointermove", (e) => {
    if (!ed.item) return;
    const p = point(e);
    ed.hover = p;
    ed.cursor = index(p);
    if (stroke) { line(stroke, p); stroke = p; }
    render();
  });

  canvas.addEventListener("pointerup", () => { if (stroke) { stroke = null; changed(); } });
  canvas.addEventListener("pointerleave", () => { ed.hover = null; render(); });
  canvas.addEventListener("dblclick", (e) => { if (ed.tool === "polygon") { e.preventDefault(); ed.closePolygon(); } });
  return ed;
}
