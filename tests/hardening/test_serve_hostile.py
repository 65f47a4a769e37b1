"""The studio under hostile requests (issue #19, Studio): bounded /npc work, strict types, Host and Origin
checks on a loopback server, security headers everywhere, bearer auth only when set, token hygiene and a
body-read timeout against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_fakes import LOCAL, FakeF2P, LiveServer, fake_fit, make_bundle, png_of  # noqa: E402

from charforge.errors import UserError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class SlowNet(torch.nn.Module):
    """The tiny generator, `delay_s` slower per batch; counts its forward passes (`calls`)."""

    def __init__(self, net, delay_s: float):
        super().__init__()
        self.net, self.delay_s, self.calls = net, delay_s, 0

    def forward(self, z, tags):
        self.calls += 1
        time.sleep(self.delay_s)
        return self.net(z, tags)


def app_with(bundle=None, **settings):
    from charforge.serve.app import ServeSettings, create_app

    f2p = FakeF2P()
    calls = []

    def counting_fit(*a, **k):
        calls.append(1)
        return fake_fit(*a, **k)

    app = create_app(
        ServeSettings(**settings),
        generators={"default": bundle or make_bundle()},
        f2p=f2p,
        creator=f2p.creator,
        fitter=counting_fit,
    )
    app.state.fit_calls = calls
    return app


def slow_bundle(delay_s: float):
    b = make_bundle()
    return dataclasses.replace(b, net=SlowNet(b.net, delay_s))


def client(app, base_url=LOCAL):
    from fastapi.testclient import TestClient

    return TestClient(app, base_url=base_url)


# ---------------------------------------------------------------- /npc: strict, bounded, cancellable
@pytest.mark.parametrize(
    "body, field",
    [
        ({"min_distance": False}, "min_distance"),
        ({"min_distance": "0.1"}, "min_distance"),
        ({"min_distance": True}, "min_distance"),
        ({"count": True}, "count"),
        ({"count": "12"}, "count"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_npc_types_are_strict(body, field):
    r = client(app_with()).post("/api/v1/npc", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_npc_accepts_an_integer_min_distance():
    r = client(app_with()).post("/api/v1/npc", json={"count": 2, "min_distance": 0})
    assert r.status_code == 200, r.text


def _manifest(r):
    import io
    import json
    import zipfile

    return json.loads(zipfile.ZipFile(io.BytesIO(r.content)).read("manifest.json"))


def test_npc_candidate_budget_returns_what_it_found_and_says_what_to_lower():
    c = client(app_with(npc_max_candidates=128))
    t0 = time.monotonic()
    r = c.post("/api/v1/npc", json={"count": 500, "min_distance": 0.25})
    assert time.monotonic() - t0 < 30
    assert r.status_code == 200, r.text
    assert r.headers["x-charforge-complete"] == "false"
    m = _manifest(r)
    assert 0 < m["count"] < 500 and m["requested"] == 500 and m["complete"] is False
    assert "count" in m["note"] and "min_distance" in m["note"] and "128" in m["note"]
    # nothing distinct at all is still an error naming the field
    r = c.post("/api/v1/npc", json={"count": 3, "min_distance": 0.25, "seed": 1})
    assert r.status_code in (200, 422)


def test_npc_time_budget_returns_what_it_found_in_time():
    bundle = slow_bundle(0.2)
    c = client(app_with(bundle, npc_time_s=1.0, npc_max_candidates=100_000))
    t0 = time.monotonic()
    r = c.post("/api/v1/npc", json={"count": 500, "min_distance": 0.25})
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    m = _manifest(r)
    assert 0 < m["count"] < 500 and "budget of 1 s per request ran out" in m["note"]
    assert took < 1.0 + 3.0  # the budget plus at most a batch or so, not the 2000-candidate run
    assert bundle.net.calls < 20


def _raw_post(port: int, path: str, body: bytes, timeout_s: float) -> None:
    """POST and hang up after `timeout_s` without reading the answer (a client whose own timeout fires)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            s.recv(1)
        except TimeoutError:
            pass


def _wait_idle(server, timeout_s: float) -> float:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if httpx.get(f"{server.url}/api/v1/health", timeout=5).json()["active"] == 0:
            return time.monotonic() - t0
        time.sleep(0.1)
    pytest.fail(f"the abandoned job still holds its worker {timeout_s} s later")


def test_npc_work_stops_when_the_client_disconnects():
    bundle = slow_bundle(0.15)
    app = app_with(bundle, npc_time_s=120.0, npc_max_candidates=100_000, timeout_s=120.0)
    with LiveServer(app) as server:
        _raw_post(server.port, "/api/v1/npc", b'{"count": 500, "min_distance": 0.25}', timeout_s=0.8)
        assert bundle.net.calls >= 1  # it had started
        _wait_idle(server, timeout_s=5.0)  # well before the 120 s budget: the work was cancelled
        calls = bundle.net.calls
        time.sleep(0.5)
        assert bundle.net.calls == calls


