// charforge portable-v1 seeds: the JavaScript twin of charforge/web/seeds.py (read its docstring for the
// definition). One seed gives the same noise and free tags here as in the CLI and the server
// (`--seed-scheme portable-v1`). Works in the page (window.CharforgePortable) and in node (require).
"use strict";
(function (root) {
  const M64 = (1n << 64n) - 1n;
  const GOLDEN = 0x9E3779B97F4A7C15n;
  const STREAM_NOISE = 1, STREAM_TAGS = 2, STREAM_NPC = 3;
  const SEED_LIMIT = 2 ** 32;
  const SCHEME = "portable-v1";

  function mix64(x) {
    x ^= x >> 30n; x = (x * 0xBF58476D1CE4E5B9n) & M64;
    x ^= x >> 27n; x = (x * 0x94D049BB133111EBn) & M64;
    return x ^ (x >> 31n);
  }

  function checkSeed(seed) {
    if (!Number.isInteger(seed) || seed < 0 || seed >= SEED_LIMIT) {
      throw new Error(`seed ${seed}: ${SCHEME} seeds are whole numbers from 0 to ${SEED_LIMIT - 1}`);
    }
    return seed;
  }

  function streamKey(seed, stream) { return mix64((BigInt(stream) << 32n) | BigInt(checkSeed(seed))); }

  // words start .. start+n-1 of one stream (BigInt)
  function words(seed, stream, n, start = 0) {
    const key = streamKey(seed, stream), out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = mix64((key + BigInt(start + i + 1) * GOLDEN) & M64);
    return out;
  }

  // float64 uniforms in [0, 1)
  function uniforms(seed, stream, n, start = 0) {
    const w = words(seed, stream, n, start), out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = Number(w[i] >> 11n) * 2 ** -53;
    return out;
  }

  // float64 standard normals of the noise stream (Box-Muller pairs)
  function normals(seed, n) {
    const pairs = Math.ceil(n / 2), u = uniforms(seed, STREAM_NOISE, 2 * pairs), out = new Float64Array(n);
    for (let k = 0; k < pairs; k++) {
      const r = Math.sqrt(-2.0 * Math.log(1.0 - u[2 * k])), t = (2.0 * Math.PI) * u[2 * k + 1];
      out[2 * k] = r * Math.cos(t);
      if (2 * k + 1 < n) out[2 * k + 1] = r * Math.sin(t);
    }
    return out;
  }

  // (zDim,) float32 noise of one seed at truncation psi (product in float64, then rounded to float32)
  function noise(seed, zDim, truncation = 1.0) {
    const z = normals(seed, zDim), out = new Float32Array(zDim);
    for (let i = 0; i < zDim; i++) out[i] = z[i] * truncation;
    return out;
  }

  const roundFreq = (f) => Number(Number(f).toFixed(6)); // sidecar values are already rounded: a no-op there

  // The tag order of a schema {groups: [{name, tags}], independent: [...], conflicts: [[a, b]]}
  function tagNames(schema) { return schema.groups.flatMap((g) => g.tags).concat(schema.independent); }

  // constraints: {groups: {name: tag|null}, independent: {tag: true|false|null}} (missing = free)
  function sampleTags(schema, freqs, constraints, seed) {
    const names = tagNames(schema), index = new Map(names.map((t, i) => [t, i]));
    const f = Array.from(freqs, roundFreq);
    if (f.length !== names.length) throw new Error(`tag_freqs: ${f.length} values for ${names.length} tags`);
    const c = constraints || {}, cg = c.groups || {}, ci = c.independent || {};
    const nG = schema.groups.length, nI = schema.independent.length, conflicts = schema.conflicts || [];
    const u = uniforms(seed, STREAM_TAGS, nG + nI + conflicts.length);
    const out = new Float32Array(names.length), fixed = new Uint8Array(names.length);
    let start = 0;
    schema.groups.forEach((g, gi) => {
      const len = g.tags.length, chosen = cg[g.name];
      if (chosen !== undefined && chosen !== null) {
        if (!index.has(chosen) || !g.tags.includes(chosen)) throw new Error(`${g.name}: unknown tag ${chosen}`);
        out[index.get(chosen)] = 1; fixed.fill(1, start, start + len);
      } else {
        const cum = new Float64Array(len);
        let total = 0, last = -1;
        for (let k = 0; k < len; k++) { total += f[start + k]; cum[k] = total; if (f[start + k] > 0) last = k; }
        if (total > 0) {
          const t = u[gi] * total;
          let k = 0;
          while (k < len && !(t < cum[k])) k++;
          out[start + Math.min(k, last)] = 1;
        }
      }
      start += len;
    });
    schema.independent.forEach((tag, j) => {
      const col = start + j, v = ci[tag];
      if (v === undefined || v === null) out[col] = u[nG + j] < f[col] ? 1 : 0;
      else { out[col] = v ? 1 : 0; fixed[col] = 1; }
    });
    conflicts.forEach(([a, b], k) => {
      const ia = index.get(a), ib = index.get(b);
      if (!(out[ia] > 0 && out[ib] > 0)) return;
      const drop = fixed[ia] ? ib : fixed[ib] ? ia : u[nG + nI + k] < 0.5 ? ia : ib;
      out[drop] = 0;
    });
    return out;
  }

  function npcCandidateSeeds(batchSeed, start, n) {
    return words(batchSeed, STREAM_NPC, n, start).map((w) => Number(w >> 33n));
  }

  const api = { SCHEME, STREAM_NOISE, STREAM_TAGS, STREAM_NPC, mix64, words, uniforms, normals, noise,
                sampleTags, tagNames, npcCandidateSeeds, checkSeed };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.CharforgePortable = api;
})(typeof self !== "undefined" ? self : this);
