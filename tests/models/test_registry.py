"""The one model registry: task tags, the lookups of each task, and what a registration must give."""

from __future__ import annotations

import pytest

from botnet.detection import list_detection_models, maskrcnn_botnet50_fpn
from botnet.models import get_config, list_models, register_model
from botnet.models.registry import model_entry


def test_detectors_are_registered_under_their_task():
    detectors = list_models(task="detection")
    assert detectors == list_detection_models() and "maskrcnn_botnet50_fpn" in detectors
    assert list_models() == list_models(task="classification")  # the default: classification networks only
    assert set(list_models(task=None)) == set(list_models()) | set(detectors)
    assert list_models("maskrcnn_botnet5?_fpn", task=None) == ["maskrcnn_botnet50_fpn"]
    entry = model_entry("maskrcnn_botnet50_fpn", task="detection")
    assert (entry.task, entry.builder, entry.cfg) == ("detection", maskrcnn_botnet50_fpn, None)
    assert model_entry("botnet50").cfg == get_config("botnet50")


def test_each_task_looks_up_its_own_names():
    with pytest.raises(ValueError, match="unknown model 'maskrcnn_botnet50_fpn'"):
        get_config("maskrcnn_botnet50_fpn")
    with pytest.raises(ValueError, match="unknown detection model 'botnet50'. Available: fasterrcnn_botnet101_fpn"):
        model_entry("botnet50", task="detection")
    with pytest.raises(ValueError, match="'maskrcnn_botnet5_fpn'. Did you mean maskrcnn_botnet50_fpn"):
        model_entry("maskrcnn_botnet5_fpn", task="detection")
    with pytest.raises(TypeError, match="model name must be a string"):
        model_entry(50, task="detection")


def test_a_registration_gives_what_its_task_builds_from():
    cfg = get_config("botnet50")
    with pytest.raises(ValueError, match="already registered"):
        register_model("botnet50", cfg)
    with pytest.raises(ValueError, match="task must be one of classification, detection"):
        register_model("segnet", cfg, task="segmentation")
    with pytest.raises(TypeError, match="by its BoTNetConfig"):
        register_model("botnet50_builder", task="classification", builder=maskrcnn_botnet50_fpn)
    with pytest.raises(TypeError, match="by its builder function"):
        register_model("detector_cfg", cfg, task="detection")
    assert "botnet50_builder" not in list_models(task=None) and "detector_cfg" not in list_models(task=None)
