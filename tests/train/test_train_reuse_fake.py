"""reuse_fake: G's phase takes the fakes D's phase drew (one latent draw and one G forward a step).

Same latents, same weights: G's phase must get the very gradients a fresh forward would give, so a step with the
lever equals a step without it that draws one set of latents for both phases (only G's batch-norm running
statistics, which train mode does not read, move once instead of twice)."""

import pytest
import torch

from charforge.train.loop import Trainer, TrainOptions
from charforge.train.presets import resolve_preset
from tests.train.test_train_resume import one_thread, tiny_data  # noqa: F401  (one_thread: an autouse fixture)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("ds") / "tiny")


def trainer(data, run, **over) -> Trainer:
    p = resolve_preset("tiny", {"steps": 4, **over})
    return Trainer(data, run, p, opts=TrainOptions(device="cpu", show_progress=False, tensorboard=False))


def test_reused_fakes_give_a_fresh_forwards_gradients(data, tmp_path, monkeypatch):
    fast = trainer(data, tmp_path / "fast", reuse_fake=True)
    plain = trainer(data, tmp_path / "plain")
    drawn = []
    latents = plain._latents

    def once_per_step(rng, g):  # the plain loop draws per phase group: give both groups the step's first draw
        if len(drawn) % 2 == 0:
            drawn.append(latents(rng, g))
        else:
            drawn.append(drawn[-1])
        return drawn[-1]

    monkeypatch.setattr(plain, "_latents", once_per_step)
    calls = {"n": 0}
    forward = fast.G.forward

    def counted(*a, **k):
        calls["n"] += 1
        return forward(*a, **k)

    monkeypatch.setattr(fast.G, "forward", counted)
    for step in range(3):
        a, b = fast.train_step(step), plain.train_step(step)
        for k in b:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), (step, k)
    assert calls["n"] == 3  # one G forward a step, not two
    for name, pa in fast.G.named_parameters():
        torch.testing.assert_close(pa, dict(plain.G.named_parameters())[name], rtol=1e-5, atol=1e-6, msg=name)
    for name, pa in fast.D.named_parameters():
        torch.testing.assert_close(pa, dict(plain.D.named_parameters())[name], rtol=1e-5, atol=1e-6, msg=name)


def test_no_reuse_in_the_discriminator_warm_up(data, tmp_path):
    tr = trainer(data, tmp_path / "w", reuse_fake=True, d_warmup=2)
    tr.train_step(0)
    assert tr.loss.reuse_fake is False and tr.loss._kept is None  # G's phase skipped: nothing kept alive
    tr.train_step(2)
    assert tr.loss.reuse_fake is True and tr.loss._kept is None  # used by G's phase, then let go
