"""hubconf.py: every registered model is a torch.hub entry point, with pretrained= and overrides."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.hub

import reszoo
from reszoo.models import registry

REPO = Path(__file__).resolve().parents[1]
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))


@pytest.fixture
def local_hub(monkeypatch):
    """torch.hub.list and help take GitHub repos only; point their fetch at this checkout, the rest is theirs."""
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: str(REPO))


def test_hubconf_declares_its_dependencies():
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert hubconf.dependencies == ["torch", "torchvision", "safetensors", "huggingface_hub"]


def test_load_builds_the_registered_model_with_overrides():
    model = torch.hub.load(str(REPO), "resnet56", source="local")
    assert isinstance(model, reszoo.ResNet) and model.config == reszoo.default_config("resnet56")
    model = torch.hub.load(str(REPO), "resnet50", source="local", num_classes=7)
    assert model.fc.out_features == 7 and model.config.depths == (3, 4, 6, 3)
    backbone = torch.hub.load(str(REPO), "resnet20", source="local", features_only=True, out_indices=(3,))
    assert [f.shape for f in backbone(X)] == [torch.Size([2, 64, 8, 8])]


def test_list_and_help_cover_the_registry(local_hub, monkeypatch):
    assert sorted(torch.hub.list("owner/reszoo")) == sorted(reszoo.list_models())
    assert "ResNet-56 for CIFAR" in torch.hub.help("owner/reszoo", "resnet56")
    assert "pretrained: True for the default weights" in torch.hub.help("owner/reszoo", "resnet56")

    # A model registered later is an entry point too: hubconf is generated from the registry.
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    @registry.register_model(config=reszoo.ResNetConfig(depths=(1, 1, 1)))
    def resnet8(**overrides):
        return reszoo.ResNet(reszoo.ResNetConfig(depths=(1, 1, 1)), **overrides)

    assert "resnet8" in torch.hub.list("owner/reszoo")
    assert torch.hub.load(str(REPO), "resnet8", source="local").config.depths == (1, 1, 1)


def test_pretrained_from_a_local_folder(tmp_path):
    ref = reszoo.resnet20().eval()
    reszoo.save_pretrained(ref, tmp_path / "r20")
    model = torch.hub.load(str(REPO), "resnet20", source="local", pretrained=str(tmp_path / "r20")).eval()
    torch.testing.assert_close(model(X), ref(X), rtol=0, atol=0)
    grey = torch.hub.load(str(REPO), "resnet20", source="local", pretrained=str(tmp_path / "r20"), in_chans=1)
    assert grey.conv1.weight.shape == (16, 1, 3, 3)
    with pytest.raises(ValueError, match="Unknown pretrained='resnet20-cifar11'"):
        torch.hub.load(str(REPO), "resnet20", source="local", pretrained="resnet20-cifar11")


@pytest.mark.timeout(120)
def test_a_checkout_without_installation_loads_its_own_src(tmp_path):
    # A copy of the repository's hubconf and src, in a process where the installed reszoo is hidden.
    checkout = tmp_path / "reszoo-checkout"
    shutil.copytree(REPO / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "hubconf.py", checkout / "hubconf.py")
    code = textwrap.dedent(
        f"""
        import os, sys
        sys.path = [p for p in sys.path if os.path.realpath(p) != {str((REPO / "src").resolve())!r}]
        import torch
        model = torch.hub.load({str(checkout)!r}, "resnet20", source="local", num_classes=3)
        import reszoo
        print(reszoo.__file__, model.fc.out_features, {str(checkout / "src")!r} in sys.path)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    path, classes, left_on_path = out.stdout.split()
    assert Path(path).is_relative_to(checkout / "src") and classes == "3"
    assert left_on_path == "False"  # hubconf leaves sys.path as it found it
