"""reszoo.infer.evaluation and `reszoo evaluate`: accuracy against hand-written oracles, offline, on real image files.

The image set is the PIL-drawn folder of tests/_images.py (PNG and JPEG; RGB, grayscale, RGBA and
palette images); weights come from a saved folder, a 127.0.0.1 fake of the Hugging Face Hub
(tests/_http.py) or a run folder written by reszoo.train.trainer.fit.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save as safetensors_bytes

from reszoo import ResNet, ResNetConfig, save_pretrained, train
from reszoo import weights as W
from reszoo.cli import main
from reszoo.data.constants import CIFAR10_CLASSES, CIFAR10_MEAN
from reszoo.errors import InvalidArgumentError, MissingInputError, RunFolderError
from reszoo.infer.evaluation import evaluate
from reszoo.infer.inputs import input_transform, multi_scale_sizes
from reszoo.infer.loading import load_for_evaluation, load_run
from reszoo.train.runfolder import save_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from _images import CLASSES, SHAPES_MEAN, SHAPES_STD, make_image_folder, shapes_entry, shapes_model, write_images  # noqa: E402
from conftest import TINY_OVERRIDES  # noqa: E402

MEAN, STD = SHAPES_MEAN, SHAPES_STD


def opened(path) -> PIL.Image.Image:
    """The image at ``path``, read whole (the file closed), in its own mode."""
    with PIL.Image.open(path) as img:
        return img.copy()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The shapes in train/ and val/, PNG and JPEG in several PIL modes; two val images of another size."""
    root = make_image_folder(
        tmp_path_factory.mktemp("shapes"), per_class=2, val_per_class=8, modes=("L", "RGBA", "P")
    )  # three modes over two formats: grayscale, RGBA and palette PNGs, grayscale and RGB JPEGs
    write_images(root / "val" / "circle", "circle", 2, size=44, rng=random.Random(1), start=100)
    return root


def pixels(path_or_image) -> torch.Tensor:
    """The oracle's pre-processing, by hand: RGB (alpha dropped), scaled to [0, 1], normalised."""
    img = path_or_image if isinstance(path_or_image, PIL.Image.Image) else opened(path_or_image)
    x = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    x = (x - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)


def val_files(root: Path) -> list[tuple[Path, int]]:
    return [(p, label) for label, name in enumerate(CLASSES) for p in sorted((root / "val" / name).iterdir())]


def oracle(root: Path, scores) -> tuple[list[int], list[int]]:
    """Per-class (images, correct) from ``scores(path) -> logits``, a loop written without reszoo."""
    images, correct = [0] * 3, [0] * 3
    with torch.no_grad():
        for path, label in val_files(root):
            images[label] += 1
            correct[label] += int(scores(path).argmax()) == label
    return images, correct


def per_class(result) -> tuple[list[int], list[int]]:
    names = [c.name for c in result.per_class]
    assert names == list(CLASSES)
    return [c.images for c in result.per_class], [c.correct for c in result.per_class]


# -- the measurement --------------------------------------------------------------------------------


def center_logits(model, path):
    """The model's logits for one file: shorter side to 32, centre crop (most files are 32 x 32 already)."""
    from torchvision.transforms.v2 import functional as TF

    img = opened(path).convert("RGB")
    if img.size != (32, 32):
        img = TF.to_pil_image(TF.center_crop(TF.resize(TF.pil_to_tensor(img), [32], antialias=True), [32]))
    return model(pixels(img)[None])[0]


def test_evaluate_equals_a_hand_written_loop(folder):
    model = shapes_model()
    result = evaluate(model, "folder", root=folder, num_workers=0, batch_size=5)
    images, correct = oracle(folder, lambda p: center_logits(model, p))
    assert per_class(result) == (images, correct)
    assert 0 < sum(correct) < sum(images)  # the model is right on some, wrong on others: the oracle means something
    assert result.images == sum(c.images for c in result.per_class) == 26
    assert result.top1 == pytest.approx(100 * sum(correct) / 26)
    assert result.top5 is None and result.protocol == "center-crop" and result.data == "folder:val"
    assert result.weights == "tiny-shapes" and result.device == "cpu" and result.images_per_s > 0
    assert result.published == ()  # the record has none


