// charforge studio page: plain JavaScript, no framework, no CDN. Talks only to /api/v1 on this server.
// Generation runs in this page (onnxruntime-web, /web-runtime/) when the server offers the runtime, else on the
// server; both use the portable-v1 seed scheme, so a seed gives the same character either way.
// ?generate=server keeps every image on the server.
"use strict";

const $ = (id) => document.getElementById(id);
const SEED_MAX = 2147483647;
const SEED_SCHEME = "portable-v1";
const FORCE_SERVER = new URLSearchParams(location.search).get("generate") === "server";
const state = {
  models: [], model: null, schema: null, lastRequest: null, images: [], selected: null, ends: { a: null, b: null },
  creator: null, fitParams: null, params: {}, renderSeq: 0, renderTimer: null, previewUrl: null,
  web: null, clients: {}, lastWhere: "server",
};

// ---------------------------------------------------------------- plumbing
function token() { return sessionStorage.getItem("charforge-token") || ""; }

async function api(path, { json, body, method } = {}) {
  const headers = {};
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (token()) headers["Authorization"] = "Bearer " + token();
  const res = await fetch("/api/v1" + path, { method: method || (body ? "POST" : "GET"), headers, body });
  if (res.status === 401) { $("tokenbar").classList.remove("hidden"); throw new Error("this studio needs a token"); }
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { const j = await res.json(); if (j.detail) msg = j.detail; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}

let toastTimer = null;
function toast(msg, isError = false) {
  const t = $("toast");
  t.textContent = msg;
  t.classList.toggle("error", isError);
  t.classList.remove("hidden");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.add("hidden"), isError ? 7000 : 3000);
}

async function busy(button, work) {
  button.disabled = true; button.classList.add("busy");
  try { return await work(); } catch (e) { toast(e.message, true); } finally { button.disabled = false; button.classList.remove("busy"); }
}

function saveBlob(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = name;
  document.body.appendChild(a); a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
}

const pngUrl = (b64) => "data:image/png;base64," + b64;
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-");
const randomSeed = () => Math.floor(Math.random() * (SEED_MAX - 64));
function el(tag, props = {}, children = []) {
  const e = Object.assign(document.createElement(tag), props);
  for (const c of children) e.append(c);
  return e;
}

// ---------------------------------------------------------------- tabs and start-up
function showPanel(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.panel === name));
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === "panel-" + name));
  history.replaceState(null, "", "#" + name);
}

async function init() {
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showPanel(t.dataset.panel)));
  const start = location.hash.slice(1);
  if (["generate", "photo", "npc"].includes(start)) showPanel(start);
  $("token-save").addEventListener("click", () => {
    sessionStorage.setItem("charforge-token", $("token").value.trim());
    $("tokenbar").classList.add("hidden"); loadAll();
  });
  wireGenerate(); wirePhoto(); wireNpc();
  $("seed").value = randomSeed();
  await loadAll();
}

async function loadAll() {
  try {
    const h = await (await api("/health")).json();
    $("status").textContent = `${h.models.length} model${h.models.length === 1 ? "" : "s"} · f2p ${h.f2p ? "on" : "off"}`;
    $("status").className = "status ok";
    const m = await (await api("/models")).json();
    state.models = m.models;
    buildModelPicker(m.default);
    if (h.creator) { state.creator = (await (await api("/creator")).json()); buildEditor(); }
    else $("editor-hint").textContent = "No creator loaded on the server.";
    const ups = h.upscale || [1];
    for (const [field, sel] of [["size-field", "size"], ["npc-size-field", "npc-size"]]) {
      $(field).classList.toggle("hidden", ups.length < 2);
      $(sel).querySelectorAll("option").forEach((o) => { o.disabled = !ups.includes(parseInt(o.value, 10)); });
    }
    if (!h.f2p) $("drop-text").textContent = "Photo fitting is off on this server (start it with --f2p).";
  } catch (e) {
    $("status").textContent = "offline"; $("status").className = "status down"; toast(e.message, true);
    return;
  }
  await initClient();
}

// ---------------------------------------------------------------- generating in this browser
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = el("script", { src });
    s.onload = resolve; s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(s);
  });
}

function setWhere(text, client) {
  $("where").textContent = text;
  $("where").dataset.where = client ? "client" : "server";
}

