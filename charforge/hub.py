"""Hub-style model folders: the layout the Hugging Face ecosystem expects, written and read offline.

A folder holds
- `model.safetensors`: the generator file itself, byte for byte (so its sha256, the `model_sha256` every
  output PNG records, stays the same),
- `config.json`: what the file records, readable without charforge (`library_name`, `charforge_kind`, the
  model config, image size, noise size, tag schema and frequencies, the weights' sha256),
- `README.md`: the model card with its YAML header (license, library_name, tags, datasets, base_model).

`export_hf(model, out)` writes one; `load(folder)` (alias `from_pretrained`) reads it back, and also takes
anything `sampling.load_generator` takes (a shipped name, a .safetensors file, a run folder). Nothing is
ever downloaded: a Hub repo id must first be downloaded by you (e.g. `huggingface-cli download`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from charforge import __version__
from charforge.errors import UserError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
FILES = (CONFIG, WEIGHTS, CARD)
HUB_FORMAT = 1  # config.json's charforge_hub_format


def is_hub_folder(path: str | Path) -> bool:
    """A folder with config.json that is not a run folder (a run folder has config.json and checkpoints/)."""
    p = Path(path)
    return (
        p.is_dir() and (p / CONFIG).is_file() and ((p / WEIGHTS).exists() or not (p / "checkpoints").is_dir())
    )


def load(spec: str | Path | None = None, *, backend: str = "torch", device: str = "auto"):
    """A generator bundle (see `charforge.sampling.GeneratorBundle`) from a Hub-style folder, a shipped name,
    a .safetensors generator file or a run folder; None = the shipped default. Offline: never downloads."""
    from charforge import sampling

    if spec is not None and is_hub_folder(spec):
        return sampling.load_generator(check_folder(spec), backend, device=device)
    if spec is not None and not Path(spec).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", str(spec)):
        if str(spec) not in sampling.available_generators():
            raise UserError(
                f"{spec}: no such folder here. charforge loads models offline and never downloads; if this is "
                f"a Hub repo, download it first (huggingface-cli download {spec} --local-dir DIR) and load DIR",
                field="model",
            )
    return sampling.load_generator(spec, backend, device=device)


from_pretrained = load  # the name the Hugging Face libraries use


def check_folder(folder: str | Path) -> Path:
    """Validate a Hub-style folder; returns its weights file. Errors name the file and field at fault."""
    from charforge.models.io import file_sha256

    folder = Path(folder)
    cfg_path = folder / CONFIG
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{cfg_path}: not readable JSON ({e}); re-export with `charforge export hf`") from e
    if not isinstance(cfg, dict) or cfg.get("library_name") != "charforge":
        found = cfg.get("library_name") if isinstance(cfg, dict) else None
        raise UserError(
            f"{cfg_path}: library_name is {found!r}, not 'charforge': this folder holds another library's "
            "model, which charforge cannot load"
        )
    if cfg.get("charforge_kind") != "generator":
        raise UserError(
            f"{cfg_path}: charforge_kind is {cfg.get('charforge_kind')!r}; this version loads generator folders"
        )
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise UserError(f"{weights}: missing; a charforge model folder holds {', '.join(FILES)}")
    want = cfg.get("sha256")
    if isinstance(want, str) and want and file_sha256(weights) != want:
        raise UserError(
            f"{weights}: its sha256 differs from {CONFIG}'s sha256 field ({want[:12]}...): the weights were "
            "changed or damaged after export. Export the folder again"
        )
    return weights


def export_hf(
    model: str | Path | None,
    out: str | Path,
    *,
    license: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the Hub-style folder for a generator (a shipped name, a .safetensors file or a run folder).

    `license` overrides the licence derived from the training data's licences. Refuses a folder that
    already holds files unless `overwrite`. Returns {out, files, model_id, sha256, license}.
    """
    import shutil

    from charforge.utils.io import atomic_path, write_json_atomic, write_text_atomic

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: exists and is a file; give a folder", field="out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(
            f"-o {out}: the folder is not empty; give a new folder, or --overwrite to replace its "
            f"{', '.join(FILES)}",
            field="out",
        )
    bundle = load(model, device="cpu")
    src = Path(bundle.path)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        shutil.copyfile(src, tmp)
    from charforge.models.io import file_sha256

    if file_sha256(out / WEIGHTS) != bundle.sha256:
        raise UserError(f"{src}: changed while it was being copied; run the export again")
    card, header = model_card_for(model, bundle, license=license)
    config = {
        "library_name": "charforge",
        "charforge_hub_format": HUB_FORMAT,
        "charforge_kind": "generator",
        "charforge_version": __version__,
        "model_id": bundle.model_id,
        "sha256": bundle.sha256,
        "generator": bundle.family,
        "model_config": bundle.config,
        "image_size": bundle.image_size,
        "noise_shape": list(bundle.noise_shape),
        "tags": list(bundle.schema.tags),
        "tag_schema": bundle.schema.to_dict(),
        "tag_freqs": [round(float(f), 6) for f in bundle.freqs],
        "license": header.get("license"),
    }
    write_json_atomic(out / CONFIG, config)
    write_text_atomic(out / CARD, card)
    return {
        "out": out,
        "files": [out / f for f in FILES],
        "model_id": bundle.model_id,
        "sha256": bundle.sha256,
        "license": header.get("license"),
    }