def test_top5_per_class_and_limit_on_a_dataset_or_loader():
    torch.manual_seed(3)
    model = ResNet(ResNetConfig(**TINY_OVERRIDES)).eval()  # 10 classes, no record: "class N"
    x = torch.randn(40, 3, 32, 32)
    y = torch.arange(40) % 10
    data = torch.utils.data.TensorDataset(x, y)
    with torch.no_grad():
        logits = model(x)
    ranks = logits.argsort(dim=1, descending=True)
    top1 = (ranks[:, 0] == y).sum().item()
    top5 = sum(int(y[i]) in ranks[i, :5].tolist() for i in range(40))
    result = evaluate(model, data, batch_size=7, num_workers=0)
    assert result.top1 == pytest.approx(100 * top1 / 40) and result.top5 == pytest.approx(100 * top5 / 40)
    assert [c.name for c in result.per_class] == [f"class {i}" for i in range(10)]
    assert [c.correct for c in result.per_class] == [int(((ranks[:, 0] == y) & (y == k)).sum()) for k in range(10)]
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    again = evaluate(model, loader)
    assert (again.top1, again.top5, again.per_class) == (result.top1, result.top5, result.per_class)
    first = evaluate(model, loader, limit=13)  # cuts the second batch
    assert first.images == 13 and first.top1 == pytest.approx(100 * int((ranks[:13, 0] == y[:13]).sum()) / 13)
    assert model.training is False
    model.train()
    evaluate(model, data, limit=3)
    assert model.training  # put back


def test_ten_crop_equals_a_manual_computation(folder):
    model = shapes_model()
    result = evaluate(model, "folder", root=folder, ten_crop=True, num_workers=0, batch_size=4)

    def ten_crop(path):
        from torchvision.transforms.v2 import functional as TF

        x = TF.resize(TF.pil_to_tensor(opened(path).convert("RGB")), [37], antialias=True)  # 32 * 256 / 224
        crops = []
        for crop in TF.five_crop(x, [32, 32]):
            crops += [crop, crop.flip(-1)]
        batch = torch.stack([(c.float() / 255 - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
                             for c in crops])  # fmt: skip
        return model(batch).mean(0)

    assert per_class(result) == oracle(folder, ten_crop)
    assert result.protocol == "ten-crop"


def test_multi_scale_equals_a_manual_computation_for_mixed_sizes(folder):
    model = shapes_model(seed=1)
    assert multi_scale_sizes(224) == (224, 256, 384, 480, 640) and multi_scale_sizes(32) == (32, 37, 55, 69, 91)
    result = evaluate(model, "folder", root=folder, multi_scale=True, num_workers=0, batch_size=26)

    def scales(path):
        x = pixels(path)[None]
        return (
            sum(
                model(F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False))[0]
                for s in (32, 37, 55, 69, 91)
            )
            / 5
        )

    assert per_class(result) == oracle(folder, scales)
    assert result.protocol == "multi-scale"
    with pytest.raises(InvalidArgumentError, match="choose one"):
        evaluate(model, "folder", root=folder, multi_scale=True, ten_crop=True)


