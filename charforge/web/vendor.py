"""Vendor onnxruntime-web's browser files into charforge/web/runtime/, so an installed charforge works offline.

    python -m charforge.web.vendor            # npm pack onnxruntime-web@1.30.0 into the cache, verify, copy
    python -m charforge.web.vendor --from onnxruntime-web-1.30.0.tgz   # an already downloaded tarball
    python -m charforge.web.vendor --check    # exit 0 if vendored and intact, else 1 (says why)

`make install` runs it. The tarball comes from the npm registry through npm itself (`npm pack`), lands in
$CHARFORGE_CACHE/npm (default ~/.cache/charforge/npm), and must match the sha512 pinned below before anything
is extracted. Only the three files the page needs are copied (the WASM is ~14 MB, so it is not in git);
`runtime/manifest.json` records each one's sha256 and size, the package, version, licence and tarball hash.
Without npm (or offline) it says so and exits 0: the studio page then generates on the server, and
`charforge export web` refuses with the command to run.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "onnxruntime-web"
VERSION = "1.30.0"
# npm's dist.integrity of onnxruntime-web@1.30.0 (sha512 of the tarball, base64)
TARBALL_SHA512 = "q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
LICENSE = "MIT (onnxruntime-web, Copyright (c) Microsoft Corporation)"
# what the page loads: the WASM-only build of the JS API (global `ort`), its Emscripten glue and the binary
FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
FILE_SHA256 = {  # checked after extraction, on top of the tarball's sha512
    "ort.wasm.min.js": "faece07e84faa9001f5104bbe4e5c70861d06cb2376a0dea1fa0ad33a67adc81",
    "ort-wasm-simd-threaded.mjs": "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b",
    "ort-wasm-simd-threaded.wasm": "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2",
}
RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
MANIFEST = "manifest.json"
VENDOR_COMMAND = "python -m charforge.web.vendor"


def cache_dir() -> Path:
    """Where the npm tarball is kept: charforge's cache folder (utils.io.cache_dir), subfolder npm."""
    from charforge.utils.io import cache_dir as root

    return root("npm")


def _sha512_b64(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return base64.b64encode(h.digest()).decode()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_cached(path: Path) -> str:
    """sha256 of a file, remembered while its size and mtime stay the same (the studio asks on every page load)."""
    st = path.stat()
    return _sha256_keyed(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_keyed(path: str, size: int, mtime_ns: int) -> str:
    return _sha256(Path(path))


def runtime_status(runtime_dir: Path | None = None) -> tuple[bool, str]:
    """(usable, why not): every file listed in the manifest is there with its pinned sha256."""
    runtime_dir = runtime_dir or RUNTIME_DIR
    man = runtime_dir / MANIFEST
    if not man.is_file():
        return (
            False,
            f"onnxruntime-web is not vendored in this install (run `{VENDOR_COMMAND}`; it needs npm)",
        )
    try:
        doc = json.loads(man.read_text())
        files = doc["files"]
    except (ValueError, KeyError) as e:
        return False, f"{man}: unreadable manifest ({e}); rerun `{VENDOR_COMMAND}`"
    if doc.get("version") != VERSION or set(files) != set(FILES):
        return (
            False,
            f"{man}: vendored {doc.get('version')}, this charforge pins {VERSION}; rerun `{VENDOR_COMMAND}`",
        )
    for name, rec in files.items():
        p = runtime_dir / name
        if not p.is_file() or p.stat().st_size != rec["bytes"] or _sha256_cached(p) != FILE_SHA256[name]:
            return False, f"{p}: missing or changed since it was vendored; rerun `{VENDOR_COMMAND}`"
    return True, ""


def fetch_tarball(npm: str | None = None) -> Path:
    """The pinned tarball in the cache (npm pack fetches it once); raises RuntimeError saying why not."""
    dest = cache_dir()
    tgz = dest / f"{PACKAGE}-{VERSION}.tgz"
    if tgz.is_file() and _sha512_b64(tgz) == TARBALL_SHA512:
        return tgz
    npm = npm or shutil.which("npm")
    if not npm:
        raise RuntimeError("npm is not installed")
    dest.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [npm, "pack", f"{PACKAGE}@{VERSION}", "--silent", "--pack-destination", str(dest)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if r.returncode != 0 or not tgz.is_file():
        raise RuntimeError(f"npm pack {PACKAGE}@{VERSION} failed: {(r.stderr or r.stdout).strip()[:400]}")
    return tgz


def vendor(tarball: Path, runtime_dir: Path | None = None) -> dict:
    """Check `tarball` against the pinned sha512, copy FILES into `runtime_dir`, write the manifest."""
    runtime_dir = runtime_dir or RUNTIME_DIR
    got = _sha512_b64(tarball)
    if got != TARBALL_SHA512:
        raise RuntimeError(
            f"{tarball}: sha512 {got} is not the pinned {PACKAGE}@{VERSION} tarball ({TARBALL_SHA512}); "
            "delete it and rerun"
        )
    runtime_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    with tarfile.open(tarball, "r:gz") as tf, tempfile.TemporaryDirectory(dir=runtime_dir) as tmp:
        for name in FILES:
            member = tf.getmember(f"package/dist/{name}")  # a fixed name: no path from the archive is trusted
            src = tf.extractfile(member)
            if src is None:
                raise RuntimeError(f"{tarball}: package/dist/{name} is not a regular file")
            part = Path(tmp) / name
            with open(part, "wb") as out:
                shutil.copyfileobj(src, out)
            files[name] = {"sha256": _sha256(part), "bytes": part.stat().st_size}
            if files[name]["sha256"] != FILE_SHA256[name]:
                raise RuntimeError(
                    f"{tarball}: {name} has sha256 {files[name]['sha256']}, not the pinned one"
                )
            os.replace(part, runtime_dir / name)
    doc = {
        "package": PACKAGE,
        "version": VERSION,
        "license": LICENSE,
        "tarball_sha512": TARBALL_SHA512,
        "source": f"npm registry, `npm pack {PACKAGE}@{VERSION}`",
        "files": files,
    }
    (runtime_dir / MANIFEST).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=VENDOR_COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="tarball", type=Path, help="use this onnxruntime-web tarball, not npm")
    ap.add_argument(
        "--check", action="store_true", help="only check the vendored files (exit 1 if not usable)"
    )
    ap.add_argument("--force", action="store_true", help="vendor again even if the files are intact")
    args = ap.parse_args(argv)
    ok, why = runtime_status()
    if args.check:
        print("onnxruntime-web: vendored and intact" if ok else why)
        return 0 if ok else 1
    if ok and not args.force:
        print(f"onnxruntime-web {VERSION}: already vendored in {RUNTIME_DIR}")
        return 0
    try:
        tgz = args.tarball or fetch_tarball()
        if not tgz.is_file():
            print(f"error: {tgz}: no such file", file=sys.stderr)
            return 2
        doc = vendor(tgz)
    except (RuntimeError, OSError, tarfile.TarError, KeyError, subprocess.TimeoutExpired) as e:
        print(
            f"warning: could not vendor {PACKAGE}@{VERSION} ({e}). charforge works without it: the studio page "
            "generates on the server, and `charforge export web` needs it (rerun this command with npm).",
            file=sys.stderr,
        )
        return 2 if args.tarball else 0
    total = sum(f["bytes"] for f in doc["files"].values())
    print(f"onnxruntime-web {VERSION}: vendored {len(FILES)} files ({total / 1e6:.1f} MB) into {RUNTIME_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