def _source_card(spec: str | Path | None, bundle) -> str | None:
    """The card that came with the model: a run folder's MODEL_CARD.md, a shipped model's .md, a Hub
    folder's README.md, or NAME.md / MODEL_CARD.md next to a file."""
    src = Path(bundle.path)
    candidates = []
    if spec is not None and Path(spec).is_dir():
        candidates += [Path(spec) / "MODEL_CARD.md", Path(spec) / CARD]
    candidates += [src.with_suffix(".md"), src.parent / "MODEL_CARD.md"]
    if src.parent.name == "checkpoints":  # a run folder's checkpoint: the run's card
        candidates.append(src.parent.parent / "MODEL_CARD.md")
    for c in candidates:
        if c.is_file():
            try:
                return c.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
    return None


def _licences_from_body(body: str) -> dict[str, int]:
    """The card's 'Licence counts: A: n, B: m.' line (cards written before the YAML header)."""
    m = re.search(r"^Licence counts: (.+?)\.?$", body, re.M)
    counts: dict[str, int] = {}
    if m:
        for part in m.group(1).split(", "):
            name, _, n = part.rpartition(": ")
            if name and n.strip().isdigit():
                counts[name] = int(n)
    return counts


def model_card_for(spec, bundle, *, license: str | None = None) -> tuple[str, dict[str, Any]]:
    """(README.md text, its header fields): the model's own card under a fresh YAML header, or a short
    card written from the file's metadata when there is none."""
    from charforge.provenance.modelcard import (
        INTENDED_USE,
        LIMITS,
        card_header,
        card_licence,
        card_tags,
        split_card,
    )

    text = _source_card(spec, bundle)
    old, body = split_card(text) if text else ({}, "")
    family = str(bundle.config.get("family", ""))
    if license:
        lic, lic_name = license, None
    elif old.get("license"):
        lic, lic_name = str(old["license"]), old.get("license_name")
    else:
        lic, lic_name = card_licence(_licences_from_body(body)) if body else ("unknown", None)
    datasets = old.get("datasets") or (["creator:builtin"] if "`creator:builtin`" in body else [])
    base = old.get("base_model")
    base_sha = old.get("base_model_sha256")
    if not base:
        base, base_sha = _base_from_metadata(bundle)
    header_fields = {
        "license": lic,
        "license_name": lic_name,
        "tags": card_tags(family),
        "datasets": list(datasets),
        "base_model": base,
    }
    header = card_header(
        **header_fields,
        extra={
            "base_model_sha256": base_sha,
            "charforge_model_id": bundle.model_id,
            "model_sha256": bundle.sha256,
        },
    )
    if not body:
        body = "\n".join(
            [
                f"# Model card: {bundle.model_id}",
                "",
                f"A {bundle.family} generator: {bundle.image_size} px portraits from {len(bundle.schema)} tags.",
                "No training card came with this file, so the training data and its licences are not known here;",
                "the `license` above is `unknown` unless the exporter gave one.",
                "",
                "## Intended use",
                "",
                INTENDED_USE,
                "",
                "## Limits",
                "",
                LIMITS,
                "",
            ]
        )
    usage = "\n".join(
        [
            "",
            "## Using this folder",
            "",
            "Offline, with charforge installed (`pip install charforge`):",
            "",
            "```python",
            "import charforge",
            "from charforge import sampling",
            "",
            'gen = charforge.load("THIS_FOLDER")  # or charforge.from_pretrained(...)',
            'images, seeds, tags = sampling.characters_for_request(gen, "red hair, smile", n=4, seed=0)',
            "```",
            "",
            "```bash",
            'charforge generate --model THIS_FOLDER/model.safetensors --tags "red hair, smile" -o grid.png',
            "```",
            "",
            f"Files: `{WEIGHTS}` (safetensors, sha256 `{bundle.sha256}`), `{CONFIG}`, `{CARD}`.",
            "",
        ]
    )
    return header + body.rstrip("\n") + "\n" + usage, header_fields


def _base_from_metadata(bundle) -> tuple[str | None, str | None]:
    """A fine-tune's base model from the file's provenance: a shipped generator's name when the hash is one."""
    from charforge.models.io import file_sha256, read_metadata

    try:
        prov = read_metadata(bundle.path).get("provenance")
    except UserError:
        return None, None
    sha = prov.get("init_from_sha256") if isinstance(prov, dict) else None
    if not isinstance(sha, str) or not sha:
        return None, None
    from charforge.sampling import available_generators

    for name, path in available_generators().items():
        try:
            if file_sha256(path) == sha:
                return f"charforge/{name}", sha
        except OSError:
            continue
    return None, sha
