// The static character generator written by `charforge export web`: everything runs in this page with
// onnxruntime-web; the model and the runtime are files next to this one. No server, nothing uploaded.
// URL options: ?threads=N (WASM threads; needs a cross-origin-isolated page, see docs/web.md),
// ?bench=N (time N one-image runs after loading and show the numbers in #bench, for bench/bench_web.py).
"use strict";

const $ = (id) => document.getElementById(id);
const CW = () => window.CharforgeWeb;
const SEED_MAX = 4294967295;
const state = { gen: null, doc: null, last: null, made: [] };
const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-");
const randomSeed = () => Math.floor(Math.random() * (2 ** 31 - 64));
function el(tag, props = {}, children = []) {
  const e = Object.assign(document.createElement(tag), props);
  for (const c of children) e.append(c);
  return e;
}

let toastTimer = null;
function toast(msg, isError = false) {
  const t = $("toast");
  t.textContent = msg; t.classList.toggle("error", isError); t.classList.remove("hidden");
  clearTimeout(toastTimer); toastTimer = setTimeout(() => t.classList.add("hidden"), isError ? 8000 : 3000);
}
async function busy(button, work) {
  button.disabled = true; button.classList.add("busy");
  try { return await work(); } catch (e) { toast(e.message, true); console.warn(e); } finally { button.disabled = false; button.classList.remove("busy"); }
}
function saveBlob(blob, name) {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a); a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
}

function threadsWanted() {
  const q = new URLSearchParams(location.search).get("threads");
  if (q) return Math.max(1, parseInt(q, 10) || 1);
  return self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
}

async function init() {
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x === t));
    document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === "panel-" + t.dataset.panel));
  }));
  $("seed").value = randomSeed();
  $("variety").addEventListener("input", () => { $("variety-value").textContent = parseFloat($("variety").value).toFixed(2); });
  $("randomise").addEventListener("click", () => { $("seed").value = randomSeed(); });
  $("reset-tags").addEventListener("click", () => buildTags());
  $("gen-form").addEventListener("submit", (e) => { e.preventDefault(); busy($("generate"), runGenerate); });
  $("zip-all").addEventListener("click", () => busy($("zip-all"), zipAll));
  $("npc-go").addEventListener("click", () => busy($("npc-go"), runNpc));
  try {
    const t0 = performance.now();
    const doc = await (await fetch("model/model.json")).json();
    const threads = threadsWanted();
    if (threads > 1 && !self.crossOriginIsolated) throw new Error("threads need a cross-origin-isolated page (COOP/COEP headers, docs/web.md)");
    state.gen = await CW().Generator.create({ doc, model: "model/" + doc.model_file, runtimeBase: "ort/", threads });
    state.doc = doc;
    buildTags();
    const wmNote = doc.watermark ? "" : " · no invisible watermark at this image size";
    const px = doc.pixel_art, pxNote = px ? ` · pixel art (${px.cell} px cells, ${px.palette.length} colours)` : "";
    $("status").textContent = `in this browser · WebAssembly, ${threads} thread${threads === 1 ? "" : "s"}${wmNote}${pxNote}`;
    if (px) { $("pixel-art-row").hidden = false; $("grid").classList.add("pixel-art"); }
    $("status").className = "status ok";
    $("status").dataset.loadMs = Math.round(performance.now() - t0);
    if (!doc.watermark) { $("watermark").checked = false; $("watermark").disabled = true; }
    $("generate").disabled = false; $("npc-go").disabled = false;
    document.body.dataset.ready = "1";
    const q = new URLSearchParams(location.search), bench = parseInt(q.get("bench"), 10);
    if (bench > 0 && q.get("bench_wait")) { // let the caller read the CPU clock first, then click
      const go = el("button", { id: "bench-go", textContent: "run the benchmark" });
      go.addEventListener("click", () => runBench(bench));
      document.body.append(go);
    } else if (bench > 0) await runBench(bench);
  } catch (e) {
    $("status").textContent = "could not start: " + e.message; $("status").className = "status down";
    document.body.dataset.ready = "error";
    toast(e.message, true);
  }
}

