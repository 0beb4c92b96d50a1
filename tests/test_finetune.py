"""Training on your own data: image folders, Datasets and DataLoaders, fine-tuning (issue 13).

The image set is tests/_images.py's: real PNG/JPEG files of three shapes, written at test time.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from reszoo import create_model, train
from reszoo.cli import main
from reszoo.errors import InvalidArgumentError, MissingInputError, NonFiniteLossError, TrainingInterrupted
from reszoo.train._paramgroups import param_groups
from reszoo.train.batches import make_batches
from reszoo.train.recipes import finetune_recipe, learning_rate

sys.path.insert(0, str(Path(__file__).parent))
from _images import make_image_folder, shapes_weights  # noqa: E402
from conftest import TINY_ARGS, TINY_OVERRIDES  # noqa: E402


def folder_recipe(root, **kw):
    base = dict(
        data="folder",
        data_root=str(root),
        batch_size=8,
        lr=0.05,
        iterations=10,
        log_every=2,
        eval_every=5,
        checkpoint_every=4,
        num_workers=0,
        eval_batch_size=16,
        device="cpu",
    )
    return train.Recipe(**{**base, **kw})


def tiny(num_classes=3, **kw):
    return create_model("resnet20", **TINY_OVERRIDES, num_classes=num_classes, **kw)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    # 12 training images a class in batches of 8: 4 steps an epoch, so 10 steps cross two epochs.
    root = tmp_path_factory.mktemp("small")
    return make_image_folder(root, per_class=12, val_per_class=3, size=16, modes=("RGB", "L", "RGBA", "P"))


# -- the acceptance test: real image files, trained, saved, fine-tuned, held-out accuracy --------------


# shapes_run costs about 40 s of one core (400 iterations of resnet20), so its two users are `slow`. Its
# iterations cannot be cut: against the 0.9 asserted, 400 reach 0.98/0.94/0.93 held-out accuracy with
# seeds 0/1/2 (the images' and the recipe's), 300 reach 0.79 (seed 0), 150 under 0.5 (seeds 0-2); the
# fine-tune reaches 1.0 after 400 in all three, 0.38 after 300 (measured on an AVX512 CPU).
@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """resnet20 trained from scratch on 600 PNG/JPEG files of three shapes (16x16), 400 iterations."""
    root = make_image_folder(tmp_path_factory.mktemp("shapes"), per_class=200, val_per_class=30, size=16)
    out = tmp_path_factory.mktemp("runs") / "scratch"
    recipe = dict(data="folder", data_root=str(root), batch_size=32, lr=0.02, weight_decay=5e-4, schedule="cosine")
    recipe |= dict(iterations=400, eval_every=0, log_every=50, checkpoint_every=200, num_workers=0, device="cpu")
    start = time.perf_counter()
    result = train.train_model(
        "resnet20", model_overrides={"image_size": 16}, recipe_overrides=recipe, out=out, progress=False
    )
    print(f"\nscratch: accuracy {1 - result.test_error:.3f}, {time.perf_counter() - start:.1f} s")
    return result, out


@pytest.mark.slow  # shapes_run: about 40 s on one core
def test_training_on_an_image_folder_reaches_high_held_out_accuracy(shapes_run):
    result, out = shapes_run
    assert 1 - result.test_error >= 0.9  # 90 held-out images, never trained on
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["num_classes"] == 3 and saved["pretrained"]["class_names"] == ["circle", "square", "triangle"]
    recipe = json.loads((out / "recipe.json").read_text())
    assert saved["pretrained"]["mean"] == recipe["mean"] and len(recipe["mean"]) == 3  # measured, then recorded


@pytest.mark.slow  # shapes_run: about 40 s on one core
def test_finetune_from_a_saved_folder_with_a_frozen_backbone(shapes_run, tmp_path):
    _, scratch = shapes_run
    root = make_image_folder(tmp_path / "two", classes=("circle", "triangle"), per_class=40, layout="single", size=16)
    start = time.perf_counter()
    result = train.train_model(
        "resnet20",
        pretrained=scratch / "model",
        recipe_overrides=dict(data_root=str(root), iterations=60, batch_size=16, freeze_backbone=True, num_workers=0),
        out=tmp_path / "ft",
        progress=False,
    )
    print(f"\nfine-tune: accuracy {1 - result.test_error:.3f}, {time.perf_counter() - start:.1f} s")
    assert 1 - result.test_error >= 0.9  # 8 held-out images (val_fraction 0.1 of 80)
    with pytest.warns(UserWarning, match="the classifier is freshly initialised"):
        before = create_model("resnet20", pretrained=scratch / "model", num_classes=2).state_dict()
    after = result.model.state_dict()
    assert all(torch.equal(before[k], after[k].cpu()) for k in before if not k.startswith("fc."))  # BN stats too
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    w = result.model.pretrained_weights
    assert w.class_names == ("circle", "triangle") and "fine-tuned from" in w.notes
    assert json.loads((tmp_path / "ft" / "run.json").read_text())["pretrained"] == str(scratch / "model")
    loaded = json.loads((tmp_path / "ft" / "model" / "config.json").read_text())["pretrained"]
    assert loaded["class_names"] == ["circle", "triangle"] and loaded["mean"] == list(w.mean)


# -- the guarantees of fit hold for folders and your own data ----------------------------------------


class Killed(Exception):
    pass


def _kill_at(n):
    def on_step(it):
        if it == n:
            raise Killed

    return on_step


def _same_state(a, b):
    a, b = a.state_dict(), b.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _resume_matches_straight(tmp_path, make_model, recipe, *, data=None, resume_recipe=None):
    data = data or {}
    torch.manual_seed(0)
    straight = train.fit(make_model(), recipe, out=tmp_path / "a", progress=False, **data)
    torch.manual_seed(0)
    with pytest.raises(Killed):
        train.fit(make_model(), recipe, out=tmp_path / "b", progress=False, on_step=_kill_at(7), **data)
    assert train.load_checkpoint(tmp_path / "b")["iteration"] == 4
    torch.manual_seed(1)  # other starting weights: the checkpoint must replace them all
    resumed = train.fit(make_model(), resume_recipe or recipe, out=tmp_path / "b", resume=True, progress=False, **data)
    _same_state(straight.model, resumed.model)
    assert resumed.test_error == straight.test_error
    return straight


def test_folder_resume_equals_uninterrupted_even_with_workers(tmp_path, small_folder):
    recipe = folder_recipe(small_folder, backbone_lr_scale=0.1, decay_norm_and_bias=False, schedule="cosine")
    # Augmentation is drawn per (seed, epoch, index): a resume in worker processes reads the same images.
    straight = _resume_matches_straight(tmp_path, tiny, recipe, resume_recipe=recipe.replace(num_workers=2))
    assert [r["iteration"] for r in straight.history] == [2, 4, 5, 6, 8, 10]


@pytest.mark.filterwarnings("ignore:freeze_backbone=True on a ResNet that carries no pretrained")  # loaded by hand
def test_frozen_backbone_resume_is_exact_and_keeps_bn_statistics(tmp_path, small_folder):
    recipe = folder_recipe(small_folder, freeze_backbone=True)
    start = tiny().state_dict()
    straight = _resume_matches_straight(tmp_path, lambda: _loaded(start), recipe)
    after = straight.model.state_dict()
    assert all(torch.equal(start[k], after[k]) for k in start if not k.startswith("fc."))
    assert not torch.equal(start["fc.weight"], after["fc.weight"])


def _loaded(state):
    model = tiny()
    model.load_state_dict(state)
    return model


class Augmented(Dataset):
    """A user Dataset with random augmentation from torch's global RNG (as a v2 transform draws)."""

    def __init__(self, n=24):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 3, 16, 16, generator=g), torch.arange(n) % 3

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * torch.randn(3, 16, 16), int(self.y[i])


