"""timm: and torchvision: sources without network: the cache is read without touching it, an unreachable server is
said at once in one message (no retries), and a tag timm never published is refused with the ones it did."""

from __future__ import annotations

import logging
import socket
import time
from types import SimpleNamespace

import pytest
from huggingface_hub import constants

import botnet
from botnet.models import WeightsSourceError
from botnet.models.weights import hub

TAG = "botnet26t_256.c1_in1k"
SHA = "0123456789abcdef0123456789abcdef01234567"
RETRY_LINES = ("Retrying", "thrown while requesting", "Retry ")


@pytest.fixture(params=["refused", "silent"])
def dead_server(request):
    """The URL of a local server that cannot answer: a port that refuses connections, or one that accepts them and
    never says a word (a request there ends only by its timeout)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    if request.param == "silent":
        sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def online(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE and BOTNET_OFFLINE unset, empty hub and torch.hub caches, short timeouts."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "BOTNET_OFFLINE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)  # as HF_HUB_ETAG_TIMEOUT=1 in the environment
    monkeypatch.setattr(hub, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def _hub_at(monkeypatch, endpoint: str) -> None:
    """Point huggingface_hub at ``endpoint``, as HF_ENDPOINT does when set before it is imported."""
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")


def _no_retry_lines(capfd, caplog) -> None:
    text = capfd.readouterr().err + caplog.text
    assert not any(line in text for line in RETRY_LINES), text


def test_unreachable_hub_is_said_at_once(online, monkeypatch, dead_server, capfd, caplog):
    _hub_at(monkeypatch, dead_server)
    caplog.set_level(logging.INFO)
    start = time.perf_counter()
    with pytest.raises(WeightsSourceError) as err:
        botnet.create_model("botnet26t_256", pretrained=f"timm:{TAG}")
    assert time.perf_counter() - start < 15
    message, repo = str(err.value), online / "hub" / f"models--timm--{TAG}"
    assert message.startswith(f"cannot get timm:{TAG}: the Hugging Face Hub ({dead_server}) cannot be reached (")
    assert (
        f"not in the hub cache {online / 'hub'}" in message and f"`hf download timm/{TAG} model.safetensors`" in message
    )
    assert (
        f"{repo / 'snapshots' / '<commit>' / 'model.safetensors'}" in message and str(repo / "refs" / "main") in message
    )
    assert "give the downloaded file's path as the source" in message and "HF_HUB_OFFLINE=1" in message
    _no_retry_lines(capfd, caplog)
    assert not (online / "hub").exists()  # nothing written


@pytest.mark.parametrize("filename", ["model.safetensors", "pytorch_model.bin"])
def test_hub_cache_is_read_without_the_network(online, monkeypatch, dead_server, filename, capfd, caplog):
    snapshot = online / "hub" / f"models--timm--{TAG}" / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(SHA)
    (snapshot / filename).write_bytes(b"weights")
    _hub_at(monkeypatch, dead_server)
    start = time.perf_counter()
    assert hub.fetch_timm(TAG) == snapshot / filename
    assert time.perf_counter() - start < 0.5  # no connection was tried: the silent server would take a second
    _no_retry_lines(capfd, caplog)


@pytest.mark.parametrize("offline", [False, True])
def test_unpublished_tag_lists_the_published_sources_without_a_url(online, monkeypatch, offline):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    with pytest.raises(WeightsSourceError) as err:
        botnet.create_model("botnet26t_256", pretrained="timm:botnet26t_256.nosuchtag")
    assert str(err.value) == (
        "timm:botnet26t_256.nosuchtag: timm publishes no weights tagged 'nosuchtag' for botnet26t_256; "
        "published tags of botnet26t_256: c1_in1k (the source timm:botnet26t_256.c1_in1k)"
    )
    with pytest.raises(WeightsSourceError) as err:  # one of timm's networks without published weights
        hub.fetch_timm("botnet50ts_256.a1_in1k")
    message = str(err.value)
    assert "timm publishes no weights for botnet50ts_256" in message and "://" not in message
    assert "timm:botnet26t_256.c1_in1k, timm:sebotnet33ts_256.a1h_in1k, timm:eca_botnext26ts_256.c1_in1k" in message


def test_unreachable_torchvision_server_is_said_at_once(online, monkeypatch, dead_server, capfd, caplog):
    url = f"{dead_server}/models/resnet50-11ad3fa6.pth"
    monkeypatch.setattr(hub, "torchvision_weights", lambda spec, source: SimpleNamespace(url=url))
    start = time.perf_counter()
    with pytest.raises(WeightsSourceError) as err:
        hub.fetch_torchvision("ResNet50_Weights.IMAGENET1K_V2")
    assert time.perf_counter() - start < 15
    message = str(err.value)
    assert message.startswith(f"cannot get torchvision:ResNet50_Weights.IMAGENET1K_V2: {dead_server[7:]} cannot be")
    assert str(online / "torch" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in message
    assert f"download {url} on a machine with network" in message and "BOTNET_OFFLINE=1" in message
    assert not (online / "torch").exists()
    _no_retry_lines(capfd, caplog)
