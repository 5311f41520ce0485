// Labeling page: one image large (or a grid), keyboard first, talks only to the API.
"use strict";
(function () {
  const root = document.getElementById("label-app");
  const mode = root.dataset.mode;              // "label" or "review"
  const user = currentUser();
  const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];
  const state = { classes: [], retired: new Set(), allowNewClasses: true, pendingClass: null, similarFor: null, similarRetry: null,
                  items: [], cursor: 0, grid: false, fetching: null, labeled: 0, queueLength: null,
                  hint: localStorage.getItem("activelab.hint") !== "off", busy: false,
                  // multi-label projects: an answer is a set; the classes turned on for the image on screen
                  multi: false, chosen: new Set(), chosenFor: null,
                  // detection projects (the model outputs boxes): the box editor and the image it holds
                  boxes: false, editor: null, boxesFor: null,
                  // segmentation projects (the model outputs masks): the mask editor and the image it holds
                  masks: false, maskEditor: null, maskFor: null };
  const $ = (id) => document.getElementById(id);

  function current() { return state.items[state.cursor] || null; }

  // a set of classes as text: "bag, shirt", or "none of these" for the empty set
  function setText(names) { return names.length ? names.join(", ") : "none of these"; }
  // an answer, a prediction or a suggestion as text: its class, its set of classes, how many boxes, or its mask
  function answerText(x) {
    return x.mask ? maskText(x.mask) : x.boxes ? boxesText(x.boxes) : x.labels ? setText(x.labels) : x.label;
  }
  // a payload as a labeler gave it (review banners): a class, a set, boxes or a mask
  function payloadText(l) {
    return state.boxes ? boxesText(l) : Array.isArray(l) ? setText(l) : l && l.mask ? maskText(l) : l;
  }

  // retired classes leave the keys; the server lists only active ones, the filter keeps an old answer honest
  function setClasses(names) {
    state.classes = names.filter((n) => !state.retired.has(n));
    if (state.editor) state.editor.setClasses(state.classes);
    if (state.maskEditor) state.maskEditor.setClasses(state.classes);
    renderClasses();
  }

  // the key of the class at position i: 1..9 then 0; in a segmentation project the position itself (0 = background)
  function classKey(i) { return state.masks ? (i <= 9 ? String(i) : null) : i < KEYS.length ? KEYS[i] : null; }

  function renderClasses() {
    $("classes").replaceChildren(...state.classes.map((name, i) => {
      const key = classKey(i);
      const b = node("button", { type: "button", class: "class", "data-label": name },
        key ? node("kbd", {}, key) : null, key ? " " : null, name);
      b.addEventListener("click", () => (state.masks ? state.maskEditor.setClass(i) : state.boxes ? state.editor.setClass(name)
        : state.multi ? toggle(name) : label(name)));
      return b;
    }));
  }

  // multi-label: a number key or a click turns a class on or off; nothing is sent until Enter
  function toggle(name) {
    const item = current();
    if (!item) return;
    syncChosen(item);
    if (state.chosen.has(name)) state.chosen.delete(name); else state.chosen.add(name);
    render();
  }

  // the set belongs to the image on screen: another image starts with nothing on
  function syncChosen(item) {
    const id = item ? item.image_id : null;
    if (state.chosenFor !== id) { state.chosen = new Set(); state.chosenFor = id; }
  }

  function setProject(p) {
    state.retired = new Set(p.retired_classes || []);
    state.allowNewClasses = p.allow_new_classes !== false;
    $("class-add").hidden = !state.allowNewClasses;
    $("key-new-class").hidden = !state.allowNewClasses;
    state.multi = p.answer === "classes";
    state.boxes = p.output === "boxes";
    state.masks = p.answer === "mask";
    if (state.boxes && !state.editor) state.editor = BoxEditor($("boxes"), $("image"), render);
    if (state.masks && !state.maskEditor) state.maskEditor = MaskEditor($("mask-layer"), $("image"), render);
    $("single").classList.toggle("boxes", state.boxes);
    $("single").classList.toggle("masks", state.masks);
    $("boxes").toggleAttribute("hidden", !state.boxes);
    $("mask-layer").toggleAttribute("hidden", !state.masks);
    $("classes").classList.toggle("multi", state.multi || state.boxes || state.masks);
    $("set-actions").hidden = !state.multi;
    $("box-actions").hidden = !state.boxes;
    $("mask-actions").hidden = !state.masks;
    $("keys-single").hidden = state.multi || state.boxes || state.masks;
    $("keys-multi").hidden = !state.multi;
    $("keys-boxes").hidden = !state.boxes;
    $("keys-masks").hidden = !state.masks;
    setClasses(p.classes);
  }

  // The boxes being drawn on an image live on its item, so moving to another image and back keeps them:
  // at first its current boxes (review mode) and the model's proposals (item.proposals, not yet accepted).
  function draftFor(item) {
    if (!item.draft) {
      const history = item.history || [];
      const given = history.length ? history[history.length - 1].boxes || [] : [];
      const proposals = (item.proposals || []).filter((b) => state.classes.includes(b.class));
      item.draft = [
        ...given.map((b) => ({ class: b.class, x: b.x, y: b.y, w: b.w, h: b.h, origin: b.origin || "drawn" })),
        ...proposals.map((b) => ({ class: b.class, x: b.x, y: b.y, w: b.w, h: b.h, score: b.score, proposal: true })),
      ];
    }
    return item.draft;
  }

  function renderBoxes(item) {
    const ed = state.editor;
    ed.setShowProposals(state.hint);
    if (item && state.boxesFor !== item) {  // another image, or the same one served again (undo)
      state.boxesFor = item;
      ed.load(item, draftFor(item));
    }
    const b = ed.current();
    const open = item ? draftFor(item).filter((x) => x.proposal).length : 0;
    $("box-status").textContent = `${ed.count() ? boxesText(ed.payload()) : "no box yet"} · ${open} proposal${open === 1 ? "" : "s"} open` +
      (b ? ` · selected: ${b.class}${b.proposal ? " (proposal)" : ""}` : ` · new boxes: ${ed.drawClass || "—"}`);
    const current = b ? b.class : ed.drawClass;
    document.querySelectorAll("#classes .class").forEach((el) => {
      const on = el.dataset.label === current;
      el.classList.toggle("on", on);
      el.setAttribute("aria-pressed", String(on));
    });
  }

  // The mask being painted on an image lives on its item (masks.js), so moving to another image and back keeps
  // it: at first the image's current mask (item.mask: reviewing, or a region round asking again for an image
  // labeled in part, whose answer must keep what was labeled), else empty; the model's mask shows under it
  // while the hint is on.
  function renderMasks(item) {
    const ed = state.maskEditor;
    ed.setShowModel(state.hint);
    if (item && state.maskFor !== item) {  // another image, or the same one served again (undo)
      state.maskFor = item;
      ed.load(item, { current: item.mask ? localUrl(item.mask.url) : null, regionsUrl: `/api/images/${item.image_id}/regions` });
    }
    const asked = ed.askedCount();
    const tool = ed.tool === "brush" ? `brush ${ed.brush()} px` : ed.tool === "polygon" ? "polygon" : "fill superpixel";
    const paint = ed.eraser ? "eraser" : state.classes[ed.classIndex] || "—";
    $("mask-status").textContent = `${tool} · ${paint} · ${ed.labeledCount().toLocaleString("en-US")} px labeled` +
      (asked == null ? "" : ` · ${asked.toLocaleString("en-US")} px asked (only they take paint)`);
    document.querySelectorAll("#classes .class").forEach((el, i) => {
      const on = !ed.eraser && i === ed.classIndex;
      el.classList.toggle("on", on);
      el.setAttribute("aria-pressed", String(on));
    });
    ["brush", "polygon", "fill"].forEach((t) => $(`tool-${t}`).classList.toggle("on", ed.tool === t));
    $("tool-eraser").classList.toggle("on", ed.eraser);
  }

  // One source for the model's class: the server's item.suggestion (the label-error ranking's class for a
  // likely label error, else the latest prediction); the hint, the banner and the highlight all read it.
  function hintText(item) {
    if (!item) return "";
    const s = item.suggestion;
    if (!s) return "model: no prediction yet";
    const pct = s.confidence == null ? null : `${Math.round(100 * s.confidence)}%`;
    const from = s.source === "label_errors" ? "out-of-fold, label-error ranking" : `round ${s.round}`;
    // detection: the predicted boxes, and how many of them score enough to be offered as proposals
    const offered = state.boxes && s.boxes && s.boxes.length ? `, ${(item.proposals || []).length} offered` : "";
    const keys = s.mask ? " · a: accept it under the pointer, A: everywhere" : "";
    return `model: ${s.mask ? "mask" : answerText(s)}${offered} (${[pct, from].filter(Boolean).join(", ")})${keys}`;
  }

  // multi-label: the predicted classes shown with the hint (each highlighted), only active ones
  function suggestedSet(item) {
    const s = item && item.suggestion;
    return s && s.labels && state.hint ? s.labels.filter((n) => state.classes.includes(n)) : [];
  }

  // the class Enter accepts: shown with the hint, or named by a label-error banner; only an active class
  function suggestedClass(item) {
    const s = item && item.suggestion;
    const shown = state.hint || (item && item.origin === "label_error");
    return s && shown && state.classes.includes(s.label) ? s.label : null;
  }

  function rankText(item) {
    if (item.rank != null) return `queue #${item.rank + 1}` + (state.queueLength != null ? ` of ${state.queueLength}` : "");
    return item.origin === "queue" ? "no longer in the queue" : item.origin;
  }

  function render() {
    const item = current();
    const named = !!user();
    $("need-user").hidden = named;
    $("user").classList.toggle("needed", !named);
    $("empty").hidden = !!item || !named;
    $("single").hidden = state.grid || !item;
    $("grid").hidden = !state.grid || !item;
    const hint = $("hint");
    hint.hidden = !state.hint;
    hint.textContent = hintText(item);
    $("toggle-hint").classList.toggle("on", state.hint);
    $("toggle-grid").classList.toggle("on", state.grid);
    if (item) {
      const img = $("image");
      const src = localUrl(item.url);
      if (src) img.src = src; else img.removeAttribute("src");
      img.dataset.imageId = item.image_id;
      $("image-meta").textContent = `image ${item.image_id} · ${rankText(item)}`;
    }
    syncChosen(item);
    const picks = state.boxes || state.masks ? [] : state.multi ? suggestedSet(item) : [suggestedClass(item)];
    document.querySelectorAll("#classes .class").forEach((b) => {
      b.classList.toggle("suggested", picks.includes(b.dataset.label));
      const on = state.multi && state.chosen.has(b.dataset.label);
      b.classList.toggle("on", on);
      if (state.multi) b.setAttribute("aria-pressed", String(on));
    });
    if (state.boxes) renderBoxes(item);
    if (state.masks) renderMasks(item);
    $("chosen").textContent = state.chosen.size ? `on: ${[...state.chosen].sort().join(", ")}` : "no class on";
    // leases are advisory: labeling an image someone else holds is allowed, but say so
    $("held-by").hidden = !(item && item.held_by);
    $("held-by").textContent = item && item.held_by ? `also open for ${item.held_by}` : "";
    $("progress").textContent = `${state.labeled} labeled in this session · ${state.items.length} ready`;
    renderGrid();
    renderReview(item);
    state.items.slice(state.cursor + 1, state.cursor + 4).forEach((it) => {
      const src = localUrl(it.url);
      if (src) new Image().src = src;
    });
  }

  // one image button of the grid or the similar-images panel; in a detection project its boxes lie over it:
  // the answer it carries (similar images), else the model's proposals while the hint is on (dashed)
  function cell(it, caption, selected) {
    const src = localUrl(it.url);
    const thumb = node("span", { class: "thumb" }, node("img", { src, alt: `image ${it.image_id}` }));
    if (state.boxes && (it.boxes || (state.hint && it.proposals))) {
      thumb.appendChild(boxThumbnail(it.width, it.height, it.boxes || it.proposals, state.classes, !it.boxes));
    }
    return node("button", { type: "button", class: "cell" + (selected ? " selected" : ""), "data-image-id": it.image_id },
      thumb, caption ? node("span", { class: "cell-hint" }, caption) : null);
  }

  function renderGrid() {
    const grid = $("grid");
    if (!state.grid) { grid.replaceChildren(); return; }
    grid.replaceChildren(...state.items.slice(0, 24).map((it, i) => {
      const c = cell(it, state.hint && it.suggestion ? answerText(it.suggestion) : null, i === state.cursor);
      c.addEventListener("click", () => { state.cursor = i; render(); });
      return c;
    }));
  }

  function renderReview(item) {
    const banner = $("review-banner"), list = $("history");
    // review mode, or a likely label error the server mixed into the label queue (serve --mix-review)
    if (!item || (mode !== "review" && item.origin !== "label_error")) { banner.hidden = true; list.hidden = true; return; }
    banner.hidden = false;
    const details = (item.flag && item.flag.details) || {};
    const labels = details.labels;
    const drawn = state.boxes ? "boxes" : state.masks ? "mask" : null;  // answers corrected in place
    if (item.flag && item.flag.reason === "label_error" && drawn) {
      banner.textContent = `Possible label error (label quality ${Number(details.score).toFixed(3)}): ` +
        `${details.note || `the model disagrees with this ${drawn === "boxes" ? "set of boxes" : "mask"}`}. Correct the ${drawn} and press Enter.`;
    } else if (item.flag && item.flag.reason === "label_error") {
      banner.textContent = `Possible label error: labeled ${details.given}, the model suggests ${answerText(item.suggestion)} ` +
        `(label quality ${Number(details.score).toFixed(3)}). Keep it, correct it, or mark not sure.`;
    } else {
      banner.textContent = labels
        ? "Labelers disagree: " + Object.entries(labels).map(([who, l]) => `${who} said ${payloadText(l)}`).join("; ") +
          (drawn ? `. Correct the ${drawn} and press Enter.` : state.multi ? ". Turn on the right classes and press Enter." : ". Pick the right class.")
        : drawn ? `Flagged for review. Correct the ${drawn} and press Enter.` : "Flagged for review. Pick the right class.";
    }
    list.hidden = false;
    list.replaceChildren(...(item.history || []).map((e) => node("li", {},
      `${e.created_at.slice(0, 19).replace("T", " ")} · `, node("b", {}, e.label != null || e.labels || e.boxes || e.mask ? answerText(e) : "—"),
      ` by ${e.author} (${e.source})`, e.note ? ` · ${e.note}` : null)));
  }

  // a label is recorded under the labeler's name: without one, say so and put the cursor in the name field
  function askForName() {
    render();
    $("user").focus();
  }

  async function fill() {
    if (!user()) { askForName(); return; }
    if (state.fetching) return state.fetching;
    const want = (state.grid ? 24 : 6) - (state.items.length - state.cursor);
    if (want <= 0) return;
    state.fetching = (async () => {
      try {
        const res = await api.post("/api/next", { author: user(), n: Math.min(want, 50), mode,
          exclude: state.items.map((i) => i.image_id) });
        const have = new Set(state.items.map((i) => i.image_id));
        res.items.forEach((it) => { if (!have.has(it.image_id)) state.items.push(it); });
        // the images already held moved up the queue as labels arrived: show their rank now
        state.queueLength = res.queue_length;
        state.items.forEach((it) => { if (it.image_id in res.ranks) it.rank = res.ranks[it.image_id]; });
      } catch (e) { toast(e.message, "error"); }
      finally { state.fetching = null; }
    })();
    await state.fetching;
    $("empty").textContent = mode === "review" ? "Nothing to review." : "Nothing to label right now: the queue is empty. The trainer re-ranks the pool as labels arrive.";
    render();
  }

  function advance(removedIndex) {
    state.items.splice(removedIndex, 1);
    if (state.cursor >= state.items.length) state.cursor = Math.max(0, state.items.length - 1);
    $("note").value = "";
    render();
    fill();
  }

  // the image to act on; a key pressed right after the name was typed waits for the first images
  async function ready() {
    if (!current() && state.fetching) await state.fetching;
    return current();
  }

  async function send(body) {
    const item = await ready();
    if (!item || state.busy) return;
    state.busy = true;
    const index = state.cursor;
    try {
      const note = $("note").value.trim() || null;
      const res = await api.post("/api/labels", Object.assign({ author: user(), image_id: item.image_id, note, review: mode === "review" || item.origin === "label_error" }, body));
      state.labeled += 1;
      if (res.flagged) toast("another labeler chose differently: flagged for review", "warn");
      else if (res.held_out) toast(`${answerText(res)} (kept aside for evaluation)`);
      else toast(body.unsure ? "not sure" : answerText(res));
      advance(index);
    } catch (e) { toast(e.message, "error"); }
    finally { state.busy = false; }
  }

  function label(name) { return send({ label: name }); }

  // detection: Enter sends the boxes (unaccepted proposals are left out); an empty answer ("nothing here")
  // only through x or its button, and only once no box is drawn, so a stray key never throws boxes away
  async function submitBoxes() {
    const item = await ready();
    if (!item) return;
    if (!state.editor.count()) {
      toast("no box yet: drag on the image to draw one, accept a proposal (Tab, a), or press x for nothing here", "warn");
      return;
    }
    return send({ boxes: state.editor.payload() });
  }
  async function nothingHere() {
    const item = await ready();
    if (!item) return;
    const n = state.editor.count();
    if (n) {
      toast(`${boxesText(state.editor.payload())} drawn: delete ${n === 1 ? "it" : "them"} (Tab, Del) to record nothing here`, "warn");
      return;
    }
    return send({ boxes: [] });
  }
  // segmentation: Enter closes an open polygon, else sends the mask (pixels nobody painted stay unlabeled, 255);
  // a mask that labels nothing is refused here, as the server would
  async function submitMask() {
    const item = await ready();
    const ed = state.maskEditor;
    if (!item || ed.item !== item) return;
    if (ed.polygonOpen()) { ed.closePolygon(); return; }
    if (ed.loading) { toast("this image's masks are still loading", "warn"); return; }
    if (!ed.labeledCount()) {
      toast("nothing painted yet: paint with the brush, fill a superpixel (f), or accept the model's mask (A)", "warn");
      return;
    }
    return send({ mask: { png: await ed.png() } });
  }
  function acceptModel(where) {
    const ed = state.maskEditor;
    if (ed.acceptModel(where)) return;
    toast(!ed.hasModel() ? "no model mask for this image yet"
      : "point at the image: a accepts the model's mask in the superpixel under the pointer", "warn");
  }
  // u and Ctrl+Z: in a segmentation project the last edit of the mask on screen first, then the last label sent
  function undoAny() {
    if (state.masks && !state.grid && state.maskEditor.undo()) return;
    return undo();
  }

  function acceptProposal() {
    if (!state.editor.accept()) toast("select a proposal first (Tab, or click its dashed box)", "warn");
  }
  function unsure() { return send({ unsure: true }); }

  // multi-label: Enter sends the classes that are on; an empty set ("none of these") only through x or its
  // button, so an Enter pressed before any class was turned on never records a wrong "none"
  async function submitSet() {
    const item = await ready();
    if (!item) return;
    syncChosen(item);
    if (!state.chosen.size) {
      toast("no class is on: turn classes on with the number keys, or press x for none of these", "warn");
      return;
    }
    return send({ labels: [...state.chosen].sort() });
  }
  function noneOfThese() { return send({ labels: [] }); }

  async function acceptSuggestion() {
    const item = await ready();
    if (!item) return;
    const pick = suggestedClass(item);
    if (pick) return label(pick);
    toast(item.suggestion && !state.hint ? "Enter accepts the model's class: show it first (h)"
      : "no model suggestion for this image yet", "warn");
  }

  async function skip() {
    const item = await ready();
    if (!item || state.busy) return;
    try {
      await api.post("/api/skip", { author: user(), image_id: item.image_id });
      toast("skipped");
      advance(state.cursor);
    } catch (e) { toast(e.message, "error"); }
  }

  async function undo() {
    if (state.busy) return;
    state.busy = true;
    try {
      const res = await api.post("/api/undo", { author: user() });
      state.items = state.items.filter((i) => i.image_id !== res.item.image_id);
      state.items.splice(state.cursor, 0, res.item);
      state.labeled = Math.max(0, state.labeled - 1);
      toast(`undone: image ${res.item.image_id}`);
      render();
    } catch (e) { toast(e.status === 404 ? "nothing to undo" : e.message, "error"); }
    finally { state.busy = false; }
  }

  // a new class is for everyone and cannot be deleted (only retired): ask before adding it
  function askAddClass() {
    const name = $("new-class").value.trim();
    if (!name || !state.allowNewClasses) return;
    state.pendingClass = name;
    $("class-confirm-text").textContent = `Add the class “${name}” for everyone on this project?`;
    $("class-confirm").hidden = false;
    $("class-confirm-yes").focus();
  }

  function cancelAddClass() {
    state.pendingClass = null;
    $("class-confirm").hidden = true;
    $("new-class").focus();
  }

  async function confirmAddClass() {
    const name = state.pendingClass;
    if (name == null) return;
    state.pendingClass = null;
    $("class-confirm").hidden = true;
    try {
      const res = await api.post("/api/classes", { name });
      state.retired.delete(name);
      setClasses(res.classes);
      $("new-class").value = "";
      toast(`class added: ${name}`);
    } catch (e) { toast(e.message, "error"); }
  }

  // similar images: look-alikes of the image on screen (GET /api/images/{id}/similar), to label together
  // The index is built in the background after import or embedding: while it is, say so and ask again.
  const SIMILAR_RETRY_MS = 2000;

  function showSimilar() {
    const item = current();
    if (!item) return;
    clearTimeout(state.similarRetry);
    state.similarFor = item.image_id;
    $("similar-title").textContent = `finding images like ${item.image_id}…`;
    $("similar-grid").replaceChildren();
    $("similar").hidden = false;
    loadSimilar(item.image_id);
  }

  async function loadSimilar(imageId) {
    try {
      const res = await api.get(`/api/images/${imageId}/similar?k=12`);
      if (state.similarFor !== imageId) return;  // closed, or opened on another image since
      if (res.index && res.index.status === "building") {
        $("similar-title").textContent = "Building the similarity index…";
        state.similarRetry = setTimeout(() => { if (state.similarFor === imageId) loadSimilar(imageId); }, SIMILAR_RETRY_MS);
        return;
      }
      state.similar = res.items;
      $("similar-title").textContent = `${res.items.length} images like ${imageId} (click one to label it)`;
      $("similar-grid").replaceChildren(...res.items.map((it) => {
        const given = it.mask || it.boxes || it.labels || it.label ? " · " + answerText(it) : "";
        const c = cell(it, `${(100 * it.similarity).toFixed(0)}%${given}`, false);
        c.addEventListener("click", () => labelSimilar([it]));
        return c;
      }));
    } catch (e) {
      if (state.similarFor === imageId) closeSimilar();
      toast(e.message, "error");
    }
  }

  function closeSimilar() {
    state.similarFor = null;
    clearTimeout(state.similarRetry);
    $("similar").hidden = true;
  }

  function labelSimilar(list) {
    const have = new Set(state.items.map((i) => i.image_id));
    const add = list.filter((it) => !have.has(it.image_id));
    state.items.splice(state.cursor, 0, ...add);
    if (add.length === 0 && list.length === 1) state.cursor = state.items.findIndex((i) => i.image_id === list[0].image_id);
    render();
  }

  function toggleHint() { state.hint = !state.hint; localStorage.setItem("activelab.hint", state.hint ? "on" : "off"); render(); }

  // detection: the keys that act on boxes; arrows move the selected box, else they move between images
  function boxKeyAction(e) {
    const ed = state.editor;
    const step = e.shiftKey ? 10 : 1;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (arrows[e.key] && ed.current()) return () => ed.nudge(...arrows[e.key]);
    const idx = KEYS.indexOf(e.key);
    if (idx >= 0 && idx < state.classes.length) return () => ed.setClass(state.classes[idx]);
    const actions = { Enter: submitBoxes, x: nothingHere, a: acceptProposal, Escape: () => ed.deselect(),
      Tab: () => ed.cycle(e.shiftKey ? -1 : 1), Delete: () => ed.remove(), Backspace: () => ed.remove() };
    return actions[e.key] || null;
  }
  // segmentation: the keys of the mask editor (number keys pick the class by its position: 0 is the background)
  function maskKeyAction(e) {
    const ed = state.maskEditor;
    if (/^[0-9]$/.test(e.key)) return Number(e.key) < state.classes.length ? () => ed.setClass(Number(e.key)) : null;
    const actions = { Enter: submitMask, Escape: () => ed.cancelPolygon(), b: () => ed.setTool("brush"),
      p: () => ed.setTool("polygon"), f: () => ed.setTool("fill"), e: () => ed.toggleEraser(),
      "+": () => ed.resize(1), "=": () => ed.resize(1), "]": () => ed.resize(1), "-": () => ed.resize(-1), "[": () => ed.resize(-1),
      a: () => acceptModel("region"), A: () => acceptModel("image") };
    return actions[e.key] || null;
  }
  function toggleGrid() { state.grid = !state.grid; render(); fill(); }

  // what a key does on this page; null leaves the key to the browser
  function keyAction(e) {
    if (e.ctrlKey || e.metaKey) return e.key === "z" ? undoAny : null;
    if (e.altKey) return null;
    const boxAction = state.boxes && !state.grid ? boxKeyAction(e) : null;
    if (boxAction) return boxAction;
    const maskAction = state.masks && !state.grid ? maskKeyAction(e) : null;
    if (maskAction) return maskAction;
    const idx = KEYS.indexOf(e.key);
    if (idx >= 0 && idx < state.classes.length) return () => (state.multi ? toggle : label)(state.classes[idx]);
    if (state.multi && e.key === "x") return noneOfThese;
    const actions = { s: skip, n: unsure, u: undoAny, h: toggleHint, g: toggleGrid, m: showSimilar,
      Enter: state.multi ? submitSet : acceptSuggestion,
      "/": () => $("note").focus(), c: () => { if (state.allowNewClasses) $("new-class").focus(); },
      ArrowRight: () => { state.cursor = Math.min(state.items.length - 1, state.cursor + 1); render(); fill(); },
      ArrowLeft: () => { state.cursor = Math.max(0, state.cursor - 1); render(); } };
    return actions[e.key] || null;
  }

  document.addEventListener("keydown", (e) => {
    const tag = (e.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea") {
      if (e.key === "Escape" || (e.key === "Enter" && e.target.id === "note")) { e.target.blur(); e.preventDefault(); }
      if (e.key === "Enter" && e.target.id === "new-class") { askAddClass(); e.preventDefault(); }
      return;
    }
    // Enter on a link, or on a button outside the labeling area (the trainer bar), does what it does there
    if (e.key === "Enter" && (tag === "a" || (tag === "button" && !root.contains(e.target)))) return;
    if (state.pendingClass != null) {  // the confirmation has the keys: Enter confirms (focused button), Esc cancels
      if (e.key === "Escape") { cancelAddClass(); e.preventDefault(); }
      return;
    }
    const fn = keyAction(e);
    if (!fn) return;
    e.preventDefault();  // also keeps Enter from clicking the page's button that has the focus
    if (!user()) { askForName(); toast("type your name first: every label is recorded under it", "warn"); return; }
    fn();
  });
  $("skip").addEventListener("click", skip);
  $("submit-set").addEventListener("click", submitSet);
  $("submit-boxes").addEventListener("click", submitBoxes);
  $("nothing-here").addEventListener("click", nothingHere);
  $("accept-proposal").addEventListener("click", acceptProposal);
  $("delete-box").addEventListener("click", () => state.editor.remove());
  $("none-of-these").addEventListener("click", noneOfThese);
  $("unsure").addEventListener("click", unsure);
  $("undo").addEventListener("click", undoAny);
  $("submit-mask").addEventListener("click", submitMask);
  ["brush", "polygon", "fill"].forEach((t) => $(`tool-${t}`).addEventListener("click", () => state.maskEditor.setTool(t)));
  $("tool-eraser").addEventListener("click", () => state.maskEditor.toggleEraser());
  $("brush-smaller").addEventListener("click", () => state.maskEditor.resize(-1));
  $("brush-larger").addEventListener("click", () => state.maskEditor.resize(1));
  $("accept-image").addEventListener("click", () => acceptModel("image"));
  $("toggle-hint").addEventListener("click", toggleHint);
  $("toggle-grid").addEventListener("click", toggleGrid);
  $("add-class").addEventListener("click", askAddClass);
  $("class-confirm-yes").addEventListener("click", confirmAddClass);
  $("class-confirm-no").addEventListener("click", cancelAddClass);
  $("show-similar").addEventListener("click", showSimilar);
  $("similar-close").addEventListener("click", closeSimilar);
  $("similar-queue").addEventListener("click", () => labelSimilar((state.similar || []).filter((it) => !it.label && !it.labels && !it.boxes && !it.mask)));
  // a new round re-ranked the queue: keep the image on screen, fetch the rest in the new order
  document.addEventListener("newround", () => {
    if (mode !== "label") return;
    const keep = current();
    state.items = keep ? [keep] : [];
    state.cursor = 0;
    fill();
  });
  document.addEventListener("userchange", () => { state.items = []; state.cursor = 0; fill(); });

  (async function start() {
    setupTrainerControls();
    const p = await refreshHeader();
    if (p) setProject(p);
    render();
    await fill();
    root.dataset.ready = "1";
  })();
})();