async function initClient() {
  if (FORCE_SERVER) { setWhere("Images are made on the server (?generate=server).", false); return; }
  if (!state.models.length) return;
  try {
    state.web = await (await api("/web")).json();
    if (!state.web.runtime) {
      setWhere(`Images are made on the server: this studio cannot generate in the browser (${state.web.reason}).`, false);
      return;
    }
    setWhere("Loading the generator into this browser…", false);
    if (!window.CharforgeWeb) {
      await loadScript(state.web.static_base + "portable.js");
      await loadScript(state.web.static_base + "generator.js");
    }
    await clientFor(state.model);
    $("client-field").classList.remove("hidden");
    showWhere();
  } catch (e) {
    state.web = null;
    setWhere(`Images are made on the server: generating in the browser failed (${e.message}).`, false);
    return;
  }
  await initClientFit();
}

// ---------------------------------------------------------------- the fast fit in this browser
async function initClientFit() {
  try {
    const info = await (await api("/web/f2p.json")).json();
    if (!info.available) { $("fit-where").textContent = `Photos are fitted on this machine's studio server (${info.reason}).`; return; }
    if (!window.CharforgeFit) await loadScript(state.web.static_base + "fit.js");
    const part = async (p) => (await api(info.models[p].replace("/api/v1", ""))).arrayBuffer();
    state.fitter = await window.CharforgeFit.Fitter.create({ doc: info, embedder: await part("embedder"),
                                                             translator: await part("translator"), runtimeBase: state.web.runtime_base });
    $("client-fit-field").classList.remove("hidden");
    showFitWhere();
  } catch (e) {
    state.fitter = null;
    $("fit-where").textContent = `Photos are fitted on the studio server: the browser fit failed (${e.message}).`;
  }
}

const clientFitOn = () => !!(state.fitter && $("client-fit").checked && $("fit-mode").value === "fast" && !FORCE_SERVER);
function showFitWhere() {
  $("fit-where").textContent = clientFitOn()
    ? "Fast fit runs in this browser: the photo is not uploaded (only the fitted parameters go to the server, to draw the preview)."
    : "The photo is sent to this machine's studio server for fitting.";
  $("fit-where").dataset.where = clientFitOn() ? "client" : "server";
}

async function photoPixels(file) {
  const bmp = await createImageBitmap(file);
  const scale = Math.min(1, 2048 / Math.max(bmp.width, bmp.height)); // a huge photo: shrink it first
  const w = Math.max(1, Math.round(bmp.width * scale)), h = Math.max(1, Math.round(bmp.height * scale));
  const canvas = el("canvas", { width: w, height: h });
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bmp, 0, 0, w, h);
  return { rgba: ctx.getImageData(0, 0, w, h).data, w, h };
}

async function fitInBrowser(file) {
  const { rgba, w, h } = await photoPixels(file);
  const params = await state.fitter.fit(rgba, w, h);
  state.fitParams = params;
  clearTimeout(state.renderTimer); clearTimeout(state.sharpTimer); state.renderSeq++;
  $("similarity").textContent = "fitted in this browser";
  $("similarity").classList.remove("hidden");
  if (state.creator) setParams({ ...defaults(), ...params });
  scheduleRender(0);
  $("refit").disabled = false; $("reset-params").disabled = false;
}

async function clientFor(model) {
  if (isDiffusion(model) || !state.web.models[model]) return null; // served only: see useClient
  if (!state.clients[model]) {
    const urls = state.web.models[model];
    state.clients[model] = (async () => {
      const doc = await (await api(urls.doc.replace("/api/v1", ""))).json();
      const bytes = await (await api(urls.model.replace("/api/v1", ""))).arrayBuffer();
      return window.CharforgeWeb.Generator.create({ doc, model: bytes, runtimeBase: state.web.runtime_base, threads: 1 });
    })();
    state.clients[model].catch(() => { delete state.clients[model]; });
  }
  return state.clients[model];
}

const clientOn = () => !!(state.web && state.web.runtime && $("client-gen").checked && !FORCE_SERVER);
// diffusion models run their sampler loop on the server (the browser runtime draws GANs only)
function useClient(req) { return clientOn() && (req.upscale || 1) === 1 && !!state.clients[req.model] && !isDiffusion(req.model); }
function showWhere() {
  if (!clientOn()) setWhere("Images are made on the server.", false);
  else setWhere("Images are made in this browser (WebAssembly, onnxruntime-web); upscaling and interpolation use the server.", true);
}

