// Boxes over an image (detection projects: the task's model outputs "boxes"). The overlay is an SVG whose
// viewBox is the image in pixels, so every coordinate here and every coordinate sent is an image pixel,
// whatever the scale the image is shown at. Nodes are built with createElementNS and textContent only.
"use strict";
const SVG_NS = "http://www.w3.org/2000/svg";
// the longest side, in screen pixels, the labeling page shows an image at
const BOX_VIEW_MAX = 512;
// a drag shorter than this (screen pixels) on either axis is a click, not a new box
const MIN_DRAG_PX = 3;
const CORNERS = ["nw", "ne", "sw", "se"];

function svgNode(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  Object.entries(attrs || {}).forEach(([k, v]) => { if (v != null) el.setAttribute(k, String(v)); });
  if (text != null) el.textContent = text;
  return el;
}

// the colour slot (CSS class c0..c9) of a class: its position in the project's class list
function classSlot(classes, name) {
  const i = classes.indexOf(name);
  return `c${(i < 0 ? 0 : i) % 10}`;
}

// boxes as text: "3 boxes", "1 box", or "nothing here" for the empty list
function boxesText(boxes) {
  return boxes.length ? `${boxes.length} box${boxes.length === 1 ? "" : "es"}` : "nothing here";
}

// A thumbnail overlay: the boxes of an image of width x height, stretched with the <img> it lies on.
function boxThumbnail(width, height, boxes, classes, dashed) {
  const svg = svgNode("svg", { class: "thumb-boxes", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
    "aria-hidden": "true" });
  boxes.forEach((b) => svg.appendChild(svgNode("rect", { x: b.x, y: b.y, width: b.w, height: b.h,
    class: `box ${classSlot(classes, b.class)}${dashed ? " proposal" : ""}` })));
  return svg;
}

