"""The paper's model table (its section 3 and tables 1 and 13), recomputed from our models.

Each row names a registered model at the paper's input size with the published figures; :func:`paper_table`
counts ours beside them. Tagged sources: "paper" = stated in the paper, "count" = the analytic count of the
official counting script.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .complexity import count_macs, count_params
from .factory import create_model


@dataclass(frozen=True)
class PaperRow:
    label: str
    model: str
    size: int
    params_m: float | None  # paper convention, millions
    gmacs: float | None
    top1: float | None = None
    source: str = "paper"


PAPER_ROWS = (
    PaperRow("R50", "resnet50", 1024, 25.5, 85.4, source="paper/count"),
    PaperRow("BoT50", "botnet50", 1024, 20.8, 102.99, source="paper/count"),
    PaperRow("R50", "resnet50", 224, None, 4.09, source="count"),
    PaperRow("BoT50", "botnet50", 224, None, 4.02, source="count"),
    PaperRow("BoTNet-S1-50", "botnet_s1_50", 224, None, 5.42, source="count"),
    PaperRow("T3 (S1-59)", "botnet_t3", 224, 33.5, 7.25, 81.7, source="paper/count"),
    PaperRow("T4 (S1-110)", "botnet_t4", 224, 54.7, 10.96, 82.8, source="paper/count"),
    PaperRow("T5 (S1-128)", "botnet_t5", 256, 75.1, 19.30, 83.5, source="paper/count"),
    PaperRow("T6 (S1-77)", "botnet_t6", 320, 53.9, 23.32, 84.0, source="paper/count"),
    PaperRow("T7 (S1-128)", "botnet_t7", 384, 75.1, 45.79, 84.7, source="paper/count"),
)

PARAMS_TOLERANCE_M = 0.1  # millions
GMACS_TOLERANCE = 0.01  # relative


@dataclass(frozen=True)
class TableEntry:
    row: PaperRow
    params_numel_m: float
    params_paper_m: float
    gmacs: float

    @property
    def params_ok(self) -> bool:
        return self.row.params_m is None or abs(self.params_paper_m - self.row.params_m) <= PARAMS_TOLERANCE_M

    @property
    def gmacs_ok(self) -> bool:
        return self.row.gmacs is None or abs(self.gmacs / self.row.gmacs - 1) <= GMACS_TOLERANCE


def measure_row(row: PaperRow) -> TableEntry:
    """Count one row on the meta device (shapes only, no arithmetic, no memory)."""
    with torch.device("meta"):
        model = create_model(row.model, img_size=row.size)
    return TableEntry(
        row=row,
        params_numel_m=count_params(model) / 1e6,
        params_paper_m=count_params(model, convention="paper") / 1e6,
        gmacs=count_macs(model, (row.size, row.size)) / 1e9,
    )


def paper_table(rows: tuple[PaperRow, ...] = PAPER_ROWS) -> list[TableEntry]:
    """Our counts for every row of the paper's table."""
    return [measure_row(row) for row in rows]
