"""Write a training state's raw (non-EMA) generator weights as a generator file, to evaluate them like a model.

    python bench/raw_generator.py runs/X/checkpoints/state-0001000.safetensors runs/X/raw-0001000.safetensors

The config, tag schema, frequencies and provenance come from the generator file saved with the state.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charforge.models.generator import read_generator, save_generator  # noqa: E402
from charforge.models.io import load_model  # noqa: E402
from charforge.train import checkpoint as ck  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    state, out = (argv or sys.argv[1:])[:2]
    tensors, _ = load_model(state)
    gen = read_generator(Path(state).with_name(Path(state).name.replace("state-", "generator-", 1)))
    raw = ck.unprefixed("G", tensors)
    gen.build().load_state_dict(raw)  # same shapes as the EMA file, or this raises
    prov = {**(gen.meta.get("provenance") or {}), "weights": "raw G (not EMA)"}
    save_generator(
        out,
        raw,
        gen.config,
        gen.schema,
        gen.freqs,
        model_id=f"{gen.meta.get('model_id')}-raw",
        provenance=prov,
    )
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