def test_user_dataset_resume_equals_uninterrupted(tmp_path):
    recipe = folder_recipe("unused", iterations=10)
    data = {"train_data": Augmented(), "eval_data": Augmented(9)}
    straight = _resume_matches_straight(tmp_path, tiny, recipe, data=data)
    saved = json.loads((tmp_path / "b" / "recipe.json").read_text())
    assert saved["data"] == "custom" and saved["data_root"] is None
    assert straight.test_error is not None


def test_user_dataset_under_amp_and_channels_last_resumes_exactly(tmp_path):
    # bf16 autocast and channels_last (the CUDA defaults) on CPU: the user's batches reach the model
    # channels_last, inside autocast, and the resume is still exact.
    seen = []

    def make():
        model = tiny()
        model.conv1.register_forward_pre_hook(
            lambda m, args: seen.append(
                (args[0].is_contiguous(memory_format=torch.channels_last), torch.is_autocast_enabled("cpu"))
            )
        )
        return model

    recipe = folder_recipe("unused", iterations=10, amp=True, channels_last=True)
    data = {"train_data": Augmented(), "eval_data": Augmented(9)}
    _resume_matches_straight(tmp_path, make, recipe, data=data)
    assert seen and all(cl for cl, _ in seen)  # every batch, training and evaluation
    assert all(amp for _, amp in seen)
    saved = json.loads((tmp_path / "b" / "recipe.json").read_text())
    assert saved["amp"] is True and saved["channels_last"] is True


