"""The optional Gradio demo: its actions (the studio's library calls) without a browser, the CLI, the Spaces
app.py, and the page itself in headless Debian chromium (Playwright) against a live Gradio server on
127.0.0.1. The browser tests skip, saying why, when gradio (pip install 'charforge[gradio]') or chromium is
missing."""

from __future__ import annotations

import importlib.util
import io
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_fakes import DiscCreator, FakeF2P, fake_fit, make_bundle, png_of  # noqa: E402

from charforge.cli import main  # noqa: E402
from charforge.errors import UserError  # noqa: E402
from charforge.provenance import read_png_metadata  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# gradio 6.31 calls pandas options that pandas 3 deprecates; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
HAVE_GRADIO = importlib.util.find_spec("gradio") is not None
needs_gradio = pytest.mark.skipif(
    not HAVE_GRADIO, reason="gradio is not installed (pip install 'charforge[gradio]')"
)
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    from charforge.models.sr import SRConfig, SRNet, save_upscaler
    from charforge.sr import load_upscaler

    torch.manual_seed(0)
    net = SRNet(SRConfig(channels=8, blocks=1, up_channels=4))
    path = save_upscaler(
        tmp_path_factory.mktemp("up") / "up.safetensors", net, model_id="tiny-sr", provenance={}
    )
    return load_upscaler(path)


@pytest.fixture(scope="module")
def studio(upscaler):
    from charforge.serve.engine import Studio

    creator = DiscCreator()
    return Studio(
        {"default": make_bundle()}, f2p=FakeF2P(creator), creator=creator, fitter=fake_fit, upscaler=upscaler
    )


@pytest.fixture
def demo(studio, tmp_path):
    from charforge.gradio_app import Demo

    return Demo(studio, tmp_path / "out")


def test_generate_is_the_studio_recipe_with_provenance(demo, studio):
    from charforge import sampling

    items, text = demo.generate("default", "blonde hair, smile, -hat", 5, 3, 1.0, 1)
    assert len(items) == 3 and "seeds 5..7" in text
    bundle = studio.bundle("default")
    c = bundle.schema.parse("blonde hair, smile, -hat")
    ref, noise, tags = sampling.characters_for_seeds(bundle, c, [5, 6, 7])
    for i, (path, caption) in enumerate(items):
        data = Path(path).read_bytes()
        meta = read_png_metadata(data)
        assert meta["seed"] == 5 + i and meta["model_sha256"] == bundle.sha256
        assert "blonde hair" in meta["tags"] and "smile" in meta["tags"] and "hat" not in meta["tags"]
        assert meta["watermark_tag"] and caption.startswith(f"#{5 + i}: ")
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float64)
        assert pixels.shape == (32, 32, 3)
        assert np.abs(pixels - ref[i]).mean() < 3.0  # the same picture; the watermark moves a few levels
    assert (
        np.abs(np.asarray(Image.open(items[0][0]), float) - np.asarray(Image.open(items[1][0]), float)).mean()
        > 5
    )


def test_upscale_npc_and_fit_go_through_the_studio(demo):
    items, text = demo.generate("default", "", 1, 1, 0.7, "2")
    assert Image.open(items[0][0]).size == (64, 64) and "upscaled x2" in text
    meta = read_png_metadata(Path(items[0][0]).read_bytes())
    assert meta["upscale"] == 2 and meta["upscaler_id"] == "tiny-sr"
    npcs, ntext = demo.npc("default", "-hat", 3, 4, 0.0)
    assert len(npcs) == 4 and "4 distinct" in ntext
    assert all("hat" not in read_png_metadata(Path(p).read_bytes())["tags"] for p, _ in npcs)
    photo = np.asarray(Image.open(io.BytesIO(png_of((40, 200, 60), (48, 48)))).convert("RGB"))
    path, params, ftext = demo.fit(photo, "fast")
    assert params["color"] == "green" and "similarity" in ftext
    assert read_png_metadata(Path(path).read_bytes())["fit_mode"] == "fast"


def test_bad_input_is_a_clear_error(demo, studio):
    with pytest.raises(UserError, match="unknown tag"):
        demo.generate("default", "purple unicorn", 0, 1)
    with pytest.raises(UserError, match="count: expected a whole number from 1 to 16"):
        demo.generate("default", "", 0, 0)
    with pytest.raises(UserError, match="seed: expected a whole number"):
        demo.generate("default", "", -1, 1)
    with pytest.raises(UserError, match="unknown model 'nope'"):
        demo.generate("nope", "", 0, 1)
    with pytest.raises(UserError, match="photo: upload a picture first"):
        demo.fit(None)


def test_offline_environment_and_missing_gradio(monkeypatch):
    import charforge.gradio_app as ga

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    ga.set_offline_env()
    import os

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed
    with pytest.raises(UserError, match=r"pip install 'charforge\[gradio\]'"):
        ga.require_gradio()


