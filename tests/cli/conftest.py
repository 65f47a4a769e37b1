"""Shared pieces of the CLI tests: a tiny untrained generator file and an in-process runner."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    """A 16 px ACGAN generator file (random weights, seed 0): enough for pixels, seeds and metadata."""
    import torch

    from charforge.core.tags import make_girls_moe_schema
    from charforge.models.config import ACGANConfig
    from charforge.models.families import build_network
    from charforge.models.generator import save_generator

    schema = make_girls_moe_schema()
    cfg = ACGANConfig(resolution=16, z_dim=16, g_width=8, g_blocks=1, g_upscalers=2, g_final_kernel=3)
    torch.manual_seed(0)
    return save_generator(
        tmp_path_factory.mktemp("gen") / "tiny.safetensors",
        build_network(cfg, len(schema)).state_dict(),
        cfg,
        schema,
        np.full(len(schema), 0.2),
        model_id="tiny-cli",
        provenance={"preset": "tiny"},
    )
