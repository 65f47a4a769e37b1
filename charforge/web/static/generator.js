// charforge in the browser: run an exported generator with onnxruntime-web (WASM), draw portable-v1 seeds
// (portable.js), and write PNGs with charforge's provenance metadata and invisible watermark. No network
// beyond the files it is pointed at. Used by the exported static site (site.js) and the studio page (app.js).
"use strict";
(function (root) {
  const P = () => root.CharforgePortable;

  // ------------------------------------------------------------ runtime
  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src; s.onload = resolve; s.onerror = () => reject(new Error(`could not load ${src}`));
      document.head.append(s);
    });
  }

  // runtimeBase: URL of the folder with ort.wasm.min.js, ort-wasm-simd-threaded.{mjs,wasm}
  async function loadRuntime(runtimeBase, { threads = 1 } = {}) {
    const base = new URL(runtimeBase, location.href).href.replace(/\/?$/, "/");
    if (!root.ort) await loadScript(base + "ort.wasm.min.js");
    const ort = root.ort;
    ort.env.wasm.wasmPaths = base;
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.proxy = false;
    return ort;
  }

  // ------------------------------------------------------------ tags
  const tagNames = (schema) => schema.groups.flatMap((g) => g.tags).concat(schema.independent);

  function fromVector(schema, vec) {
    const names = tagNames(schema), out = [];
    let start = 0;
    for (const g of schema.groups) {
      let best = start;
      for (let k = start; k < start + g.tags.length; k++) if (vec[k] > vec[best]) best = k;
      if (g.tags.length && vec[best] >= 0.5) out.push(names[best]);
      start += g.tags.length;
    }
    schema.independent.forEach((t, j) => { if (vec[start + j] >= 0.5) out.push(t); });
    return out;
  }

  // the API's tag form {"hair color": "blonde hair" | "any", "smile": true | false | "any"} <-> constraints
  function constraintsFromForm(schema, form) {
    const groups = {}, independent = {};
    for (const g of schema.groups) { const v = form[g.name]; groups[g.name] = v && v !== "any" ? v : null; }
    for (const t of schema.independent) { const v = form[t]; independent[t] = v === true || v === false ? v : null; }
    return { groups, independent };
  }

  function tagForm(schema, vec) {
    const form = {};
    let start = 0;
    for (const g of schema.groups) {
      let on = -1;
      for (let k = 0; k < g.tags.length; k++) if (vec[start + k] > 0.5) { on = k; break; }
      form[g.name] = on >= 0 ? g.tags[on] : "any";
      start += g.tags.length;
    }
    schema.independent.forEach((t, j) => { form[t] = vec[start + j] > 0.5; });
    return form;
  }

  // ------------------------------------------------------------ pixels
  function roundHalfEven(x) {
    const r = Math.round(x);
    return Math.abs(x - Math.trunc(x)) === 0.5 ? 2 * Math.round(x / 2) : r;
  }

  // (3, S, S) float planes in [-1, 1] at offset -> (S*S*3) RGB bytes, as charforge's pixel_mapping says
  function toRgb(planes, offset, size) {
    const n = size * size, out = new Uint8Array(n * 3);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < n; i++) {
        let v = planes[offset + c * n + i];
        v = v < -1 ? -1 : v > 1 ? 1 : v;
        out[i * 3 + c] = roundHalfEven((v + 1) * 127.5);
      }
    }
    return out;
  }

  // A pixel-art model's outputs onto its training set's grid and palette (model.json "pixel_art"): the exact
  // integer rule of charforge.core.pixelart.snap, so the bytes equal the CLI's for the same input. Per cell of
  // `cell` px from `offset` (row, column; part cells at the edges): channel sums s over its n pixels, the palette
  // colour p minimising sum((s - n * p)^2), ties to the lowest index, filling the cell. (S*S*3) RGB bytes in/out.
  function snapPixelArt(rgb, size, grid) {
    const k = grid.cell, [oy, ox] = grid.offset, pal = grid.palette, out = new Uint8Array(rgb.length);
    const starts = (o) => { const s = [0]; for (let v = o; v < size; v += k) if (v > 0) s.push(v); return s; };
    const ys = starts(oy), xs = starts(ox);
    for (let a = 0; a < ys.length; a++) {
      const y0 = ys[a], y1 = a + 1 < ys.length ? ys[a + 1] : size;
      for (let b = 0; b < xs.length; b++) {
        const x0 = xs[b], x1 = b + 1 < xs.length ? xs[b + 1] : size, n = (y1 - y0) * (x1 - x0);
        let s0 = 0, s1 = 0, s2 = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
          const i = (y * size + x) * 3; s0 += rgb[i]; s1 += rgb[i + 1]; s2 += rgb[i + 2];
        }
        let best = Infinity, pick = 0;
        for (let j = 0; j < pal.length; j++) {
          const p = pal[j], d0 = s0 - n * p[0], d1 = s1 - n * p[1], d2 = s2 - n * p[2];
          const d = d0 * d0 + d1 * d1 + d2 * d2;  // integers well below 2^53: exact
          if (d < best) { best = d; pick = j; }
        }
        const p = pal[pick];
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
          const i = (y * size + x) * 3; out[i] = p[0]; out[i + 1] = p[1]; out[i + 2] = p[2];
        }
      }
    }
    return out;
  }

  function rgbToImageData(rgb, size) {
    const d = new ImageData(size, size);
    for (let i = 0; i < size * size; i++) {
      d.data[4 * i] = rgb[3 * i]; d.data[4 * i + 1] = rgb[3 * i + 1]; d.data[4 * i + 2] = rgb[3 * i + 2]; d.data[4 * i + 3] = 255;
    }
    return d;
  }

  // 16x16 area-averaged thumbnail in [0, 1] (torch's adaptive_avg_pool2d bins), (16, 16, 3) order
  function thumb(rgb, size, t = 16) {
    const out = new Float64Array(t * t * 3);
    for (let oy = 0; oy < t; oy++) {
      const y0 = Math.floor((oy * size) / t), y1 = Math.ceil(((oy + 1) * size) / t);
      for (let ox = 0; ox < t; ox++) {
        const x0 = Math.floor((ox * size) / t), x1 = Math.ceil(((ox + 1) * size) / t);
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) s += rgb[(y * size + x) * 3 + c];
          out[(oy * t + ox) * 3 + c] = s / 255 / ((y1 - y0) * (x1 - x0));
        }
      }
    }
    return out;
  }

  // ------------------------------------------------------------ watermark: ports of charforge/provenance/
  // watermark.py (its docstring is the spec); the keyed arrays come precomputed in the model document.
  function embedWatermark(rgb, size, wm) {
    if (wm.method === "charforge-qim-v2") return embedV2(rgb, size, wm);
    if (wm.method === "charforge-qim-v1") return embedV1(rgb, size, wm);
    throw new Error(`no port of watermark ${wm.method}`);
  }

  // charforge-qim-v2: spread-transform QIM, 3 units of 4 DCT coefficients per 8x8 block; the keyed layout is
  // per absolute block: block (a, b) uses entry (a mod G, b mod G) of a G x G-block grid (G = wm.grid =
  // V2_GRID, 64: 512 px). wm.signs is (N, N, units, unit), wm.dither and wm.bit (N, N, units), flattened in
  // that order, with N = wm.layout_blocks: the whole grid (N = G, the default) or its top-left N x N corner,
  // enough for an image of up to 8 N px (a smaller document for small models).
  function embedV2(rgb, size, wm) {
    const G = wm.grid, N = wm.layout_blocks ?? G, B = wm.block;
    const need = Math.min(Math.floor(size / B), G);
    if (!Number.isInteger(G) || G < 1 || !Number.isInteger(N) || N < need || N > G || wm.bit.length !== N * N * wm.units) {
      throw new Error(`charforge-qim-v2 layout does not cover a ${size} px image on the per-block grid this port implements (model document from another charforge?)`);
    }
    const K = wm.coeffs, L = wm.unit, U = wm.units, step = wm.step, sq = Math.sqrt(L);
    const hb = Math.floor(size / B), wb = hb, [lr, lg, lb] = wm.luma, basis = wm.basis;
    const x = Float64Array.from(rgb), y = new Float64Array(size * size), c = new Float64Array(K), dc = new Float64Array(K);
    let out = Uint8Array.from(rgb);
    for (let it = 0; it < wm.iterations; it++) {
      for (let i = 0; i < size * size; i++) y[i] = out[3 * i] * lr + out[3 * i + 1] * lg + out[3 * i + 2] * lb;
      for (let a = 0; a < hb; a++) {
        for (let b = 0; b < wb; b++) {
          const t = (a % G) * N + (b % G); // this block's entry of the keyed grid
          for (let k = 0; k < K; k++) {
            let v = 0;
            for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) v += y[(a * B + i) * size + b * B + j] * basis[(k * B + i) * B + j];
            c[k] = v;
          }
          for (let j = 0; j < U; j++) {
            const e = t * U + j;
            let u = 0;
            for (let l = 0; l < L; l++) u += c[j * L + l] * wm.signs[e * L + l];
            u /= sq;
            const offset = (wm.dither[e] + wm.bits[wm.bit[e]] / 2) * step;
            const target = roundHalfEven((u - offset) / step) * step + offset;
            for (let l = 0; l < L; l++) dc[j * L + l] = wm.signs[e * L + l] * ((target - u) / sq);
          }
          for (let i = 0; i < B; i++) {
            for (let j = 0; j < B; j++) {
              let d = 0;
              for (let k = 0; k < K; k++) d += dc[k] * basis[(k * B + i) * B + j];
              const p = ((a * B + i) * size + b * B + j) * 3;
              x[p] += d; x[p + 1] += d; x[p + 2] += d;
            }
          }
        }
      }
      out = new Uint8Array(x.length);
      for (let i = 0; i < x.length; i++) { const v = roundHalfEven(x[i]); out[i] = v < 0 ? 0 : v > 255 ? 255 : v; }
    }
    return wm.psnr_floor == null ? out : psnrFloorV2(rgb, out, wm);
  }

  // the v2 PSNR floor: a mark that costs more than wm.psnr_floor dB (a multiple of 10) is scaled down; the
  // test is on exact integers (the sums stay below 2^53 up to 1024 px), the scaling uses the same float
  // operations as watermark.py
  function psnrFloorV2(rgb, out, wm) {
    const n = out.length, tens = 10 ** Math.floor(wm.psnr_floor / 10), limit = 255 * 255 * n;
    const d = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) { d[i] = out[i] - rgb[i]; sum += d[i] * d[i]; }
    if (sum * tens <= limit) return out;
    let k = Math.sqrt(limit / (tens * sum));
    const scaled = new Uint8Array(n);
    for (;;) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const v = roundHalfEven(rgb[i] + k * d[i]);
        scaled[i] = v < 0 ? 0 : v > 255 ? 255 : v;
        const e = scaled[i] - rgb[i];
        s += e * e;
      }
      if (s * tens <= limit) return scaled;
      k *= wm.psnr_backoff;
    }
  }

  // charforge-qim-v1 (outputs before v2): five DCT slots per block, layout per image size
  function embedV1(rgb, size, wm) {
    const B = wm.block, K = wm.coeffs, hb = Math.floor(size / B), wb = hb, step = wm.step;
    const [lr, lg, lb] = wm.luma, basis = wm.basis; // basis: K x B x B, flattened
    const x = Float64Array.from(rgb), y = new Float64Array(size * size), delta = new Float64Array(hb * wb * K);
    let out = Uint8Array.from(rgb);
    for (let it = 0; it < wm.iterations; it++) {
      for (let i = 0; i < size * size; i++) y[i] = out[3 * i] * lr + out[3 * i + 1] * lg + out[3 * i + 2] * lb;
      for (let by = 0; by < hb; by++) {
        for (let bx = 0; bx < wb; bx++) {
          for (let k = 0; k < K; k++) {
            let c = 0;
            for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) c += y[(by * B + i) * size + bx * B + j] * basis[(k * B + i) * B + j];
            const s = (by * wb + bx) * K + k;
            const offset = wm.dither[s] + wm.bits[wm.bit_of_slot[s]] * (step / 2);
            delta[s] = roundHalfEven((c - offset) / step) * step + offset - c;
          }
          for (let i = 0; i < B; i++) {
            for (let j = 0; j < B; j++) {
              let d = 0;
              for (let k = 0; k < K; k++) d += delta[(by * wb + bx) * K + k] * basis[(k * B + i) * B + j];
              const p = ((by * B + i) * size + bx * B + j) * 3;
              x[p] += d; x[p + 1] += d; x[p + 2] += d;
            }
          }
        }
      }
      out = new Uint8Array(x.length);
      for (let i = 0; i < x.length; i++) { const v = roundHalfEven(x[i]); out[i] = v < 0 ? 0 : v > 255 ? 255 : v; }
    }
    return out;
  }

  // ------------------------------------------------------------ PNG with text chunks, and a stored zip
  const CRC_TABLE = (() => {
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; t[n] = c >>> 0; }
    return t;
  })();
  function crc32(bytes, crc = 0) {
    crc = ~crc >>> 0;
    for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
    return ~crc >>> 0;
  }
  const latin1 = (s) => Uint8Array.from(s, (ch) => { const c = ch.charCodeAt(0); return c < 256 ? c : 63; });
  const utf8 = (s) => new TextEncoder().encode(s);
  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0; for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  }
  function u32(n) { return new Uint8Array([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]); }
  function chunk(type, data) {
    const td = concat([latin1(type), data]);
    return concat([u32(data.length), td, u32(crc32(td))]);
  }
  async function deflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // (S*S*3) RGB + {key: value} -> PNG bytes: tEXt chunks "charforge:<key>" (JSON unless a string), the XMP
  // packet in iTXt "XML:com.adobe.xmp", as charforge.provenance.metadata writes them.
  async function encodePng(rgb, size, meta, xmp) {
    const raw = new Uint8Array(size * (1 + size * 3));
    for (let y = 0; y < size; y++) raw.set(rgb.subarray(y * size * 3, (y + 1) * size * 3), y * (1 + size * 3) + 1);
    const ihdr = concat([u32(size), u32(size), new Uint8Array([8, 2, 0, 0, 0])]);
    const parts = [new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr)];
    if (xmp) parts.push(chunk("iTXt", concat([latin1("XML:com.adobe.xmp"), new Uint8Array([0, 0, 0, 0, 0]), utf8(xmp)])));
    for (const [k, v] of Object.entries(meta)) {
      const key = k.startsWith("charforge:") ? k : "charforge:" + k;
      parts.push(chunk("tEXt", concat([latin1(key), new Uint8Array([0]), latin1(typeof v === "string" ? v : JSON.stringify(v))])));
    }
    parts.push(chunk("IDAT", await deflate(raw)), chunk("IEND", new Uint8Array(0)));
    return concat(parts);
  }

  // [{name, data: Uint8Array}] -> a zip with stored entries (PNGs are already compressed)
  function zipStored(files) {
    const locals = [], centrals = [];
    let offset = 0;
    const le16 = (n) => new Uint8Array([n & 255, (n >>> 8) & 255]);
    const le32 = (n) => new Uint8Array([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255]);
    for (const f of files) {
      const name = utf8(f.name), crc = crc32(f.data), n = f.data.length;
      const common = concat([le16(20), le16(0x0800), le16(0), le16(0), le16(0x21), le32(crc), le32(n), le32(n), le16(name.length), le16(0)]);
      const local = concat([le32(0x04034b50), common, name, f.data]);
      centrals.push(concat([le32(0x02014b50), le16(20), common, le16(0), le16(0), le16(0), le32(0), le32(offset), name]));
      locals.push(local); offset += local.length;
    }
    const cd = concat(centrals);
    const end = concat([le32(0x06054b50), le16(0), le16(0), le16(files.length), le16(files.length), le32(cd.length), le32(offset), le16(0)]);
    return concat([...locals, cd, end]);
  }

  function toBase64(bytes) {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }

  // ------------------------------------------------------------ the generator
  class Generator {
    // doc: the model document (model.json of `charforge export web`, or /api/v1/web/models/NAME.json)
    constructor(ort, session, doc) {
      this.ort = ort; this.session = session; this.doc = doc;
      this.schema = doc.tag_schema; this.size = doc.image_size; this.zDim = doc.z_dim;
      this.nTags = tagNames(this.schema).length;
      this.watermarkOn = !!doc.watermark;
      this.pixelArt = doc.pixel_art || null;  // a pixel-art model: its outputs are snapped, as the CLI's are
      this.pixelSnap = !!this.pixelArt;
    }

    static async create({ doc, model, runtimeBase, threads = 1 }) {
      const ort = await loadRuntime(runtimeBase, { threads });
      const bytes = model instanceof ArrayBuffer ? model : await (await fetch(model)).arrayBuffer();
      const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
      return new Generator(ort, session, doc);
    }

    tagsFor(constraints, seed) { return P().sampleTags(this.schema, this.doc.tag_freqs, constraints, seed); }

    // zs, tags: arrays of Float32Array rows -> arrays of RGB bytes
    async run(zs, tags) {
      const n = zs.length, z = new Float32Array(n * this.zDim), t = new Float32Array(n * this.nTags);
      zs.forEach((row, i) => z.set(row, i * this.zDim));
      tags.forEach((row, i) => t.set(row, i * this.nTags));
      const feeds = { z: new this.ort.Tensor("float32", z, [n, this.zDim]), tags: new this.ort.Tensor("float32", t, [n, this.nTags]) };
      const out = (await this.session.run(feeds)).image.data;
      const per = 3 * this.size * this.size;
      const snap = this.pixelArt && this.pixelSnap;
      return Array.from({ length: n }, (_, i) => {
        const rgb = toRgb(out, i * per, this.size);
        return snap ? snapPixelArt(rgb, this.size, this.pixelArt) : rgb;
      });
    }

    // The recipe of charforge.sampling.characters_for_seeds under portable-v1.
    async characters({ constraints, seeds, truncation = 1, fixedNoise = false, batch = 8 }) {
      if (!(truncation > 0 && truncation <= 1)) throw new Error(`truncation ${truncation}: must be in (0, 1]`);
      const out = [];
      for (let i = 0; i < seeds.length; i += batch) {
        const part = seeds.slice(i, i + batch);
        const tags = part.map((s) => this.tagsFor(constraints, s));
        const noiseSeeds = part.map((s) => (fixedNoise ? seeds[0] : s));
        const rgbs = await this.run(noiseSeeds.map((s) => P().noise(s, this.zDim, truncation)), tags);
        part.forEach((s, k) => out.push({ seed: noiseSeeds[k], tagSeed: s, tags: tags[k], names: fromVector(this.schema, tags[k]), rgb: rgbs[k] }));
      }
      return out;
    }

    // The recipe of charforge.sampling.npc_batch under portable-v1 (candidate seeds from the batch seed).
    async npc({ count, seed, constraints, minDistance = 0.04, truncation = 1, maxTries = null, batch = 16, shouldStop = null }) {
      maxTries = maxTries || Math.max(20 * count, 256);
      const used = new Set(), out = [], feats = [];
      let tried = 0;
      while (out.length < count && tried < maxTries) {
        if (shouldStop && shouldStop()) break;
        const m = Math.min(batch, maxTries - tried);
        const cand = P().npcCandidateSeeds(seed, tried, m).filter((s) => !used.has(s) && (used.add(s), true));
        tried += m;
        const made = await this.characters({ constraints, seeds: cand, truncation, batch: m });
        for (const c of made) {
          if (out.length >= count) break;
          const f = thumb(c.rgb, this.size);
          const close = feats.some((g) => { let s = 0; for (let i = 0; i < f.length; i++) s += (f[i] - g[i]) ** 2; return Math.sqrt(s / f.length) < minDistance; });
          if (close) continue;
          out.push(c); feats.push(f);
        }
      }
      return { characters: out, tried };
    }

    pngMeta(c, extra = {}) {
      const d = this.doc;
      const meta = { software: d.png.software, ai_generated: d.png.ai_generated, generator: d.png.generator,
        model_id: d.model_id, model_sha256: d.model_sha256, seed: c.seed, tag_seed: c.tagSeed,
        seed_scheme: P().SCHEME, tags: c.names, made_in: "browser (onnxruntime-web)", ...extra };
      const g = this.pixelArt;
      if (g && this.pixelSnap) meta.pixel_art = `snapped to the training set's pixel grid (${g.cell} px cells) and palette (${g.palette.length} colours)`;
      return meta;
    }

    // -> {bytes (PNG), rgb (what was written)}
    async png(c, extra = {}) {
      const meta = this.pngMeta(c, extra);
      let rgb = c.rgb;
      const wm = this.doc.watermark;
      if (this.watermarkOn && wm) { rgb = embedWatermark(rgb, this.size, wm); meta.watermark = wm.method; meta.watermark_tag = wm.tag; }
      else meta.watermark = wm ? "none" : this.doc.png.watermark_missing || "none";
      return { bytes: await encodePng(rgb, this.size, meta, this.doc.png.xmp), rgb };
    }
  }

  root.CharforgeWeb = { Generator, loadRuntime, fromVector, tagForm, constraintsFromForm, tagNames, toRgb,
                        rgbToImageData, thumb, embedWatermark, snapPixelArt, encodePng, zipStored, crc32, toBase64 };
})(typeof self !== "undefined" ? self : this);
