// stylegan serve: the page. Plain JavaScript, no build step, nothing loaded from elsewhere.
//
// Every control change asks for a render. Each request carries this page's client id and an increasing seq; the
// server answers 409 to requests a newer one has superseded, and the page shows only answers newer than what it
// shows already. While an animation runs, the page sends the next frame when the previous one has come back.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_SEED = 4294967295;
const MAX_DIRECTION_SLIDERS = 8;

const state = {
  client: newClientId(),
  seq: 0,             // last request number sent
  shownSeq: -1,       // request number of the picture on screen
  fitPending: false,  // the next picture is a new network's first: fit small ones to the stage
  inflight: 0,
  info: null,         // POST /api/network answer for the chosen network
  limits: { max_size: 2048 },
  blob: null,         // the PNG on screen, for Download
  blobUrl: null,
  seedPos: 0,         // fractional seed while the seed animation runs
  animT: 0,           // seconds of transform animation
  animating: false,
  scheduled: false,
  commandFor: null,   // JSON of the parameters the command box speaks of
};

function newClientId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- talking to the server -----------------------------------------------------------------------------------

async function postJSON(path, body) {
  const res = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// --- the request the controls describe -----------------------------------------------------------------------

function intValue(id, fallback) {
  const v = Number.parseInt($(id).value, 10);
  return Number.isFinite(v) ? v : fallback;
}

function currentParams() {
  const info = state.info;
  const p = { network: $("network").value, seed: intValue("seed", 0), psi: Number($("psi").value) };
  if (state.animating && $("seed-animate").checked) {
    p.seed = Math.floor(state.seedPos);
    const frac = state.seedPos - p.seed;
    if (frac > 0 && p.seed < MAX_SEED) p.seed_frac = Math.round(frac * 1000) / 1000;
    if (p.seed_frac >= 1) delete p.seed_frac;
  }
  const cutoff = $("cutoff").value.trim();
  if (cutoff !== "") p.cutoff = intValue("cutoff", 0);
  if (info && info.c_dim > 0) p.class = intValue("class", 0);
  if (info && info.has_noise) p.noise_mode = $("noise-mode").value;
  if (info && info.stylegan3) {
    const tx = Number($("tx").value), ty = Number($("ty").value), rot = Number($("rotate").value);
    if (tx || ty) p.translate = [tx, ty];
    if (rot) p.rotate = rot;
  }
  if ($("mix-on").checked) {
    p.mix_seed = intValue("mix-seed", 0);
    p.mix_layers = [intValue("mix-first", 0), intValue("mix-last", 0)];
  }
  const dirs = $("directions").value;
  if (dirs) {
    const strengths = Array.from(document.querySelectorAll("#direction-sliders input"), (s) => Number(s.value));
    p.directions = dirs;
    p.strengths = strengths;
  }
  const view = $("view").value;
  if (view !== "output") {
    p.view = view;
    p.layer = $("layer").value;
    if (!$("channel-all").checked) p.channel = intValue("channel", 0);
  }
  const size = $("size").value;
  if (size) p.size = Number(size);
  return p;
}

// --- rendering ------------------------------------------------------------------------------------------------

function scheduleRender() {
  // Coalesce the changes of one frame into one request; an animation sends its own frames.
  if (state.animating || state.scheduled || !state.info) return;
  state.scheduled = true;
  requestAnimationFrame(() => { state.scheduled = false; render(); });
}

async function render() {
  const params = currentParams();
  const seq = ++state.seq;
  const body = Object.assign({}, params, { client: state.client, seq: seq });
  state.inflight++;
  document.body.dataset.state = "busy";
  const started = performance.now();
  let res;
  try {
    res = await fetch("/api/render", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (res.status === 409) return;                             // superseded: a newer request is on its way
    if (seq < state.shownSeq) return;                            // something newer is already on screen
    if (!res.ok) {
      const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
      showError(data.error || `HTTP ${res.status}`);
      return;
    }
    const blob = await res.blob();
    if (seq < state.shownSeq) return;
    await show(blob, params, seq, res.headers, performance.now() - started);
  } catch (err) {
    showError(`Cannot reach the server (${err.message}). Is stylegan serve still running, and the tunnel open?`);
  } finally {
    state.inflight--;
    document.body.dataset.state = state.inflight > 0 ? "busy" : "idle";
  }
}

async function show(blob, params, seq, headers, roundTripMs) {
  const img = $("view-image");
  const url = URL.createObjectURL(blob);
  img.src = url;
  try { await img.decode(); } catch (_) { /* shown anyway */ }
  if (seq < state.shownSeq) { URL.revokeObjectURL(url); return; }
  if (state.blobUrl) URL.revokeObjectURL(state.blobUrl);
  state.blob = blob;
  state.blobUrl = url;
  state.shownSeq = seq;
  img.dataset.seq = String(seq);
  img.dataset.params = JSON.stringify(params);
  if (state.commandFor !== img.dataset.params) $("command-box").hidden = true;    // it was for another picture
  if (state.fitPending) {
    // A network's first picture: small networks (32 px) open enlarged to fit; large ones stay at 100 %.
    state.fitPending = false;
    const stage = $("stage");
    if (img.naturalWidth * 2 <= stage.clientWidth && img.naturalHeight * 2 <= stage.clientHeight) zoomToFit();
    else applyZoom();
  } else {
    applyZoom();
  }
  showError("");
  const w = headers.get("X-Image-Width"), h = headers.get("X-Image-Height");
  const renderMs = Number(headers.get("X-Render-Ms"));
  const loadMs = Number(headers.get("X-Load-Ms"));
  let text = `render ${renderMs.toFixed(0)} ms · round trip ${roundTripMs.toFixed(0)} ms · ${w}×${h}`;
  if (loadMs > 0) text += ` · network loaded in ${loadMs.toFixed(0)} ms`;
  const layer = headers.get("X-Layer"), shape = headers.get("X-Layer-Shape");
  if (layer) text += ` · ${layer} [${shape.split(",").join(" × ")}]`;
  $("timing").textContent = text;
  $("download").disabled = false;
  $("copy-command").disabled = false;
}

// --- animation ------------------------------------------------------------------------------------------------

function updateAnimation() {
  const want = $("seed-animate").checked || ($("transform-animate").checked && state.info && state.info.stylegan3);
  if (want && !state.animating) {
    state.animating = true;
    state.seedPos = intValue("seed", 0);
    animationLoop();
  } else if (!want && state.animating) {
    state.animating = false;
  }
}

async function animationLoop() {
  let last = performance.now();
  while (state.animating) {
    const now = performance.now();
    const dt = Math.min((now - last) / 1000, 0.5);
    last = now;
    if ($("seed-animate").checked) {
      state.seedPos = Math.min(state.seedPos + dt * Number($("seed-speed").value), MAX_SEED);
      $("seed").value = String(Math.floor(state.seedPos));
    }
    if ($("transform-animate").checked && state.info && state.info.stylegan3) {
      state.animT += dt;
      const mode = $("transform-mode").value;
      if (mode === "circle" || mode === "both") {
        const angle = state.animT * 2 * Math.PI / 8;                 // one circle in 8 s
        setSlider("tx", 0.2 * Math.cos(angle));
        setSlider("ty", 0.2 * Math.sin(angle));
      }
      if (mode === "rotate" || mode === "both") {
        setSlider("rotate", ((state.animT * 20 + 180) % 360) - 180); // 20 degrees a second
      }
    }
    await render();
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  // Stopped: settle on a whole seed, then show it.
  state.seedPos = intValue("seed", 0);
  scheduleRender();
}

function setSlider(id, value) {
  const input = $(id);
  input.value = String(Math.round(value / Number(input.step)) * Number(input.step));
  showValue(id);
}

// --- the controls ---------------------------------------------------------------------------------------------

const FORMATS = {
  psi: (v) => Number(v).toFixed(2),
  tx: (v) => Number(v).toFixed(2),
  ty: (v) => Number(v).toFixed(2),
  rotate: (v) => `${Number(v).toFixed(0)}°`,
  zoom: (v) => `${v}%`,
  "seed-speed": (v) => Number(v).toFixed(1),
};

function showValue(id) {
  const out = $(`${id}-value`);
  if (out) out.textContent = FORMATS[id]($(id).value);
}

function stepSeed(direction) {
  const step = Math.max(1, intValue("seed-step", 1));
  const seed = Math.min(Math.max(intValue("seed", 0) + direction * step, 0), MAX_SEED);
  $("seed").value = String(seed);
  state.seedPos = seed;
  scheduleRender();
}

function applyZoom() {
  const img = $("view-image");
  if (!img.naturalWidth) return;
  const zoom = Number($("zoom").value) / 100;
  img.style.width = `${img.naturalWidth * zoom}px`;
  img.style.height = `${img.naturalHeight * zoom}px`;
}

function zoomToFit() {
  const img = $("view-image"), stage = $("stage");
  if (!img.naturalWidth) return;
  const fit = Math.min((stage.clientWidth - 32) / img.naturalWidth, (stage.clientHeight - 32) / img.naturalHeight);
  const zoom = $("zoom");
  zoom.value = String(Math.max(Number(zoom.min), Math.min(Number(zoom.max), Math.floor(fit * 4) * 25)));
  showValue("zoom");
  applyZoom();
}

function fillSizes() {
  const select = $("size");
  for (const px of [64, 128, 256, 512, 1024, 2048]) {
    if (px > state.limits.max_size) break;
    select.add(new Option(`${px} px`, String(px)));
  }
}

function updateViewControls() {
  const view = $("view").value;
  $("layer-row").hidden = view === "output";
  $("channel-row").hidden = view === "output";
  $("channel").disabled = $("channel-all").checked;
  const layer = layerInfo();
  const shapeLine = $("layer-shape");
  shapeLine.hidden = view === "output" || !layer;
  if (layer) {
    const [c, h, w] = layer.shape;
    shapeLine.textContent = `${layer.name}: ${c} channels × ${h} × ${w}`;
    $("channel").max = String(c - 1);
    if (intValue("channel", 0) > c - 1) $("channel").value = String(c - 1);
  }
}

function layerInfo() {
  if (!state.info) return null;
  return state.info.layers.find((l) => l.name === $("layer").value) || null;
}

function buildDirectionSliders() {
  const box = $("direction-sliders");
  box.textContent = "";
  const name = $("directions").value;
  const file = state.info && state.info.directions.find((d) => d.name === name);
  if (!file) return;
  const count = Math.min(file.components, MAX_DIRECTION_SLIDERS, state.limits.max_strengths || 32);
  for (let i = 0; i < count; i++) {
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    label.className = "slider-label";
    const explained = file.explained[i] ? ` ${(file.explained[i] * 100).toFixed(1)}%` : "";
    const [first, last] = file.layers[i];
    label.textContent = `#${i}${explained}`;
    label.title = `component ${i}, layers ${first}–${last}`;
    const input = document.createElement("input");
    input.type = "range"; input.min = "-5"; input.max = "5"; input.step = "0.1"; input.value = "0";
    input.setAttribute("aria-label", `direction ${i} strength`);
    const out = document.createElement("output");
    out.textContent = "0.0σ";
    input.addEventListener("input", () => { out.textContent = `${Number(input.value).toFixed(1)}σ`; scheduleRender(); });
    row.append(label, input, out);
    box.append(row);
  }
}

async function chooseNetwork() {
  const name = $("network").value;
  if (!name) return;
  $("network-info").textContent = `Loading ${name}…`;
  document.body.dataset.state = "busy";
  let info;
  try {
    info = await postJSON("/api/network", { network: name });
  } catch (err) {
    $("network-info").textContent = "";
    showError(err.message);
    document.body.dataset.state = "idle";
    return;
  }
  state.info = info;
  state.fitPending = true;
  const kind = info.stylegan3 ? info.cfg || "stylegan3" : info.cfg || "stylegan2";
  $("network-info").textContent =
    `${kind}, ${info.resolution}×${info.resolution}, ${info.num_ws} ws` +
    (info.c_dim ? `, ${info.c_dim} classes` : "") + ` · ${info.device}`;

  $("class-row").hidden = info.c_dim === 0;
  $("class").max = String(Math.max(info.c_dim - 1, 0));
  $("noise-mode").disabled = !info.has_noise;
  for (const id of ["tx", "ty", "rotate", "transform-animate", "transform-mode", "transform-reset"]) {
    $(id).disabled = !info.stylegan3;
  }
  $("transform-note").hidden = info.stylegan3;
  $("cutoff").max = String(info.num_ws);
  for (const id of ["mix-first", "mix-last"]) $(id).max = String(info.num_ws - 1);
  if (intValue("mix-last", 0) > info.num_ws - 1) $("mix-last").value = String(info.num_ws - 1);

  const layer = $("layer");
  const previous = layer.value;
  layer.textContent = "";
  for (const l of info.layers) layer.add(new Option(`${l.name}  [${l.shape.join("×")}]`, l.name));
  layer.value = info.layers.some((l) => l.name === previous) ? previous : "output";

  const dirs = $("directions");
  const chosen = dirs.value;
  dirs.length = 1;
  for (const d of info.directions) dirs.add(new Option(`${d.name} (${d.components})`, d.name));
  dirs.value = info.directions.some((d) => d.name === chosen) ? chosen : "";
  $("directions-note").hidden = info.directions.length > 0;
  buildDirectionSliders();
  updateViewControls();
  updateAnimation();
  document.body.dataset.state = "idle";
  scheduleRender();
}

// --- command line, export, download -----------------------------------------------------------------------------

// Copy command and Export both answer with a command line (Export also writes files); show it and copy it.
async function showCommand(path) {
  const params = currentParams();
  let data;
  try {
    data = await postJSON(path, params);
  } catch (err) { showError(err.message); return; }
  state.commandFor = JSON.stringify(params);
  $("command-box").hidden = false;
  $("command").textContent = data.command || "(no single stylegan generate line for this picture)";
  const notes = [];
  if (data.command && await copyText(data.command)) notes.push("Copied.");
  if (data.png) notes.push(`Wrote ${data.png}, ${data.latents} and ${data.params}.`);
  if (data.note) notes.push(data.note);
  $("command-note").textContent = notes.join(" ");
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    // No clipboard API (not a secure context) or no permission: select the text so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents($("command"));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    return false;
  }
}

function download() {
  if (!state.blob) return;
  const p = JSON.parse($("view-image").dataset.params || "{}");
  const view = p.view && p.view !== "output" ? `-${p.view}-${(p.layer || "").replace(/[^A-Za-z0-9_-]/g, "_")}` : "";
  const a = document.createElement("a");
  a.href = state.blobUrl;
  a.download = `seed${String(p.seed || 0).padStart(4, "0")}${view}.png`;
  document.body.append(a);
  a.click();
  a.remove();
}

// --- start ----------------------------------------------------------------------------------------------------

function wire() {
  const rerender = ["psi", "cutoff", "class", "noise-mode", "tx", "ty", "rotate", "mix-on", "mix-seed", "mix-first",
                    "mix-last", "layer", "channel", "size"];
  for (const id of rerender) {
    $(id).addEventListener("input", () => { if (FORMATS[id]) showValue(id); updateViewControls(); scheduleRender(); });
  }
  $("seed").addEventListener("input", () => { state.seedPos = intValue("seed", 0); scheduleRender(); });
  $("seed-prev").addEventListener("click", () => stepSeed(-1));
  $("seed-next").addEventListener("click", () => stepSeed(+1));
  $("seed-speed").addEventListener("input", () => showValue("seed-speed"));
  $("seed-animate").addEventListener("change", updateAnimation);
  $("transform-animate").addEventListener("change", updateAnimation);
  $("transform-reset").addEventListener("click", () => {
    for (const id of ["tx", "ty", "rotate"]) setSlider(id, 0);
    state.animT = 0;
    scheduleRender();
  });
  $("view").addEventListener("change", () => { updateViewControls(); scheduleRender(); });
  $("channel-all").addEventListener("change", () => { updateViewControls(); scheduleRender(); });
  $("directions").addEventListener("change", () => { buildDirectionSliders(); scheduleRender(); });
  $("directions-reset").addEventListener("click", () => {
    for (const s of document.querySelectorAll("#direction-sliders input")) s.value = "0";
    buildDirectionSliders();
    scheduleRender();
  });
  $("zoom").addEventListener("input", () => { showValue("zoom"); applyZoom(); });
  $("zoom-fit").addEventListener("click", zoomToFit);
  $("network").addEventListener("change", chooseNetwork);
  $("download").addEventListener("click", download);
  $("copy-command").addEventListener("click", () => showCommand("/api/command"));
  $("export").addEventListener("click", () => showCommand("/api/export"));
}

async function start() {
  wire();
  let data;
  try {
    const res = await fetch("/api/networks");
    data = await res.json();
    if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  } catch (err) {
    showError(`Cannot list networks: ${err.message}`);
    return;
  }
  state.limits = data.limits;
  fillSizes();
  $("device").textContent = data.device;
  $("export").hidden = !data.export;
  const select = $("network");
  for (const n of data.networks) select.add(new Option(n.name, n.name));
  if (!data.networks.length) {
    $("network-info").textContent = "No networks: start stylegan serve with --network PATH or --models-dir DIR.";
    document.body.dataset.state = "idle";
    return;
  }
  await chooseNetwork();
}

start();