async function clientGenerate(req) {
  const gen = await clientFor(req.model), CW = window.CharforgeWeb;
  const seeds = Array.from({ length: req.count }, (_, i) => req.seed + i);
  const chars = await gen.characters({ constraints: CW.constraintsFromForm(gen.schema, req.tags), seeds,
                                       truncation: req.truncation, fixedNoise: req.fixed_noise });
  const extra = { generator: "charforge studio (browser)", model: req.model, ...(req.truncation !== 1 ? { truncation: req.truncation } : {}) };
  const out = [];
  for (const c of chars) {
    const { bytes } = await gen.png(c, extra);
    out.push({ seed: c.seed, tag_seed: c.tagSeed, tags: c.names, tag_form: CW.tagForm(gen.schema, c.tags),
               png_base64: CW.toBase64(bytes), png: bytes });
  }
  return { images: out, model_id: gen.doc.model_id };
}

function clientZip(rows, manifest) {
  const files = rows.map((r) => ({ name: r.file, data: r.png }));
  files.push({ name: "manifest.json", data: new TextEncoder().encode(JSON.stringify(manifest, null, 2)) });
  return new Blob([window.CharforgeWeb.zipStored(files)], { type: "application/zip" });
}

// ---------------------------------------------------------------- generate panel
function buildModelPicker(def) {
  const sel = $("model");
  sel.replaceChildren(...state.models.map((m) => el("option", { value: m.name, textContent: `${m.name} (${m.image_size}px${m.pixel_art ? ", pixel art" : ""}${m.loaded === false ? ", loads on first use" : ""})` })));
  $("model-field").classList.toggle("hidden", state.models.length < 2);
  if (!state.models.length) { $("gen-info").textContent = "No generator loaded: start the server with --model."; $("generate").disabled = true; return; }
  sel.value = def || state.models[0].name;
  selectModel(sel.value);
}

const isDiffusion = (name) => { const m = state.models.find((x) => x.name === name); return !!(m && m.family === "diffusion"); };

function selectModel(name) {
  const m = state.models.find((x) => x.name === name);
  state.model = m.name; state.schema = m.schema;
  // diffusion models: steps, guidance, sampler, negative tags and img2img; truncation is a GAN setting
  const diff = m.family === "diffusion";
  $("grid").classList.toggle("pixel-art", !!m.pixel_art); // crisp cells, not a smoothed enlargement
  $("diffusion-fields").classList.toggle("hidden", !diff);
  $("img2img").classList.toggle("hidden", !diff);
  $("variety").closest(".field").classList.toggle("hidden", diff);
  const groups = $("groups"), ind = $("independent");
  groups.replaceChildren(); ind.replaceChildren();
  for (const g of m.schema.groups) {
    const sel = el("select", { id: "tag-" + slug(g.name) });
    sel.dataset.group = g.name;
    sel.append(el("option", { value: "any", textContent: "any" }));
    for (const t of g.tags) sel.append(el("option", { value: t, textContent: `${t} (${Math.round(100 * (m.freqs[t] || 0))}%)` }));
    groups.append(el("div", { className: "field" }, [el("label", { htmlFor: sel.id, textContent: g.name }), sel]));
  }
  for (const t of m.schema.independent) ind.append(triToggle(t, m.freqs[t]));
}

function triToggle(tag, freq) {
  const seg = el("div", { className: "seg", role: "radiogroup" });
  seg.dataset.tag = tag;
  for (const v of ["any", "on", "off"]) {
    const id = `tri-${slug(tag)}-${v}`;
    const input = el("input", { type: "radio", name: "tri-" + slug(tag), value: v, id, checked: v === "any" });
    seg.append(input, el("label", { htmlFor: id, className: v, textContent: v }));
  }
  const name = el("span", { className: "name", textContent: tag, title: `${Math.round(100 * (freq || 0))}% of the training data` });
  return el("div", { className: "tri" }, [name, seg]);
}

function tagForm() {
  const form = {};
  document.querySelectorAll("#groups select").forEach((s) => { form[s.dataset.group] = s.value; });
  document.querySelectorAll("#independent .seg").forEach((seg) => {
    const v = seg.querySelector("input:checked").value;
    form[seg.dataset.tag] = v === "any" ? "any" : v === "on";
  });
  return form;
}

