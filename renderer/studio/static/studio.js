// dreamvid studio: the page. Plain JS, no build step. Everything it does goes through /api (see app.py).
"use strict";

const TOKEN = document.querySelector('meta[name="studio-token"]').content;
const $ = (id) => document.getElementById(id);
const COLORS = ["#a78bfa", "#22d3ee", "#f472b6", "#fbbf24", "#34d399", "#fb923c", "#60a5fa", "#e879f9"];

const state = {
  schema: [], presets: [], files: [], formats: [],
  preset: "fractal-zoom", values: {}, errors: {},
  input: "noise", audio: null, frames: null, frame: 0, info: null,
  model: null, curves: null, jobs: [], previewSeq: 0, playing: null,
};

// ------------------------------------------------------------------------------------------ api

async function api(path, body, options = {}) {
  const init = { method: body === undefined ? "GET" : "POST", headers: { "X-Studio-Token": TOKEN }, ...options };
  if (body !== undefined && !(body instanceof Blob)) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  } else if (body instanceof Blob) {
    init.body = body;
  }
  const response = await fetch("/api" + path, init);
  return response;
}

async function json(path, body) {
  const response = await api(path, body);
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

function errorText(data) {
  if (!data) return "request failed";
  if (typeof data.error === "string") return data.error;
  if (data.detail && data.detail.errors) return Object.values(data.detail.errors).join("; ");
  if (typeof data.detail === "string") return data.detail;
  return JSON.stringify(data.detail || data);
}

function fileUrl(path) {
  return `/api/file?path=${encodeURIComponent(path)}&token=${encodeURIComponent(TOKEN)}&v=${Date.now()}`;
}

function settingsBody(extra = {}) {
  return { preset: state.preset, values: state.values, input: state.input, audio: state.audio,
           frames: state.frames, ...extra };
}

function notice(text, kind = "", actions = []) {
  const box = $("notice");
  box.className = "notice " + kind;
  box.replaceChildren(Object.assign(document.createElement("span"), { textContent: text }));
  for (const [label, fn] of actions) {
    const b = Object.assign(document.createElement("button"), { textContent: label });
    b.addEventListener("click", () => { box.hidden = true; fn(); });
    box.append(b);
  }
  box.hidden = false;
  if (!actions.length && kind !== "error") setTimeout(() => { if (box.firstChild && box.firstChild.textContent === text) box.hidden = true; }, 4000);
}

// ------------------------------------------------------------------------------------- controls

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function isSchedule(value) { return typeof value === "string"; }

function toValue(text) {
  const t = text.trim();
  if (t !== "" && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return Number(t);
  return text;
}

function setValue(key, value) {
  state.values[key] = value;
  changed();
}

function buildSettings() {
  const root = $("settings");
  root.replaceChildren();
  for (const group of state.schema) {
    const details = el("details", { className: "group", open: ["general", "dream", "motion"].includes(group.section) });
    details.append(el("summary", { textContent: group.section }));
    for (const control of group.fields) details.append(buildField(control));
    root.append(details);
  }
}

function buildField(control) {
  const key = control.key;
  const field = el("div", { className: "field" });
  field.dataset.key = key;
  const short = key.includes(".") ? key.split(".")[1] : key;
  field.append(el("div", { className: "label" }, el("span", { className: "key", textContent: short.replaceAll("_", " ") }),
                  el("span", { className: "muted small mono", textContent: key })));
  const value = state.values[key];
  if (control.kind === "schedule") field.append(numericControl(control, value));
  else if (control.kind === "objective") field.append(...objectiveControl(control, value));
  else if (control.kind === "choice") {
    const select = el("select", { "ariaLabel": key });
    for (const c of control.choices) select.append(el("option", { value: c, textContent: c }));
    select.value = value;
    select.addEventListener("change", () => { setValue(key, select.value); if (key === "model.name") loadModel(); });
    field.append(select);
  } else if (control.kind === "bool") {
    const box = el("input", { type: "checkbox", checked: !!value });
    box.addEventListener("change", () => setValue(key, box.checked));
    field.append(box);
  } else if (control.kind === "int" || control.kind === "float") {
    field.append(numericControl(control, value, false));
  } else {
    const input = el("input", { type: "text", value: value ?? "", placeholder: control.kind === "size" ? "WxH" : "" });
    input.addEventListener("change", () => setValue(key, input.value));
    field.append(input);
  }
  if (control.help) field.append(el("div", { className: "help", textContent: control.help }));
  field.append(el("div", { className: "error", hidden: true }));
  return field;
}

function numericControl(control, value, schedulable = true) {
  const key = control.key;
  const wrap = el("div", { className: "numeric" });
  const [lo, hi, step] = control.slider || [control.min ?? 0, control.max ?? 100, control.kind === "int" ? 1 : 0.01];
  const slider = el("input", { type: "range", min: lo, max: hi, step });
  const number = el("input", { type: "number", step: "any", "ariaLabel": key });
  const text = el("textarea", { className: "schedule", rows: 1, spellcheck: false, placeholder: '0:(1.0), 48:(1.04)', "ariaLabel": key + " schedule" });
  const toggle = el("button", { className: "toggle ghost", type: "button", title: "switch between a number and a schedule", textContent: "ƒ" });
  const show = (scheduled) => {
    wrap.className = "numeric" + (scheduled ? " scheduled" : "");
    slider.hidden = number.hidden = scheduled;
    text.hidden = !scheduled;
    toggle.classList.toggle("on", scheduled);
  };
  const sync = (v) => {
    if (isSchedule(v)) { text.value = v; show(true); }
    else { number.value = v; slider.value = v; text.value = String(v); show(false); }
  };
  const intOnly = control.kind === "int";
  slider.addEventListener("input", () => { number.value = slider.value; });
  slider.addEventListener("change", () => { number.value = slider.value; setValue(key, Number(slider.value)); });
  number.addEventListener("change", () => {
    if (number.value === "") return;
    let v = Number(number.value);
    if (intOnly) v = Math.round(v);
    slider.value = v; setValue(key, v);
  });
  let typing;
  text.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => setValue(key, toValue(text.value)), 350);
  });
  toggle.addEventListener("click", () => {
    if (text.hidden) { text.value = String(state.values[key]); show(true); text.focus(); }
    else {
      const v = toValue(text.value);
      if (typeof v === "number") { sync(v); setValue(key, v); }
      else { sync(state.values[key] = Number(slider.value)); changed(); }
    }
  });
  sync(value);
  wrap.append(slider, number);
  if (schedulable) wrap.append(text, toggle);
  else { toggle.hidden = true; wrap.append(el("span")); }
  return wrap;
}

