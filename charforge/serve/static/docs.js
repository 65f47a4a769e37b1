// Starts the bundled Swagger UI on /docs (a file of its own: the page's CSP allows no inline script).
// The bundled Swagger UI (3.x) only reads OpenAPI 3.0, and FastAPI writes 3.1: the document is fetched and
// shown as 3.0 (nullable instead of a "null" type, exclusive bounds as flags, examples as example). The
// served /openapi.json itself stays 3.1.
"use strict";

function toOas30(node) {
  if (Array.isArray(node)) return node.map(toOas30);
  if (!node || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = toOas30(v);
  for (const key of ["anyOf", "oneOf"]) {
    if (!Array.isArray(out[key])) continue;
    const rest = out[key].filter((s) => !(s && s.type === "null"));
    if (rest.length === out[key].length) continue;
    out.nullable = true;
    if (rest.length === 1) { delete out[key]; Object.assign(out, rest[0], { nullable: true }); }
    else out[key] = rest;
  }
  if (Array.isArray(out.type)) {
    const types = out.type.filter((t) => t !== "null");
    if (types.length < out.type.length) out.nullable = true;
    out.type = types[0];
  }
  if ("const" in out) { out.enum = [out.const]; delete out.const; }
  for (const [bound, flag] of [["exclusiveMinimum", "minimum"], ["exclusiveMaximum", "maximum"]]) {
    if (typeof out[bound] === "number") { out[flag] = out[bound]; out[bound] = true; }
  }
  if (Array.isArray(out.examples) && !("example" in out) && !("content" in node)) {
    out.example = out.examples[0];
    delete out.examples;
  }
  return out;
}

window.addEventListener("DOMContentLoaded", async () => {
  const res = await fetch("/openapi.json");
  const spec = toOas30(await res.json());
  spec.openapi = "3.0.3";
  window.ui = SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
