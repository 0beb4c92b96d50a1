"""Download, verify, cache, load, save and publish pretrained weights, offline.

Files are served by a small HTTP server on 127.0.0.1 (``tests/_http.py``): ``HF_ENDPOINT`` points
the real ``huggingface_hub`` download code at it, and ``RESZOO_URL_MIRROR`` the original-URL
sources. Checkpoints in the original layouts are built from seeded reference networks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants as hf_constants
import pytest
import torch
import torchvision
from safetensors.torch import save as safetensors_bytes

import reszoo
import reszoo.weights.cache
from reszoo import weights as W
from reszoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
from reszoo.errors import MissingInputError, WeightsIntegrityError, WeightsNotCachedError
from reszoo.utils.fileio import tensors_digest
from reszoo.weights import hub, pretrained, publish
from reszoo.weights.convert import convert_state_dict, fit_state_dict

# pytest runs with --import-mode=importlib (tests/ is not a package), so the helpers are found by path.
sys.path.insert(0, str(Path(__file__).parent))
from _http import FileServer  # noqa: E402
from _refnets import RefCifarResNet, akamaster_checkpoint, randomize_  # noqa: E402
from conftest import TINY_OVERRIDES  # noqa: E402

AKAMASTER_PATH = "/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Empty reszoo and Hugging Face caches, online."""
    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path / "reszoo"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return tmp_path


@pytest.fixture
def server(cache, monkeypatch):
    with FileServer() as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.setenv("RESZOO_URL_MIRROR", srv.url)
        yield srv


def go_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def akamaster_file(seed: int = 0) -> tuple[RefCifarResNet, bytes, str]:
    ref = randomize_(RefCifarResNet(option="A", head="linear"), seed=seed)
    data = torch_bytes(akamaster_checkpoint(ref))
    return ref, data, hashlib.sha256(data).hexdigest()[:8]


def add_tiny_entry(monkeypatch, name: str, source: W.Source, converter: str, **fields) -> W.Weights:
    """Register a CIFAR-10 entry for the tiny resnet20-shaped test network for this test only."""
    entry = W.Weights(
        name=name,
        arch="resnet20",
        source=source,
        converter=converter,
        dataset="cifar10",
        num_classes=10,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        crop_size=32,
        config_overrides=tuple(TINY_OVERRIDES.items()),
        **fields,
    )
    monkeypatch.setitem(W.WEIGHTS, name, entry)
    return entry


def add_url_entry(monkeypatch, prefix: str, *, name: str = "resnet8-testset", size: int | None = None) -> W.Weights:
    """A tiny akamaster-style entry whose URL keeps the real GitHub form (the mirror redirects it)."""
    url = f"https://github.com{AKAMASTER_PATH}resnet8-{prefix}.th"
    return add_tiny_entry(
        monkeypatch,
        name,
        W.UrlSource(url=url, sha256_prefix=prefix, size=size),
        "akamaster",
        metrics=(W.Metric("cifar10-test", "top1", 50.0, "this test"),),
        license="bsd-2-clause",
        origin="tests",
    )


def add_hub_entry(monkeypatch, repo_id: str = "someone/resnet8", name: str = "resnet8-hubtest") -> W.Weights:
    """A tiny entry read from a Hub repo in torchvision's layout."""
    return add_tiny_entry(monkeypatch, name, W.HubSource(repo_id=repo_id), "torchvision")


X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))


# -- original-URL sources (akamaster layout) ---------------------------------------------------------


def test_url_entry_downloads_verifies_converts_and_caches(server, monkeypatch):
    ref, data, prefix = akamaster_file()
    path = AKAMASTER_PATH + f"resnet8-{prefix}.th"
    server.add(path, data)
    entry = add_url_entry(monkeypatch, prefix, size=len(data))

    model = reszoo.load_pretrained(entry.name)
    assert not model.training and model.pretrained_weights is entry
    torch.testing.assert_close(model(X), ref(X), rtol=1e-5, atol=1e-5)

    converted = pretrained.download(entry.name)  # cached: no new download, just the file load_pretrained read
    assert converted.is_file() and reszoo.weights.cache.original_path(entry).is_file()
    assert not list(converted.parent.glob("*.tmp"))  # the atomic write left nothing behind
    # The next load reads the converted safetensors only: no download, and it works offline.
    go_offline(monkeypatch)
    again = reszoo.load_pretrained(entry.name)
    torch.testing.assert_close(again(X), ref(X), rtol=1e-5, atol=1e-5)
    assert server.gets == {path: 1}