def test_folder_classes_are_matched_to_the_model_by_name(folder, tmp_path):
    order = ("triangle", "circle", "square")  # the model's outputs in another order than the folder's
    model = shapes_model(categories=order)
    result = evaluate(model, "folder", root=folder, num_workers=0)
    assert [c.name for c in result.per_class] == list(order)
    images, correct = oracle(folder, lambda p: center_logits(model, p)[[1, 2, 0]])  # back to the folder's order
    assert [c.images for c in result.per_class] == [images[2], images[0], images[1]]
    assert [c.correct for c in result.per_class] == [correct[2], correct[0], correct[1]]
    other = make_image_folder(tmp_path / "other", classes=("circle", "square"), per_class=1, val_per_class=1)
    (other / "val" / "star").mkdir()
    (other / "train" / "star").mkdir()
    PIL.Image.new("RGB", (32, 32)).save(other / "val" / "star" / "a.png")
    PIL.Image.new("RGB", (32, 32)).save(other / "train" / "star" / "a.png")
    with pytest.raises(InvalidArgumentError, match=r"these are not: star \(expected: triangle, circle, square\)"):
        evaluate(model, "folder", root=other, num_workers=0)
    subset = make_image_folder(tmp_path / "subset", classes=("circle", "square"), per_class=1, val_per_class=1)
    two = evaluate(model, "folder", root=subset, num_workers=0)
    assert [c.name for c in two.per_class] == ["circle", "square"]  # a subset of the model's classes is fine


def test_published_figures_only_for_their_own_test_set(folder):
    metric = W.Metric("folder-val", "top1", 42.0, "this test")
    model = shapes_model(metrics=(metric,))
    assert evaluate(model, "folder", root=folder, num_workers=0).published == (metric,)
    assert evaluate(model, "folder", root=folder, split="train", num_workers=0).published == ()
    cifar = shapes_model(metrics=(metric,), dataset="cifar10")
    assert evaluate(cifar, "folder", root=folder, num_workers=0).published == ()


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"data": "mnist"}, InvalidArgumentError, "Unknown data 'mnist'"),
        ({"data": "folder", "root": None}, InvalidArgumentError, "root must be the folder that holds the folder"),
        ({"data": "folder", "split": "test"}, InvalidArgumentError, "Unknown split 'test'"),
        ({"data": "folder", "batch_size": 0}, InvalidArgumentError, "batch_size must be an integer >= 1"),
        ({"data": "folder", "limit": 0}, InvalidArgumentError, "limit must be an integer >= 1"),
        ({"data": "folder", "ten_crop": "yes"}, TypeError, "ten_crop must be True or False"),
        ({"data": 3}, TypeError, "data must be a torch Dataset or DataLoader"),
        ({"data": "cifar10", "root": "/nonexistent"}, MissingInputError, "cifar10 not found"),
        ({"data": "folder", "root": "/nonexistent"}, MissingInputError, "not a folder"),
    ],
)
def test_bad_arguments_are_one_line(folder, kw, error, match):
    kw = {"root": folder, **kw}
    with pytest.raises(error, match=match) as info:
        evaluate(shapes_model(), **kw)
    assert "\n" not in str(info.value)


def test_labels_outside_the_model_are_refused():
    data = torch.utils.data.TensorDataset(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 7]))
    with pytest.raises(InvalidArgumentError, match="label 7 .* the model has 3 outputs"):
        evaluate(shapes_model(), data, num_workers=0)


# -- what WEIGHTS_OR_RUN names --------------------------------------------------------------------


def same_outputs(a, b) -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


def test_a_weight_entry_on_the_hub(hub_server, monkeypatch, folder):
    model = shapes_model(seed=4)
    entry = shapes_entry(name="tiny-shapes-hub", source=W.HubSource(repo_id="someone/tiny-shapes"))
    monkeypatch.setitem(W.WEIGHTS, entry.name, entry)
    hub_server.add_hub_file("someone/tiny-shapes", "model.safetensors", safetensors_bytes(model.state_dict()))
    loaded = load_for_evaluation("tiny-shapes-hub")
    assert loaded.pretrained_weights is entry and not loaded.training
    same_outputs(loaded, model)
    assert per_class(evaluate(loaded, "folder", root=folder, num_workers=0)) == per_class(
        evaluate(model, "folder", root=folder, num_workers=0)
    )


def test_a_saved_folder_and_an_hf_hub_repo(hub_server, tmp_path):
    model = shapes_model(seed=5)
    out = save_pretrained(model, tmp_path / "saved")
    local = load_for_evaluation(out)
    same_outputs(local, model)
    assert local.pretrained_weights.class_names == CLASSES and local.pretrained_weights.mean == MEAN
    for name in ("model.safetensors", "config.json"):
        hub_server.add_hub_file("someone/shapes", name, (out / name).read_bytes())
    remote = load_for_evaluation("hf-hub:someone/shapes")
    same_outputs(remote, model)
    assert remote.pretrained_weights.class_names == CLASSES
    assert input_transform(remote)(PIL.Image.new("RGB", (32, 32))).shape == (3, 32, 32)


