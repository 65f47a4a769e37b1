"""charforge in the browser: portable seeds, the vendored onnxruntime-web runtime and the page's JavaScript.

- `charforge.web.seeds`: the portable-v1 seed scheme (a counter-based generator with a JavaScript twin in
  `static/portable.js`), so one seed gives one character in the CLI, the server and the browser.
- `charforge.web.vendor`: copies onnxruntime-web's JS + WASM from the pinned npm package into
  `charforge/web/runtime/` with a sha256 manifest (`python -m charforge.web.vendor`, run by `make install`).
- `static/`: the browser generator (`generator.js`), the static site page (`site.html`, `site.js`).

This package sits low (numpy and charforge.core/errors/utils only): sampling, export and serve import it.
"""