def test_user_dataloader_with_a_generator_resumes_exactly(tmp_path):
    x, y = torch.randn(24, 3, 16, 16), torch.arange(24) % 3
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator())
    recipe = folder_recipe("unused", iterations=10, eval_every=0)
    straight = _resume_matches_straight(tmp_path, tiny, recipe, data={"train_data": loader})
    assert straight.test_error is None  # no eval_data: nothing evaluated


def test_non_finite_loss_stops_on_folder_data(tmp_path, small_folder):
    model = tiny()
    poisoned = {"on": False}
    model.fc.register_forward_hook(lambda mod, inp, out: out * float("nan") if poisoned["on"] else out)

    def poison_after_5(it):
        poisoned["on"] = it >= 5

    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        train.fit(model, folder_recipe(small_folder), out=tmp_path, progress=False, on_step=poison_after_5)
    assert train.load_checkpoint(tmp_path)["iteration"] == 4


def test_ctrl_c_on_folder_data_saves_and_resumes(tmp_path, small_folder, python_sigint):
    def ctrl_c_at_3(it):
        if it == 3:
            signal.raise_signal(signal.SIGINT)

    recipe = folder_recipe(small_folder, log_every=1)
    with pytest.raises(TrainingInterrupted, match="at iteration 3 of 10"):
        train.fit(tiny(), recipe, out=tmp_path / "b", progress=False, on_step=ctrl_c_at_3)
    assert train.load_checkpoint(tmp_path / "b")["iteration"] == 3
    resumed = train.fit(tiny(), recipe, out=tmp_path / "b", resume=True, progress=False)
    _same_state(resumed.model, train.fit(tiny(), recipe, progress=False).model)


# -- recipes, schedules, parameter groups ----------------------------------------------------------------


# -- a frozen backbone is a pretrained one (issue 22) ---------------------------------------------------


