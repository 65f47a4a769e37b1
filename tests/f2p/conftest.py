"""Shared f2p fixtures: one tiny model trained through the CLI on the toy creator, reused by several tests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # so "tests.f2p.f2p_toy:make" imports as a module:function creator
    sys.path.insert(0, str(ROOT))

from f2p_helpers import TINY_TRAIN, TOY_SPEC, run_cli  # noqa: E402


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("f2p_toy") / "model"
    code, log = run_cli(["f2p", "train", "--creator", TOY_SPEC, "-o", str(out), *TINY_TRAIN])
    assert code == 0, log
    return out


@pytest.fixture
def toy():
    from tests.f2p.f2p_toy import make

    return make()


@pytest.fixture
def toy_renders(toy):
    batch = toy.space.sample(12, np.random.default_rng(99))
    return batch, toy.render(batch, 16)


@pytest.fixture(scope="session", autouse=True)
def _f2p_cache(tmp_path_factory):
    """The similarity check caches random-render references: keep them out of the user's cache."""
    import os

    old = os.environ.get("CHARFORGE_CACHE")
    os.environ["CHARFORGE_CACHE"] = str(tmp_path_factory.mktemp("charforge_cache"))
    yield
    if old is None:
        os.environ.pop("CHARFORGE_CACHE", None)
    else:
        os.environ["CHARFORGE_CACHE"] = old


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run faster on one thread, and the test machine is shared; restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
