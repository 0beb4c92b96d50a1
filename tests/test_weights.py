"""Weight entries (plain data), name resolution and the key-layout converters."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import reszoo
from reszoo import weights as W
from reszoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from reszoo.models._factory import create_model
from reszoo.models.registry import list_models
from reszoo.weights.convert import CONVERTERS, convert_state_dict, fit_state_dict, read_checkpoint

# pytest runs with --import-mode=importlib (tests/ is not a package), so the helper is found by path.
sys.path.insert(0, str(Path(__file__).parent))
from _refnets import RefCifarResNet, akamaster_checkpoint, randomize_  # noqa: E402

AKAMASTER_RAW = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"


def test_mission_alias_resolves_to_the_cifar10_option_a_entry():
    w = reszoo.get_weights("resnet110-cifar")
    assert w is reszoo.get_weights("resnet110-cifar10")
    assert (w.name, w.arch, w.converter, w.dataset, w.num_classes) == (
        "resnet110-cifar10",
        "resnet110",
        "akamaster",
        "cifar10",
        10,
    )
    assert w.source.url == AKAMASTER_RAW + "resnet110-1d1ed7c2.th"
    assert w.source.sha256_prefix == "1d1ed7c2"
    assert w.overrides == {}  # the paper's option-A network, as registered
    assert w.mean == (0.485, 0.456, 0.406) and w.resize_size is None and w.crop_size == 32


@pytest.mark.parametrize(
    ("depth", "prefix"),
    [(20, "12fca82f"), (32, "d509ac18"), (44, "014dd654"), (56, "4bfd9763"), (110, "1d1ed7c2"), (1202, "f3b1deed")],
)
def test_akamaster_entries_point_at_the_original_files(depth, prefix):
    for name in (f"resnet{depth}-cifar10", f"resnet{depth}-cifar"):
        w = reszoo.get_weights(name)
        assert w.source.url == f"{AKAMASTER_RAW}resnet{depth}-{prefix}.th"
        assert w.source.filename.split("-")[1].split(".")[0] == w.source.sha256_prefix == prefix
        assert w.license == "bsd-2-clause"


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_entries_use_the_timm_hub_repos(depth):
    w = reszoo.get_weights(f"resnet{depth}-imagenet")
    assert (w.source.repo_id, w.source.filename, w.source.revision) == (
        f"timm/resnet{depth}.tv_in1k",
        "model.safetensors",
        "main",
    )
    assert (w.resize_size, w.crop_size, w.interpolation, w.num_classes) == (256, 224, "bilinear", 1000)
    if depth >= 50:
        v2 = reszoo.get_weights(f"resnet{depth}-imagenet-v2")
        assert v2.source.repo_id == f"timm/resnet{depth}.tv2_in1k" and v2.resize_size == 232


def test_published_top1_values_match_the_reference_tables():
    top1 = {n: reszoo.get_weights(n).metrics[0].value for n in reszoo.list_pretrained()}
    assert top1["resnet50-imagenet"] == 76.130 and top1["resnet152-imagenet-v2"] == 82.284
    assert top1["resnet20-cifar10"] == pytest.approx(100 - 8.27)
    assert top1["resnet56-cifar100-b"] == 72.63


@pytest.mark.parametrize("name", W.list_pretrained())
def test_every_entry_fits_its_architecture(name):
    w = reszoo.get_weights(name)
    assert w.arch in list_models()
    with torch.device("meta"):
        model = create_model(w.arch, **w.overrides)
    assert model.fc.out_features == w.num_classes
    assert w.license and w.origin and w.metrics and all(m.source for m in w.metrics)
    assert len(w.mean) == len(w.std) == 3
    names = w.class_names
    assert names is not None and len(names) == w.num_classes and len(set(names)) == w.num_classes
    json.dumps(w.preprocessing())  # plain data: JSON-ready
    assert hash(w) == hash(reszoo.get_weights(name))  # frozen: usable as a dict key


def test_list_pretrained_wildcards_and_aliases():
    assert reszoo.list_pretrained("resnet5?-imagenet*") == ["resnet50-imagenet", "resnet50-imagenet-v2"]
    assert reszoo.list_pretrained("resnet110*") == ["resnet110-cifar10"]
    assert reszoo.list_pretrained("resnet110-cifar") == ["resnet110-cifar10"]  # matched through its alias
    assert reszoo.list_pretrained("*-cifar100*") == [f"resnet{d}-cifar100-b" for d in (20, 32, 44, 56)]
    assert reszoo.list_pretrained("nothing*") == []
    every = reszoo.list_pretrained(include_aliases=True)
    assert "resnet110-cifar" in every and "resnet50.tv_in1k" in every
    assert len(reszoo.list_pretrained()) == 36


def test_unknown_weight_name_lists_closest_names():
    with pytest.raises(ValueError, match=r"Unknown pretrained weights 'resnet56-cifar1'.*resnet56-cifar10"):
        reszoo.get_weights("resnet56-cifar1")
    with pytest.raises(ValueError, match=r"Unknown pretrained weights '56'.*Valid names: .*resnet56-cifar10"):
        reszoo.get_weights(56)


def test_list_pretrained_refuses_a_pattern_that_is_not_a_string():
    with pytest.raises(
        ValueError, match=r"pattern must be an fnmatch wildcard string or None; received pattern=\['resnet\*'\]"
    ):
        reszoo.list_pretrained(["resnet*"])


def test_transforms_for_cifar_entry_only_normalises():
    t = reszoo.get_weights("resnet56-cifar10").transforms()
    img = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    out = t(img)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[:, 0, 0], expected)


def test_transforms_for_imagenet_entry_resizes_and_crops():
    t = reszoo.get_weights("resnet50-imagenet-v2").transforms()
    assert t(torch.zeros(3, 300, 400, dtype=torch.uint8)).shape == (3, 224, 224)


def test_chenyaofo_entries_use_option_b_and_their_own_statistics():
    w = reszoo.get_weights("cifar100_resnet56")
    assert w.name == "resnet56-cifar100-b" and w.overrides == {"shortcut": "B", "num_classes": 100}
    assert w.source.url.endswith("/releases/download/resnet/cifar100_resnet56-f2eff4c8.pt")
    assert w.class_names[:3] == ("apple", "aquarium_fish", "baby")


# -- converters --------------------------------------------------------------------------------------


def test_akamaster_converter_gives_the_reference_network_outputs(tiny_overrides):
    """An akamaster-layout file loads into our option-A network and computes the same function."""
    ref = randomize_(RefCifarResNet(option="A", head="linear"), seed=1)
    converted = convert_state_dict("akamaster", akamaster_checkpoint(ref))
    assert "fc.weight" in converted and not any(k.startswith(("module.", "linear.")) for k in converted)
    ours = create_model("resnet20", **tiny_overrides).eval()
    ours.load_state_dict(fit_state_dict(converted, ours), strict=True)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_chenyaofo_converter_gives_the_reference_network_outputs(tiny_overrides):
    ref = randomize_(RefCifarResNet(option="B", head="fc", num_classes=100), seed=2)
    converted = convert_state_dict("chenyaofo", ref.state_dict())
    ours = create_model("resnet20", shortcut="B", num_classes=100, **tiny_overrides).eval()
    ours.load_state_dict(fit_state_dict(converted, ours), strict=True)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_converter_loads_torchvision_keys_strictly(depth):
    tv = getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=7).eval()
    sd = {f"module.{k}": v for k, v in tv.state_dict().items()}  # DataParallel prefix is dropped
    with torch.device("meta"):  # no initialisation: every tensor is assigned from torchvision's
        ours = create_model(f"resnet{depth}", num_classes=7).eval()
    ours.load_state_dict(fit_state_dict(convert_state_dict("torchvision", sd), ours), strict=True, assign=True)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-5)


def test_fit_state_dict_reconciles_num_batches_tracked_both_ways(tiny_model):
    model = tiny_model()
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    fitted = fit_state_dict(sd, model)
    assert set(fitted) == set(model.state_dict())
    sd["extra.num_batches_tracked"] = torch.tensor(3)
    assert "extra.num_batches_tracked" not in fit_state_dict(sd, model)


def test_fit_state_dict_lists_missing_unexpected_and_shape_mismatches(tiny_model):
    model = tiny_model()
    sd = dict(model.state_dict())
    del sd["layer2.0.conv1.weight"]
    sd["layer9.weight"] = torch.zeros(1)
    sd["fc.weight"] = torch.zeros(3, 16)
    with pytest.raises(RuntimeError) as info:
        fit_state_dict(sd, model, source="test weights")
    msg = str(info.value)
    assert "missing keys: layer2.0.conv1.weight" in msg
    assert "unexpected keys: layer9.weight" in msg
    assert "fc.weight: checkpoint (3, 16) vs model (10, 16)" in msg


def test_unknown_converter_and_non_tensor_entries_are_rejected():
    with pytest.raises(ValueError, match=r"Unknown converter 'timm'.*akamaster"):
        convert_state_dict("timm", {})
    with pytest.raises(ValueError, match="not tensors"):
        convert_state_dict("reszoo", {"a": 1})
    assert set(CONVERTERS) == {"reszoo", "torchvision", "chenyaofo", "akamaster", "timm_resnetv2"}


def test_read_checkpoint_refuses_damaged_and_missing_files(tmp_path):
    path = tmp_path / "x.th"
    torch.save({"state_dict": {"a": torch.ones(3)}}, path)
    assert torch.equal(read_checkpoint(path)["state_dict"]["a"], torch.ones(3))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.th")


def test_cli_list_pretrained(capsys, monkeypatch):
    from reszoo.cli import main

    monkeypatch.setenv("COLUMNS", "100")  # the table fits the terminal: a narrow one would cut the sources

    assert main(["list", "--pretrained", "resnet110*"]) == 0
    out = capsys.readouterr().out
    assert "resnet110-cifar10" in out and "akamaster/pytorch_resnet_cifar10" in out and "93.68" in out
    assert main(["info", "resnet110-cifar10"]) == 0  # the full source
    assert f"source            {AKAMASTER_RAW}resnet110-1d1ed7c2.th" in capsys.readouterr().out
    assert main(["list", "--pretrained", "--format", "json", "resnet*-imagenet-v2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["resnet50-imagenet-v2", "resnet101-imagenet-v2", "resnet152-imagenet-v2"]
    assert rows[0]["source"] == "hf-hub:timm/resnet50.tv2_in1k"
    assert main(["list", "--pretrained", "--format", "csv", "resnet110*"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "name,arch,dataset,num_classes,top1,license,source",
        f"resnet110-cifar10,resnet110,cifar10,10,93.68,bsd-2-clause,{AKAMASTER_RAW}resnet110-1d1ed7c2.th",
    ]
    assert main(["list", "--pretrained", "nothing*"]) == 2
    assert "No weight entry matches pattern 'nothing*'" in capsys.readouterr().err


def test_docs_list_every_entry_with_its_file():
    doc = (Path(__file__).parents[1] / "docs" / "weights.md").read_text(encoding="utf-8")
    for name in reszoo.list_pretrained():
        w = reszoo.get_weights(name)
        where = w.source.repo_id if isinstance(w.source, W.HubSource) else w.source.url
        assert f"`{name}`" in doc and where in doc, name


# -- the family's entries (issue 23) ---------------------------------------------------------------
# (name, timm name = Hub repo timm/<name>, converter, resize, crop, interpolation, mean, first top-1): from
# torchvision's docs and timm's pretrained cfgs / Hub config.json (crop_pct 0.875 -> resize 256, 0.95 -> 235).
FAMILY_ENTRIES = [
    ("resnext50_32x4d-imagenet", "resnext50_32x4d.tv_in1k", "torchvision", 256, 224, "bilinear", 0.485, 77.618),
    ("resnext50_32x4d-imagenet-v2", "resnext50_32x4d.tv2_in1k", "torchvision", 232, 224, "bilinear", 0.485, 81.198),
    ("wide_resnet50_2-imagenet", "wide_resnet50_2.tv_in1k", "torchvision", 256, 224, "bilinear", 0.485, 78.468),
    ("wide_resnet50_2-imagenet-v2", "wide_resnet50_2.tv2_in1k", "torchvision", 232, 224, "bilinear", 0.485, 81.602),
    ("resnet50d-imagenet", "resnet50d.ra2_in1k", "torchvision", 256, 224, "bicubic", 0.485, 80.53),
    ("seresnet50-imagenet", "seresnet50.ra2_in1k", "torchvision", 256, 224, "bicubic", 0.485, 80.26),
    ("resnetv2_50-imagenet", "resnetv2_50.a1h_in1k", "timm_resnetv2", 235, 224, "bicubic", 0.5, 81.398),
]  # fmt: skip


@pytest.mark.parametrize("entry", FAMILY_ENTRIES, ids=[e[0] for e in FAMILY_ENTRIES])
def test_family_entries_point_at_the_timm_hub_copies(entry):
    name, timm_name, converter, resize, crop, interpolation, mean, top1 = entry
    w = reszoo.get_weights(name)
    assert (w.source.repo_id, w.source.filename, w.converter) == (f"timm/{timm_name}", "model.safetensors", converter)
    assert (w.resize_size, w.crop_size, w.interpolation, w.mean[0], w.num_classes) == (
        resize, crop, interpolation, mean, 1000
    )  # fmt: skip
    assert w.metrics[0].value == top1 and w.arch == name.split("-")[0]
    assert reszoo.get_weights(timm_name) is w  # the timm name is an alias
    assert W.default_weights(w.arch).name == name.removesuffix("-v2").removesuffix("-imagenet") + "-imagenet"
    assert w.license == ("bsd-3-clause" if ".tv" in timm_name else "apache-2.0")