function buildTags() {
  const doc = state.doc, schema = doc.tag_schema, names = CW().tagNames(schema);
  const freq = Object.fromEntries(names.map((t, i) => [t, doc.tag_freqs[i]]));
  $("groups").replaceChildren(...schema.groups.map((g) => {
    const sel = el("select", { id: "tag-" + slug(g.name) });
    sel.dataset.group = g.name;
    sel.append(el("option", { value: "any", textContent: "any" }));
    for (const t of g.tags) sel.append(el("option", { value: t, textContent: `${t} (${Math.round(100 * freq[t])}%)` }));
    return el("div", { className: "field" }, [el("label", { htmlFor: sel.id, textContent: g.name }), sel]);
  }));
  $("independent").replaceChildren(...schema.independent.map((t) => {
    const seg = el("div", { className: "seg", role: "radiogroup" });
    seg.dataset.tag = t;
    for (const v of ["any", "on", "off"]) {
      const id = `tri-${slug(t)}-${v}`;
      seg.append(el("input", { type: "radio", name: "tri-" + slug(t), value: v, id, checked: v === "any" }),
        el("label", { htmlFor: id, className: v, textContent: v }));
    }
    return el("div", { className: "tri" }, [el("span", { className: "name", textContent: t, title: `${Math.round(100 * freq[t])}% of the training data` }), seg]);
  }));
}

function tagFormNow() {
  const form = {};
  document.querySelectorAll("#groups select").forEach((s) => { form[s.dataset.group] = s.value; });
  document.querySelectorAll("#independent .seg").forEach((seg) => {
    const v = seg.querySelector("input:checked").value;
    form[seg.dataset.tag] = v === "any" ? "any" : v === "on";
  });
  return form;
}

function readInt(id, lo, hi, fallback) {
  const v = parseInt($(id).value, 10);
  if (!Number.isFinite(v) || v < lo || v > hi) { $(id).value = fallback; return fallback; }
  return v;
}

async function runGenerate() {
  const gen = state.gen, seed = readInt("seed", 0, SEED_MAX - 64, randomSeed());
  const count = readInt("count", 1, 64, 8);
  const truncation = Math.max(0.05, Math.min(1, parseFloat($("variety").value) || 1));
  const form = tagFormNow(), fixedNoise = $("fixed-noise").checked;
  gen.watermarkOn = $("watermark").checked;
  gen.pixelSnap = !!gen.pixelArt && $("pixel-art").checked;
  const seeds = Array.from({ length: count }, (_, i) => seed + i);
  const t0 = performance.now();
  const chars = await gen.characters({ constraints: CW().constraintsFromForm(gen.schema, form), seeds, truncation, fixedNoise });
  const ms = performance.now() - t0;
  const extra = truncation !== 1 ? { truncation } : {};
  state.made = [];
  for (const c of chars) state.made.push({ c, png: (await gen.png(c, extra)).bytes });
  state.last = { seed, count, truncation, form, fixedNoise };
  $("grid").replaceChildren(...state.made.map(({ c, png }) => tile(c, png)));
  $("gen-info").textContent = `${chars.length} images in ${Math.round(ms)} ms (${(ms / chars.length).toFixed(1)} ms each) · model ${state.doc.model_id}`;
  $("zip-all").disabled = false;
}

function tile(c, png) {
  const url = URL.createObjectURL(new Blob([png], { type: "image/png" }));
  const dl = el("a", { className: "dl", href: url, download: `charforge_seed${c.tagSeed}.png`, title: "download PNG", textContent: "⬇" });
  const t = el("div", { className: "tile", title: c.names.join(", ") }, [
    el("img", { src: url, alt: c.names.join(", ") }),
    el("div", { className: "meta" }, [el("span", { textContent: "#" + c.tagSeed }), dl]),
  ]);
  t.dataset.seed = c.seed; t.dataset.tagSeed = c.tagSeed;
  return t;
}

