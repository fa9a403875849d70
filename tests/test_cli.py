"""The ``botnet`` command: in this process through ``botnet.cli.main`` (fast), and once as ``python -m botnet``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import botnet

ALL_MODELS = set(botnet.list_models())  # the registry itself is pinned by tests/models/test_zoo.py


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BOTNET_TRACEBACK"}
    return subprocess.run(
        [sys.executable, "-m", "botnet", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``botnet ARGS`` in this process; returns a CompletedProcess-like result (argparse exits become codes)."""
    from botnet.cli.main import main

    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def listed_names(stdout: str) -> list[str]:
    """The model names of ``botnet list``: the lines not indented (a model's pretrained sources) and not footnotes."""
    return [
        line.split()[0] for line in stdout.splitlines() if line.strip() and not line[0].isspace() and line[0] != "["
    ]


def test_table_check_and_json(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("table", "--check", "--json", "out.json")
    assert result.returncode == 0, result.stderr
    assert "10/10 rows within tolerance" in result.stdout
    rows = json.loads((tmp_path / "out.json").read_text())
    assert len(rows) == 10
    for row in rows:
        assert {"model", "size", "params_m", "gmacs", "ours_gmacs", "params_paper_m", "params_numel_m"} <= row.keys()
        assert abs(row["ours_gmacs"] / row["gmacs"] - 1) <= 0.01, row
    t7 = next(r for r in rows if r["model"] == "botnet_t7")
    assert t7["size"] == 384
    assert abs(t7["params_paper_m"] - 75.1) <= 0.1


def test_list_all(cli):
    result = cli("list")
    assert result.returncode == 0, result.stderr
    names = listed_names(result.stdout)
    assert set(names) == ALL_MODELS
    assert len(names) == len(ALL_MODELS)


def test_list_pattern(cli):
    result = cli("list", "botnet_t?")
    assert result.returncode == 0, result.stderr
    assert listed_names(result.stdout) == ["botnet_t3", "botnet_t4", "botnet_t5", "botnet_t6", "botnet_t7"]
    assert "384x384" in result.stdout  # T7's default input size


def test_list_no_match_is_a_clean_error(cli):
    result = cli("list", "nope")
    assert result.returncode == 2
    assert "error" in result.stderr
    assert "nope" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("args", [(), ("frobnicate",)])
def test_missing_or_unknown_command_is_a_usage_error(args, cli):
    result = cli(*args)
    assert result.returncode == 2
    assert "usage" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_as_a_subprocess():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "botnet 0.1.0"


def test_info_text_json_and_bad_input(capsys, monkeypatch):
    from botnet.cli.main import main

    monkeypatch.delenv("BOTNET_TRACEBACK", raising=False)
    assert main(["info", "botnet50", "--size", "1024", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["gmacs"] == {"input_size": [1024, 1024], "value": pytest.approx(102.99, abs=0.01)}  # SPEC: 102.99
    assert info["params_paper_convention"] == pytest.approx(20.78e6, abs=0.01e6)
    assert [f["reduction"] for f in info["feature_info"]] == [2, 4, 8, 16, 32]
    assert info["default_input_size"] == [224, 224] and info["config"]["attn_stages"] == [5]
    assert main(["info", "botnet_t7"]) == 0  # its own default size, 384
    text = capsys.readouterr().out
    assert "default input 384x384" in text and "GMACs at 384x384: 45.8" in text and "layer4" in text
    assert main(["info", "botnet5"]) == 2
    assert "unknown model 'botnet5'" in capsys.readouterr().err
    assert main(["info", "resnet50", "--size", "16"]) == 2
    assert "total stride 32" in capsys.readouterr().err
    assert main(["info", "resnet50", "--size", "big"]) == 2
    assert "--size must be H or HxW" in capsys.readouterr().err