def test_mission_call_resolves_to_the_akamaster_resnet110_file(server, monkeypatch):
    # The real file is not available offline: a different file at the right path must be
    # requested from the right place and refused by the sha256 prefix in its name.
    server.add(AKAMASTER_PATH + "resnet110-1d1ed7c2.th", b"not the real file")
    with pytest.raises(WeightsIntegrityError, match=r"resnet110-cifar10.*does not start with '1d1ed7c2'") as info:
        reszoo.load_pretrained("resnet110-cifar")
    assert "discarded" in str(info.value)
    assert server.gets == {AKAMASTER_PATH + "resnet110-1d1ed7c2.th": 1}
    assert not reszoo.weights.cache.original_path(
        reszoo.get_weights("resnet110-cifar")
    ).exists()  # the bad file was not kept


def test_offline_without_cache_names_the_file_and_the_fix(cache, monkeypatch):
    go_offline(monkeypatch)
    with pytest.raises(WeightsNotCachedError) as info:
        reszoo.load_pretrained("resnet110-cifar")
    msg = str(info.value)
    assert "resnet110-1d1ed7c2.th" in msg and "github.com/akamaster/pytorch_resnet_cifar10" in msg
    assert "reszoo download resnet110-cifar10" in msg and "checkpoint=" in msg


