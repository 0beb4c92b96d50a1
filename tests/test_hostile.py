"""Hostile inputs (issue 22a): folders and image folders that someone else wrote.

A save_pretrained folder or an ``hf-hub:`` repo is two files anyone can edit; an image folder is a
tree anyone can fill with links, pipes and odd PNGs. Each case here must end in one clear reszoo
error (or a skipped file with a warning that names it) and a correct result for the rest, quickly:
never minutes of work, a machine's memory, a hang, a foreign traceback or a silently wrong number.

Each test is a case written against one defect of issue 22 and fails without its fix.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import reszoo
from reszoo import train
from reszoo.cli import main
from reszoo.errors import ArgumentTypeError, InvalidArgumentError, WeightsIntegrityError
from reszoo.weights import pretrained

sys.path.insert(0, str(Path(__file__).parent))
from _images import make_image_folder, shapes_model  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A save_pretrained folder of the tiny shapes net (3 classes, with its record), written once."""
    return reszoo.save_pretrained(shapes_model(), tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture
def folder(saved, tmp_path) -> Path:
    """A scratch copy of :func:`saved` for one test to spoil."""
    return Path(shutil.copytree(saved, tmp_path / "model"))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Three classes of real PNG and JPEG shapes, two images each, in one tree."""
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=2, layout="single", size=16)


def edit_config(folder: Path, edit: Any) -> None:
    """Change config.json in place: ``edit(data)`` changes the parsed document."""
    path = folder / "config.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def set_field(section: str, name: str, value: Any) -> Any:
    def edit(data: dict) -> None:
        data[section] = data[section] or {}
        data[section][name] = value
        if (section, name) == ("config", "num_classes"):  # config.json states it twice
            data["num_classes"] = value

    return edit


@pytest.fixture
def no_build(monkeypatch) -> None:
    """Building a network from now on fails the test: a hostile folder must be refused before."""

    def refuse(config: Any) -> None:
        raise AssertionError(f"a network was built for depths={config.depths} before the folder was checked")

    monkeypatch.setattr(pretrained, "_build", refuse)


def one_line_error(capsys: Any, argv: list[str], code: int, *match: str) -> str:
    """``reszoo ARGV`` exits with ``code`` and one line on stderr holding each of ``match``."""
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in match:
        assert text in err, err
    return err


# -- 1. a config.json that asks for too much, or for another network than its tensors -------------

# (section, fields, what the message names). Each is far beyond any real model and would, without
# the limits, build for minutes (depths), or ask predict for tens of gigabytes (sizes).
TOO_MUCH = [
    ("config", {"depths": [200_000, 1, 1]}, "200002 residual blocks"),
    ("config", {"depths": [1] * 40, "widths": [4] * 40}, "40 stages"),
    ("config", {"widths": [4, 8, 10**9]}, "widths=[4, 8, 1000000000]"),
    ("config", {"stem_width": 10**7}, "stem_width=10000000"),
    ("config", {"strides": [1, 2, 10**30]}, "strides="),
    ("config", {"in_chans": 10**6}, "in_chans=1000000"),
    ("config", {"num_classes": 10**8}, "num_classes=100000000"),
    ("config", {"image_size": 200_000}, "image_size=200000"),
    ("pretrained", {"crop_size": 200_000}, "crop_size=200000"),
    ("pretrained", {"resize_size": 10**6}, "resize_size=1000000"),
]


@pytest.mark.parametrize(("section", "fields", "named"), TOO_MUCH, ids=[c[2] for c in TOO_MUCH])
def test_a_config_asking_for_too_much_is_refused_before_anything_is_built(folder, no_build, section, fields, named):
    for name, value in fields.items():
        edit_config(folder, set_field(section, name, value))
    start = time.perf_counter()
    with pytest.raises(InvalidArgumentError, match="a saved folder may ask for at most") as err:
        reszoo.load_pretrained(folder)
    assert named in str(err.value) and str(folder / "config.json") in str(err.value)
    assert time.perf_counter() - start < 30  # not minutes (imports included: this may be a worker's first test)


def test_a_config_that_does_not_describe_its_tensors_is_refused_before_building(folder, no_build):
    edit_config(folder, set_field("config", "depths", [3, 1, 1]))
    with pytest.raises(WeightsIntegrityError, match=r"depths=\[3, 1, 1\] \(the tensors: \[1, 1, 1\]\)") as err:
        reszoo.load_pretrained(folder)
    assert "model.safetensors" in str(err.value)
    edit_config(folder, set_field("config", "depths", [1, 1, 1]))
    edit_config(folder, set_field("config", "widths", [4, 8, 32]))
    edit_config(folder, set_field("config", "num_classes", 7))
    edit_config(folder, set_field("pretrained", "class_names", None))
    with pytest.raises(
        WeightsIntegrityError, match=r"widths=\[4, 8, 32\] \(the tensors: \[4, 8, 16\]\), num_classes=7 "
    ):
        reszoo.load_pretrained(folder)


def test_a_huge_config_json_is_not_read(folder):
    path = folder / "config.json"
    path.write_text(path.read_text()[:-2] + ', "padding": "' + "x" * (17 * 2**20) + '"}')
    with pytest.raises(InvalidArgumentError, match="reads at most 16,777,216"):
        reszoo.load_pretrained(folder)


def test_a_run_folder_asking_for_too_much_is_refused(tmp_path, monkeypatch):
    from reszoo.infer import loading

    run = tmp_path / "run"
    train.train_model(
        "resnet20",
        model_overrides={"depths": (1, 1, 1), "widths": (4, 8, 16), "stem_width": 4},
        recipe_overrides={"data": "synthetic", "batch_size": 4, "iterations": 1, "synthetic_eval_images": 4},
        out=run,
        progress=False,
    )
    record = json.loads((run / "run.json").read_text())
    record["config"] = {**(record.get("config") or {}), "depths": [100_000, 1, 1]}
    (run / "run.json").write_text(json.dumps(record))
    shutil.rmtree(run / "model")  # an unfinished run: its checkpoint is loaded into the network run.json describes
    monkeypatch.setattr(loading, "ResNet", lambda config: pytest.fail(f"built depths={config.depths}"))
    with pytest.raises(InvalidArgumentError, match=r"run.json: depths=\[100000, 1, 1\]"):
        loading.load_run(run)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_cli_refuses_a_folder_asking_for_too_much_in_one_line(folder, images, no_build, capsys, command):
    edit_config(folder, set_field("pretrained", "crop_size", 200_000))
    data = [str(images / "circle")] if command == "predict" else ["--data", "folder", "--root", str(images)]
    one_line_error(capsys, [command, str(folder), *data, "--device", "cpu"], 2, "crop_size=200000", "config.json")


def test_a_hub_repo_asking_for_too_much_is_refused_before_its_weights_are_downloaded(saved, hub_server, no_build):
    config = json.loads((saved / "config.json").read_text())
    config["config"]["depths"] = [200_000, 1, 1]
    hub_server.add_hub_file("someone/hostile", "config.json", json.dumps(config).encode())
    hub_server.add_hub_file("someone/hostile", "model.safetensors", (saved / "model.safetensors").read_bytes())
    with pytest.raises(InvalidArgumentError, match="200002 residual blocks"):
        reszoo.load_pretrained("hf-hub:someone/hostile")
    assert not any(path.endswith("model.safetensors") for path in hub_server.gets)


# -- 2. tensors of another dtype, NaN and infinities ---------------------------------------------


def rewrite_tensors(folder: Path, edit: Any) -> None:
    """Rewrite model.safetensors with ``edit(state_dict)`` applied (no reszoo digest: a file from elsewhere)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_model_saved_in_another_float_dtype_loads_as_float32_exactly(tmp_path, dtype):
    model = shapes_model().to(dtype)
    loaded = reszoo.load_pretrained(reszoo.save_pretrained(model, tmp_path / "model"))
    assert {t.dtype for t in loaded.parameters()} == {torch.float32}
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.float()(x), rtol=0, atol=0)
    assert reszoo.predict(loaded, x, topk=1)[0].top[1] > 0  # a number, not NaN