def tiny_recipe(**kw):
    base = dict(data="synthetic", batch_size=16, iterations=4, log_every=2, eval_every=0, checkpoint_every=2)
    return train.Recipe(**{**base, "synthetic_eval_images": 32, "eval_batch_size": 32, **kw})


def test_a_run_folder_finished_and_unfinished(tmp_path, tiny_model):
    done = train.fit(tiny_model(), tiny_recipe(), out=tmp_path / "run", progress=False)
    finished = load_for_evaluation(tmp_path / "run")
    same_outputs(finished, done.model.eval())
    assert finished.pretrained_weights.name == "run" and not finished.training
    run_json = tmp_path / "run" / "run.json"
    run = json.loads(run_json.read_text())
    run_json.write_text(json.dumps({**run, "recipe": {**run["recipe"], "data": "cifar10"}}))  # as a CIFAR-10 run
    record = load_for_evaluation(tmp_path / "run").pretrained_weights  # the recipe's data names the classes
    assert record.class_names == CIFAR10_CLASSES and record.mean == CIFAR10_MEAN and record.dataset == "cifar10"
    run_json.write_text(json.dumps(run))

    class Stop(Exception):
        pass

    def stop_at_6(it):
        if it == 6:
            raise Stop

    with pytest.raises(Stop):  # resumed to train longer, stopped: model/ is the old state, the checkpoint newer
        train.fit(tiny_model(), tiny_recipe(iterations=10), out=tmp_path / "run", resume=True, progress=False,
                  on_step=stop_at_6)  # fmt: skip
    ckpt = train.load_checkpoint(tmp_path / "run")
    assert ckpt["iteration"] > 4
    latest = load_run(tmp_path / "run")
    assert latest.iteration == ckpt["iteration"]
    for key, value in ckpt["model"].items():
        assert torch.equal(latest.state_dict()[key], value), key


def test_a_folder_run_measures_what_its_own_evaluation_measured(folder, tmp_path, tiny_model):
    recipe = tiny_recipe(data="folder", data_root=str(folder), batch_size=6, iterations=8, eval_batch_size=13)
    done = train.fit(tiny_model(num_classes=3), recipe.replace(num_workers=0), out=tmp_path / "run", progress=False)
    model = load_for_evaluation(tmp_path / "run")
    assert model.pretrained_weights.class_names == CLASSES and model.pretrained_weights.dataset == "folder"
    result = evaluate(model, "folder", root=folder, num_workers=0)
    assert result.top1 == pytest.approx(100 * (1 - done.test_error))  # the training loop's own evaluation
    assert result.images == 26 and result.data == "folder:val"

    class Stop(Exception):
        pass

    def stop_at_10(it):
        if it == 10:
            raise Stop

    with pytest.raises(Stop):  # resumed to train longer, stopped: read from the checkpoint
        train.fit(tiny_model(num_classes=3), recipe.replace(iterations=16, num_workers=0), out=tmp_path / "run",
                  resume=True, progress=False, on_step=stop_at_10)  # fmt: skip
    latest = load_for_evaluation(tmp_path / "run")
    assert latest.iteration == train.load_checkpoint(tmp_path / "run")["iteration"] > 8
    assert latest.pretrained_weights.mean == model.pretrained_weights.mean  # the recipe's normalisation


