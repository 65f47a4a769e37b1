// The fast face-to-parameter fit in the browser: the f2p model's learned embedder and translator as ONNX
// (charforge.export.onnx.export_f2p_onnx) run with onnxruntime-web; the photo never leaves the page.
// It is the library's `fit(mode="fast", detect=False)` without the photo-attribute limits: the centre square of
// the whole image, area-resized like charforge.f2p.learned.to_tensor, embedded, translated, decoded.
"use strict";
(function (root) {
  // RGBA pixels (w x h) -> (3, size, size) float32 in [0, 1] of the centre square, torch's "area" resize when
  // shrinking (adaptive average pooling bins) and bilinear (align_corners=False) when growing.
  function squareTensor(rgba, w, h, size) {
    const s = Math.min(w, h), x0 = Math.floor((w - s) / 2), y0 = Math.floor((h - s) / 2);
    const out = new Float32Array(3 * size * size), px = (x, y, c) => rgba[((y0 + y) * w + (x0 + x)) * 4 + c] / 255;
    for (let oy = 0; oy < size; oy++) {
      for (let ox = 0; ox < size; ox++) {
        for (let c = 0; c < 3; c++) {
          let v;
          if (s > size) {
            const ya = Math.floor((oy * s) / size), yb = Math.ceil(((oy + 1) * s) / size);
            const xa = Math.floor((ox * s) / size), xb = Math.ceil(((ox + 1) * s) / size);
            let sum = 0;
            for (let y = ya; y < yb; y++) for (let x = xa; x < xb; x++) sum += px(x, y, c);
            v = sum / ((yb - ya) * (xb - xa));
          } else if (s === size) {
            v = px(ox, oy, c);
          } else {
            const sy = Math.max(0, (oy + 0.5) * (s / size) - 0.5), sx = Math.max(0, (ox + 0.5) * (s / size) - 0.5);
            const y1 = Math.floor(sy), x1 = Math.floor(sx), y2 = Math.min(y1 + 1, s - 1), x2 = Math.min(x1 + 1, s - 1);
            const fy = sy - y1, fx = sx - x1;
            v = (1 - fy) * ((1 - fx) * px(x1, y1, c) + fx * px(x2, y1, c)) + fy * ((1 - fx) * px(x1, y2, c) + fx * px(x2, y2, c));
          }
          out[c * size * size + oy * size + ox] = v;
        }
      }
    }
    return out;
  }

  class Fitter {
    // doc: {input_size, space: ParamSpace JSON, ...}; embedder/translator: ONNX bytes
    static async create({ doc, embedder, translator, runtimeBase }) {
      const ort = await root.CharforgeWeb.loadRuntime(runtimeBase, { threads: 1 });
      const opts = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
      const f = new Fitter();
      f.ort = ort; f.doc = doc;
      f.embedder = await ort.InferenceSession.create(embedder, opts);
      f.translator = await ort.InferenceSession.create(translator, opts);
      return f;
    }

    // decode like ParamSpace.decode: argmax per categorical block, continuous clipped to [0, 1] and scaled
    decode(vec) {
      const space = this.doc.space, out = {};
      let k = 0;
      for (const p of space.categorical) {
        let best = 0;
        for (let j = 1; j < p.options.length; j++) if (vec[k + j] > vec[k + best]) best = j;
        out[p.name] = p.options[best]; k += p.options.length;
      }
      for (const p of space.continuous) {
        const u = Math.min(1, Math.max(0, vec[k++]));
        out[p.name] = Math.round((p.lo + u * (p.hi - p.lo)) * 1e6) / 1e6;
      }
      return out;
    }

    // RGBA pixels of the photo (e.g. getImageData at its natural size) -> creator parameters
    async fit(rgba, w, h) {
      const size = this.doc.input_size, x = squareTensor(rgba, w, h, size);
      const emb = await this.embedder.run({ [this.doc.embedder_input]: new this.ort.Tensor("float32", x, [1, 3, size, size]) });
      const e = emb[this.doc.embedder_output].data;
      let norm = 0; for (const v of e) norm += v * v;
      const unit = Float32Array.from(e, (v) => v / Math.max(Math.sqrt(norm), 1e-12));
      const tr = await this.translator.run({ [this.doc.translator_input]: new this.ort.Tensor("float32", unit, [1, unit.length]) });
      return this.decode(tr[this.doc.translator_output].data);
    }
  }

  root.CharforgeFit = { Fitter, squareTensor };
})(typeof self !== "undefined" ? self : this);
