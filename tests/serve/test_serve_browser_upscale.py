"""The studio page's Size choice (upscaling) in headless chromium, against a live server with a tiny upscaler."""

from __future__ import annotations

import pytest
import torch
from serve_fakes import DiscCreator, FakeF2P, LiveServer, fake_fit, make_bundle
from test_serve_browser import CHROMIUM, LAPTOP, open_page

from charforge.models.sr import SRConfig, SRNet, save_upscaler

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from charforge.serve.app import ServeSettings, create_app

    torch.manual_seed(0)
    net = SRNet(SRConfig(channels=8, blocks=1, up_channels=4))
    path = save_upscaler(
        tmp_path_factory.mktemp("up") / "up.safetensors", net, model_id="tiny-sr", provenance={}
    )
    creator = DiscCreator()
    app = create_app(
        ServeSettings(),
        generators={"default": make_bundle()},
        f2p=FakeF2P(creator),
        creator=creator,
        fitter=fake_fit,
        upscaler=str(path),
    )
    with LiveServer(app) as s:
        yield s


def test_generate_at_4x_in_the_page(browser, server):  # noqa: F811
    ctx, page, errors = open_page(browser, server, LAPTOP)
    try:
        page.wait_for_selector("#size-field:not(.hidden)")
        page.select_option("#size", "4")
        page.fill("#count", "2")
        page.click("#generate")
        page.wait_for_selector("#grid .tile img")
        page.wait_for_function("document.querySelector('#grid .tile img').naturalWidth > 0")
        width = page.eval_on_selector("#grid .tile img", "img => img.naturalWidth")
        assert width == 128  # the fake generator draws 32 px
        assert "upscaled 4×" in page.inner_text("#gen-info")
        page.select_option("#size", "1")
        page.click("#generate")
        page.wait_for_function("document.querySelector('#grid .tile img').naturalWidth === 32")
        assert not errors, errors
    finally:
        ctx.close()