def test_a_frozen_backbone_without_weights_is_refused(tmp_path, capsys):
    argv = ["train", "resnet20", *TINY_ARGS, "--data", "synthetic", "--iterations", "2", "--no-progress"]
    assert main([*argv, "--freeze-backbone", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "freeze_backbone=True (--freeze-backbone) trains the classifier only" in err
    assert "without pretrained= (--pretrained WEIGHTS) the backbone is freshly initialised" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(InvalidArgumentError, match="the classifier would learn on random features"):
        train.train_model("resnet20", recipe_overrides={"data": "synthetic", "freeze_backbone": True})


def test_fit_says_when_a_frozen_backbone_has_no_weights_record():
    import warnings

    recipe = train.Recipe(data="synthetic", batch_size=4, iterations=2, eval_every=0, freeze_backbone=True)
    with pytest.warns(UserWarning, match=r"freeze_backbone=True on a ResNet that carries no pretrained weights"):
        train.fit(tiny(num_classes=10), recipe, progress=False)
    model = tiny(num_classes=10)
    model.pretrained_weights = shapes_weights(num_classes=10, categories=tuple("abcdefghij"))  # a loaded model's record
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train.fit(model, recipe, progress=False)


def test_cosine_schedule_and_finetune_preset():
    r = finetune_recipe(data_root="x", iterations=100, warmup_iters=10, warmup_lr=0.001)
    assert r.epochs is None  # iterations given: they set the length
    assert [round(learning_rate(r, i), 6) for i in (0, 9, 10, 55, 100)] == [0.001, 0.001, 0.01, 0.005, 0.0]
    assert finetune_recipe().epochs == 10 and finetune_recipe().data == "folder"
    with pytest.raises(InvalidArgumentError, match="mean and std go together"):
        train.Recipe(mean=(0.5, 0.5, 0.5))
    with pytest.raises(InvalidArgumentError, match="val_fraction must be a number in"):
        train.Recipe(val_fraction=1.0)


def test_param_groups_scale_freeze_and_exempt_norms():
    model = tiny()
    groups = param_groups(model, finetune_recipe(backbone_lr_scale=0.1))
    by_scale = {(g["lr_scale"], g["weight_decay"]): len(g["params"]) for g in groups}
    backbone = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    flat = sum(1 for p in backbone if p.ndim == 1)  # norm weights and biases
    expected = {(0.1, 0.0): flat, (0.1, 1e-4): len(backbone) - flat, (1.0, 0.0): 1, (1.0, 1e-4): 1}
    assert flat > 0 and by_scale == expected
    frozen = param_groups(model, finetune_recipe(freeze_backbone=True))
    assert sum(len(g["params"]) for g in frozen) == 2  # fc.weight, fc.bias
    plain = param_groups(model, train.Recipe())
    assert len(plain) == 1 and len(plain[0]["params"]) == len(list(model.parameters()))


def test_epochs_set_iterations_from_the_folder(tmp_path, small_folder):
    result = train.fit(tiny(), folder_recipe(small_folder, epochs=2, val_fraction=0.0), out=tmp_path, progress=False)
    assert result.iterations == 8  # 36 images, batch 8: 4 steps an epoch
    saved = json.loads((tmp_path / "recipe.json").read_text())
    assert saved["iterations"] == 8 and saved["epochs"] is None


# -- bad input -----------------------------------------------------------------------------------------------


def test_custom_data_errors(tmp_path):
    recipe = folder_recipe("unused")

    class Stream(IterableDataset):
        def __iter__(self):
            yield torch.zeros(3, 16, 16), 0

    with pytest.raises(InvalidArgumentError, match="data='custom' needs train_data"):
        train.fit(tiny(), recipe.replace(data="custom"), progress=False)
    with pytest.raises(InvalidArgumentError, match="eval_data needs train_data"):
        train.fit(tiny(), recipe, eval_data=Augmented(), progress=False)
    with pytest.raises(TypeError, match="train_data must be None, a torch Dataset"):
        train.fit(tiny(), recipe, train_data=Stream(), progress=False)
    with pytest.raises(InvalidArgumentError, match="IterableDataset"):
        train.fit(tiny(), recipe, train_data=DataLoader(Stream()), progress=False)
    loader = DataLoader(Augmented(), batch_size=4)
    with pytest.raises(InvalidArgumentError, match="without a DistributedSampler, but this run has 2 processes"):
        make_batches(recipe.replace(data="custom"), tiny(), device=torch.device("cpu"), world=2, train_data=loader)
    dicts = DataLoader([{"x": torch.zeros(3, 16, 16), "y": 0}] * 8, batch_size=4)
    with pytest.raises(InvalidArgumentError, match=r"a batch must be \(images, labels\); received a dict"):
        train.fit(tiny(), recipe, train_data=dicts, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_folder_class_count_must_match_the_model(small_folder, tmp_path):
    with pytest.raises(
        InvalidArgumentError, match=r"has 3 classes \(circle, square, triangle\) but the model predicts 10"
    ):
        train.fit(tiny(10), folder_recipe(small_folder), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def _cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


TINY_RUN = ["--iterations", "4", "--batch-size", "8", "--num-workers", "0", "--no-progress", "--device", "cpu"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "No class folders in"),
        ("one_class", "Only one class folder in"),
        ("mismatch", "hold different classes: only in train ['square'], only in val []"),
        ("unreadable", "holds 2 unreadable image file(s)"),
        ("missing", "Image folder not found"),
    ],
)
def test_cli_bad_folders_are_one_line_and_write_nothing(tmp_path, capsys, setup, message):
    root = tmp_path / "images"
    root.mkdir()
    if setup == "one_class":
        make_image_folder(root, classes=("circle",), per_class=2, layout="single", size=8)
    elif setup == "mismatch":
        make_image_folder(root, classes=("circle", "square"), per_class=2, val_per_class=1, size=8)
        for path in (root / "val" / "square").iterdir():
            path.unlink()
        (root / "val" / "square").rmdir()
    elif setup == "unreadable":
        make_image_folder(root, classes=("circle", "square"), per_class=2, layout="single", size=8)
        (root / "triangle").mkdir()
        for name in ("a.png", "b.jpg"):
            (root / "triangle" / name).write_bytes(b"not an image")
    elif setup == "missing":
        root = tmp_path / "nowhere"
    out = tmp_path / "run"
    code, err = _cli(
        ["train", "resnet20", *TINY_ARGS, "--data", "folder", "--root", str(root), "--out", str(out)], capsys
    )
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_cli_folder_run_skips_unreadable_files_reads_any_mode_and_refuses_another_model(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", per_class=4, val_per_class=2, size=16, modes=("L", "RGBA", "P"))
    (root / "train" / "circle" / "broken.png").write_bytes(b"\x89PNG broken")
    (root / "train" / "circle" / "notes.txt").write_text("ignored")
    out = tmp_path / "run"
    argv = ["train", "resnet20", *TINY_ARGS, "--data", "folder", "--root", str(root), "--out", str(out), *TINY_RUN]
    with pytest.warns(UserWarning, match=r"Skipped 1 image file\(s\) under .*broken.png"):
        assert main(argv) == 0
    assert "resnet20: 4 iterations" in capsys.readouterr().out
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["num_classes"] == 3 and config["pretrained"]["class_names"] == ["circle", "square", "triangle"]
    before = (out / "checkpoint.pt").read_bytes()
    code, err = _cli(["train", "resnet32", "--resume", str(out), "--no-progress"], capsys)
    assert code == 2 and len(err) == 1 and "holds a resnet20 run; received model 'resnet32'" in err[0]
    model = create_model("resnet32", num_classes=3)
    with pytest.raises(InvalidArgumentError, match=r"another model \(resnet20; stem_width=4 there, 16 here"):
        train.fit(model, folder_recipe(root), out=out, resume=True, progress=False)
    assert (out / "checkpoint.pt").read_bytes() == before  # nothing already written is lost
    code, err = _cli(["train", "resnet20", "--data", "folder", "--root", str(root), "-M", "num_classes=5"], capsys)
    assert code == 2 and "num_classes=5 differs from the 3 class folders" in err[0]


def test_cli_finetune_resume_continues_exactly(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", per_class=8, val_per_class=2, size=16)
    from reszoo import save_pretrained

    save_pretrained(create_model("resnet20", image_size=16), tmp_path / "base")  # a resnet20 to fine-tune
    out = tmp_path / "ft"
    args = ["train", "resnet20", "--pretrained", str(tmp_path / "base"), "--data", "folder", "--root", str(root)]
    args += [*TINY_RUN[2:], "--iterations", "6", "--checkpoint-every", "3", "--backbone-lr-scale", "0.1"]
    assert main([*args, "--out", str(out / "a")]) == 0
    with pytest.raises(Killed):
        train.train_model(
            "resnet20",
            pretrained=tmp_path / "base",
            recipe_overrides=dict(data_root=str(root), batch_size=8, num_workers=0, device="cpu", iterations=6)
            | dict(checkpoint_every=3, backbone_lr_scale=0.1),
            out=out / "b",
            progress=False,
            on_step=_kill_at(5),
        )
    assert main(["train", "resnet20", "--resume", str(out / "b"), "--no-progress"]) == 0  # no --pretrained needed
    _same_state(_saved(out / "a"), _saved(out / "b"))
    assert json.loads((out / "b" / "recipe.json").read_text())["backbone_lr_scale"] == 0.1
    code, err = _cli(["train", "resnet20", "--resume", str(out / "b"), "--pretrained", "resnet20-cifar10"], capsys)
    assert code == 2 and "holds a fine-tune of" in err[-1]


def _saved(run):
    from reszoo import load_pretrained

    return load_pretrained(run / "model")


def test_cli_custom_data_is_python_only(capsys):
    code, err = _cli(["train", "resnet20", "--data", "custom"], capsys)
    assert code == 2 and "data='custom' needs train_data" in err[0]


def test_missing_folder_from_python_is_a_missing_input_error(tmp_path):
    with pytest.raises(MissingInputError):
        train.train_model("resnet20", recipe_overrides={"data": "folder", "data_root": str(tmp_path / "x")})


# -- distributed, on real files ----------------------------------------------------------------


@pytest.mark.slow  # three Python processes that each import torch: ~15 s
def test_torchrun_two_processes_on_an_image_folder_shard_it_and_agree(tmp_path):
    import os
    import subprocess

    from safetensors.torch import load_file

    from reszoo import ResNet, ResNetConfig

    root = make_image_folder(tmp_path / "shapes", per_class=8, val_per_class=3, size=16)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "reszoo"]
    cmd += ["train", "resnet20", *TINY_ARGS, "--data", "folder", "--root", str(root), "--device", "cpu"]
    cmd += ["--iterations", "6", "--batch-size", "8", "--eval-every", "3", "--num-workers", "0"]
    cmd += ["--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["iterations"] == 6
    digests = summary["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # both ranks hold the same model
    # The 9 held-out images are counted once each over the two ranks (no padding duplicates):
    # an error rate over 9 images is a multiple of 1/9.
    error = json.loads((out / "history.jsonl").read_text().splitlines()[-1])["test_error"]
    assert abs(error * 9 - round(error * 9)) < 1e-6, error
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["pretrained"]["class_names"] == ["circle", "square", "triangle"]
    assert json.loads((out / "run.json").read_text())["classes"] == ["circle", "square", "triangle"]
    model = ResNet(ResNetConfig.from_dict(saved["config"]))
    model.load_state_dict(load_file(out / "model" / "model.safetensors"))
    assert train.state_digest(model) == digests[0]
