// Render DiceBear avatars with fully specified options to PNG (charforge foreign-style benchmark).
//
//   node dicebear.mjs JOBS.json OUT_DIR
//
// JOBS.json: {"size": 256, "jobs": [{"file": "x.png", "style": "adventurer", "seed": "s1",
//             "background": "#rrggbb", "options": {...DiceBear options...}}, ...]}
// Writes OUT_DIR/<file> for every job and OUT_DIR/styles.json with each style's licence and creator
// (read from the installed package's own metadata), plus the package versions used.
// The option sampling and the option -> tag labels live in Python (bench/foreign/mapping.py), so this
// script only draws what it is told.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { dirname } from "node:path";
import { createAvatar } from "@dicebear/core";
import * as collection from "@dicebear/collection";
import { Resvg } from "@resvg/resvg-js";
import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import bigheads from "@bigheads/core";

// Big Heads (job.style "bigheads") is a React component with no seed: job.options are its props, every one given.
// Its hair colour is a theme key; a hex (as the DiceBear jobs give it, ["rrggbb"]) is added to the theme first,
// with a shadow 15 % darker, as the theme's own colours have.
function bigheadsSvg(options) {
  const props = { ...options };
  if (Array.isArray(props.hairColor)) {
    const hex = props.hairColor[0].replace(/^#/, "");
    const dark = [0, 2, 4].map((i) => Math.round(parseInt(hex.slice(i, i + 2), 16) * 0.85));
    bigheads.theme.colors.hair[`x${hex}`] = {
      base: `#${hex}`,
      shadow: `#${dark.map((v) => v.toString(16).padStart(2, "0")).join("")}`,
    };
    props.hairColor = `x${hex}`;
  }
  return renderToStaticMarkup(createElement(bigheads.BigHead, props));
}

const [jobsPath, outDir] = process.argv.slice(2);
if (!jobsPath || !outDir) {
  console.error("usage: node dicebear.mjs JOBS.json OUT_DIR");
  process.exit(2);
}
const spec = JSON.parse(readFileSync(jobsPath, "utf8"));
const size = spec.size ?? 256;
mkdirSync(outDir, { recursive: true });

const camel = (name) => name.replace(/-(.)/g, (_, c) => c.toUpperCase());
const styles = {};
const BIGHEADS_META = {
  title: "Big Heads",
  creator: "Robert Broersma",
  source: "https://bigheads.io/",
  license: { name: "MIT", url: "https://github.com/RobertBroersma/bigheads/blob/master/LICENSE" },
};
for (const job of spec.jobs) {
  let svg;
  if (job.style === "bigheads") {
    styles[job.style] ??= BIGHEADS_META;
    svg = bigheadsSvg(job.options);
  } else {
    const style = collection[camel(job.style)];
    if (!style) {
      console.error(`unknown DiceBear style ${job.style}`);
      process.exit(3);
    }
    styles[job.style] ??= style.meta ?? {};
    svg = createAvatar(style, { seed: job.seed, size, ...job.options }).toString();
  }
  const png = new Resvg(svg, {
    fitTo: { mode: "width", value: size },
    background: job.background ?? "#ffffff",
    font: { loadSystemFonts: false },
  })
    .render()
    .asPng();
  writeFileSync(join(outDir, job.file), png);
}

// package.json is not exported by these packages: read it from node_modules beside this script
const here = dirname(fileURLToPath(import.meta.url));
const version = (pkg) => JSON.parse(readFileSync(join(here, "node_modules", pkg, "package.json"), "utf8")).version;
const versions = {};
for (const pkg of ["@dicebear/core", "@dicebear/collection", "@resvg/resvg-js"]) versions[pkg] = version(pkg);
for (const name of Object.keys(styles)) {
  if (name === "bigheads") for (const pkg of ["@bigheads/core", "react", "react-dom"]) versions[pkg] = version(pkg);
  else versions[`@dicebear/${name}`] = version(`@dicebear/${name}`);
}
writeFileSync(join(outDir, "styles.json"), JSON.stringify({ versions, styles }, null, 2));
console.log(`rendered ${spec.jobs.length} avatars at ${size} px into ${outDir}`);