function objectiveControl(control, value) {
  const key = control.key;
  const text = el("textarea", { className: "schedule", id: "objective", rows: 1, spellcheck: false, value: value ?? "" });
  text.setAttribute("aria-label", "objective");
  let typing;
  text.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => setValue(key, text.value), 400); });
  const layer = el("select", { id: "layer" });
  layer.setAttribute("aria-label", "layer");
  layer.append(el("option", { value: "", textContent: "layer…" }));
  const klass = el("input", { id: "class-pick", placeholder: "class…", type: "text" });
  klass.setAttribute("list", "class-names");
  klass.setAttribute("aria-label", "class");
  const classes = el("datalist", { id: "class-names" });
  layer.addEventListener("change", () => { if (layer.value) { text.value = layer.value; setValue(key, layer.value); } });
  klass.addEventListener("change", () => {
    const name = klass.value.trim();
    if (name) { text.value = `class:${name}`; setValue(key, text.value); }
  });
  return [text, el("div", { className: "objective-pick" }, layer, klass), classes];
}

function fillModel() {
  const layer = $("layer");
  if (!layer || !state.model) return;
  layer.replaceChildren(el("option", { value: "", textContent: "layer…" }),
    ...state.model.layers.map((n) => el("option", { value: n, textContent: n })));
  const current = state.values["dream.objective"];
  if (state.model.layers.includes(current)) layer.value = current;
  $("class-names").replaceChildren(...state.model.classes.slice(1).map((n) => el("option", { value: n.split(",")[0] })));
}

async function loadModel() {
  const name = state.values["model.name"] || "inception5h";
  const { ok, data } = await json(`/model?name=${encodeURIComponent(name)}`);
  if (ok) { state.model = data; fillModel(); }
}

function showErrors(errors) {
  state.errors = errors || {};
  for (const field of document.querySelectorAll(".field[data-key]")) {
    const message = state.errors[field.dataset.key];
    const box = field.querySelector(".error");
    field.classList.toggle("invalid", !!message);
    box.hidden = !message;
    box.textContent = message || "";
  }
  const general = state.errors[""];
  if (general) notice(general, "error");
}

// ---------------------------------------------------------------------------------- change loop

let debounce;
function changed(immediate = false) {
  clearTimeout(debounce);
  debounce = setTimeout(refresh, immediate ? 0 : 120);
}

async function refresh() {
  const { data } = await json("/check", settingsBody());
  showErrors(data.errors);
  if (data.command) $("command").textContent = data.command;
  if (data.errors && Object.keys(data.errors).length) {
    setBadge("fix the highlighted setting", true);
    return;
  }
  requestPreview();
  requestCurves();
}