def test_npc_work_stops_after_the_request_timeout():
    import httpx

    bundle = slow_bundle(0.15)
    app = app_with(bundle, npc_time_s=120.0, npc_max_candidates=100_000, timeout_s=1.0)
    with LiveServer(app) as server:
        r = httpx.post(f"{server.url}/api/v1/npc", json={"count": 500, "min_distance": 0.25}, timeout=30)
        assert r.status_code == 504 and "fewer" in r.json()["detail"]
        _wait_idle(server, timeout_s=5.0)


# ---------------------------------------------------------------- Host and Origin on a loopback server
@pytest.mark.parametrize(
    "base, ok",
    [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://LOCALHOST", True),
        ("http://[::1]:8000", True),
        ("http://127.0.0.2:9", True),
        ("http://evil.example:8000", False),
        ("http://127.0.0.1.evil.example", False),
        ("http://localhost.evil.example:8000", False),
        ("http://testserver", False),
    ],
)
def test_loopback_server_answers_loopback_host_names_only(base, ok):
    c = client(app_with(), base_url=base)
    for path in ("/api/v1/health", "/", "/static/app.js", "/openapi.json"):
        r = c.get(path)
        assert (r.status_code == 200) is ok, (path, r.status_code)
        if not ok:
            assert r.status_code == 403 and "DNS rebinding" in r.json()["detail"]


def test_non_loopback_server_with_a_token_answers_any_host():
    token = "a-long-enough-test-token"
    c = client(app_with(host="0.0.0.0", token=token), base_url="http://studio.lan:8000")
    r = c.get("/api/v1/health", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "headers, ok",
    [
        ({}, True),  # curl, scripts
        ({"Origin": "http://127.0.0.1:8000"}, True),  # the studio page itself
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": "http://localhost:8000"}, False),  # another origin, though also this computer
        ({"Origin": "http://127.0.0.1:3000"}, False),  # another local web app
        ({"Origin": "null"}, False),  # sandboxed frames, file:// pages
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Sec-Fetch-Site": "same-origin"}, True),
    ],
)
def test_cross_origin_upload_is_refused_before_any_work(headers, ok):
    app = app_with()
    c = client(app)
    r = c.post("/api/v1/fit", files={"file": ("a.png", png_of(), "image/png")}, headers=headers)
    if ok:
        assert r.status_code == 200, r.text
        assert app.state.fit_calls
    else:
        assert r.status_code == 403 and "cross-origin" in r.json()["detail"], r.text
        assert not app.state.fit_calls  # refused before the upload was read or fitted
    g = c.post("/api/v1/generate", json={"count": 1}, headers=headers)
    assert g.status_code == (200 if ok else 403)


def test_cross_origin_reads_are_not_state_changing():
    r = client(app_with()).get("/api/v1/health", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200  # the browser itself withholds the answer (no CORS headers)
    assert "access-control-allow-origin" not in r.headers


# ---------------------------------------------------------------- headers, OpenAPI, tokens
def test_security_headers_on_every_response():
    from charforge.serve.guards import DOCS_CSP, PAGE_CSP

    c = client(app_with())
    for path in ("/", "/static/app.js", "/static/app.css", "/api/v1/health", "/openapi.json", "/nope"):
        r = c.get(path)
        assert r.headers["content-security-policy"] == PAGE_CSP, path
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    docs = c.get("/docs")
    assert docs.headers["content-security-policy"] == DOCS_CSP
    assert "'unsafe-eval'" not in DOCS_CSP and "script-src 'self';" in DOCS_CSP
    assert "<script>" not in docs.text  # no inline script: the CSP allows none
    refused = client(app_with(), base_url="http://evil.example").get("/")
    assert refused.status_code == 403 and refused.headers["content-security-policy"] == PAGE_CSP


def test_openapi_declares_bearer_auth_only_with_a_token():
    doc = client(app_with()).get("/openapi.json").json()
    assert "securitySchemes" not in doc.get("components", {})
    ops = [op for item in doc["paths"].values() for op in item.values()]
    assert ops and not any("security" in op or "401" in op.get("responses", {}) for op in ops)
    token = "a-long-enough-test-token"
    c = client(app_with(token=token))
    doc = c.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    ops = [op for item in doc["paths"].values() for op in item.values()]
    assert all("security" in op and "401" in op["responses"] for op in ops)


@pytest.mark.parametrize(
    "token, words",
    [
        (" " * 9, "empty"),
        ("", "empty"),
        ("short-token", "16"),
        ("a long token with spaces", "spaces"),
        ("  padded-long-enough-token  ", "spaces"),
        ("länger-als-sechzehn-zeichen", "ASCII"),
    ],
)
def test_blank_or_short_tokens_are_refused(token, words):
    from charforge.serve.server import check_bind, check_token

    with pytest.raises(UserError, match=words):
        check_token(token)
    with pytest.raises(UserError, match=words):
        check_bind("127.0.0.1", token)  # on loopback too: a token that is set must protect


@pytest.fixture
def started(monkeypatch):
    """Run `charforge serve` up to the point where it would start uvicorn; record the settings instead."""
    import charforge.serve.server as server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda settings, *a, **k: seen.setdefault("settings", settings))
    monkeypatch.delenv("CHARFORGE_TOKEN", raising=False)
    return seen