def test_a_run_folder_of_another_model_is_refused(tmp_path, tiny_model):
    train.fit(tiny_model(), tiny_recipe(), out=tmp_path / "run", progress=False)
    wider = ResNet(ResNetConfig(**{**TINY_OVERRIDES, "widths": (8, 16, 32)}))
    save_pretrained(wider, tmp_path / "run" / "model")
    with pytest.raises(RunFolderError, match=r"model holds another model \(depths=\(1, 1, 1\), widths=\(8, 16, 32\)"):
        load_for_evaluation(tmp_path / "run")
    ckpt = train.load_checkpoint(tmp_path / "run")
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", {**ckpt, "model": wider.state_dict()})
    run = json.loads((tmp_path / "run" / "run.json").read_text())  # asks for more iterations: the checkpoint is read
    (tmp_path / "run" / "run.json").write_text(json.dumps({**run, "recipe": {**run["recipe"], "iterations": 99}}))
    with pytest.raises(RunFolderError, match="checkpoint.pt does not fit the network .* another model's weights"):
        load_for_evaluation(tmp_path / "run")


def test_weights_that_name_nothing_are_one_line(tmp_path):
    with pytest.raises(InvalidArgumentError) as info:
        load_for_evaluation("resnet20-cifar1")
    message = str(info.value)
    assert "Unknown pretrained weights 'resnet20-cifar1'" in message and "resnet20-cifar10" in message
    assert "hf-hub:owner/repo" in message and "run folder" in message and "\n" not in message
    with pytest.raises(MissingInputError, match="does not exist"):
        load_for_evaluation("./no/such/run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputError, match="holds neither run.json nor config.json"):
        load_for_evaluation(tmp_path / "empty")
    (tmp_path / "empty" / "run.json").write_text(json.dumps({"model": "resnet20", "model_overrides": {}, "recipe": {}}))
    with pytest.raises(MissingInputError, match=r"holds no model yet: neither model/ .* nor checkpoint.pt"):
        load_for_evaluation(tmp_path / "empty")
    with pytest.raises(TypeError, match="name must be a weight name"):
        load_for_evaluation(3)


# -- the command line -----------------------------------------------------------------------------


def test_cli_table_and_json(folder, tmp_path, capsys):
    model = shapes_model(metrics=(W.Metric("folder-val", "top1", 42.0, "this test"),))
    save_pretrained(model, tmp_path / "saved")
    args = ["evaluate", str(tmp_path / "saved"), "--data", "folder", "--root", str(folder), "--num-workers", "0"]
    assert main([*args, "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = evaluate(model, "folder", root=folder, num_workers=0)
    assert set(data) == {
        "report", "weights", "data", "protocol", "images", "top1", "top5", "published", "per_class", "seconds",
        "images_per_s", "device",
    }  # fmt: skip
    assert (data["top1"], data["top5"], data["images"]) == (expected.top1, None, 26)
    assert data["published"] == [{"dataset": "folder-val", "name": "top1", "value": 42.0, "source": "this test"}]
    assert data["per_class"][0] == {"name": "circle", "images": 10, "correct": expected.per_class[0].correct,
                                    "accuracy": expected.per_class[0].accuracy}  # fmt: skip
    assert main([*args, "--json", str(tmp_path / "r.json"), "--ten-crop"]) == 0
    table = capsys.readouterr().out
    assert "tiny-shapes on folder:val: 26 images, ten-crop, cpu" in table
    assert "42.00" in table and "this test" in table and "triangle" in table and "images/s" in table
    assert json.loads((tmp_path / "r.json").read_text())["protocol"] == "ten-crop"


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (["--data", "mnist"], "Unknown data 'mnist'"),
        (["--data", "folder", "--ten-crop", "--multi-scale"], "choose one"),
        (["--data", "folder", "--json", "/no/such/dir/r.json"], "--json must name a file in an existing folder"),
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(folder, tmp_path, capsys, extra, line):
    save_pretrained(shapes_model(), tmp_path / "saved")
    argv = ["evaluate", str(tmp_path / "saved"), "--root", str(folder), "--num-workers", "0", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reszoo evaluate: error: ") and line in err and "\n" not in err


def test_cli_weights_naming_nothing(folder, capsys):
    assert main(["evaluate", "resnet20-cifar1", "--data", "folder", "--root", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown pretrained weights 'resnet20-cifar1'" in err and "run folder" in err and "\n" not in err