def test_unreachable_source_says_how_to_fetch_it(server, monkeypatch):
    entry = add_url_entry(monkeypatch, "00000000")  # the server has no such file: HTTP 404
    with pytest.raises(WeightsNotCachedError, match=r"downloading .*resnet8-00000000.th failed.*reszoo download"):
        reszoo.load_pretrained(entry.name)


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "wrong-checksum"])
def test_bad_downloads_are_detected_and_not_kept(server, monkeypatch, damage):
    _, data, prefix = akamaster_file()
    bad = {
        "truncated": data[: len(data) // 2],
        "corrupted": data[:100] + bytes(b ^ 0xFF for b in data[100:200]) + data[200:],
        "wrong-checksum": akamaster_file(seed=9)[1],
    }[damage]
    server.add(AKAMASTER_PATH + f"resnet8-{prefix}.th", bad)
    entry = add_url_entry(monkeypatch, prefix, size=len(data) if damage == "truncated" else None)
    expected = "is truncated" if damage == "truncated" else "checksum mismatch"
    with pytest.raises(WeightsIntegrityError, match=expected):
        reszoo.load_pretrained(entry.name)
    cached = [p.name for p in Path(os.environ["RESZOO_CACHE"]).rglob("*") if p.is_file()]
    assert [n for n in cached if not n.endswith(".lock")] == []


def test_unreadable_file_with_matching_checksum_is_not_kept(server, monkeypatch):
    data = b"\x00" * 64  # passes the prefix check (computed from it) but is no checkpoint
    prefix = hashlib.sha256(data).hexdigest()[:8]
    server.add(AKAMASTER_PATH + f"resnet8-{prefix}.th", data)
    entry = add_url_entry(monkeypatch, prefix)
    with pytest.raises(ValueError, match="truncated, corrupted or not a checkpoint"):
        reszoo.load_pretrained(entry.name)
    assert (
        not reszoo.weights.cache.original_path(entry).exists()
        and not reszoo.weights.cache.converted_path(entry).exists()
    )


def test_damaged_cache_files_are_rebuilt(server, monkeypatch):
    ref, data, prefix = akamaster_file()
    path = AKAMASTER_PATH + f"resnet8-{prefix}.th"
    server.add(path, data)
    entry = add_url_entry(monkeypatch, prefix)
    reszoo.load_pretrained(entry.name)
    converted, original = pretrained.download(entry.name), reszoo.weights.cache.original_path(entry)
    # Converted file damaged: rebuilt from the verified original, no new download.
    converted.write_bytes(converted.read_bytes()[:-40])
    torch.testing.assert_close(reszoo.load_pretrained(entry.name)(X), ref(X), rtol=1e-5, atol=1e-5)
    assert server.gets[path] == 1
    # Both damaged: the original fails its checksum, is deleted and downloaded again.
    converted.unlink()
    original.write_bytes(b"junk")
    torch.testing.assert_close(reszoo.load_pretrained(entry.name)(X), ref(X), rtol=1e-5, atol=1e-5)
    assert server.gets[path] == 2


def test_local_copy_of_the_original_file(tmp_path):
    ref = randomize_(RefCifarResNet(depths=(3, 3, 3), widths=(16, 32, 64), option="A"), seed=3)
    local = tmp_path / "resnet20-12fca82f.th"
    local.write_bytes(torch_bytes(akamaster_checkpoint(ref)))
    # Not the published file, so its sha256 does not start with 12fca82f: refused, with the way out.
    with pytest.raises(WeightsIntegrityError, match="check_hash=False"):
        reszoo.load_pretrained("resnet20-cifar10", checkpoint=local)
    model = reszoo.load_pretrained("resnet20-cifar10", checkpoint=str(local), check_hash=False)
    assert model.pretrained_weights.name == "resnet20-cifar10"
    torch.testing.assert_close(model(X), ref(X), rtol=1e-4, atol=1e-4)  # random weights: large logits
    with pytest.raises(FileNotFoundError, match="resnet20-12fca82f.th"):
        reszoo.load_pretrained("resnet20-cifar10", checkpoint=tmp_path / "missing.th")


def test_state_dict_that_does_not_fit_lists_the_keys(tmp_path):
    ref = randomize_(RefCifarResNet(depths=(3, 3, 3), widths=(16, 32, 64), option="B"), seed=3)
    local = tmp_path / "resnet20-12fca82f.th"
    local.write_bytes(torch_bytes(akamaster_checkpoint(ref)))  # option-B keys into the option-A entry
    with pytest.raises(RuntimeError, match=r"unexpected keys: layer2\.0\.downsample\.0\.weight"):
        reszoo.load_pretrained("resnet20-cifar10", checkpoint=local, check_hash=False)


def test_num_classes_override_loads_all_but_the_head(server, monkeypatch):
    ref, data, prefix = akamaster_file()
    server.add(AKAMASTER_PATH + f"resnet8-{prefix}.th", data)
    entry = add_url_entry(monkeypatch, prefix)
    with pytest.warns(UserWarning, match=r"num_classes=100 differs from the weights' 10.*fc\.weight, fc\.bias"):
        model = reszoo.load_pretrained(entry.name, num_classes=100)
    assert model.fc.out_features == 100 and model.config.num_classes == 100
    torch.testing.assert_close(model.forward_head(model.forward_features(X), pre_logits=True).shape, (2, 16))
    full = reszoo.load_pretrained(entry.name)
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    for k, v in ours.items():
        assert torch.equal(v, full.state_dict()[k]), k
    assert model(X).shape == (2, 100)
    with pytest.raises(ValueError, match="received num_classes=0"):
        reszoo.load_pretrained(entry.name, num_classes=0)


def count_builds(monkeypatch) -> list[int]:
    """Record every ResNet built from now on (one list item per ResNet.__init__ call)."""
    builds = []
    init = reszoo.ResNet.__init__

    def counting_init(self, *args, **kwargs):
        builds.append(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(reszoo.ResNet, "__init__", counting_init)
    return builds


def test_a_load_builds_the_model_once(server, monkeypatch, tmp_path):
    ref, data, prefix = akamaster_file()
    server.add(AKAMASTER_PATH + f"resnet8-{prefix}.th", data)
    entry = add_url_entry(monkeypatch, prefix)
    builds = count_builds(monkeypatch)
    cold = reszoo.load_pretrained(entry.name)  # download, convert, check, cache and load
    assert len(builds) == 1
    torch.testing.assert_close(cold(X), ref(X), rtol=1e-5, atol=1e-5)
    builds.clear()
    reszoo.load_pretrained(entry.name)  # from the cache
    assert len(builds) == 1
    builds.clear()
    with pytest.warns(UserWarning, match="num_classes=3"):
        assert reszoo.load_pretrained(entry.name, num_classes=3).fc.out_features == 3
    assert len(builds) == 1
    out = reszoo.save_pretrained(cold, tmp_path / "out")
    builds.clear()
    reszoo.load_pretrained(out)  # a reszoo folder
    assert len(builds) == 1


def test_load_download_and_convert_share_one_resolver(server, monkeypatch, tmp_path):
    ref, data, prefix = akamaster_file()
    server.add(AKAMASTER_PATH + f"resnet8-{prefix}.th", data)
    entry = add_url_entry(monkeypatch, prefix)
    seen = []
    resolve = pretrained.resolve

    def recording_resolve(name, **kwargs):
        resolved = resolve(name, **kwargs)
        seen.append((name, resolved))
        return resolved

    monkeypatch.setattr(pretrained, "resolve", recording_resolve)
    path = pretrained.download(entry.name)
    model = reszoo.load_pretrained("resnet8-testset")
    out = pretrained.convert_checkpoint(entry.name, tmp_path / "out")
    assert [name for name, _ in seen] == [entry.name] * 3
    assert {resolved for _, resolved in seen} == {pretrained.Resolved(entry, entry.source)}
    assert path == reszoo.weights.cache.converted_path(entry) and model.pretrained_weights is entry
    torch.testing.assert_close(reszoo.load_pretrained(out)(X), ref(X), rtol=1e-5, atol=1e-5)


def test_resolver_tells_names_repos_and_folders_apart(tmp_path):
    w = reszoo.get_weights("resnet50-imagenet")
    assert pretrained.resolve("resnet50.tv_in1k") == (w, w.source)
    assert pretrained.resolve("hf-hub:timm/resnet50.tv_in1k@v2") == (
        w,
        W.HubSource("timm/resnet50.tv_in1k", revision="v2"),
    )
    assert pretrained.resolve("hf-hub:someone/x") == (None, W.HubSource("someone/x"))
    assert pretrained.resolve(tmp_path) == (None, W.LocalSource(str(tmp_path)))
    assert pretrained.resolve("resnet20-cifar10", checkpoint="x.th") == (
        reszoo.get_weights("resnet20-cifar10"),
        W.LocalSource("x.th"),
    )


@pytest.mark.parametrize("name", ["no/such/dir", "./nothing", Path("nothing-here")])
def test_a_missing_folder_says_it_does_not_exist(cache, name):
    with pytest.raises(MissingInputError, match=r"The folder .* does not exist") as info:
        reszoo.load_pretrained(name)
    assert "Unknown pretrained weights" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.slow  # two fresh Python processes importing torch: about 10 s on 2 cores
def test_concurrent_loads_both_succeed_with_identical_tensors(cache, tmp_path):
    ref, data, prefix = akamaster_file()
    with FileServer(delay=0.5) as srv:  # slow body: both processes are downloading at once
        path = AKAMASTER_PATH + f"resnet8-{prefix}.th"
        srv.add(path, data)
        script = textwrap.dedent(
            f"""
            import sys, reszoo
            from reszoo.data.constants import IMAGENET_MEAN, IMAGENET_STD
            from reszoo.utils.fileio import tensors_digest
            from reszoo import weights as W
            e = W.Weights(name="resnet8-testset", arch="resnet20",
                source=W.UrlSource(url="https://github.com{path}", sha256_prefix="{prefix}"),
                converter="akamaster", dataset="cifar10", num_classes=10, mean=IMAGENET_MEAN,
                std=IMAGENET_STD, crop_size=32, config_overrides={tuple(TINY_OVERRIDES.items())!r})
            W.WEIGHTS[e.name] = e
            model = reszoo.load_pretrained(e.name)
            print(tensors_digest(model.state_dict()))
            """
        )
        env = {
            **os.environ,
            "RESZOO_CACHE": os.environ["RESZOO_CACHE"],
            "RESZOO_URL_MIRROR": srv.url,
            "HF_HUB_CACHE": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }
        env.pop("HF_HUB_OFFLINE", None)
        procs = [
            subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        results = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()
    digests = {out.decode().strip() for out, _ in results}
    assert len(digests) == 1
    # ... and they are the reference network's tensors.
    expected = reszoo.create_model("resnet20", **TINY_OVERRIDES)
    expected.load_state_dict(fit_state_dict(convert_state_dict("akamaster", akamaster_checkpoint(ref)), expected))
    assert digests == {tensors_digest(expected.state_dict())}
    assert srv.gets[path] == 1  # the file lock made the second process reuse the first one's download


# -- Hub sources --------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_batches_tracked", [True, False])
def test_timm_hub_repo_loads_into_resnet18(server, monkeypatch, num_batches_tracked):
    tv = randomize_(torchvision.models.resnet18(weights=None), seed=4)
    sd = {k: v for k, v in tv.state_dict().items() if num_batches_tracked or not k.endswith("num_batches_tracked")}
    server.add_hub_file("timm/resnet18.tv_in1k", "model.safetensors", safetensors_bytes(sd))
    # timm's own config.json is never read: our entry knows the architecture.
    server.add_hub_file("timm/resnet18.tv_in1k", "config.json", b'{"architecture": "resnet18"}')
    model = reszoo.load_pretrained("resnet18-imagenet")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), tv(x), rtol=1e-4, atol=1e-5)
    assert model.pretrained_weights.name == "resnet18-imagenet"
    assert not any(p.endswith("config.json") for p in server.gets)
    # Cached by huggingface_hub: works offline; same through the hf-hub: spelling of the repo.
    go_offline(monkeypatch)
    again = reszoo.load_pretrained("hf-hub:timm/resnet18.tv_in1k")
    torch.testing.assert_close(again(x), tv(x), rtol=1e-4, atol=1e-5)


def test_hub_file_with_wrong_checksum_is_deleted(server, monkeypatch):
    entry = add_hub_entry(monkeypatch)
    good = reszoo.create_model("resnet20", **TINY_OVERRIDES).state_dict()
    data = safetensors_bytes(good)
    server.add_hub_file("someone/resnet8", "model.safetensors", data[:-10] + b"\x00" * 10, etag="ab" * 32)
    with pytest.raises(WeightsIntegrityError, match="checksum mismatch.*deleted from the cache"):
        reszoo.load_pretrained(entry.name)
    assert not [p for p in Path(hf_constants.HF_HUB_CACHE).rglob("*") if p.is_file() and "blobs" in str(p)]
    # The Hub's own checksum matches but the file is truncated: safetensors refuses it, it is deleted.
    server.add_hub_file("someone/resnet8", "model.safetensors", data[: len(data) // 2])
    with pytest.raises(WeightsIntegrityError, match="truncated or corrupted"):
        reszoo.load_pretrained(entry.name)
    assert not [p for p in Path(hf_constants.HF_HUB_CACHE).rglob("*") if p.is_file() and "blobs" in str(p)]
    server.add_hub_file("someone/resnet8", "model.safetensors", data)
    assert torch.equal(reszoo.load_pretrained(entry.name).conv1.weight, good["conv1.weight"])


def test_hub_offline_without_cache(cache, monkeypatch):
    go_offline(monkeypatch)
    with pytest.raises(WeightsNotCachedError, match=r"model.safetensors of the Hub repo timm/resnet50.tv_in1k.*"):
        reszoo.load_pretrained("resnet50-imagenet")
    with pytest.raises(WeightsNotCachedError, match="reszoo download hf-hub:someone/x"):
        reszoo.load_pretrained("hf-hub:someone/x")


def test_hub_download_of_an_entry_keeps_the_revision_in_the_name(server, monkeypatch):
    entry = add_hub_entry(monkeypatch)
    good = reszoo.create_model("resnet20", **TINY_OVERRIDES).state_dict()
    server.add_hub_file(entry.source.repo_id, "model.safetensors", safetensors_bytes(good), revision="v1")
    path = pretrained.download("hf-hub:someone/resnet8@v1")  # only v1 exists: the entry's "main" would be a 404
    assert path.name == "model.safetensors"
    go_offline(monkeypatch)
    model = reszoo.load_pretrained("hf-hub:someone/resnet8@v1")
    assert torch.equal(model.conv1.weight, good["conv1.weight"])


# -- bad arguments: refused before anything is downloaded --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": 123}, "received name=123"),
        ({"num_classes": "10"}, r"num_classes must be an integer >= 1 or None; received num_classes='10'"),
        ({"num_classes": True}, "received num_classes=True"),
        ({"device": "gpu"}, r"Unknown device 'gpu'.*Valid names: auto, cpu, cuda"),
        ({"device": 1.5}, r"device must be None, 'auto', .*received device=1\.5"),
        ({"checkpoint": 123}, "checkpoint must be a path to a local file or None; received checkpoint=123"),
        ({"revision": ""}, "revision must be a Hub branch, tag or commit.*received revision=''"),
        ({"revision": 3}, "received revision=3"),
        ({"revision": "v1"}, r"revision='v1' applies to Hub repos only, but 'resnet110-cifar10' is downloaded from"),
        ({"revision": "v1", "checkpoint": "x.th"}, r"revision='v1' applies to Hub repos only.*'x.th' is a local file"),
        ({"check_hash": "no"}, "check_hash must be True or False; received check_hash='no'"),
        ({"check_hash": False}, "check_hash=False applies to a local checkpoint= only"),
        ({"name": "hf-hub:a/b@v1", "revision": "v2"}, "names revision 'v1' but revision='v2'"),
        ({"name": "hf-hub:a/b c"}, r"name must be 'hf-hub:owner/name\[@revision\]'; received name='hf-hub:a/b c'"),
    ],
)
def test_load_pretrained_refuses_bad_arguments_before_downloading(cache, monkeypatch, kwargs, match):
    go_offline(monkeypatch)  # anything that got as far as a download would raise WeightsNotCachedError
    kwargs = {"name": "resnet110-cifar", **kwargs}
    with pytest.raises(ValueError, match=match):
        reszoo.load_pretrained(kwargs.pop("name"), **kwargs)


def test_revision_is_refused_for_a_local_directory(tmp_path):
    out = reszoo.save_pretrained(reszoo.ResNet(FAMILIES["cifar-option-A"]), tmp_path / "out")
    with pytest.raises(ValueError, match=r"revision='v1' applies to Hub repos only.*is a local directory"):
        reszoo.load_pretrained(out, revision="v1")
    with pytest.raises(FileNotFoundError, match=r"checkpoint=.* is not a file"):
        reszoo.load_pretrained("resnet20-cifar10", checkpoint=out)


def test_download_refuses_bad_names(cache):
    with pytest.raises(ValueError, match="received name=None"):
        pretrained.download(None)
    with pytest.raises(ValueError, match=r"Unknown pretrained weights 'resnet56-cifar1'"):
        pretrained.download("resnet56-cifar1")
    with pytest.raises(ValueError, match="received name='hf-hub:nouser'"):
        pretrained.download("hf-hub:nouser")


# -- save_pretrained / load_pretrained(dir) / hf-hub: / push_to_hub --------------------------------------

FAMILIES = {
    "cifar-option-A": reszoo.ResNetConfig(**TINY_OVERRIDES),
    "cifar-option-B": reszoo.ResNetConfig(**TINY_OVERRIDES, shortcut="B"),
    "cifar-plain": reszoo.ResNetConfig(**TINY_OVERRIDES, shortcut="none"),
    "imagenet-basic": reszoo.imagenet_config(18).replace(depths=(1, 1), widths=(4, 8), stem_width=4),
    "imagenet-bottleneck": reszoo.imagenet_config(50).replace(depths=(1, 1), widths=(4, 8), stem_width=4),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_save_load_round_trip_for_every_family(tmp_path, family):
    model = randomize_(reszoo.ResNet(FAMILIES[family].replace(num_classes=7)), seed=6)
    out = reszoo.save_pretrained(model, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    loaded = reszoo.load_pretrained(str(out), device="cpu")
    assert loaded.config == model.config and loaded.conv1.weight.device.type == "cpu"
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))


def test_config_json_rebuilds_the_architecture_and_keeps_preprocessing(tmp_path, server, monkeypatch):
    ref, data, prefix = akamaster_file()
    server.add(AKAMASTER_PATH + f"resnet8-{prefix}.th", data)
    entry = add_url_entry(monkeypatch, prefix)
    model = reszoo.load_pretrained(entry.name)
    out = reszoo.save_pretrained(model, tmp_path / "out")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["reszoo_format_version"] == 1 and cfg["num_classes"] == 10
    assert reszoo.ResNetConfig.from_dict(cfg["config"]) == model.config
    assert cfg["pretrained"]["mean"] == list(IMAGENET_MEAN) and cfg["pretrained"]["resize_size"] is None
    assert cfg["pretrained"]["name"] == entry.name and len(cfg["pretrained"]["class_names"]) == 10
    loaded = reszoo.load_pretrained(out)
    assert loaded.pretrained_weights.preprocessing() == entry.preprocessing()
    torch.testing.assert_close(loaded(X), ref(X), rtol=1e-5, atol=1e-5)
    # A registered architecture is named; the real classifier size wins over a stale config.
    full = reszoo.create_model("resnet56")
    full.reset_classifier(3)
    object.__setattr__(full, "config", full.config.replace(num_classes=10))  # stale on purpose
    cfg = json.loads((reszoo.save_pretrained(full, tmp_path / "r56") / "config.json").read_text())
    assert cfg["architecture"] == "resnet56" and cfg["config"]["num_classes"] == 3
    assert reszoo.load_pretrained(tmp_path / "r56").fc.out_features == 3


def test_load_from_hf_hub_repo_in_our_format(tmp_path, server):
    model = randomize_(reszoo.ResNet(FAMILIES["cifar-option-B"]), seed=7)
    out = reszoo.save_pretrained(model, tmp_path / "out")
    for f in ("model.safetensors", "config.json"):
        server.add_hub_file("someone/resnet8-b", f, (out / f).read_bytes(), revision="v1")
    loaded = reszoo.load_pretrained("hf-hub:someone/resnet8-b@v1")
    torch.testing.assert_close(loaded(X), model(X))
    assert reszoo.weights.pretrained.download("hf-hub:someone/resnet8-b@v1").name == "model.safetensors"


def test_bad_local_directory_and_bad_names(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        reszoo.load_pretrained(tmp_path / "empty")
    with pytest.raises(
        ValueError, match=r"Unknown pretrained weights 'resnet56-cifar1'.*Did you mean.*resnet56-cifar10"
    ):
        reszoo.load_pretrained("resnet56-cifar1")
    with pytest.raises(ValueError, match="hf-hub:owner/name"):
        reszoo.load_pretrained("hf-hub:nouser")
    with pytest.raises(ValueError, match="received Linear"):
        reszoo.save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x")
    model = reszoo.ResNet(FAMILIES["cifar-option-A"])
    with pytest.raises(
        ValueError, match="weights must be a reszoo.weights.WeightsInfo record.*received weights='resnet20-cifar10'"
    ):
        reszoo.save_pretrained(model, tmp_path / "x", weights="resnet20-cifar10")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"save_directory='.*file' is a file, not a directory"):
        reszoo.save_pretrained(model, tmp_path / "file")
    with pytest.raises(ValueError, match="model_card needs a reszoo ResNet.*received Linear"):
        publish.model_card(torch.nn.Linear(2, 2), "someone/x")


def test_one_import_path_per_name_no_0_1_shims():
    # 0.2 moved these names once (CHANGELOG "Changed"); the weights modules no longer offer each other's.
    for name in ("push_to_hub", "model_card", "check_repo_id", "load_pretrained", "download", "tensors_digest"):
        with pytest.raises(AttributeError, match=f"has no attribute '{name}'"):
            getattr(hub, name)
    assert reszoo.push_to_hub is publish.push_to_hub and reszoo.load_pretrained is pretrained.load_pretrained


@pytest.fixture
def fake_hub_api(monkeypatch):
    """A local fake of the two HfApi calls push_to_hub makes (no real Hub in tests); records them."""
    calls = {}

    def create_repo(self, repo_id, **kw):
        calls["create_repo"] = (repo_id, kw)

    def upload_folder(self, *, repo_id, folder_path, **kw):
        calls["upload"] = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        calls["upload_kw"] = kw
        return type("Info", (), {"commit_url": f"https://hub.example/{repo_id}/commit/1", "pr_url": None})()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


def test_push_to_hub_uploads_weights_config_and_card(tmp_path, fake_hub_api):
    """Checks what would be uploaded."""
    calls = fake_hub_api
    model = randomize_(reszoo.create_model("resnet20", **TINY_OVERRIDES), seed=8)
    url = reszoo.push_to_hub(model, "someone/resnet8")
    assert url == "https://hub.example/someone/resnet8/commit/1"
    assert calls["create_repo"] == ("someone/resnet8", {"private": None, "exist_ok": True, "repo_type": "model"})
    assert sorted(calls["upload"]) == ["README.md", "config.json", "model.safetensors"]
    card = calls["upload"]["README.md"].decode()
    assert card.startswith("---\nlibrary_name: reszoo") and 'load_pretrained("hf-hub:someone/resnet8")' in card
    folder = tmp_path / "uploaded"
    folder.mkdir()
    for name, body in calls["upload"].items():
        (folder / name).write_bytes(body)
    torch.testing.assert_close(reszoo.load_pretrained(folder)(X), model(X))


@pytest.mark.parametrize(
    ("model", "kwargs", "match"),
    [
        ("resnet", {"repo_id": "a/b/c"}, "repo_id must be 'owner/name' \\(or 'name'\\); received repo_id='a/b/c'"),
        ("resnet", {"repo_id": ""}, "received repo_id=''"),
        ("resnet", {"private": "yes"}, "private must be True, False or None; received private='yes'"),
        ("resnet", {"weights": "resnet20-cifar10"}, "weights must be a reszoo.weights.WeightsInfo record"),
        ("linear", {}, "save_pretrained needs a reszoo ResNet.*received Linear"),
    ],
)
def test_push_to_hub_refuses_bad_arguments_before_creating_the_repo(fake_hub_api, model, kwargs, match):
    model = torch.nn.Linear(2, 2) if model == "linear" else reszoo.ResNet(FAMILIES["cifar-option-A"])
    kwargs = {"repo_id": "someone/x", **kwargs}
    with pytest.raises(ValueError, match=match):
        reszoo.push_to_hub(model, kwargs.pop("repo_id"), **kwargs)
    assert fake_hub_api == {}  # nothing created, nothing uploaded


# -- the command line ------------------------------------------------------------------------------------


def test_cli_download_then_offline_load_and_convert(server, monkeypatch, tmp_path, capsys):
    from reszoo.cli import main

    ref, data, prefix = akamaster_file()
    server.add(AKAMASTER_PATH + f"resnet8-{prefix}.th", data)
    entry = add_url_entry(monkeypatch, prefix)
    assert main(["download", "resnet8-test*"]) == 0
    assert str(reszoo.weights.cache.converted_path(entry)) in capsys.readouterr().out
    go_offline(monkeypatch)
    torch.testing.assert_close(reszoo.load_pretrained(entry.name)(X), ref(X), rtol=1e-5, atol=1e-5)
    # convert: the cached original -> model.safetensors + config.json, loadable without the entry
    assert main(["convert", entry.name, str(tmp_path / "conv")]) == 0
    monkeypatch.delitem(W.WEIGHTS, entry.name)
    torch.testing.assert_close(reszoo.load_pretrained(tmp_path / "conv")(X), ref(X), rtol=1e-5, atol=1e-5)
    assert main(["download", "nothing-like-this"]) == 2
    assert "Unknown pretrained weights" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["download", "resnet20-cifar10", "hf-hub:nouser"], "received name='hf-hub:nouser'"),
        (["download", "nothing*"], "No weight entry matches 'nothing\\*'"),
        (["convert", "hf-hub:someone/x", "OUT"], "Unknown pretrained weights 'hf-hub:someone/x'"),
        (["convert", "resnet20-cifar10", "OUT", "--no-check-hash"], "check_hash=False applies to a local checkpoint"),
        (["convert", "resnet20-cifar10", "OUT", "--push-to-hub", "a/b/c"], "received repo_id='a/b/c'"),
    ],
)
def test_cli_refuses_bad_values_before_downloading(cache, monkeypatch, tmp_path, capsys, argv, match):
    from reszoo.cli import main

    go_offline(monkeypatch)  # anything that got as far as a download would fail with "not cached"
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert not (tmp_path / "out").exists()


