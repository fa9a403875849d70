"""The paper's parameter and multiply-add figures, recomputed from our models.

The targets are written here as literals (copied from the paper / the official counting script), independently of
``botnet.models.paper.PAPER_ROWS``.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import botnet
from botnet.models import PAPER_ROWS, paper_table

# (model, input size) -> (params in millions with the paper's convention or None, GMACs)
TARGETS = {
    ("resnet50", 1024): (25.5, 85.4),
    ("botnet50", 1024): (20.8, 102.99),
    ("resnet50", 224): (None, 4.09),
    ("botnet50", 224): (None, 4.02),
    ("botnet_s1_50", 224): (None, 5.42),
    ("botnet_t3", 224): (33.5, 7.25),
    ("botnet_t4", 224): (54.7, 10.96),
    ("botnet_t5", 256): (75.1, 19.30),
    ("botnet_t6", 320): (53.9, 23.32),
    ("botnet_t7", 384): (75.1, 45.79),
}
PARAMS_TOL_M = 0.1
GMACS_REL_TOL = 0.01


@pytest.fixture(scope="module")
def entries():
    """Our counts for every row of PAPER_ROWS, keyed like TARGETS."""
    return {(e.row.model, e.row.size): e for e in paper_table()}


def test_rows_cover_the_targets():
    assert {(r.model, r.size) for r in PAPER_ROWS} == set(TARGETS)
    assert len(PAPER_ROWS) == len(TARGETS)


@pytest.mark.parametrize("key", list(TARGETS), ids=[f"{m}@{s}" for m, s in TARGETS])
def test_row_matches_the_paper(entries, key):
    params_m, gmacs = TARGETS[key]
    entry = entries[key]
    assert entry.row.params_m == params_m  # the row in src carries the published figures
    assert entry.row.gmacs == pytest.approx(gmacs)
    if params_m is not None:
        assert abs(entry.params_paper_m - params_m) <= PARAMS_TOL_M, entry
    assert abs(entry.gmacs / gmacs - 1) <= GMACS_REL_TOL, entry
    assert entry.params_ok and entry.gmacs_ok
    assert entry.params_numel_m > entry.params_paper_m  # BN, biases and position tables come on top


def test_resnet50_params_equal_torchvision():
    with torch.device("meta"):
        ours = botnet.create_model("resnet50")
        theirs = torchvision.models.resnet50(weights=None)
    expected = sum(p.numel() for p in theirs.parameters())
    assert expected == 25_557_032
    assert botnet.count_params(ours) == expected


def test_resnet50_macs_equal_torchvision():
    ours = botnet.create_model("resnet50")
    theirs = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, 3, 224, 224))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    assert botnet.count_macs(ours, (224, 224)) == flops // 2


def test_count_params_conventions():
    with torch.device("meta"):
        model = botnet.create_model("botnet50")
    numel = botnet.count_params(model)
    paper = botnet.count_params(model, convention="paper")
    assert numel == sum(p.numel() for p in model.parameters())
    assert paper < numel
    with pytest.raises(ValueError, match="convention"):
        botnet.count_params(model, convention="flops")