function setTagForm(form) {
  document.querySelectorAll("#groups select").forEach((s) => { s.value = form[s.dataset.group] ?? "any"; });
  document.querySelectorAll("#independent .seg").forEach((seg) => {
    const v = form[seg.dataset.tag];
    const key = v === true ? "on" : v === false ? "off" : "any";
    seg.querySelector(`input[value=${key}]`).checked = true;
  });
}

function generateRequest() {
  let seed = parseInt($("seed").value, 10);
  if (!Number.isFinite(seed) || seed < 0) { seed = randomSeed(); $("seed").value = seed; }
  const count = Math.max(1, Math.min(64, parseInt($("count").value, 10) || 1));
  const truncation = Math.max(0.05, Math.min(1, parseFloat($("variety").value) || 1));
  const upscale = parseInt($("size").value, 10) || 1;
  const req = { model: state.model, tags: tagForm(), seed, count, fixed_noise: $("fixed-noise").checked, truncation, upscale,
                seed_scheme: SEED_SCHEME };
  if (isDiffusion(state.model)) { req.truncation = 1; Object.assign(req, diffusionFields(true)); }
  return req;
}

// the diffusion fields of a request (with negative tags for /generate and /npc; /interpolate takes no tags list)
function diffusionFields(withNegatives) {
  const steps = Math.max(1, Math.min(100, parseInt($("steps").value, 10) || 20));
  const out = { steps, guidance: parseFloat($("guidance").value), sampler: $("sampler").value };
  if (withNegatives) {
    out.negative_tags = $("negative-tags").value.split(",").map((t) => t.trim().toLowerCase()).filter((t) => t);
  }
  return out;
}

async function runGenerate(req) {
  state.lastRequest = req;
  const client = useClient(req);
  const res = client ? await clientGenerate(req) : await (await api("/generate", { json: req })).json();
  state.lastWhere = client ? "client" : "server";
  state.images = res.images; state.selected = null;
  $("detail").classList.add("hidden");
  const grid = $("grid");
  grid.replaceChildren(...res.images.map((im, i) => tile(im, i)));
  const up = req.upscale > 1 ? ` · upscaled ${req.upscale}×` : "";
  const where = client ? "made in this browser" : "made on the server";
  $("gen-info").textContent = `${res.images.length} image${res.images.length === 1 ? "" : "s"} · ${where} · model ${res.model_id}${up}`;
  $("gen-info").dataset.where = state.lastWhere;
  $("zip-all").disabled = false;
}

function tile(im, i) {
  const dl = el("a", { className: "dl", href: pngUrl(im.png_base64), download: `charforge_seed${im.seed}.png`, title: "download PNG", textContent: "⬇" });
  dl.addEventListener("click", (e) => e.stopPropagation());
  const t = el("div", { className: "tile", title: im.tags.join(", ") }, [
    el("img", { src: pngUrl(im.png_base64), alt: im.tags.join(", ") }),
    el("div", { className: "meta" }, [el("span", { textContent: "#" + im.seed }), dl]),
  ]);
  t.addEventListener("click", () => select(i));
  return t;
}

function select(i) {
  state.selected = state.images[i];
  document.querySelectorAll("#grid .tile").forEach((t, j) => t.classList.toggle("selected", j === i));
  const im = state.selected;
  $("detail-img").src = pngUrl(im.png_base64);
  $("detail-seed").textContent = im.seed;
  $("detail-tags").replaceChildren(...im.tags.map((t) => el("span", { className: "chip", textContent: t })));
  $("detail-download").href = pngUrl(im.png_base64);
  $("detail-download").download = `charforge_seed${im.seed}.png`;
  $("detail").classList.remove("hidden");
}

function setEnd(which) {
  const im = state.selected;
  if (!im) return;
  state.ends[which] = { seed: im.seed, tags: im.tag_form, truncation: state.lastRequest?.truncation ?? 1,
                        upscale: state.lastRequest?.upscale ?? 1 };
  $("end-" + which).replaceChildren(el("img", { src: pngUrl(im.png_base64), alt: which.toUpperCase() }));
  $("interpolate").disabled = !(state.ends.a && state.ends.b);
}