def run_cli(args, capsys) -> tuple[int, str]:
    from charforge.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def test_cli_refuses_a_blank_token_with_a_clear_message(started, capsys, monkeypatch):
    code, err = run_cli(["serve", "--token", " " * 9], capsys)
    assert code == 2 and "--token" in err and "empty" in err and "Traceback" not in err
    monkeypatch.setenv("CHARFORGE_TOKEN", "   ")
    code, err = run_cli(["serve"], capsys)
    assert code == 2 and "CHARFORGE_TOKEN" in err and "empty" in err
    assert "settings" not in started


def test_cli_takes_the_token_from_the_environment_or_a_file(started, capsys, monkeypatch, tmp_path):
    secret = "env-token-0123456789abcdef"
    monkeypatch.setenv("CHARFORGE_TOKEN", secret)
    code, err = run_cli(["serve", "--host", "0.0.0.0"], capsys)
    assert code == 0, err
    assert started.pop("settings").token == secret
    monkeypatch.delenv("CHARFORGE_TOKEN")
    f = tmp_path / "token"
    f.write_text("file-token-0123456789abcdef\n")
    code, err = run_cli(["serve", "--token-file", str(f)], capsys)
    assert code == 0, err
    assert started.pop("settings").token == "file-token-0123456789abcdef"
    code, err = run_cli(["serve", "--token-file", str(tmp_path / "missing")], capsys)
    assert code == 2 and "no such file" in err
    (tmp_path / "blank").write_text("\n\n")
    code, err = run_cli(["serve", "--token-file", str(tmp_path / "blank")], capsys)
    assert code == 2 and "empty" in err
    code, err = run_cli(["serve", "--token-file", str(f), "--token", "x" * 20], capsys)
    assert code == 2 and "one way" in err


def test_serve_help_documents_the_token_sources():
    from typer.testing import CliRunner

    from charforge.cli import app

    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert "CHARFORGE_TOKEN" in out and "--token-file" in out and "ps" in out


def test_fit_modes_come_from_the_fitter():
    import importlib

    from charforge.serve import app

    assert app.FIT_MODES is importlib.import_module("charforge.f2p.fit").MODES


# ---------------------------------------------------------------- a body that never arrives
@pytest.mark.parametrize("path", ["/api/v1/generate", "/api/v1/fit"])
def test_a_short_body_gets_408_and_the_connection_closes(path):
    app = app_with(body_timeout_s=1.0)
    with LiveServer(app) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=6) as s:
            ctype = "application/json" if path.endswith("generate") else "multipart/form-data; boundary=xx"
            s.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: {ctype}\r\n"
                "Content-Length: 5000\r\n\r\n{".encode()
            )
            t0 = time.monotonic()
            data = b""
            while True:  # read until the server closes the connection (or the 6 s socket timeout)
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            took = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"Content-Length declared" in data
    assert 0.5 < took < 5.0
    assert not app.state.fit_calls


def test_a_slow_drip_body_is_cut_off_too():
    """One byte every 0.3 s keeps each read short, but the whole body must still arrive within the budget."""
    app = app_with(body_timeout_s=1.0)
    with LiveServer(app) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=6) as s:
            s.sendall(
                f"POST /api/v1/generate HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                "Content-Type: application/json\r\nContent-Length: 400\r\n\r\n".encode()
            )
            got = b""
            stop = threading.Event()

            def drip():
                for _ in range(20):
                    if stop.is_set():
                        return
                    try:
                        s.sendall(b" ")
                    except OSError:
                        return
                    time.sleep(0.3)

            t = threading.Thread(target=drip, daemon=True)
            t.start()
            t0 = time.monotonic()
            try:
                got = s.recv(65536)
            finally:
                stop.set()
                t.join(timeout=10)
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert time.monotonic() - t0 < 4.0
