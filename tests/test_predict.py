"""reszoo.infer.prediction and `reszoo predict`: top-k names and probabilities, offline, on real image files."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from reszoo import ResNet, save_pretrained
from reszoo.cli import main
from reszoo.data.constants import CIFAR10_CLASSES
from reszoo.errors import MissingInputError
from reszoo.infer.prediction import Prediction, predict

sys.path.insert(0, str(Path(__file__).parent))
from _images import CLASSES, SHAPES_MEAN, SHAPES_STD, make_image_folder, shapes_model  # noqa: E402

MEAN, STD = SHAPES_MEAN, SHAPES_STD


def opened(path) -> PIL.Image.Image:
    """The image at ``path``, read whole (the file closed), in its own mode."""
    with PIL.Image.open(path) as img:
        return img.copy()


BIAS = (-1.0, 2.5, 0.5)  # a head that ignores the image: square 2.5, triangle 0.5, circle -1


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """24 shapes (8 per class) in one tree: grayscale, RGBA and palette PNGs, grayscale and RGB JPEGs.

    Three modes over two formats, so that each mode meets each format (a JPEG holds no alpha or
    palette: those are written as RGB).
    """
    root = tmp_path_factory.mktemp("shapes")
    return make_image_folder(root, per_class=8, layout="single", modes=("L", "RGBA", "P"))


def confident(num_classes: int = 3, bias=BIAS, **fields) -> ResNet:
    """A model whose head is set by hand: the same logits (``bias``) for every image."""
    model = shapes_model(num_classes=num_classes, **fields)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.as_tensor(bias))
    return model


def softmax(logits) -> list[float]:
    exp = [math.exp(v) for v in logits]
    return [e / sum(exp) for e in exp]


def manual_probs(model, path) -> torch.Tensor:
    """The oracle: RGB pixels in [0, 1], normalised by hand (the files are 32 x 32), softmax."""
    x = np.asarray(opened(path).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy((x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).permute(2, 0, 1)
    with torch.no_grad():
        return model(x[None])[0].softmax(0)


def files(folder) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


# -- names, probabilities, order ------------------------------------------------------------------


def test_top_k_names_and_probabilities_of_a_confident_model(folder):
    expected = softmax(BIAS)
    out = predict(confident(), folder / "circle", topk=2)
    assert [p.source for p in out] == files(folder / "circle")
    for p in out:
        assert [name for name, _ in p.classes] == ["square", "triangle"] and p.indices == (1, 2)
        assert [prob for _, prob in p.classes] == pytest.approx([expected[1], expected[2]])


def test_probabilities_sum_to_one_sorted_and_equal_a_hand_computation(folder):
    model = shapes_model(seed=2)
    out = predict(model, folder, topk=10)  # more than the model has: all of them
    assert len(out) == 24
    tops = set()
    for p in out:
        probs = [prob for _, prob in p.classes]
        assert len(probs) == 3 and sum(probs) == pytest.approx(1.0, abs=1e-6)
        assert probs == sorted(probs, reverse=True)
        assert sorted(name for name, _ in p.classes) == sorted(CLASSES)
        oracle = manual_probs(model, p.source)
        assert probs == pytest.approx([oracle[i].item() for i in p.indices], abs=1e-5)
        tops.add(p.top[0])
    assert len(tops) > 1  # the predictions depend on the image


def test_class_names_from_the_record_cifar_imagenet_or_class_n(folder):
    image = folder / "circle" / "circle_0000.png"
    cifar = confident(10, bias=torch.arange(10.0), dataset="cifar10", categories=None)
    assert [n for n, _ in predict(cifar, image, topk=3)[0].classes] == list(CIFAR10_CLASSES[9:6:-1])
    bias = torch.zeros(1000)
    bias[281] = 5.0
    imagenet = confident(1000, bias=bias, dataset="imagenet", categories=None)
    from torchvision.models import ResNet50_Weights

    assert predict(imagenet, image, topk=1)[0].top[0] == ResNet50_Weights.IMAGENET1K_V1.meta["categories"][281]
    bare = confident()
    del bare.pretrained_weights
    assert [n for n, _ in predict(bare, image)[0].classes] == ["class 1", "class 2", "class 0"]


def test_batch_size_does_not_change_the_results(folder):
    model = shapes_model(seed=3)
    runs = [predict(model, folder, batch_size=b) for b in (1, 5, 64)]
    for other in runs[1:]:
        assert [p.source for p in other] == [p.source for p in runs[0]]
        assert [p.indices for p in other] == [p.indices for p in runs[0]]
        for a, b in zip(other, runs[0], strict=True):
            assert [v for _, v in a.classes] == pytest.approx([v for _, v in b.classes], abs=1e-6)


def test_files_folders_and_globs_name_the_same_images(folder):
    model = confident()
    circles = files(folder / "circle")
    by_file = predict(model, circles[:3])
    assert [p.source for p in by_file] == circles[:3]
    by_glob = predict(model, str(folder / "*" / "*.png"))
    assert [p.source for p in by_glob] == sorted(str(p) for p in folder.glob("*/*.png"))
    mixed = predict(model, [str(folder / "square"), circles[0], str(folder / "**" / "triangle_000*")])
    assert len(mixed) == 8 + 1 + 8


def test_grayscale_rgba_palette_pil_and_tensor_inputs(folder):
    model = shapes_model(seed=4)
    paths = files(folder / "square")[:5]
    assert [opened(p).mode for p in paths] == ["L", "RGB", "P", "L", "RGBA"]
    from_files = predict(model, paths, topk=3)
    images = [opened(p) for p in paths]
    from_pil = predict(model, images, topk=3)
    assert [p.source for p in from_pil] == [0, 1, 2, 3, 4]
    tensors = torch.stack([torch.from_numpy(np.array(i.convert("RGB"))).permute(2, 0, 1) for i in images])
    from_tensors = predict(model, tensors, topk=3)
    for a, b, c in zip(from_files, from_pil, from_tensors, strict=True):
        assert a.indices == b.indices == c.indices
        assert [v for _, v in a.classes] == pytest.approx([v for _, v in c.classes], abs=1e-6)
    gray = opened(paths[0]).convert("L")
    one_channel = torch.from_numpy(np.array(gray))[None]
    assert predict(model, one_channel)[0].indices == predict(model, gray.convert("RGB"))[0].indices


def test_a_missing_file_is_refused_before_anything_runs(folder):
    with pytest.raises(MissingInputError, match=r"No such file or folder: .*nothing\.png") as info:
        predict(confident(), [str(folder / "circle"), str(folder / "nothing.png")])
    assert "\n" not in str(info.value)
    with pytest.raises(MissingInputError, match="No image files match"):
        predict(confident(), str(folder / "*.gif"))


def test_an_unreadable_file_is_skipped_with_one_warning(folder, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    good = files(folder / "circle")[:2]
    with pytest.warns(UserWarning, match=r"Skipped 2 of 4 images that PIL cannot read: .*notes.txt, .*broken.png\.$"):
        out = predict(confident(), [*good, str(notes), str(broken)])
    assert [p.source for p in out] == sorted([*good])
    with pytest.raises(MissingInputError, match=r"No image could be read: Cannot read image .*notes.txt"):
        predict(confident(), notes)


def test_bad_arguments(folder):
    with pytest.raises(ValueError, match="topk must be an integer >= 1"):
        predict(confident(), folder, topk=0)
    with pytest.raises(TypeError, match="images must be image paths"):
        predict(confident(), [])
    with pytest.raises(TypeError, match=r"images\[0\] must be image paths"):
        predict(confident(), [3])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        predict(confident(), torch.zeros(4, 8, 8))


def test_training_mode_is_put_back(folder):
    model = confident().train()
    predict(model, folder / "circle")
    assert model.training


def test_prediction_as_json():
    p = Prediction(source="a.png", classes=(("cat", 0.75), ("dog", 0.25)), indices=(3, 5))
    assert p.to_dict() == {
        "image": "a.png",
        "top": [{"class": "cat", "index": 3, "probability": 0.75}, {"class": "dog", "index": 5, "probability": 0.25}],
    }


# -- the command line -----------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    return str(save_pretrained(confident(), tmp_path / "saved"))


def test_cli_text_and_json(folder, saved, tmp_path, capsys):
    circles = files(folder / "circle")[:2]
    assert main(["predict", saved, *circles, "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = softmax(BIAS)
    assert out[0] == circles[0] and out[1].split() == [f"{100 * expected[1]:.2f}", "%", "square"]
    assert len(out) == 6
    assert main(["predict", saved, str(folder / "circle"), "--json", "-", "--batch-size", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"report", "weights", "predictions", "skipped"} and data["skipped"] == []
    assert data["report"] == "reszoo predict"
    assert data["weights"] == "tiny-shapes" and len(data["predictions"]) == 8
    first = data["predictions"][0]
    assert first["image"] == circles[0] and [t["class"] for t in first["top"]] == ["square", "triangle", "circle"]
    assert first["top"][0] == {"class": "square", "index": 1, "probability": pytest.approx(expected[1])}
    assert main(["predict", saved, circles[0], "--json", str(tmp_path / "p.json")]) == 0
    assert capsys.readouterr().out.startswith(circles[0])  # the text too
    assert json.loads((tmp_path / "p.json").read_text())["predictions"][0]["image"] == circles[0]


def test_cli_skips_an_unreadable_file_with_a_warning(folder, saved, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    good = files(folder / "circle")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the command prints the warning itself, as one line
        assert main(["predict", saved, good, str(notes), "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["skipped"] == [str(notes)]
    assert captured.err.strip() == f"warning: Skipped 1 of 2 images that PIL cannot read: {notes}."


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["{saved}", "{folder}/nothing.png"], 2, "No such file or folder: {folder}/nothing.png."),
        (["{saved}", "{tmp}/notes.txt"], 2, "No image could be read: Cannot read image {tmp}/notes.txt"),
        (["resnet20-cifar1", "{folder}"], 2, "Unknown pretrained weights 'resnet20-cifar1'"),
        (["{saved}", "{folder}", "--top-k", "0"], 2, "topk must be an integer >= 1"),
    ],
    ids=["missing-file", "not-an-image", "unknown-weights", "bad-top-k"],
)
def test_cli_errors_are_one_line(folder, saved, tmp_path, capsys, args, code, line):
    (tmp_path / "notes.txt").write_text("not an image")
    fill = {"saved": saved, "folder": str(folder), "tmp": str(tmp_path)}
    assert main(["predict", *(a.format(**fill) for a in args)]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("reszoo predict: error: ") and line.format(**fill) in err and "\n" not in err