async function runInterpolate() {
  const end = (e) => ({ seed: e.seed, tags: e.tags });
  const req = { model: state.model, a: end(state.ends.a), b: end(state.ends.b),
                frames: parseInt($("frames").value, 10) || 8, truncation: state.ends.a.truncation,
                upscale: state.ends.a.upscale, seed_scheme: SEED_SCHEME };
  if (isDiffusion(state.model)) Object.assign(req, diffusionFields(false));
  const res = await (await api("/interpolate", { json: req })).json();
  $("strip").replaceChildren(...res.frames.map((f, i) => el("img", { src: pngUrl(f), alt: "frame " + i })));
  $("gif").src = "data:image/gif;base64," + res.gif_base64;
  $("gif-download").href = $("gif").src;
  $("gif-row").classList.remove("hidden");
}

function wireGenerate() {
  $("model").addEventListener("change", (e) => {
    selectModel(e.target.value);
    if (state.web && state.web.runtime) clientFor(e.target.value).catch((err) => toast(err.message, true));
  });
  $("client-gen").addEventListener("change", showWhere);
  $("randomise").addEventListener("click", () => { $("seed").value = randomSeed(); });
  $("reset-tags").addEventListener("click", () => setTagForm({}));
  $("variety").addEventListener("input", () => { $("variety-value").textContent = parseFloat($("variety").value).toFixed(2); });
  $("gen-form").addEventListener("submit", (e) => { e.preventDefault(); busy($("generate"), () => runGenerate(generateRequest())); });
  $("zip-all").addEventListener("click", () => busy($("zip-all"), async () => {
    const req = state.lastRequest;
    let blob;
    if (state.lastWhere === "client") { // the PNGs this page made, and the manifest the server would write
      const rows = state.images.map((im, i) => ({ file: `${String(i).padStart(3, "0")}_seed${im.seed}.png`, png: im.png, im }));
      const gen = await clientFor(req.model);
      blob = clientZip(rows, { model: req.model, model_id: gen.doc.model_id, model_sha256: gen.doc.model_sha256,
        truncation: req.truncation, upscale: 1, seed_scheme: SEED_SCHEME, made_in: "browser (onnxruntime-web)",
        images: rows.map((r) => ({ file: r.file, seed: r.im.seed, tag_seed: r.im.tag_seed, tags: r.im.tags })) });
    } else {
      blob = await (await api("/generate", { json: { ...req, format: "zip" } })).blob();
    }
    saveBlob(blob, `charforge_seed${req.seed}.zip`);
  }));
  $("detail-close").addEventListener("click", () => $("detail").classList.add("hidden"));
  $("variations").addEventListener("click", () => {
    const im = state.selected; if (!im) return;
    setTagForm(im.tag_form); $("fixed-noise").checked = false; $("seed").value = randomSeed();
    busy($("variations"), () => runGenerate(generateRequest()));
  });
  $("guidance").addEventListener("input", () => { $("guidance-value").textContent = parseFloat($("guidance").value).toFixed(1); });
  $("strength").addEventListener("input", () => { $("strength-value").textContent = parseFloat($("strength").value).toFixed(2); });
  $("img2img").addEventListener("click", () => {
    const im = state.selected; if (!im) return;
    $("fixed-noise").checked = false; $("seed").value = randomSeed();
    const req = { ...generateRequest(), init_image_base64: im.png_base64, strength: parseFloat($("strength").value) };
    busy($("img2img"), () => runGenerate(req));
  });
  $("same-face").addEventListener("click", () => {
    const im = state.selected; if (!im) return;
    $("fixed-noise").checked = true; $("seed").value = im.seed;
    busy($("same-face"), () => runGenerate(generateRequest()));
  });
  $("set-a").addEventListener("click", () => setEnd("a"));
  $("set-b").addEventListener("click", () => setEnd("b"));
  $("interpolate").addEventListener("click", () => busy($("interpolate"), runInterpolate));
}