function setBadge(text, error = false) {
  const badge = $("preview-status");
  badge.textContent = text;
  badge.classList.toggle("error", error);
}

async function requestPreview() {
  const seq = ++state.previewSeq;
  const started = performance.now();
  $("spinner").hidden = false;
  const response = await api("/preview", settingsBody({ frame: state.frame }));
  if (seq !== state.previewSeq) return;   // a newer preview is on its way: keep the last good one
  $("spinner").hidden = true;
  if (response.status === 409) return;
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    if (data.detail && data.detail.errors) showErrors({ ...state.errors, ...data.detail.errors });
    setBadge(errorText(data), true);
    return;
  }
  const blob = await response.blob();
  const img = $("preview");
  const old = img.src;
  img.src = URL.createObjectURL(blob);
  img.dataset.seq = String(seq);
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  setBadge(`preview · frame ${state.frame} · ${((performance.now() - started) / 1000).toFixed(2)} s`);
}

async function requestSourceFrame() {
  const response = await api("/source-frame", settingsBody({ frame: state.frame }));
  if (!response.ok) return;
  const thumb = $("source-thumb");
  const old = thumb.src;
  thumb.src = URL.createObjectURL(await response.blob());
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

async function requestCurves() {
  const { ok, data } = await json("/curves", settingsBody());
  if (!ok) { if (data.detail && data.detail.errors) showErrors({ ...state.errors, ...data.detail.errors }); return; }
  state.curves = data;
  drawCurves();
}

// ---------------------------------------------------------------------------------------- input

async function loadInput() {
  const { ok, data } = await json("/input", settingsBody());
  if (!ok) { notice(errorText(data), "error"); return; }
  state.info = data;
  const scrub = $("scrubber");
  scrub.max = Math.max(0, data.n_frames - 1);
  state.frame = Math.min(state.frame, data.n_frames - 1);
  scrub.value = state.frame;
  $("input-info").textContent = `${data.kind} · ${data.width}×${data.height} · ${data.fps.toFixed(3).replace(/\.?0+$/, "")} fps · ` +
    `${data.n_frames} frames (${data.seconds.toFixed(1)} s)${data.audio ? " · with sound" : ""}`;
  updateFrameLabel();
  requestSourceFrame();
  changed(true);
}

function updateFrameLabel() {
  const fps = state.info ? state.info.fps : 24;
  $("frame-label").textContent = `frame ${state.frame} · ${(state.frame / fps).toFixed(2)} s`;
}

function fillFiles() {
  const input = $("input"), audio = $("audio");
  const pick = (kinds) => state.files.filter((f) => kinds.includes(f.kind) && !f.path.startsWith("renders/"));
  input.replaceChildren(el("option", { value: "noise", textContent: "noise (dream from nothing)" }),
    ...pick(["video", "image"]).map((f) => el("option", { value: f.path, textContent: f.path })));
  input.value = state.input;
  audio.replaceChildren(el("option", { value: "", textContent: "the input's own sound" }),
    ...pick(["audio", "video"]).map((f) => el("option", { value: f.path, textContent: f.path })));
  audio.value = state.audio || "";
  const renders = state.files.filter((f) => f.path.startsWith("renders/") && f.kind === "video");
  $("renders").replaceChildren(...(renders.length ? renders.map((f) => {
    const play = el("button", { className: "ghost", textContent: "▶ play" });
    play.addEventListener("click", () => play_(f.path));
    return el("li", {}, el("span", { textContent: f.path.slice(8), title: f.path }), play);
  }) : [el("li", { className: "empty", textContent: "nothing rendered yet" })]));
}

function fillPresets() {
  const select = $("preset");
  select.replaceChildren(...state.presets.map((p) => el("option", { value: p, textContent: p })));
  select.value = state.preset;
}

async function loadState() {
  const { ok, data } = await json("/state");
  if (!ok) { notice(errorText(data), "error"); return false; }
  Object.assign(state, { schema: data.schema, presets: data.presets, files: data.files, formats: data.formats });
  fillPresets();
  fillFiles();
  $("format").replaceChildren(...data.formats.map((f) => el("option", { value: f, textContent: f })));
  renderJobs(data.jobs);
  return true;
}

async function loadPreset(name) {
  const { ok, data } = await json(`/preset?name=${encodeURIComponent(name)}`);
  if (!ok) { notice(errorText(data), "error"); return; }
  state.preset = name;
  state.values = data.values;
  buildSettings();
  fillModel();
  await loadModel();
  changed(true);
}

async function upload(fileInput, target) {
  const file = fileInput.files[0];
  if (!file) return;
  notice(`uploading ${file.name}…`);
  const response = await api(`/upload?name=${encodeURIComponent(file.name)}`, file);
  const data = await response.json().catch(() => ({}));
  fileInput.value = "";
  if (!response.ok) { notice(errorText(data), "error"); return; }
  notice(`uploaded ${data.path}`, "ok");
  await loadState();
  if (target === "input") { state.input = data.path; $("input").value = data.path; loadInput(); }
  else { state.audio = data.path; $("audio").value = data.path; loadInput(); }
}

// -------------------------------------------------------------------------------------- curves

function drawCurves() {
  const canvas = $("curves");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight || 150;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const c = state.curves;
  const legend = $("legend");
  legend.replaceChildren();
  if (!c) return;
  const pad = 6, h = height - 2 * pad;
  const x = (frame) => pad + (width - 2 * pad) * (c.n_frames > 1 ? frame / (c.n_frames - 1) : 0);
  // the soundtrack's waveform, behind everything
  if (c.waveform.length) {
    g.fillStyle = "#ffffff14";
    const n = c.waveform.length;
    for (let i = 0; i < n; i++) {
      const v = c.waveform[i] * h * 0.45;
      g.fillRect(pad + (width - 2 * pad) * i / n, pad + h / 2 - v, Math.max(1, (width - 2 * pad) / n), 2 * v);
    }
  }
  // beats
  g.fillStyle = "#fbbf2499";
  for (const t of c.beats) g.fillRect(x(t * c.fps) - 0.5, height - pad - 8, 1.5, 8);
  // the settings that change, each scaled to its own range
  let i = 0;
  const series = Object.entries(c.values).concat(Object.entries(c.objective).map(([t, v]) => [`objective: ${t}`, v]));
  for (const [key, values] of series) {
    const color = COLORS[i++ % COLORS.length];
    const lo = Math.min(...values), hi = Math.max(...values);
    const span = hi - lo || 1;
    g.strokeStyle = color; g.lineWidth = 1.6; g.beginPath();
    values.forEach((v, j) => {
      const px = x(c.frames[j]), py = pad + h - (h * (v - lo)) / span;
      j ? g.lineTo(px, py) : g.moveTo(px, py);
    });
    g.stroke();
    legend.append(el("span", {}, el("i", { style: `background:${color}` }),
      `${key} ${fmt(lo)}…${fmt(hi)}`));
  }
  if (!series.length) legend.append(el("span", { textContent: "no setting changes over time: switch one to a schedule (ƒ)" }));
  const constant = Object.keys(c.constant).length;
  $("curve-info").textContent = `${c.n_frames} frames · ${c.seconds.toFixed(1)} s` + (c.bpm ? ` · ${c.bpm.toFixed(1)} bpm, ${c.beats.length} beats` : "") +
    ` · ${constant} constant`;
  // playhead
  const frame = state.playing !== null ? state.playing : state.frame;
  g.fillStyle = "#ffffff";
  g.fillRect(x(Math.min(frame, c.n_frames - 1)) - 1, 0, 2, height);
}

function fmt(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString(); }

// ------------------------------------------------------------------------------------- renders

function renderJobs(jobs) {
  const before = new Map(state.jobs.map((j) => [j.id, j.status]));
  state.jobs = jobs;
  const list = $("jobs");
  list.replaceChildren(...jobs.slice().reverse().map(jobItem));
  for (const job of jobs) {
    if (job.status === "done" && before.get(job.id) && before.get(job.id) !== "done") {
      loadState();
      if (job.preview) play_(job.output);
    }
  }
}

function jobItem(job) {
  const pct = job.total ? Math.round((100 * job.done) / job.total) : 0;
  const stats = [];
  if (job.total) stats.push(`${job.done}/${job.total} frames · ${pct} %`);
  if (job.status === "running" && job.fps) stats.push(`${job.fps >= 1 ? job.fps.toFixed(2) + " fps" : (1 / job.fps).toFixed(1) + " s/frame"}`);
  if (job.status === "running" && job.eta !== null) stats.push(`ETA ${duration(job.eta)}`);
  const buttons = [];
  const button = (label, fn, cls = "ghost") => { const b = el("button", { className: cls, textContent: label }); b.addEventListener("click", fn); buttons.push(b); };
  if (job.status === "running" || job.status === "queued") button("stop", () => json(`/jobs/${job.id}/stop`, {}));
  if (job.resumable) button("resume", () => json(`/jobs/${job.id}/resume`, {}));
  if (job.status === "done") button("▶ play", () => play_(job.output));
  const item = el("li", { className: `job ${job.status}` },
    el("div", { className: "top" },
      el("span", { className: "name", textContent: (job.preview ? "preview clip · " : "") + job.output, title: job.command }),
      el("span", { className: "row" }, el("span", { className: `status ${job.status}`, textContent: job.status }), ...buttons)),
    el("div", { className: "progress" }, el("div", { style: `width:${job.status === "done" ? 100 : pct}%` })),
    el("div", { className: "stats", textContent: stats.join(" · ") }));
  item.dataset.job = job.id;
  item.dataset.percent = String(job.status === "done" ? 100 : pct);
  if (job.message || job.warnings.length) item.append(el("div", { className: "msg", textContent: [job.message, ...job.warnings].filter(Boolean).join(" · ") }));
  return item;
}

function duration(s) {
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function play_(path) {
  const player = $("player");
  player.src = fileUrl(path);
  player.dataset.path = path;
  player.hidden = false;
  $("close-player").hidden = false;
  $("viewer").classList.add("playing");
  player.play().catch(() => {});
  $("viewer").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function closePlayer() {
  const player = $("player");
  player.pause();
  player.hidden = true;
  $("close-player").hidden = true;
  $("viewer").classList.remove("playing");
  state.playing = null;
  drawCurves();
}

async function startRender(preview) {
  const { ok, data } = await json("/render", settingsBody({ format: $("format").value, preview }));
  if (!ok) { if (data.detail && data.detail.errors) showErrors(data.detail.errors); notice(errorText(data), "error"); return; }
  notice(`${preview ? "preview clip" : "render"} queued: ${data.output}`, "ok");
}

function listenJobs() {
  const source = new EventSource(`/api/events?token=${encodeURIComponent(TOKEN)}`);
  source.onmessage = (event) => renderJobs(JSON.parse(event.data));
}

// ---------------------------------------------------------------------------------- save preset

async function savePreset(replace = false) {
  const name = $("preset-name").value.trim();
  const { ok, status, data } = await json("/presets", settingsBody({ name, replace }));
  if (status === 409 && data.exists) {
    notice(`${data.path} exists. Replace it?`, "", [["Replace", () => savePreset(true)], ["Cancel", () => {}]]);
    return;
  }
  if (!ok) { notice(errorText(data), "error"); return; }
  notice(`saved ${data.path}`, "ok");
  await loadState();
}

// ----------------------------------------------------------------------------------------- wire

function wire() {
  $("preset").addEventListener("change", () => loadPreset($("preset").value));
  $("input").addEventListener("change", () => { state.input = $("input").value; state.frame = 0; loadInput(); });
  $("audio").addEventListener("change", () => { state.audio = $("audio").value || null; loadInput(); });
  $("frames").addEventListener("change", () => { state.frames = $("frames").value ? Math.max(1, Math.round(Number($("frames").value))) : null; loadInput(); });
  $("upload-input").addEventListener("change", () => upload($("upload-input"), "input"));
  $("upload-audio").addEventListener("change", () => upload($("upload-audio"), "audio"));
  const scrub = $("scrubber");
  scrub.addEventListener("input", () => { state.frame = Number(scrub.value); updateFrameLabel(); drawCurves(); });
  scrub.addEventListener("change", () => { requestSourceFrame(); requestPreview(); });
  $("curves").addEventListener("click", (event) => {
    if (!state.curves) return;
    const rect = event.target.getBoundingClientRect();
    const u = Math.min(1, Math.max(0, (event.clientX - rect.left - 6) / (rect.width - 12)));
    state.frame = Math.round(u * (state.curves.n_frames - 1));
    scrub.value = state.frame; updateFrameLabel(); drawCurves(); requestSourceFrame(); requestPreview();
  });
  $("render").addEventListener("click", () => startRender(false));
  $("preview-clip").addEventListener("click", () => startRender(true));
  $("copy").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText($("command").textContent));
  $("save-form").addEventListener("submit", (event) => { event.preventDefault(); savePreset(false); });
  $("close-player").addEventListener("click", closePlayer);
  const player = $("player");
  player.addEventListener("timeupdate", () => {
    if (!state.curves || player.hidden) return;
    state.playing = Math.round(player.currentTime * state.curves.fps);
    drawCurves();
  });
  window.addEventListener("resize", drawCurves);
}

async function main() {
  wire();
  if (!(await loadState())) return;
  const firstClip = state.files.find((f) => f.kind === "video" && !f.path.startsWith("renders/"));
  state.input = firstClip ? firstClip.path : "noise";
  $("input").value = state.input;
  await loadPreset(state.preset);
  await loadInput();
  listenJobs();
}

main();
