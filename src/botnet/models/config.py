"""Network description as data: one frozen dataclass covers every ResNet / BoTNet of the paper (section 3-4)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from ..layers.choices import ACTIVATION_NAMES, BACKENDS, EXTEND_MODES, POS_ENCODINGS

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation of ImageNet-trained weights (torchvision's, timm's)
IMAGENET_STD = (0.229, 0.224, 0.225)

STAGES = (2, 3, 4, 5)  # the paper's c2..c5, built as layer1..layer4
STEMS = ("7x7", "tiered")
CHANNEL_ATTNS = ("se", "se_mid", "eca")


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
        attn_blocks: (stage, block index) pairs that are BoT blocks besides the stages of ``attn_stages``; a negative
            index counts from the stage's end: ``((4, -1),)`` is the last block of c4 (timm's ``botnet26t``).
        out_widths: block output channels per stage; ``()`` is 4x ``widths`` (the paper). timm's ``sebotnet33ts``
            ends with 1536 channels from a 512 bottleneck (its "bottleneck ratio" 1/3).
        stem: "7x7" (one 7x7/2 conv, torchvision's) or "tiered" (three 3x3 convs of 3/8, 1/2 and 1x the stem width
            ``widths[0]``, the first of stride 2, as ``conv1``, followed by ``bn1``/``relu``).
        stem_pool: the 3x3/2 max pool after the stem. A tiered stem without it strides its third conv instead.
        group_width: channels per group of the 3x3 convs (ResNeXt-style grouped convs); 0 is ungrouped.
        channel_attn: where SE sits and what kind of gate: "se" (after the last BN, ``se_ratio`` x output channels,
            the block's activation: the S1/T models), "se_mid" (after the 3x3 conv, ``se_ratio`` x bottleneck width
            rounded to a multiple of 8, ReLU inside: timm's ByobNet) or "eca" (ECA after the 3x3 conv; ``se_ratio``
            must stay 0). "se_mid" and "eca" need ``se_in_attn=False`` (BoT blocks have no 3x3 conv).
        attn_shortcut_act: the activation after the projection shortcut of BoT blocks (official: yes; timm: no).
        dim_head_qk: per-head width of queries, keys and position tables; 0 is the value width (timm's
            ``eca_botnext26ts`` uses 16).
        final_conv: channels of a 1x1 conv + BN + act between c5 and the pooled head (0: none; 1280 in timm's
            ``sebotnet33ts``).
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
    attn_blocks: tuple[tuple[int, int], ...] = ()
    out_widths: tuple[int, ...] = ()
    stem: str = "7x7"
    stem_pool: bool = True
    group_width: int = 0
    channel_attn: str = "se"
    attn_shortcut_act: bool = True
    dim_head_qk: int = 0
    final_conv: int = 0

    def __post_init__(self) -> None:
        # Normalise lists from YAML/JSON to tuples so configs stay hashable and comparable.
        for name in ("depths", "widths", "attn_stages", "out_widths"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("non_local", "attn_blocks"):
            try:
                object.__setattr__(self, name, tuple(tuple(p) for p in getattr(self, name)))
            except TypeError:
                raise ValueError(
                    f"invalid BoTNetConfig: {name} must be (stage, block index) pairs such as ((4, -1),), "
                    f"got {getattr(self, name)!r}"
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
        for pair in self.attn_blocks:
            if (
                len(pair) != 2
                or pair[0] not in STAGES
                or not -self.depths[pair[0] - 2] <= pair[1] < self.depths[pair[0] - 2]
            ):
                fail(f"attn_blocks entries are (stage in {STAGES}, block index within that stage's depth), got {pair}")
        for stage in sorted(set(self.attn_stages) | {p[0] for p in self.attn_blocks}):
            width = self.widths[stage - 2]
            if width % self.heads != 0:
                fail(f"heads={self.heads} must divide the width {width} of attention stage c{stage}")
        if self.out_widths and (
            len(self.out_widths) != 4 or any(not isinstance(w, int) or w < 1 for w in self.out_widths)
        ):
            fail(f"out_widths must be () (4x widths) or 4 positive integers, got {self.out_widths}")
        if self.stem not in STEMS:
            fail(f"stem must be one of {STEMS}, got {self.stem!r}")
        if not self.stem_pool and self.stem != "tiered":
            fail("stem_pool=False needs stem='tiered' (whose third conv then takes the stride)")
        if self.stem == "tiered" and self.widths[0] % 8:
            fail(
                f"a tiered stem needs widths[0] divisible by 8 (its convs are 3/8 and 1/2 of it), got {self.widths[0]}"
            )
        if self.group_width < 0 or any(self.group_width and w % self.group_width for w in self.widths):
            fail(f"group_width must be 0 or divide every width {self.widths}, got {self.group_width}")
        if self.channel_attn not in CHANNEL_ATTNS:
            fail(f"channel_attn must be one of {CHANNEL_ATTNS}, got {self.channel_attn!r}")
        if self.channel_attn != "se" and self.se_in_attn:
            fail(f"channel_attn={self.channel_attn!r} gates the 3x3 conv, which BoT blocks lack: set se_in_attn=False")
        if self.channel_attn == "eca" and self.se_ratio:
            fail(f"channel_attn='eca' has no ratio: leave se_ratio at 0, got {self.se_ratio}")
        if self.dim_head_qk < 0 or self.final_conv < 0:
            fail(f"dim_head_qk and final_conv must be >= 0, got {self.dim_head_qk} and {self.final_conv}")
        for pair in self.non_local:
            if len(pair) != 2 or pair[0] not in STAGES or not 0 <= pair[1] < self.depths[pair[0] - 2]:
                fail(f"non_local entries are (stage in {STAGES}, block index < that stage's depth), got {pair}")
            if self.attends(*pair):
                fail(
                    f"non_local block {pair} sits in attention stage c{pair[0]} (a BoT block); "
                    "use a convolutional block"
                )
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

    def attends(self, stage: int, block: int) -> bool:
        """Whether block ``block`` (0-based) of stage ``stage`` (2..5) is a BoT block."""
        depth = self.depths[stage - 2]
        return stage in self.attn_stages or any(s == stage and b % depth == block for s, b in self.attn_blocks)

    def stage_out(self, stage: int) -> int:
        """Output channels of stage ``stage`` (2..5)."""
        return self.out_widths[stage - 2] if self.out_widths else 4 * self.widths[stage - 2]

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