// The box editor of the labeling page. A box is {class, x, y, w, h, origin} (origin: drawn, proposal, edited);
// a model proposal not accepted yet is {class, x, y, w, h, score, proposal: true} and is never submitted.
// Accepting a proposal (accept()) records origin "proposal"; moving, resizing or re-classing one (accepted or
// not) makes it "edited"; a drawn box stays "drawn".
function BoxEditor(svg, img, onChange) {
  const ed = { boxes: [], selected: -1, width: 0, height: 0, classes: [], drawClass: null, showProposals: true };
  let drag = null;

  const visible = (b) => !b.proposal || ed.showProposals;
  const round2 = (v) => Math.round(v * 100) / 100;
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  // the image shown at most BOX_VIEW_MAX px on its longest side; the overlay takes the image's box exactly
  function fit() {
    const scale = Math.min(BOX_VIEW_MAX / ed.width, BOX_VIEW_MAX / ed.height);
    img.style.width = `${Math.round(ed.width * scale)}px`;
    img.style.height = `${Math.round(ed.height * scale)}px`;
    svg.setAttribute("viewBox", `0 0 ${ed.width} ${ed.height}`);
  }

  // image pixels per screen pixel (for handles and text that keep their screen size)
  function unit() {
    const r = svg.getBoundingClientRect();
    return r.width ? ed.width / r.width : 1;
  }

  function point(e) {
    const r = svg.getBoundingClientRect();
    return { x: clamp(((e.clientX - r.left) / r.width) * ed.width, 0, ed.width),
             y: clamp(((e.clientY - r.top) / r.height) * ed.height, 0, ed.height) };
  }

  // a proposal the person changes is theirs now, "edited"; so is an accepted proposal they change
  function touch(b) {
    if (b.proposal) { delete b.proposal; delete b.score; b.origin = "edited"; }
    else if (b.origin === "proposal") b.origin = "edited";
  }

  function changed() { render(); onChange(); }

  // load(item, draft): the image's size, its proposals (item.proposals) and any boxes already on it (draft)
  ed.load = function (item, draft) {
    ed.width = item.width;
    ed.height = item.height;
    ed.boxes = draft || [];
    ed.selected = -1;
    drag = null;
    fit();
    render();
  };

  ed.setClasses = function (classes) {
    ed.classes = classes;
    if (!classes.includes(ed.drawClass)) ed.drawClass = classes[0] || null;
  };

  ed.current = () => (ed.selected >= 0 ? ed.boxes[ed.selected] : null);

  // a number key or the class list: the selected box's class, and the class of the boxes drawn next
  ed.setClass = function (name) {
    ed.drawClass = name;
    const b = ed.current();
    if (b && b.class !== name) { touch(b); b.class = name; }
    changed();
  };

  ed.nudge = function (dx, dy) {
    const b = ed.current();
    if (!b) return false;
    touch(b);
    b.x = clamp(b.x + dx, 0, ed.width - b.w);
    b.y = clamp(b.y + dy, 0, ed.height - b.h);
    changed();
    return true;
  };

  // Delete: a box is removed, a proposal dismissed
  ed.remove = function () {
    if (ed.selected < 0) return false;
    ed.boxes.splice(ed.selected, 1);
    ed.selected = -1;
    changed();
    return true;
  };

  // Tab: the next visible box or proposal (Shift+Tab: the previous one)
  ed.cycle = function (step) {
    const order = ed.boxes.map((b, i) => i).filter((i) => visible(ed.boxes[i]));
    if (!order.length) return false;
    const at = order.indexOf(ed.selected);
    ed.selected = order[at < 0 ? (step > 0 ? 0 : order.length - 1) : (at + step + order.length) % order.length];
    changed();
    return true;
  };

  ed.deselect = function () { ed.selected = -1; changed(); };

  // a: the selected proposal becomes a box of the answer, as the model drew it
  ed.accept = function () {
    const b = ed.current();
    if (!b || !b.proposal) return false;
    delete b.proposal;
    delete b.score;
    b.origin = "proposal";
    changed();
    return true;
  };

  ed.count = () => ed.boxes.filter((b) => !b.proposal).length;

  // the answer: the boxes (not the proposals left unaccepted), in image pixels to 2 decimals
  ed.payload = () => ed.boxes.filter((b) => !b.proposal).map((b) => ({ class: b.class, x: round2(b.x), y: round2(b.y),
    w: round2(b.w), h: round2(b.h), origin: b.origin }));

  ed.setShowProposals = function (on) {
    ed.showProposals = on;
    if (ed.current() && !visible(ed.current())) ed.selected = -1;
    render();
  };

  function render() {
    const k = unit();
    const nodes = [];
    ed.boxes.forEach((b, i) => {
      if (!visible(b)) return;
      const on = i === ed.selected;
      const g = svgNode("g", { class: `box ${classSlot(ed.classes, b.class)}${b.proposal ? " proposal" : ""}${on ? " selected" : ""}`,
        "data-index": i, "data-class": b.class, "data-origin": b.proposal ? "unaccepted" : b.origin });
      g.appendChild(svgNode("rect", { x: b.x, y: b.y, width: b.w, height: b.h, "data-index": i }));
      const name = b.proposal ? `${b.class} ${Math.round(100 * b.score)}%` : b.class;
      g.appendChild(svgNode("text", { x: b.x + 2 * k, y: Math.max(b.y - 3 * k, 11 * k), "font-size": 12 * k }, name));
      if (on) {
        const s = 8 * k;
        CORNERS.forEach((c) => g.appendChild(svgNode("rect", { class: "handle", "data-index": i, "data-corner": c,
          x: (c[1] === "w" ? b.x : b.x + b.w) - s / 2, y: (c[0] === "n" ? b.y : b.y + b.h) - s / 2, width: s, height: s })));
      }
      nodes.push(g);
    });
    if (drag && drag.mode === "draw") {
      const r = drag.rect;
      nodes.push(svgNode("rect", { class: "drawing", x: r.x, y: r.y, width: r.w, height: r.h }));
    }
    svg.replaceChildren(...nodes);
  }

  function spanOf(a, b) { return { x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y) }; }

  svg.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || !ed.width) return;
    e.preventDefault();
    svg.setPointerCapture(e.pointerId);
    const p = point(e);
    const index = e.target.dataset ? Number(e.target.dataset.index ?? -1) : -1;
    if (index >= 0) {
      ed.selected = index;
      const b = ed.boxes[index];
      const corner = e.target.dataset.corner;
      // a corner: the opposite corner stays where it is; the body: the box follows the pointer
      const fixed = corner ? { x: corner[1] === "w" ? b.x + b.w : b.x, y: corner[0] === "n" ? b.y + b.h : b.y } : null;
      drag = { mode: corner ? "resize" : "move", index, start: p, from: { x: b.x, y: b.y }, fixed, moved: false };
      changed();
    } else {
      drag = { mode: "draw", start: p, rect: { x: p.x, y: p.y, w: 0, h: 0 } };
    }
  });

  svg.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const p = point(e);
    if (drag.mode === "draw") { drag.rect = spanOf(drag.start, p); render(); return; }
    const b = ed.boxes[drag.index];
    if (!drag.moved && p.x === drag.start.x && p.y === drag.start.y) return;
    if (!drag.moved) { touch(b); drag.moved = true; }
    if (drag.mode === "move") {
      b.x = clamp(drag.from.x + p.x - drag.start.x, 0, ed.width - b.w);
      b.y = clamp(drag.from.y + p.y - drag.start.y, 0, ed.height - b.h);
    } else {
      const r = spanOf(drag.fixed, p);
      if (r.w > 0 && r.h > 0) Object.assign(b, r);
    }
    render();
  });

  svg.addEventListener("pointerup", () => {
    if (!drag) return;
    const done = drag;
    drag = null;
    if (done.mode === "draw") {
      const r = done.rect, k = unit();
      if (r.w >= MIN_DRAG_PX * k && r.h >= MIN_DRAG_PX * k && ed.drawClass) {
        ed.boxes.push({ class: ed.drawClass, ...r, origin: "drawn" });
        ed.selected = ed.boxes.length - 1;
      } else {
        ed.selected = -1;  // a click on the image outside every box
      }
    }
    changed();
  });

  img.addEventListener("load", render);  // handles and labels keep their screen size once the size is known
  window.addEventListener("resize", render);
  return ed;
}