WRONG_TYPES = [
    ("layer1.0.conv1.weight", lambda t: t.to(torch.int32), "layer1.0.conv1.weight (int32)"),
    ("fc.weight", lambda t: t.to(torch.int64), "fc.weight (int64)"),
    ("bn1.weight", lambda t: t > 0, "bn1.weight (bool)"),
    ("bn1.num_batches_tracked", lambda t: t.double() + 0.5, "bn1.num_batches_tracked (float64)"),
]


@pytest.mark.parametrize(("key", "change", "named"), WRONG_TYPES, ids=[c[2] for c in WRONG_TYPES])
def test_weights_of_a_type_a_resnet_cannot_hold_are_refused_naming_them(folder, key, change, named):
    rewrite_tensors(folder, lambda sd: sd.update({key: change(sd[key])}))
    with pytest.raises(WeightsIntegrityError, match="of a type a ResNet cannot hold") as err:
        reszoo.load_pretrained(folder)
    assert named in str(err.value) and str(folder / "model.safetensors") in str(err.value)


NON_FINITE = [
    ("fc.bias", lambda t: t.fill_(float("nan"))),
    ("layer2.0.conv1.weight", lambda t: t.index_fill_(0, torch.tensor([1]), float("inf"))),
    ("bn1.running_var", lambda t: t.fill_(-float("inf"))),
    ("conv1.weight", lambda t: t.double().mul_(1e300)),  # finite in float64, infinite in float32
]