# -- the family's Hub entries (issue 23), offline ------------------------------------------------------
# Each entry as published (repo, converter, pre-processing), with its architecture cut down so that a
# file in the original layout is a few hundred kilobytes: the whole path (Hub download, checksum,
# conversion, fit, load) runs as for the real file.
FAMILY_HUB_ENTRIES = [
    "resnext50_32x4d-imagenet",
    "resnext50_32x4d-imagenet-v2",
    "wide_resnet50_2-imagenet",
    "wide_resnet50_2-imagenet-v2",
    "resnet50d-imagenet",
    "seresnet50-imagenet",
    "resnetv2_50-imagenet",
]
FAMILY_TINY = {"depths": (1, 1), "widths": (16, 32), "stem_width": 8}


def timm_resnetv2_layout(state_dict: dict) -> dict:
    """Our names written back in timm's ResNetV2 layout (the inverse of convert_timm_resnetv2, by hand)."""
    out = {}
    for key, value in state_dict.items():
        block = re.fullmatch(r"layer(\d+)\.(\d+)\.(.*)", key)
        if block is not None:
            rest = re.sub(r"^bn([123])\.", r"norm\1.", block.group(3)).replace("downsample.0.", "downsample.conv.")
            key = f"stages.{int(block.group(1)) - 1}.blocks.{block.group(2)}.{rest}"
        else:
            key = key.replace("conv1.", "stem.conv.").replace("final_norm.", "norm.").replace("fc.", "head.fc.")
        out[key] = value[:, :, None, None] if key == "head.fc.weight" else value
    return out