function manifestBase() {
  const d = state.doc;
  return { model_id: d.model_id, model_sha256: d.model_sha256, generator: d.png.generator, seed_scheme: d.seed_scheme,
           made_in: "browser (onnxruntime-web)", watermark: state.gen.watermarkOn && d.watermark ? d.watermark.method : "none",
           pixel_art: state.gen.pixelArt ? (state.gen.pixelSnap ? "snapped" : "off") : "no" };
}

async function zipAll() {
  const files = state.made.map(({ c, png }, i) => ({ name: `${String(i).padStart(3, "0")}_seed${c.tagSeed}.png`, data: png, c }));
  const manifest = { ...manifestBase(), truncation: state.last.truncation, fixed_noise: state.last.fixedNoise, request: state.last.form,
    images: files.map((f) => ({ file: f.name, seed: f.c.seed, tag_seed: f.c.tagSeed, tags: f.c.names })) };
  files.push({ name: "manifest.json", data: new TextEncoder().encode(JSON.stringify(manifest, null, 2)) });
  saveBlob(new Blob([CW().zipStored(files)], { type: "application/zip" }), `charforge_seed${state.last.seed}.zip`);
}

async function runNpc() {
  const gen = state.gen, count = readInt("npc-count", 1, 500, 24), seed = readInt("npc-seed", 0, SEED_MAX, 0);
  gen.watermarkOn = $("watermark").checked;
  gen.pixelSnap = !!gen.pixelArt && $("pixel-art").checked;
  const form = $("npc-use-tags").checked ? tagFormNow() : {};
  const t0 = performance.now();
  const { characters, tried } = await gen.npc({ count, seed, constraints: CW().constraintsFromForm(gen.schema, form) });
  const files = [], rows = [];
  for (const [i, c] of characters.entries()) {
    const name = `npc_${String(i).padStart(3, "0")}_seed${c.seed}.png`;
    files.push({ name, data: (await gen.png(c)).bytes });
    rows.push({ file: name, seed: c.seed, tags: c.names, tag_form: CW().tagForm(gen.schema, c.tags) });
  }
  const manifest = { ...manifestBase(), seed, count: rows.length, requested: count, complete: rows.length === count, tried, constraints: form, characters: rows };
  files.push({ name: "manifest.json", data: new TextEncoder().encode(JSON.stringify(manifest, null, 2)) });
  const blob = new Blob([CW().zipStored(files)], { type: "application/zip" });
  saveBlob(blob, `npcs_seed${seed}.zip`);
  $("npc-grid").replaceChildren(...files.slice(0, Math.min(60, rows.length)).map((f, i) =>
    el("img", { src: URL.createObjectURL(new Blob([f.data], { type: "image/png" })), alt: rows[i].tags.join(", "), title: `#${rows[i].seed}: ${rows[i].tags.join(", ")}` })));
  $("npc-info").textContent = `${rows.length} characters in ${Math.round(performance.now() - t0)} ms (${tried} drawn) · ${Math.round(blob.size / 1024)} KB zip with manifest.json`;
}

// ?bench=N: N one-image runs (noise + tags + network + pixels, no PNG), then a batch of 8, timed here.
async function runBench(n) {
  const gen = state.gen, times = [];
  await gen.characters({ constraints: null, seeds: [0] }); // warm-up
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await gen.characters({ constraints: null, seeds: [1000 + i] });
    times.push(performance.now() - t0);
  }
  const t1 = performance.now();
  await gen.characters({ constraints: null, seeds: Array.from({ length: 8 }, (_, i) => 5000 + i), batch: 8 });
  const batch8 = (performance.now() - t1) / 8;
  const t2 = performance.now();
  const c = (await gen.characters({ constraints: null, seeds: [77] }))[0];
  gen.watermarkOn = !!state.doc.watermark;
  await gen.png(c);
  const withPng = performance.now() - t2;
  const pre = el("pre", { id: "bench", textContent: JSON.stringify({ times, batch8_ms_per_image: batch8, one_with_png_ms: withPng,
    load_ms: +$("status").dataset.loadMs, threads: threadsWanted(), isolated: !!self.crossOriginIsolated }) });
  document.body.append(pre);
}

document.addEventListener("DOMContentLoaded", init);