@pytest.mark.parametrize(("key", "change"), NON_FINITE, ids=[c[0] for c in NON_FINITE])
def test_nan_or_infinite_weights_are_refused_naming_them(folder, key, change):
    rewrite_tensors(folder, lambda sd: sd.update({key: change(sd[key])}))
    with pytest.raises(WeightsIntegrityError, match=rf"1 tensor\(s\) hold NaN or infinite values: {key}\."):
        reszoo.load_pretrained(folder)


def test_cli_predict_on_nan_weights_is_one_error_not_nan_percent(folder, images, capsys):
    rewrite_tensors(folder, lambda sd: sd["fc.weight"].fill_(float("nan")))
    assert main(["predict", str(folder), str(images / "circle"), "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    assert "nan" not in out.lower() and err.count("\n") == 1 and "fc.weight" in err and "Traceback" not in err


def test_a_run_checkpoint_holding_nan_says_so(tmp_path):
    from reszoo.infer.loading import load_run

    run = tmp_path / "run"
    recipe = {"data": "synthetic", "batch_size": 4, "iterations": 1, "synthetic_eval_images": 4}
    tiny = {"depths": (1, 1, 1), "widths": (4, 8, 16), "stem_width": 4}
    train.train_model("resnet20", model_overrides=tiny, recipe_overrides=recipe, out=run, progress=False)
    shutil.rmtree(run / "model")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["model"]["fc.bias"].fill_(float("nan"))
    torch.save(ckpt, run / "checkpoint.pt")
    with pytest.raises(WeightsIntegrityError, match=r"checkpoint.pt: 1 tensor\(s\) hold NaN .*: fc.bias"):
        load_run(run)


# -- 3. every field of config.json of its type and value -----------------------------------------

# (section or None for the top level, field, value, error class, text the message holds)
BAD_FIELDS = [
    ("pretrained", "class_names", "abc", ArgumentTypeError, "received class_names='abc' (str)"),
    ("pretrained", "class_names", [1, 2, 3], ArgumentTypeError, "received class_names=[1, 2, 3]"),
    ("pretrained", "class_names", ["cat", "dog"], InvalidArgumentError, "names 2 classes (class_names)"),
    ("pretrained", "clas_names", ["a", "b", "c"], InvalidArgumentError, "Unknown config.json 'pretrained' field"),
    ("pretrained", "mean", "0.5", ArgumentTypeError, "received mean='0.5'"),
    ("pretrained", "mean", [float("nan")] * 3, InvalidArgumentError, "mean must be finite"),
    ("pretrained", "std", [0, 0, 0], InvalidArgumentError, "std must be positive and finite"),
    ("pretrained", "std", None, InvalidArgumentError, "mean and std go together"),
    ("pretrained", "crop_size", "224", ArgumentTypeError, "received crop_size='224'"),
    ("pretrained", "crop_size", 22.5, ArgumentTypeError, "received crop_size=22.5"),
    ("pretrained", "crop_size", 0, InvalidArgumentError, "received crop_size=0"),
    ("pretrained", "resize_size", True, ArgumentTypeError, "received resize_size=True"),
    ("pretrained", "interpolation", "cubic", InvalidArgumentError, "Unknown interpolation 'cubic'"),
    ("pretrained", "metrics", "high", ArgumentTypeError, "received metrics='high'"),
    ("pretrained", "metrics", [{"value": 1}], ArgumentTypeError, "metrics[0] must be a JSON object with the keys"),
    ("pretrained", "metrics", [dict(dataset="d", name="top1", value="high", source="s")], ArgumentTypeError, "value"),
    ("pretrained", "license", 3, ArgumentTypeError, "received license=3"),
    ("pretrained", "name", ["x"], ArgumentTypeError, "received name=['x']"),
    ("pretrained", "notes", 5, ArgumentTypeError, "received notes=5"),
    ("pretrained", "dataset", {}, ArgumentTypeError, "received dataset={}"),
    (None, "pretrained", "yes", ArgumentTypeError, "received pretrained='yes'"),
    (None, "architecture", 5, ArgumentTypeError, "received architecture=5"),
    (None, "num_classes", "3", ArgumentTypeError, "received num_classes='3'"),
    (None, "num_classes", 4, InvalidArgumentError, "num_classes=4 differs from the config's num_classes=3"),
    (None, "config", "resnet20", ArgumentTypeError, "received config='resnet20'"),
    ("config", "depths", "1,1,1", ArgumentTypeError, "the 'config' section: depths must be"),
    ("config", "stride_in_1x1", "false", ArgumentTypeError, "the 'config' section: stride_in_1x1"),
]


@pytest.mark.parametrize(
    ("section", "name", "value", "cls", "text"), BAD_FIELDS, ids=[f"{c[1]}={c[2]!r}"[:40] for c in BAD_FIELDS]
)
def test_every_config_json_field_is_checked_naming_the_file_field_and_value(
    folder, no_build, section, name, value, cls, text
):
    if section is None:
        edit_config(folder, lambda data: data.update({name: value}))
    else:
        edit_config(folder, set_field(section, name, value))
    with pytest.raises(cls) as err:
        reszoo.load_pretrained(folder)
    assert text in str(err.value) and str(folder / "config.json") in str(err.value)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"n": ' + "9" * 5000 + "}"], ids=["deep", "digits"])
def test_json_no_parser_should_meet_is_a_clear_error(folder, text):
    (folder / "config.json").write_text(text)
    with pytest.raises(InvalidArgumentError, match="is not valid JSON"):
        reszoo.load_pretrained(folder)


def test_cli_predict_names_class_names_given_as_a_string(folder, images, capsys):
    edit_config(folder, set_field("pretrained", "class_names", "abc"))
    argv = ["predict", str(folder), str(images / "circle"), "--device", "cpu"]
    one_line_error(capsys, argv, 2, "class_names must be a tuple of strings", "received class_names='abc'")


def test_a_long_value_is_cut_in_the_message(folder):
    edit_config(folder, set_field("pretrained", "class_names", list(range(100_000))))
    with pytest.raises(ArgumentTypeError) as err:
        reszoo.load_pretrained(folder)
    assert len(str(err.value)) < 600 and "characters) (list)" in str(err.value)


# -- 4. image folders: a PNG whose header claims 900 megapixels -----------------------------------


EVERY_IMAGE = ["--split", "all", "--num-workers", "0"]  # evaluate every image, in this process


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width`` x ``height`` RGB pixels in its header and holds almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


@pytest.fixture
def spoiled(images, tmp_path) -> Path:
    """A scratch copy of :func:`images` for one test to spoil."""
    return Path(shutil.copytree(images, tmp_path / "images", symlinks=True))


def test_a_decompression_bomb_is_skipped_naming_it_in_every_reader(spoiled, saved, capsys):
    from reszoo.data.imagefiles import load_rgb
    from reszoo.data.imagefolder import scan_folder

    bomb = png_header_only(spoiled / "circle" / "bomb.png", 30_000, 30_000)
    with pytest.warns(
        UserWarning, match=r"Skipped 1 image file\(s\) .*circle/bomb.png \(Image size \(900000000 pixels"
    ):
        split = scan_folder(spoiled, split="all")
    assert str(bomb) in split.skipped and len(split.samples) == 6
    with pytest.raises(reszoo.errors.MissingInputError, match=r"bomb.png: Image size .*PIL.Image.MAX_IMAGE_PIXELS"):
        load_rgb(bomb)
    device = ["--device", "cpu"]
    assert main(["predict", str(saved), str(spoiled / "circle"), *device]) == 0
    assert "Skipped 1 of 3 images that PIL cannot read" in capsys.readouterr().err
    assert main(["evaluate", str(saved), "--data", "folder", "--root", str(spoiled), *EVERY_IMAGE, *device]) == 0
    out, err = capsys.readouterr()
    assert "6 images" in out and "bomb.png" in err and "Traceback" not in err


def test_training_on_a_folder_with_a_decompression_bomb_skips_it(spoiled, tmp_path):
    png_header_only(spoiled / "square" / "bomb.png", 40_000, 40_000)
    argv = ["train", "resnet20", "--data", "folder", "--data-root", str(spoiled), "--iterations", "1"]
    argv += ["--batch-size", "2", "--num-workers", "0", "--out", str(tmp_path / "run"), "--no-progress"]
    argv += ["-M", "depths=1,1,1", "-M", "widths=4,8,16", "-M", "stem_width=4"]
    with pytest.warns(UserWarning, match=r"square/bomb.png \(Image size \(1600000000 pixels\)"):
        assert main(argv) == 0


# -- 5. image folders: a named pipe with an image's name ------------------------------------------


@pytest.mark.timeout(30, method="thread")  # without the fix the scan blocks in a worker thread
def test_a_named_pipe_is_never_opened_but_skipped_naming_it(spoiled, saved, capsys):
    import os

    from reszoo.data.imagefiles import find_images, load_rgb
    from reszoo.data.imagefolder import scan_folder

    pipe = spoiled / "circle" / "pipe.png"
    os.mkfifo(pipe)  # opening it to read would wait for a writer forever
    with pytest.warns(UserWarning, match=r"circle/pipe.png \(a named pipe, not a regular file\)"):
        assert len(scan_folder(spoiled, split="all").samples) == 6
    with pytest.raises(reszoo.errors.MissingInputError, match="pipe.png: a named pipe; only regular files"):
        load_rgb(pipe)
    assert str(pipe) in find_images([spoiled]) and find_images([pipe]) == [str(pipe)]
    assert str(pipe) in find_images([str(spoiled / "circle" / "*.png")])
    root = ["--root", str(spoiled), *EVERY_IMAGE, "--device", "cpu"]
    assert main(["evaluate", str(saved), "--data", "folder", *root]) == 0
    assert "6 images" in capsys.readouterr().out
    assert main(["predict", str(saved), str(spoiled / "circle"), "--device", "cpu"]) == 0
    assert "Skipped 1 of 3 images that PIL cannot read: " in capsys.readouterr().err
    assert main(["predict", str(saved), str(pipe), "--device", "cpu"]) == 2
    assert "a named pipe; only regular files are read as images" in capsys.readouterr().err


# -- 6. image folders: a link back to a folder already read ---------------------------------------


def test_a_symlink_loop_counts_each_image_once_and_says_so(spoiled, saved, capsys):
    import os

    from reszoo.data.imagefiles import find_images
    from reszoo.data.imagefolder import scan_folder

    os.symlink(".", spoiled / "circle" / "loop")  # circle/loop/loop/... until the path is too long
    os.makedirs(spoiled / "square" / "deeper")
    os.symlink("../..", spoiled / "square" / "deeper" / "up")  # back to the root: every class again
    os.symlink("circle_0000.png", spoiled / "circle" / "again.png")  # two names, one image
    with pytest.warns(
        UserWarning,
        match=r"3 link\(s\) under .* each image is counted once: circle/loop, circle/again.png, square/deeper/up\.",
    ):
        split = scan_folder(spoiled, split="all")
    assert split.class_counts() == {"circle": 2, "square": 2, "triangle": 2}
    assert str(spoiled / "circle" / "circle_0000.png") in dict(split.samples)  # the path without a link
    assert len(find_images([spoiled])) == 6
    assert main(["evaluate", str(saved), "--data", "folder", "--root", str(spoiled), *EVERY_IMAGE]) == 0
    assert "6 images" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="counted once"):
        train_split = scan_folder(spoiled, split="train", val_fraction=0.5)  # what reszoo train reads
    assert train_split.class_counts() == {"circle": 1, "square": 1, "triangle": 1}


# -- 7. image folders: a broken link ----------------------------------------------------------------


def test_a_broken_link_is_skipped_naming_it_and_the_rest_is_predicted(spoiled, saved, capsys):
    import os

    from reszoo.data.imagefiles import find_images
    from reszoo.data.imagefolder import scan_folder

    gone = spoiled / "circle" / "gone.png"
    os.symlink("/nonexistent/photo.png", gone)
    assert str(gone) in find_images([spoiled]) and find_images([gone]) == [str(gone)]
    with pytest.warns(UserWarning, match=r"circle/gone.png \(a broken link to /nonexistent/photo.png\)"):
        assert len(scan_folder(spoiled, split="all").samples) == 6
    with pytest.warns(UserWarning, match=r"Skipped 1 of 3 images that PIL cannot read: .*gone.png\.$"):
        assert len(reszoo.predict(reszoo.load_pretrained(saved), [spoiled / "circle"], topk=1)) == 2
    assert main(["predict", str(saved), str(spoiled / "circle"), "--device", "cpu", "--json", "-"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["skipped"] == [str(gone)] and "gone.png" in err
    assert main(["predict", str(saved), str(gone), str(spoiled / "square"), "--device", "cpu"]) == 0
    with pytest.raises(reszoo.errors.MissingInputError, match="gone.png: a broken link to /nonexistent/photo.png"):
        reszoo.predict(reszoo.load_pretrained(saved), gone)


# -- 8. image folders: 16-bit PNGs ------------------------------------------------------------------


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(tmp_path, saved, capsys):
    import numpy as np
    import PIL.Image

    from reszoo.data.imagefiles import load_rgb
    from reszoo.data.imagefolder import ImageFiles, scan_folder

    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, size=(32, 32), dtype=np.uint16)  # the full 16-bit range, as PNG's samples span
    shallow = ((deep.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        PIL.Image.fromarray(deep).save(tmp_path / cls / "deep.png")  # a real 16-bit greyscale PNG
        PIL.Image.fromarray(shallow).save(tmp_path / cls / "shallow.png")
    with PIL.Image.open(tmp_path / "a" / "deep.png") as img:
        assert img.mode == "I;16"
    got = np.asarray(load_rgb(tmp_path / "a" / "deep.png"))
    assert got.shape == (32, 32, 3) and (got == shallow[..., None]).all()  # not 255 almost everywhere
    first, _ = ImageFiles(scan_folder(tmp_path, split="all"))[0]
    assert (np.asarray(first) == shallow[..., None]).all()
    model = reszoo.load_pretrained(saved)
    with PIL.Image.open(tmp_path / "a" / "deep.png") as img:
        as_image = reszoo.predict(model, img.copy(), topk=3)[0].classes
    assert as_image == reszoo.predict(model, tmp_path / "a" / "shallow.png", topk=3)[0].classes
    files = [str(tmp_path / "a" / "deep.png"), str(tmp_path / "a" / "shallow.png")]
    assert main(["predict", str(saved), *files, "--device", "cpu", "--json", "-"]) == 0
    deep_top, shallow_top = (p["top"] for p in json.loads(capsys.readouterr().out)["predictions"])
    assert deep_top == shallow_top


# -- 9. image folders: a constant channel ---------------------------------------------------------


def test_a_folder_with_a_constant_channel_trains_and_says_what_was_measured(tmp_path):
    import numpy as np
    import PIL.Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
            pixels[..., 2] = 7  # no blue to speak of: the std of that channel is 0
            PIL.Image.fromarray(pixels).save(tmp_path / "data" / cls / f"{i}.png")
    recipe = {"data": "folder", "data_root": str(tmp_path / "data"), "batch_size": 2, "iterations": 1}
    tiny = {"depths": (1, 1, 1), "widths": (4, 8, 16), "stem_width": 4, "num_classes": 2}
    measured = r"constant blue channel: measured mean \(0\.\d+, 0\.\d+, 0\.0275\), std \(0\.\d+, 0\.\d+, 0\.0000\)"
    with pytest.warns(UserWarning, match=measured + r" over 4 training images.*std 1\.0.*--mean M,M,M --std S,S,S"):
        train.train_model(
            "resnet20", model_overrides=tiny, recipe_overrides={**recipe, "num_workers": 0}, out=tmp_path / "run"
        )
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["recipe"]
    assert recorded["std"][2] == 1.0 and recorded["std"][0] > 0.1 and abs(recorded["mean"][2] - 7 / 255) < 1e-6
    argv = ["train", "resnet20", "--data", "folder", "--data-root", str(tmp_path / "data"), "--iterations", "1"]
    argv += ["--batch-size", "2", "--num-workers", "0", "--out", str(tmp_path / "cli"), "--no-progress"]
    with pytest.warns(UserWarning, match="constant blue channel"):
        assert main([*argv, "-M", "depths=1,1,1", "-M", "widths=4,8,16", "-M", "stem_width=4"]) == 0


# -- 10. evaluating on a folder of some of the model's classes ------------------------------------


def test_evaluating_on_one_class_of_the_model_reports_on_what_is_there(images, saved, tmp_path, capsys):
    from reszoo.infer.evaluation import evaluate

    shutil.copytree(images / "square", tmp_path / "only" / "square")  # the model knows circle, square, triangle
    model = reszoo.load_pretrained(saved)
    result = evaluate(model, "folder", root=tmp_path / "only", split="all", num_workers=0)
    assert result.images == 2 and [(c.name, c.images) for c in result.per_class] == [("square", 2)]
    expected = reszoo.predict(model, sorted((tmp_path / "only" / "square").iterdir()), topk=1)
    assert result.top1 == 100 * sum(p.top[0] == "square" for p in expected) / 2
    root = ["--root", str(tmp_path / "only"), *EVERY_IMAGE, "--device", "cpu", "--json", "-"]
    assert main(["evaluate", str(saved), "--data", "folder", *root]) == 0
    assert [c["name"] for c in json.loads(capsys.readouterr().out)["per_class"]] == ["square"]
    (tmp_path / "only" / "zebra").mkdir()
    shutil.copy(images / "circle" / "circle_0000.png", tmp_path / "only" / "zebra")
    argv = ["evaluate", str(saved), "--data", "folder", *root]
    one_line_error(capsys, argv, 2, "these are not: zebra (expected: circle, square, triangle)")


def test_a_subset_scan_keeps_the_models_labels(images):
    from reszoo.data.imagefolder import scan_folder

    model_classes = ("triangle", "dog", "square", "circle", "square")  # a name twice, as ImageNet's "crane"
    split = scan_folder(images, split="all", classes=model_classes, subset=True)
    assert split.classes == model_classes
    assert sorted({label for _, label in split.samples}) == [0, 2, 3]  # square is its first position
    assert split.class_counts() == {"triangle": 2, "dog": 0, "square": 2, "circle": 2}


# -- 11. the Hub unreachable: one line from reszoo, at once ------------------------------------------


@pytest.fixture
def dead_hub(tmp_path, monkeypatch) -> str:
    """Empty caches and HF_ENDPOINT at a 127.0.0.1 port nothing listens on (online, not HF_HUB_OFFLINE)."""
    import socket

    import huggingface_hub.constants as hf_constants

    with socket.socket() as s:  # a port the system just gave out and took back: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path / "reszoo"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}"


HF_NOISE = ("Retrying in", "thrown while requesting", "Retry 1/5")


@pytest.mark.parametrize("name", ["resnet50-imagenet", "hf-hub:someone/resnet8"])
def test_an_unreachable_hub_is_one_error_at_once_without_huggingface_hub_retries(dead_hub, capfd, name):
    from reszoo.errors import WeightsNotCachedError

    reszoo.load_pretrained  # noqa: B018 (the face imports torch and the weights modules before the clock starts)
    start = time.perf_counter()
    with pytest.raises(WeightsNotCachedError, match=rf"the Hub at {dead_hub} cannot be reached: ConnectError"):
        reszoo.load_pretrained(name)
    assert time.perf_counter() - start < 5  # huggingface_hub's own retries take about 25 s
    err = capfd.readouterr().err
    assert not any(noise in err for noise in HF_NOISE), err


def test_cli_predict_with_the_hub_unreachable_prints_reszoos_line_only(dead_hub, images, capfd):
    assert main(["predict", "resnet50-imagenet", str(images / "circle"), "--device", "cpu"]) == 1
    err = capfd.readouterr().err
    assert err.startswith("reszoo predict: error: Weights 'resnet50-imagenet' are not cached") and err.count("\n") == 1


def test_a_cached_repo_loads_quietly_when_the_hub_is_unreachable(saved, hub_server, monkeypatch, capfd):
    for file in ("config.json", "model.safetensors"):
        hub_server.add_hub_file("someone/shapes", file, (saved / file).read_bytes())
    first = reszoo.load_pretrained("hf-hub:someone/shapes")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    capfd.readouterr()
    again = reszoo.load_pretrained("hf-hub:someone/shapes")
    assert train.state_digest(again) == train.state_digest(first)
    assert not any(noise in capfd.readouterr().err for noise in HF_NOISE)


# -- 12. a pickle that holds code: refused, and no advice to unpickle it -------------------------------


class Payload:
    """What a hostile checkpoint holds: unpickled with pickle's full powers, it would call print."""

    def __reduce__(self) -> tuple:
        return (print, ("UNPICKLED: code from the checkpoint ran",))


@pytest.mark.parametrize("where", ["top", "state_dict"])
def test_a_checkpoint_holding_code_is_refused_without_advice_to_unpickle_it(tmp_path, capsys, where):
    from reszoo.weights.convert import read_checkpoint

    tensors = {"fc.weight": torch.zeros(10, 64)}
    ckpt = (
        {"state_dict": tensors, "extra": Payload()} if where == "top" else {"state_dict": {**tensors, "x": Payload()}}
    )
    evil = tmp_path / "resnet20-12fca82f.th"
    torch.save(ckpt, evil)
    with pytest.raises(InvalidArgumentError, match=r"holds Python objects, not only tensors \(GLOBAL print\)") as err:
        read_checkpoint(evil)
    with pytest.raises(InvalidArgumentError) as loaded:
        reszoo.load_pretrained("resnet20-cifar10", checkpoint=evil, check_hash=False)
    argv = ["convert", "resnet20-cifar10", str(tmp_path / "out"), "--checkpoint", str(evil), "--no-check-hash"]
    line = one_line_error(capsys, argv, 2, "will not unpickle this one")
    for text in (str(err.value), str(loaded.value), line):
        assert "weights_only" not in text and "safe_globals" not in text and "trust" not in text
    assert "UNPICKLED" not in capsys.readouterr().out and not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["junk", "flipped", "truncated"])
def test_a_damaged_pickle_says_so_in_one_line_without_torchs_advice(tmp_path, damage):
    import io

    from reszoo.weights.convert import read_checkpoint

    buf = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(3)}, buf, _use_new_zipfile_serialization=False)  # a legacy pickle
    data = buf.getvalue()
    bad = {"junk": b"\x80\x02garbage", "flipped": data[:20] + b"\xff" + data[21:], "truncated": data[:60]}[damage]
    (tmp_path / "model.pth").write_bytes(bad)
    with pytest.raises(InvalidArgumentError, match="truncated, corrupted or not a checkpoint") as err:
        read_checkpoint(tmp_path / "model.pth")
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value) and "trust" not in str(err.value)