def test_write_app_for_spaces(tmp_path, capsys):
    main(["gradio", "--write-app", str(tmp_path / "space")])
    app_py = (tmp_path / "space" / "app.py").read_text()
    compile(app_py, "app.py", "exec")
    assert "GRADIO_ANALYTICS_ENABLED" in app_py and "build_demo" in app_py and "load_studio" in app_py
    assert (tmp_path / "space" / "requirements.txt").read_text().strip() == "charforge[gradio]"
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:  # never overwrites
        main(["gradio", "--write-app", str(tmp_path / "space")])
    assert e.value.code == 2 and "app.py already exists" in capsys.readouterr().err


def test_cli_refuses_a_public_host_and_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["gradio", "--host", "0.0.0.0"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--host 0.0.0.0: not a loopback address" in err and "--allow-remote" in err
    main(["gradio", "--help"])
    words = " ".join(capsys.readouterr().out.replace("│", " ").split())
    for option in ("--host", "--port", "--share-off", "--write-app", "--model", "--f2p"):
        assert option in words


def test_cli_without_gradio_says_which_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(SystemExit) as e:
        main(["gradio", "--port", "7999"])
    assert e.value.code == 2 and "pip install 'charforge[gradio]'" in capsys.readouterr().err


def test_the_demo_never_reaches_training_code():
    """The architecture rule for inference code, applied to the demo module (a front end like serve)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "architecture"))
    import test_imports as arch

    graph = arch._graph()
    offenders = [o for o in arch._training_reach(graph) if "gradio_app" in o]
    assert not offenders
    # the checker sees the module: planting an import of training code is caught
    reach = {m for m in graph if "gradio_app" in m}
    assert reach == {"charforge.gradio_app", "charforge.cli.gradio_app"}
    planted = {**graph, "charforge.serve.gradio_planted": {"charforge.train.loop"}}
    planted["charforge.serve.engine"] = set(planted["charforge.serve.engine"]) | {
        "charforge.serve.gradio_planted"
    }
    assert any("charforge.serve.engine reaches charforge.train" in o for o in arch._training_reach(planted))
    deps = graph["charforge.gradio_app"]
    assert not any(d.startswith("charforge.train") for d in deps)


# ---- the page in a browser ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", None)


@pytest.fixture(scope="module")
def lookups():
    """Every host name this process resolves while the demo runs (gradio's server lives in this process)."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def spy(host, *args, **kwargs):
        seen.append(host)
        return real(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", spy)
        yield seen


@pytest.fixture(scope="module")
def live(studio, tmp_path_factory, lookups):
    from charforge.gradio_app import build_demo, launch

    blocks, theme = build_demo(studio, out_dir=tmp_path_factory.mktemp("gradio-out"))
    _, url = launch(blocks, theme, host="127.0.0.1", port=_free_port(), block=False)
    try:
        yield url.rstrip("/")
    finally:
        blocks.close()


@pytest.mark.timeout(300)
@pytest.mark.browser
@needs_gradio
@needs_chromium
def test_page_generates_an_image_in_the_browser(live, browser, lookups, tmp_path):
    assert live.startswith("http://127.0.0.1:")
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live + "/")
    page.fill("#tags textarea", "blonde hair, smile, -hat")
    page.fill("#seed input", "21")
    page.locator("#count input[type=number]").fill("2")
    page.locator("#count input[type=number]").press("Enter")
    page.click("#generate")
    page.wait_for_function(
        "[...document.querySelectorAll('#gallery img')].filter(i => i.complete && i.naturalWidth > 0).length >= 2"
    )
    assert "seeds 21..22" in page.inner_text("#info")
    src = page.eval_on_selector("#gallery img", "i => i.src")
    png = page.request.get(src).body()  # the file the page shows: charforge's PNG, metadata intact
    meta = read_png_metadata(png)
    assert (
        meta["seed"] in (21, 22)
        and "blonde hair" in meta["tags"]
        and meta["generator"] == "charforge gradio demo"
    )
    page.screenshot(path=str(tmp_path / "gradio_generate.png"), full_page=True)
    # a mistake shows the library's message in the page
    page.fill("#tags textarea", "purple unicorn")
    page.click("#generate")
    page.wait_for_selector("text=unknown tag", timeout=30_000)
    external = [u for u in urls if not u.startswith(("http://127.0.0.1:", "data:", "blob:"))]
    assert not external, f"the page reached beyond loopback: {external[:5]}"
    ctx.close()
    assert not [e for e in errors if "unknown tag" not in e], errors
    # the server side never looked up a host beyond loopback (no analytics, update check or share tunnel)
    assert lookups, "the spy saw no lookups at all: it is not wired in"
    assert not [h for h in lookups if h not in LOOPBACK_NAMES], lookups
