"""Shared fixtures for the metrics tests: a toy dataset and a tiny tagger trained on it (once per session)."""

import os

import pytest
import torch
from metrics_toydata import make_toy_dataset

from charforge.tagger.net import load_tagger
from charforge.train.tagger import TaggerTrainOptions, train_tagger

os.environ.setdefault("CHARFORGE_PROGRESS", "0")
TOY_N, TOY_SIZE = 160, 16


@pytest.fixture(scope="session")
def toy_data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy") / "data"
    make_toy_dataset(root, n=TOY_N, size=TOY_SIZE, seed=0)
    return root


@pytest.fixture(scope="session")
def toy_tagger_dir(toy_data_dir, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tagger") / "toy"
    opts = TaggerTrainOptions(steps=250, batch_size=32, lr=1e-2, seed=0, checkpoint_every=1000)
    train_tagger(toy_data_dir, out, opts=opts, image_size=TOY_SIZE, channels=8, feat_dim=32)
    return out


@pytest.fixture(scope="session")
def toy_tagger(toy_tagger_dir):
    return load_tagger(toy_tagger_dir)
