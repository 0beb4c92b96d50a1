"""The last built-in raises of src (issue 20): each is now a reszoo error that is still the built-in a
caller may catch, and its message names the value received and what is valid."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from reszoo.bench import reporting
from reszoo.errors import InvalidArgumentError, ReplicasDivergedError, ReszooError, UsageError
from reszoo.models import registry
from reszoo.utils.accelerator import fp32_math

SRC = Path(__file__).resolve().parents[1] / "src" / "reszoo"
BUILTINS = {"ValueError", "RuntimeError", "TypeError", "KeyError"}


def test_src_raises_no_bare_builtin():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                called = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(called, ast.Name) and called.id in BUILTINS:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} raises {called.id}")
    assert not found, "raise a reszoo.errors class (it subclasses the built-in too):\n" + "\n".join(found)


@pytest.fixture
def own_registry(monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_CONFIGS", dict(registry._CONFIGS))


def test_a_taken_model_name_is_refused_naming_the_holder(own_registry):
    def resnet20(**overrides):
        return nn.Identity()

    with pytest.raises(InvalidArgumentError) as exc:
        registry.register_model(resnet20)
    message = str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert message.startswith("model name must be a name not registered yet ('resnet20' is reszoo.models.zoo.resnet20")
    assert message.endswith("received model name='resnet20'.")
    assert registry.get_model_fn("resnet20") is not resnet20


def test_a_model_without_a_config_is_refused_saying_how_to_register_it(own_registry):
    @registry.register_model
    def configless(**overrides):
        return nn.Identity()

    with pytest.raises(InvalidArgumentError) as exc:
        registry.default_config("configless")
    assert isinstance(exc.value, ValueError) and str(exc.value) == (
        "create_model('configless').config must be a ResNetConfig (the model has no .config; register its factory "
        "with register_model(config=...)); received create_model('configless').config=None."
    )


def test_fp32_math_names_the_mode_received_and_the_valid_ones():
    with pytest.raises(InvalidArgumentError) as exc, fp32_math("fast"):
        pass
    assert isinstance(exc.value, ValueError)
    assert str(exc.value) == "fp32 math mode must be 'ieee' or 'tf32'; received fp32 math mode='fast'."


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    out = str(tmp_path / "p.png")
    with pytest.raises(InvalidArgumentError) as exc:
        reporting.plot([], out)
    message = str(exc.value)
    assert message.startswith("plot needs matplotlib, which is not installed (")
    assert f"received path={out!r}" in message and message.endswith("pip install 'reszoo[plot]'.")
    assert isinstance(exc.value, UsageError)  # the CLI: exit 2, one line


def test_diverged_replicas_name_each_rank_s_digest(monkeypatch, tiny_model):
    # What the end of a two-process run meets when rank 1 ended with other weights; no process group
    # is needed: the collectives are stood in for.
    from reszoo.train import loop

    monkeypatch.setattr(torch.distributed, "broadcast", lambda tensor, src: None)
    monkeypatch.setattr(
        torch.distributed, "all_gather_object", lambda out, obj: out.__setitem__(slice(None), [obj, "x"])
    )
    run = SimpleNamespace(model=tiny_model(), world=2, writes=False, out=None)
    with pytest.raises(ReplicasDivergedError) as exc:
        loop._finish(run, loop._State())
    digest = loop.state_digest(run.model)
    assert isinstance(exc.value, RuntimeError) and isinstance(exc.value, ReszooError)
    assert not isinstance(exc.value, UsageError)  # the CLI: exit 1, one line
    assert str(exc.value).startswith("Replicas diverged: every rank must end with the same weights")
    assert str(exc.value).endswith(f"received weight digests per rank {[digest, 'x']}.")