@pytest.mark.parametrize("name", FAMILY_HUB_ENTRIES)
def test_family_hub_entries_load_offline(server, monkeypatch, name):
    import dataclasses

    published = reszoo.get_weights(name)
    entry = dataclasses.replace(published, config_overrides=tuple(FAMILY_TINY.items()))
    monkeypatch.setitem(W.WEIGHTS, name, entry)
    config = reszoo.default_config(entry.arch).replace(**FAMILY_TINY)
    source = randomize_(reszoo.ResNet(config), seed=7)
    sd = source.state_dict()
    if entry.converter == "timm_resnetv2":
        sd = timm_resnetv2_layout(sd)
        assert "stages.1.blocks.0.downsample.conv.weight" in sd and sd["head.fc.weight"].ndim == 4
    server.add_hub_file(entry.source.repo_id, "model.safetensors", safetensors_bytes(sd))

    model = reszoo.load_pretrained(name)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=1e-5, atol=1e-5)
    assert model.pretrained_weights is entry and model.pretrained_weights.preprocessing() == published.preprocessing()
    # Cached by huggingface_hub: the timm name loads it again, offline.
    go_offline(monkeypatch)
    again = reszoo.load_pretrained(entry.aliases[0])
    with torch.no_grad():
        torch.testing.assert_close(again(x), source(x), rtol=1e-5, atol=1e-5)
