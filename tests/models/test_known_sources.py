"""The torch-free table of known sources agrees with torchvision's own weights metadata and with timm's tags."""

from __future__ import annotations

import torchvision

from botnet.models import known_sources
from botnet.models.weights import TIMM_TAGS, torchvision_preprocessing


def test_torchvision_rows_match_torchvision_metadata():
    rows = [r for r in known_sources() if r.source.startswith("torchvision:")]
    assert len(rows) == 12  # resnet and botnet of depth 50, 101, 152, V1 and V2 each
    for r in rows:
        weights = torchvision.models.get_weight(r.source.removeprefix("torchvision:"))
        assert r.top1 == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"], r.source
        pre = torchvision_preprocessing(weights)
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in r.preprocessing.items()} == pre, r.source
        assert r.input_size == pre["input_size"][-1]


def test_every_published_timm_tag_is_listed_once():
    import timm

    timm_rows = [r.source for r in known_sources() if r.source.startswith("timm:")]
    published = [f"timm:{tag}" for network in TIMM_TAGS for tag in timm.list_pretrained(f"{network}.*")]
    assert sorted(timm_rows) == sorted(published)  # what timm itself lists for each of our timm networks
    assert [r.model for r in known_sources("sebotnet33ts_256")] == ["sebotnet33ts_256"]
    assert known_sources("botnet_tiny") == []
