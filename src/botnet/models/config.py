"""Network description as data: one frozen dataclass covers every ResNet / BoTNet of the paper (section 3-4)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from ..layers.choices import ACTIVATION_NAMES, BACKENDS, EXTEND_MODES, POS_ENCODINGS

STAGES = (2, 3, 4, 5)  # the paper's c2..c5, built as layer1..layer4


@dataclass(frozen=True)
class BoTNetConfig:
    """Everything that defines a network. Geometry of the input is not part of it, except ``img_size``.

    Attributes:
        depths: blocks per stage c2..c5 (R50: (3, 4, 6, 3)).
        widths: bottleneck widths per stage; block outputs are 4x these.
        attn_stages: stages whose blocks are all BoT blocks, by the paper's names 2..5 (c5 only: ``(5,)``;
            ``()`` is a plain ResNet; ``(4, 5)`` and ``(4,)`` are the paper's replacement ablations).
        c5_stride: stride of the last stage: 2 (BoT50, total stride 32) or 1 (BoTNet-S1, total stride 16).
        se_ratio: squeeze-excitation width as a fraction of each block's output channels (0 disables).
        se_in_attn: also put SE in the BoT blocks. The S1/T papers' parameter counts include it; the paper's
            text says conv blocks only (set False for that reading).
        act: "relu" (BoT50-style) or "silu" (S1/T family).
        heads: attention heads of every MHSA2d.
        pos_enc: "relative", "absolute" or "none".
        content_content: keep the ``q k^T`` logits (False with a position encoding: ``q r^T`` only).
        content_position: keep the ``q r^T`` logits.
        pos_extend: relative tables on maps larger than their reference: "clip" or "interpolate".
        attn_backend: how every MHSA2d computes attention ("auto", "math", "sdpa", "chunked", "flex"); same numbers,
            different speed and memory (see :class:`~botnet.layers.MHSA2d`).
        non_local: (stage, block index) pairs after which a Non-local block is inserted, e.g. ``((4, 5),)``.
        img_size: reference input size (int or (H, W)); sizes the position tables, which are exact at the
            feature maps this input produces. Any other input size runs too. Also the preset's default input size.
        in_chans: input channels.
        num_classes: classifier outputs; 0 builds a headless backbone.
        drop_rate: dropout before the classifier.
        zero_init_last: start every block's last BN gamma at zero (the official BoT block does).
    """

    depths: tuple[int, int, int, int] = (3, 4, 6, 3)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    attn_stages: tuple[int, ...] = (5,)
    c5_stride: int = 2
    se_ratio: float = 0.0
    se_in_attn: bool = True
    act: str = "relu"
    heads: int = 4
    pos_enc: str = "relative"
    content_content: bool = True
    content_position: bool = True
    pos_extend: str = "clip"
    attn_backend: str = "auto"
    non_local: tuple[tuple[int, int], ...] = ()
    img_size: int | tuple[int, int] = 224
    in_chans: int = 3
    num_classes: int = 1000
    drop_rate: float = 0.0
    zero_init_last: bool = True

    def __post_init__(self) -> None:
        # Normalise lists from YAML/JSON to tuples so configs stay hashable and comparable.
        for name in ("depths", "widths", "attn_stages"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        try:
            object.__setattr__(self, "non_local", tuple(tuple(p) for p in self.non_local))
        except TypeError:
            raise ValueError(
                f"invalid BoTNetConfig: non_local must be (stage, block index) pairs such as ((4, 5),), "
                f"got {self.non_local!r}"
            ) from None
        if not isinstance(self.img_size, int):
            object.__setattr__(self, "img_size", tuple(self.img_size))
        self._validate()

    def _validate(self) -> None:
        def fail(msg: str) -> None:
            raise ValueError(f"invalid BoTNetConfig: {msg}")

        if len(self.depths) != 4 or any(not isinstance(d, int) or d < 1 for d in self.depths):
            fail(f"depths must be 4 positive integers (c2..c5), got {self.depths}")
        if len(self.widths) != 4 or any(not isinstance(w, int) or w < 1 for w in self.widths):
            fail(f"widths must be 4 positive integers, got {self.widths}")
        if any(s not in STAGES for s in self.attn_stages):
            fail(f"attn_stages must name stages among {STAGES} (the paper's c2..c5), got {self.attn_stages}")
        if self.c5_stride not in (1, 2):
            fail(f"c5_stride must be 1 or 2, got {self.c5_stride}")
        if not 0.0 <= self.se_ratio < 1.0:
            fail(f"se_ratio must be in [0, 1), got {self.se_ratio}")
        if self.act not in ACTIVATION_NAMES:
            fail(f"act must be one of {sorted(ACTIVATION_NAMES)}, got {self.act!r}")
        if self.pos_enc not in POS_ENCODINGS:
            fail(f"pos_enc must be one of {POS_ENCODINGS}, got {self.pos_enc!r}")
        if self.pos_extend not in EXTEND_MODES:
            fail(f"pos_extend must be one of {EXTEND_MODES}, got {self.pos_extend!r}")
        if self.attn_backend not in BACKENDS:
            fail(f"attn_backend must be one of {BACKENDS}, got {self.attn_backend!r}")
        for stage in self.attn_stages:
            width = self.widths[stage - 2]
            if width % self.heads != 0:
                fail(f"heads={self.heads} must divide the width {width} of attention stage c{stage}")
        for pair in self.non_local:
            if len(pair) != 2 or pair[0] not in STAGES or not 0 <= pair[1] < self.depths[pair[0] - 2]:
                fail(f"non_local entries are (stage in {STAGES}, block index < that stage's depth), got {pair}")
            if pair[0] in self.attn_stages:
                fail(f"non_local block {pair} sits in attention stage c{pair[0]}; use a convolutional stage")
        size = (self.img_size,) * 2 if isinstance(self.img_size, int) else self.img_size
        if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
            fail(f"img_size must be a positive int or (H, W), got {self.img_size}")
        if self.in_chans < 1 or self.num_classes < 0:
            fail(f"in_chans must be >= 1 and num_classes >= 0, got {self.in_chans} and {self.num_classes}")
        if not 0.0 <= self.drop_rate < 1.0:
            fail(f"drop_rate must be in [0, 1), got {self.drop_rate}")

    @property
    def input_size(self) -> tuple[int, int]:
        """Reference input (H, W)."""
        return (self.img_size, self.img_size) if isinstance(self.img_size, int) else self.img_size

    @property
    def total_stride(self) -> int:
        return 32 if self.c5_stride == 2 else 16

    def replace(self, **overrides: object) -> BoTNetConfig:
        """A copy with fields replaced; an unknown field is a TypeError that lists the valid ones."""
        valid = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise TypeError(f"unknown config field(s) {unknown}; valid fields are: {', '.join(sorted(valid))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        """Plain-JSON form (tuples become lists)."""
        return dataclasses.asdict(self)
