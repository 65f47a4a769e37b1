"""Suite-wide settings, applied before any test module imports torch."""

import os

import pytest

# Spinning OpenMP workers collapse throughput when cores are shared (see charforge/cli/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# No progress bars in test logs.
os.environ.setdefault("CHARFORGE_PROGRESS", "0")

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium: Playwright cannot download its own browsers here


@pytest.fixture(scope="module")
def browser():
    """A headless chromium for the browser tests, one per test module (the modules skip without it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def upscaler_file(tmp_path):
    """A tiny upscaler file (model id "tiny-sr") that does more than bicubic."""
    from sr_fakes import tiny_upscaler

    return tiny_upscaler(tmp_path / "up.safetensors")