// ---------------------------------------------------------------- photo -> character panel
function buildEditor() {
  const box = $("params");
  box.replaceChildren();
  const space = state.creator.space;
  if (space.continuous.length) box.append(el("h3", { textContent: "Shape" }));
  for (const p of space.continuous) box.append(slider(p));
  if (space.categorical.length) box.append(el("h3", { textContent: "Style" }));
  for (const p of space.categorical) {
    const sel = el("select", { id: "param-" + slug(p.name) });
    sel.dataset.param = p.name;
    for (const o of p.options) sel.append(el("option", { value: o, textContent: o }));
    sel.value = p.default;
    sel.addEventListener("change", () => { state.params[p.name] = sel.value; scheduleRender(); });
    box.append(el("div", { className: "param" }, [el("label", { htmlFor: sel.id, textContent: p.name.replace(/_/g, " ") }), sel]));
  }
  setParams(defaults());
  $("export-json").disabled = false;
  scheduleRender(0);
}

function slider(p) {
  const id = "param-" + slug(p.name);
  const val = el("b", { textContent: fmt(p.default) });
  const range = el("input", { type: "range", id, min: p.lo, max: p.hi, step: (p.hi - p.lo) / 200, value: p.default });
  range.dataset.param = p.name;
  range.addEventListener("input", () => { state.params[p.name] = parseFloat(range.value); val.textContent = fmt(range.value); scheduleRender(); });
  const label = el("label", { htmlFor: id }, [el("span", { textContent: p.name.replace(/_/g, " "), title: p.doc || "" }), val]);
  return el("div", { className: "param" }, [label, range]);
}

const fmt = (v) => Number(v).toFixed(2);
function defaults() {
  const out = {};
  for (const p of state.creator.space.categorical) out[p.name] = p.default;
  for (const p of state.creator.space.continuous) out[p.name] = p.default;
  return out;
}

function setParams(params) {
  state.params = { ...params };
  document.querySelectorAll("#params [data-param]").forEach((input) => {
    const v = params[input.dataset.param];
    if (v === undefined) return;
    input.value = v;
    if (input.type === "range") input.parentElement.querySelector("b").textContent = fmt(v);
  });
}

function scheduleRender(delay = 60) {
  // A quick 128 px render follows the slider; a sharp 256 px one lands once the hand rests.
  clearTimeout(state.renderTimer); clearTimeout(state.sharpTimer);
  state.renderTimer = setTimeout(() => renderNow(128), delay);
  state.sharpTimer = setTimeout(() => renderNow(256), delay + 350);
}

async function renderNow(size) {
  const seq = ++state.renderSeq;
  try {
    const blob = await (await api("/render", { json: { params: state.params, size } })).blob();
    if (seq !== state.renderSeq) return; // a newer slider position already asked for its own render
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(blob);
    const img = $("preview");
    img.src = state.previewUrl;
    img.classList.remove("hidden"); $("preview-hint").classList.add("hidden");
    img.dataset.seq = seq; img.dataset.size = size;
  } catch (e) { toast(e.message, true); }
}

let lastFile = null;
async function fitPhoto(file) {
  lastFile = file;
  const photo = $("photo");
  if (photo.src.startsWith("blob:")) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(file); photo.classList.remove("hidden"); $("drop-text").classList.add("hidden");
  if (clientFitOn()) return fitInBrowser(file);
  const fd = new FormData();
  fd.append("file", file); fd.append("mode", $("fit-mode").value);
  const res = await (await api("/fit", { body: fd })).json();
  state.fitParams = res.params;
  clearTimeout(state.renderTimer); clearTimeout(state.sharpTimer); state.renderSeq++; // drop renders still in flight
  $("similarity").textContent = `similarity ${res.similarity.toFixed(3)}`;
  if (res.notes && res.notes.length) toast(res.notes.join("; "));
  $("similarity").classList.remove("hidden");
  $("preview").src = pngUrl(res.preview_base64);
  $("preview").classList.remove("hidden"); $("preview-hint").classList.add("hidden");
  $("preview").dataset.seq = "fit"; $("preview").dataset.size = "fit";
  if (state.creator) setParams({ ...defaults(), ...res.params });
  $("refit").disabled = false; $("reset-params").disabled = false;
}

function wirePhoto() {
  const drop = $("drop");
  const take = (file) => { if (file) busy($("refit"), () => fitPhoto(file)); };
  $("file").addEventListener("change", (e) => take(e.target.files[0]));
  ["dragenter", "dragover"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((ev) => drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => take(e.dataTransfer.files[0]));
  $("refit").addEventListener("click", () => lastFile && busy($("refit"), () => fitPhoto(lastFile)));
  $("client-fit").addEventListener("change", showFitWhere);
  $("fit-mode").addEventListener("change", () => { if (state.fitter) showFitWhere(); });
  $("reset-params").addEventListener("click", () => { if (state.fitParams) { setParams({ ...defaults(), ...state.fitParams }); scheduleRender(0); } });
  $("export-json").addEventListener("click", () => {
    const doc = { creator: state.creator ? state.creator.name : null, params: state.params };
    saveBlob(new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }), "character_params.json");
  });
}

