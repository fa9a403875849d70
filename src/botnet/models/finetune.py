"""Fine-tuning helpers: freeze the stem and the first stages, and give the backbone a smaller learning rate."""

from __future__ import annotations

from torch import nn

STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")
STEM_NAMES = ("conv1", "bn1")
HEAD_PREFIX = "fc."


def _keep_eval(module: nn.Module, _inputs: tuple) -> None:
    module.eval()  # a frozen BN uses and keeps its running statistics even under model.train()


def freeze(model: nn.Module, stages: int) -> list[str]:
    """Freeze the stem and the first ``stages`` stages (0: the stem only, 4: the whole backbone but the final conv).

    Frozen parameters get ``requires_grad=False`` (so no gradient and no optimizer state), and the BatchNorm layers
    among them stay in eval mode whatever ``model.train()`` says, so their running statistics are used and kept.

    Returns:
        The names of the frozen parameters.
    """
    if not isinstance(stages, int) or not 0 <= stages <= len(STAGE_NAMES):
        raise ValueError(f"stages must be an integer in 0..{len(STAGE_NAMES)} (c2..c5 frozen in order), got {stages!r}")
    children = dict(model.named_children())
    missing = [n for n in (*STEM_NAMES, *STAGE_NAMES) if n not in children]
    if missing:
        raise ValueError(f"{type(model).__name__} has no {', '.join(missing)}: freeze() expects a BoTNet / ResNet")
    frozen_children = (*STEM_NAMES, *STAGE_NAMES[:stages])
    names = []
    for child in frozen_children:
        module = children[child]
        for param_name, param in module.named_parameters():
            param.requires_grad_(False)
            names.append(f"{child}.{param_name}")
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not getattr(m, "_botnet_frozen", False):
                m.register_forward_pre_hook(_keep_eval)
                m._botnet_frozen = True
                m.eval()
    return names


def finetune_param_groups(
    model: nn.Module, *, lr: float, backbone_lr_scale: float = 0.1, weight_decay: float = 0.0
) -> list[dict]:
    """Optimizer parameter groups: the classifier at ``lr``, the rest at ``lr * backbone_lr_scale``.

    Frozen parameters are left out (they get no optimizer state). Weight decay is never applied to norm weights and
    biases (1-D parameters). Each group carries a ``name`` ("head", "head_no_decay", "backbone", ...) and its ``lr``.
    """
    if lr <= 0 or not 0 < backbone_lr_scale <= 1 or weight_decay < 0:
        raise ValueError(
            f"need lr > 0, 0 < backbone_lr_scale <= 1 and weight_decay >= 0, got {lr}, {backbone_lr_scale}, "
            f"{weight_decay}"
        )
    groups: dict[str, dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "head" if name.startswith(HEAD_PREFIX) else "backbone"
        decay = param.ndim > 1
        key = part if decay else f"{part}_no_decay"
        group = groups.setdefault(
            key,
            dict(
                name=key,
                params=[],
                lr=lr if part == "head" else lr * backbone_lr_scale,
                weight_decay=weight_decay if decay else 0.0,
            ),
        )
        group["params"].append(param)
    return list(groups.values())