// ---------------------------------------------------------------- NPC panel
function readStoredZip(buf) {
  // Entries of a zip written with ZIP_STORED (what the server sends): name -> bytes.
  const dv = new DataView(buf), out = {}, dec = new TextDecoder();
  let p = 0;
  while (p + 30 <= buf.byteLength && dv.getUint32(p, true) === 0x04034b50) {
    const method = dv.getUint16(p + 8, true), size = dv.getUint32(p + 18, true);
    const nlen = dv.getUint16(p + 26, true), xlen = dv.getUint16(p + 28, true);
    const name = dec.decode(new Uint8Array(buf, p + 30, nlen)), start = p + 30 + nlen + xlen;
    if (method === 0) out[name] = new Uint8Array(buf, start, size);
    p = start + size;
  }
  return out;
}

async function runNpc() {
  const count = Math.max(1, Math.min(500, parseInt($("npc-count").value, 10) || 1));
  const seed = Math.max(0, parseInt($("npc-seed").value, 10) || 0);
  const upscale = parseInt($("npc-size").value, 10) || 1;
  const req = { model: state.model, count, seed, tags: $("npc-use-tags").checked ? tagForm() : {}, upscale, seed_scheme: SEED_SCHEME };
  if (isDiffusion(state.model)) Object.assign(req, diffusionFields($("npc-use-tags").checked));
  const client = useClient(req);
  const blob = client ? await clientNpc(req) : await (await api("/npc", { json: req })).blob();
  saveBlob(blob, `npcs_seed${seed}.zip`);
  const files = readStoredZip(await blob.arrayBuffer());
  const manifest = files["manifest.json"] ? JSON.parse(new TextDecoder().decode(files["manifest.json"])) : null;
  const shown = manifest ? manifest.characters.slice(0, 60) : [];
  $("npc-grid").replaceChildren(...shown.map((c) => {
    const url = URL.createObjectURL(new Blob([files[c.file]], { type: "image/png" }));
    return el("img", { src: url, alt: c.tags.join(", "), title: `#${c.seed}: ${c.tags.join(", ")}` });
  }));
  const where = client ? "made in this browser" : "made on the server";
  $("npc-info").textContent = `Downloaded ${manifest ? manifest.count : "?"} characters, ${where} (${Math.round(blob.size / 1024)} KB zip with manifest.json).`;
}

// The NPC batch in this page: sampling.npc_batch's recipe under portable-v1, zipped like the server's /npc.
async function clientNpc(req) {
  const gen = await clientFor(req.model), CW = window.CharforgeWeb, minDistance = 0.04;
  const { characters, tried } = await gen.npc({ count: req.count, seed: req.seed, minDistance,
                                                constraints: CW.constraintsFromForm(gen.schema, req.tags), maxTries: 2000 });
  const rows = [];
  for (const [i, c] of characters.entries()) {
    const { bytes } = await gen.png(c, { generator: "charforge studio (browser)", model: req.model });
    rows.push({ file: `npc_${String(i).padStart(3, "0")}_seed${c.seed}.png`, png: bytes, c });
  }
  const manifest = { model: req.model, model_id: gen.doc.model_id, model_sha256: gen.doc.model_sha256, seed: req.seed,
    seed_scheme: SEED_SCHEME, made_in: "browser (onnxruntime-web)", count: rows.length, requested: req.count,
    complete: rows.length === req.count, constraints: req.tags, tried,
    characters: rows.map((r) => ({ file: r.file, seed: r.c.seed, tags: r.c.names, tag_form: CW.tagForm(gen.schema, r.c.tags) })) };
  if (rows.length < req.count) manifest.note = `${rows.length} of ${req.count} characters were distinct enough within ${tried} candidates (min_distance ${minDistance})`;
  return clientZip(rows, manifest);
}

function wireNpc() {
  $("npc-go").addEventListener("click", () => busy($("npc-go"), runNpc));
}

document.addEventListener("DOMContentLoaded", init);
