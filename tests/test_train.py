"""Tests of reszoo.train, reszoo.train.experiment and the ``train`` / ``experiment`` commands (CPU, seconds)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reszoo import ResNet, ResNetConfig, train
from reszoo.cli import main
from reszoo.errors import NonFiniteLossError
from reszoo.train import trainer

# pytest runs with --import-mode=importlib (tests/ is not a package), so conftest is found by path.
sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_ARGS  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    # Two OpenMP threads on a 2-core machine shared with other jobs spin against each other and
    # make tiny models ~50x slower; one thread keeps these tests in seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_recipe(**kw):
    base = dict(
        data="synthetic",
        batch_size=32,
        lr=0.05,
        iterations=10,
        log_every=5,
        eval_every=0,
        checkpoint_every=5,
        synthetic_eval_images=256,
        eval_batch_size=128,
    )
    return train.Recipe(**{**base, **kw})


# -- recipes and schedules ---------------------------------------------------------------------


def test_cifar_recipe_is_the_papers():
    r = train.cifar_recipe(data_root="data/")
    assert (r.batch_size, r.lr, r.momentum, r.weight_decay) == (128, 0.1, 0.9, 1e-4)
    assert (r.milestones, r.iterations, r.warmup_iters, r.data) == ((32_000, 48_000), 64_000, 0, "cifar10")
    assert train.cifar_recipe(depth=110).warmup_iters == 400
    assert train.cifar_recipe(depth=56).warmup_iters == 0
    assert train.cifar_recipe(depth=110, warmup_iters=0).warmup_iters == 0  # overrides win


@pytest.mark.parametrize(
    ("iteration", "lr"),
    [
        (0, 0.01),
        (399, 0.01),
        (400, 0.1),
        (31_999, 0.1),
        (32_000, 0.01),
        (47_999, 0.01),
        (48_000, 0.001),
        (63_999, 0.001),
    ],
)
def test_cifar_learning_rates(iteration, lr):
    assert train.learning_rate(train.cifar_recipe(depth=110), iteration) == pytest.approx(lr)


def test_imagenet_recipes():
    plateau = train.imagenet_recipe(data_root="x")
    assert (plateau.batch_size, plateau.lr, plateau.schedule, plateau.iterations) == (256, 0.1, "plateau", 600_000)
    assert train.learning_rate(plateau, 10**5) == pytest.approx(0.1)
    assert train.learning_rate(plateau, 10**5, plateau_drops=2) == pytest.approx(0.001)
    step = train.imagenet_recipe(schedule="step")
    assert step.milestones == (30 * 5005, 60 * 5005) and step.iterations == 90 * 5005
    assert train.learning_rate(step, 30 * 5005 - 1) == pytest.approx(0.1)
    assert train.learning_rate(step, 30 * 5005) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="schedule 'linear'"):
        train.imagenet_recipe(schedule="linear")
    cosine = train.imagenet_recipe(schedule="cosine")
    assert cosine.iterations == 90 * 5005 and train.learning_rate(cosine, 45 * 5005) == pytest.approx(0.05)


def test_recipe_round_trip_and_errors():
    r = train.cifar_recipe(depth=110, lr=0.2, milestones=[5, 9])
    assert train.Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0; received lr=-1"):
        train.Recipe(lr=-1)
    with pytest.raises(ValueError, match=r"milestones must be strictly increasing.*\(9, 5\)"):
        train.Recipe(milestones=(9, 5))
    with pytest.raises(ValueError, match=r"data must be one of \['synthetic'"):
        train.Recipe(data="mnist")
    with pytest.raises(ValueError, match=r"Unknown recipe field\(s\) \['learning_rate'\]; valid fields"):
        train.Recipe().replace(learning_rate=0.1)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"lr": "0.1"}, "lr must be a finite number > 0; received lr='0.1'"),
        ({"lr": True}, "lr must be a finite number > 0; received lr=True"),
        ({"gamma": "x"}, "gamma must be a number in (0, 1]; received gamma='x'"),
        ({"download": "no"}, "download must be True or False; received download='no'"),
        ({"amp": "yes"}, "amp must be None, True or False; received amp='yes'"),
        ({"milestones": 5}, "milestones must be strictly increasing positive integers; received milestones=5"),
        ({"data_root": 3}, "data_root must be None or a folder path; received data_root=3"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0 or None; received num_workers=-1"),
        ({"schedule": "plateau", "eval_every": 0}, "needs eval_every >= 1; received eval_every=0"),
        ({"momentum": 2}, "momentum must be a number in [0, 1); received momentum=2"),
        ({"momentum": -0.1}, "momentum must be a number in [0, 1); received momentum=-0.1"),
        ({"nesterov": True, "momentum": 0}, "nesterov=True needs momentum > 0; received momentum=0"),
        ({"nesterov": "false"}, "nesterov must be True or False; received nesterov='false'"),
        ({"seed": 1.0}, "seed must be an integer >= 0; received seed=1.0"),
    ],
)
def test_recipe_rejects_bad_values(kw, message):
    with pytest.raises(ValueError) as exc:
        train.Recipe(**kw)
    assert message in str(exc.value)


def test_recipe_takes_a_path_as_data_root(tmp_path):
    r = train.cifar_recipe(data_root=tmp_path)
    assert r.data_root == str(tmp_path)
    json.dumps(r.to_dict())  # still plain data


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: train.cifar_recipe(depth="110"),
            "depth must be None or a CIFAR depth, 6n+2 or 9n+2 with n >= 1 (20, 56, 110, 164, ...; "
            "model.config.depth); received depth='110'",
        ),
        (lambda: train.cifar_recipe(depth=0), "received depth=0"),
        (lambda: train.cifar_recipe(depth=21), "6n+2 or 9n+2 with n >= 1"),
        (
            lambda: train.learning_rate(None, 0),
            "recipe must be a reszoo.train.recipes.Recipe; received recipe=None (NoneType)",
        ),
        (lambda: train.learning_rate(train.Recipe(), -1), "iteration must be an integer >= 0; received iteration=-1"),
        (lambda: train.learning_rate(train.Recipe(), 1.5), "received iteration=1.5"),
        (
            lambda: train.learning_rate(train.Recipe(), 5, plateau_drops=-1),
            "plateau_drops must be an integer >= 0; received plateau_drops=-1",
        ),
    ],
)
def test_recipe_helpers_reject_bad_arguments(call, message):
    with pytest.raises(ValueError) as exc:
        call()
    assert message in str(exc.value)


def test_loop_applies_warmup_and_milestones(tiny_model):
    recipe = tiny_recipe(iterations=8, log_every=1, warmup_iters=2, warmup_lr=0.01, lr=0.1, milestones=(4, 6))
    result = train.fit(tiny_model(), recipe, progress=False)
    # Record k describes iteration k - 1 (0-based): warm-up for 2, then 0.1, /10 at 4 and at 6.
    assert [r["iteration"] for r in result.history] == list(range(1, 9))
    assert [r["lr"] for r in result.history] == pytest.approx([0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


# -- the loop ----------------------------------------------------------------------------------


def test_learns_the_synthetic_task(tiny_model):
    recipe = tiny_recipe(iterations=60, log_every=20, eval_every=60, synthetic_eval_images=500)
    result = train.fit(tiny_model(), recipe, progress=False)
    # 10 classes: chance is 90% error; 60 steps of a 4-16-channel net get well below 50%.
    assert result.test_error < 0.5
    assert result.history[-1]["train_error"] < 0.5
    assert result.iterations == 60


def test_synthetic_task_is_deterministic_and_sharded():
    task = train.SyntheticTask(num_classes=10, image_shape=(3, 8, 8), seed=3)
    x1, y1 = task.batch(5, 4)
    x2, y2 = task.batch(5, 4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = task.batch(5, 4, stream=1)
    assert not torch.equal(x1, x3)


def _fake_cifar(monkeypatch):
    from reszoo.data import datasets as data

    g = torch.Generator().manual_seed(0)
    sets = {
        True: (torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(200) % 10),
        False: (torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(64) % 10),
    }
    monkeypatch.setattr(data, "load_cifar_tensors", lambda root, *, name, train, download=False: sets[train])


@pytest.mark.parametrize("source", ["synthetic", "cifar10"])
def test_resume_after_interruption_is_exact(tmp_path, monkeypatch, source, tiny_model):
    extra = {}
    if source == "cifar10":
        _fake_cifar(monkeypatch)  # 200 images / batch 32 = 6 steps an epoch: the run crosses epochs
        extra = dict(data="cifar10", data_root=str(tmp_path / "cifar"), eval_batch_size=32)
    recipe = tiny_recipe(iterations=10, checkpoint_every=4, log_every=2, eval_every=5, **extra)

    straight = train.fit(tiny_model(), recipe, out=tmp_path / "a", progress=False)

    class Killed(Exception):
        pass

    def kill_at_7(it):
        if it == 7:
            raise Killed

    with pytest.raises(Killed):
        train.fit(tiny_model(), recipe, out=tmp_path / "b", progress=False, on_step=kill_at_7)
    assert train.load_checkpoint(tmp_path / "b")["iteration"] == 4  # work since then is lost, no more
    torch.manual_seed(1)  # other starting weights: the checkpoint must replace them all
    resumed = train.fit(tiny_model(), recipe, out=tmp_path / "b", resume=True, progress=False)

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    history = [json.loads(line) for line in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in history] == [r["iteration"] for r in straight.history] == [2, 4, 5, 6, 8, 10]
    assert history[-1]["test_error"] == straight.test_error


def test_run_folder_contents(tmp_path, tiny_model):
    train.fit(tiny_model(), tiny_recipe(iterations=4), out=tmp_path, progress=False)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "recipe.json",
        "history.jsonl",
        "checkpoint.pt",
        "model",
        "summary.json",
    }
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary files behind
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["config"]["widths"] == [4, 8, 16]
    from safetensors.torch import load_file

    reloaded = ResNet(ResNetConfig.from_dict(config["config"]))
    reloaded.load_state_dict(load_file(tmp_path / "model" / "model.safetensors"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["replica_digests"] == [train.state_digest(reloaded)]
    assert train.Recipe.from_dict(json.loads((tmp_path / "recipe.json").read_text())) == tiny_recipe(iterations=4)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny_model):
    model = tiny_model()
    poisoned = {"on": False}
    model.fc.register_forward_hook(lambda mod, inp, out: out * float("nan") if poisoned["on"] else out)

    def poison_after_3(it):
        poisoned["on"] = it >= 3

    recipe = tiny_recipe(iterations=10, log_every=1, checkpoint_every=2)
    with pytest.raises(NonFiniteLossError, match=r"non-finite before iteration 4.*last good checkpoint"):
        train.fit(model, recipe, out=tmp_path, progress=False, on_step=poison_after_3)
    ckpt = train.load_checkpoint(tmp_path)
    assert ckpt["iteration"] == 2
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


def test_fit_rejects_mismatched_classes_and_bad_batch(tiny_model):
    with pytest.raises(ValueError, match="cifar100 has 100 classes but the model predicts 10"):
        train.fit(tiny_model(), train.cifar_recipe(data="cifar100", data_root="x"), progress=False)
    with pytest.raises(ValueError, match="needs data_root"):
        train.fit(tiny_model(), train.cifar_recipe(), progress=False)
    with pytest.raises(ValueError, match="resume=True needs out"):
        train.fit(tiny_model(), tiny_recipe(), resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        train.load_checkpoint("/nonexistent/run")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"model": "resnet20"}, "model must be a torch.nn.Module; received model='resnet20' (str)"),
        ({"recipe": {"lr": 0.1}}, "recipe must be a reszoo.train.recipes.Recipe; received recipe={'lr': 0.1} (dict)"),
        ({"out": 3}, "out must be None or a folder path; received out=3"),
        ({"resume": "yes"}, "resume must be True or False; received resume='yes'"),
        ({"progress": 1}, "progress must be True or False; received progress=1"),
        ({"on_step": 5}, "on_step must be None or a callable taking the iteration; received on_step=5"),
    ],
)
def test_fit_rejects_bad_arguments(kw, message, tiny_model):
    args = {"model": tiny_model(), "recipe": tiny_recipe(), **kw}
    with pytest.raises(ValueError) as exc:
        train.fit(args.pop("model"), args.pop("recipe"), **args)
    assert message in str(exc.value)


def test_fit_checks_before_writing_anything(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="needs data_root"):
        train.fit(tiny_model(), train.cifar_recipe(), out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_resuming_a_finished_run_reports_its_errors(tmp_path, tiny_model):
    recipe = tiny_recipe(iterations=4, eval_every=4)
    done = train.fit(tiny_model(), recipe, out=tmp_path, progress=False)
    again = train.fit(tiny_model(), recipe, out=tmp_path, resume=True, progress=False)
    assert again.iterations == 4 and again.history == []
    assert (again.train_error, again.test_error) == (done.train_error, done.test_error)
    assert train.state_digest(again.model) == train.state_digest(done.model)
    # Fewer iterations than the run has done cannot be resumed, and the folder is left as it was.
    recipe_json = (tmp_path / "recipe.json").read_text()
    with pytest.raises(ValueError, match=r"iterations must be >= 4 to resume .*received iterations=2"):
        train.fit(tiny_model(), recipe.replace(iterations=2), out=tmp_path, resume=True, progress=False)
    assert (tmp_path / "recipe.json").read_text() == recipe_json
    # A fresh run may not overwrite it either.
    with pytest.raises(ValueError, match="already holds a run"):
        train.fit(tiny_model(), recipe, out=tmp_path, progress=False)


def test_state_digest_is_the_saved_weights_digest(tmp_path, tiny_model):
    from safetensors import safe_open

    result = train.fit(tiny_model(), tiny_recipe(iterations=2), out=tmp_path, progress=False)
    with safe_open(str(tmp_path / "model" / "model.safetensors"), "pt") as f:
        assert f.metadata()["reszoo_digest"] == train.state_digest(result.model)


# -- command line ------------------------------------------------------------------------------


def test_cli_train_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "resnet20", *TINY_ARGS, "--data", "synthetic", "--batch-size", "16", "--no-progress"]
    assert main([*args, "--iterations", "4", "--checkpoint-every", "2", "--out", str(out)]) == 0
    assert "resnet20: 4 iterations" in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert run["model_overrides"] == {"depths": [1, 1, 1], "widths": [4, 8, 16], "stem_width": 4}
    assert run["recipe"]["batch_size"] == 16 and run["recipe"]["data"] == "synthetic"
    # A second run into the same folder must not silently overwrite the first.
    assert main([*args, "--iterations", "4", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    # Resume with the saved recipe and model overrides, training longer.
    assert main(["train", "resnet20", "--resume", str(out), "--iterations", "6", "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["iterations"] == 6
    # The folder names its model: resuming it as another one is refused.
    assert main(["train", "resnet56", "--resume", str(out), "--no-progress"]) == 2
    assert f"{out} holds a resnet20 run; received model 'resnet56'" in capsys.readouterr().err


def test_cli_says_where_the_run_went_or_that_it_was_not_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["train", "resnet20", *TINY_ARGS, "--data", "synthetic", "--batch-size", "8", "--iterations", "2"]
    assert main([*args, "--no-progress"]) == 0  # README's smoke run, made tiny
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "not saved: without --out nothing is written; add --out DIR (e.g. --out runs/resnet20) to keep the model, "
        "its history and a checkpoint to resume from"
    )
    assert list(tmp_path.iterdir()) == []
    assert main([*args, "--no-progress", "--out", "runs/resnet20"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("run folder: runs/resnet20 (model/ holds")
    assert (tmp_path / "runs" / "resnet20" / "model" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "resnet21", "--data", "synthetic"], "Unknown model 'resnet21'. Did you mean"),
        (["train", "resnet20", "--data", "synthetic", "--lr", "-1"], "lr must be a finite number > 0; received lr=-1"),
        (["train", "resnet20", "--data", "synthetic", "--milestones", "9,5"], "milestones must be strictly increasing"),
        (["train", "resnet20", "--data", "cifar10"], "needs data_root"),
        (["train", "resnet20", "-M", "depths"], "--model-arg takes KEY=VALUE"),
        (["train", "resnet20", "-M", "colour=red", "--data", "synthetic"], "Unknown config field(s) ['colour']"),
        (["train", "resnet20", "--resume", "/nonexistent/run"], "No run to resume"),
        (["train", "resnet20", "-M", "widths=4,,8", "--data", "synthetic"], "received 'widths=4,,8'"),
        (["train", "resnet20", "-M", "depths=", "--data", "synthetic"], "takes KEY=VALUE with a value"),
        (["train", "resnet20", "--data", "synthetic", "--schedule", "plateau", "--eval-every", "0"], "eval_every >= 1"),
        (["train", "resnet20", "--data", "synthetic", "--momentum", "2"], "momentum must be a number in [0, 1)"),
        (["train", "resnet20", "-M", "zero_init_residual=maybe"], "received zero_init_residual='maybe'"),
        (["train", "resnet20", "-M", "num_classes=ten"], "received num_classes='ten'"),
        (
            ["experiment", "degradation", "--out", "/nonexistent/x", "-M", "shortcut=B", "--data", "synthetic"],
            "model_overrides may not set ['shortcut']",
        ),
        (
            ["experiment", "degradation", "--out", "/nonexistent/x", "--depths", "20,21", "--data", "synthetic"],
            "depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202, ...); received depth=21",
        ),
        (
            ["experiment", "degradation", "--out", "/nonexistent/x", "--depths", "8,8", "--data", "synthetic"],
            "depths must not repeat a depth; received depths=(8, 8)",
        ),
    ],
)
def test_cli_rejects_bad_values(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"reszoo {argv[0]}: error:") and message in err


def test_cli_resume_needs_a_checkpoint_and_resumes_a_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "resnet20", *TINY_ARGS, "--data", "synthetic", "--batch-size", "16", "--no-progress"]
    assert main([*args, "--iterations", "2", "--eval-every", "2", "--out", str(out)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    # Nothing left to do: the saved errors are reported, not a crash on None.
    assert main(["train", "resnet20", "--resume", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == first
    (out / "checkpoint.pt").unlink()  # as if stopped before its first checkpoint
    assert main(["train", "resnet20", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"No checkpoint to resume in {out}" in err and f"--out {out}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "resnet20", "--data", "mnist"], "invalid choice: 'mnist'"),
        (["train", "resnet20", "--milestones", "a,b"], "expected comma-separated integers"),
        (["train", "resnet20", "--iterations", "ten"], "invalid int value: 'ten'"),
        (["experiment", "fig7", "--out", "x"], "invalid choice: 'fig7'"),
    ],
)
def test_cli_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


# -- the run folder: one owner, reproducible, nothing written before the checks ----------------


def test_run_json_is_written_by_the_library_atomically_with_seed_and_versions(tmp_path, monkeypatch, tiny_overrides):
    import reszoo
    from reszoo.utils import fileio

    replaced = []
    real_replace = os.replace

    def recording_replace(src, dst):
        replaced.append(Path(dst).name)
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", recording_replace)
    out = tmp_path / "run"
    recipe = dict(data="synthetic", batch_size=16, iterations=2, seed=3, synthetic_eval_images=32)
    result = train.train_model(
        "resnet20", model_overrides=tiny_overrides, recipe_overrides=recipe, out=out, progress=False
    )
    run = json.loads((out / "run.json").read_text())
    assert run["model"] == "resnet20" and run["seed"] == 3 and run["recipe"]["seed"] == 3
    assert run["versions"]["reszoo"] == reszoo.__version__ and run["versions"]["torch"] == torch.__version__
    assert run["model_overrides"] == {"depths": [1, 1, 1], "widths": [4, 8, 16], "stem_width": 4}
    assert ResNetConfig.from_dict(run["config"]) == result.model.config
    assert train.Recipe.from_dict(run["recipe"]) == train.Recipe.from_dict(
        json.loads((out / "recipe.json").read_text())
    )
    # Each file of the run folder arrived by an atomic rename of a finished temporary file.
    assert {"run.json", "recipe.json", "checkpoint.pt", "summary.json", "model.safetensors"} <= set(replaced)
    assert not list(out.rglob(".*tmp"))


def test_same_seed_twice_from_the_cli_gives_identical_weights(tmp_path, monkeypatch):
    starts = []
    real_create = trainer.create_model

    def recording_create(name, **overrides):
        model = real_create(name, **overrides)
        starts.append(train.state_digest(model))
        return model

    monkeypatch.setattr(trainer, "create_model", recording_create)
    args = ["train", "resnet20", *TINY_ARGS, "--data", "synthetic", "--batch-size", "16", "--iterations", "3"]
    args += ["--synthetic-eval-images", "32", "--no-progress"]
    for i, seed in enumerate((0, 0, 1)):
        torch.manual_seed(100 + i)  # whatever the global generator holds, the recipe's seed decides
        assert main([*args, "--seed", str(seed), "--out", str(tmp_path / f"run{i}")]) == 0
    finals = [json.loads((tmp_path / f"run{i}" / "summary.json").read_text())["replica_digests"] for i in range(3)]
    assert starts[0] == starts[1] != starts[2]
    assert finals[0] == finals[1] != finals[2]
    assert json.loads((tmp_path / "run0" / "run.json").read_text())["seed"] == 0


def test_nothing_is_written_when_the_dataset_is_missing(tmp_path, capsys, tiny_model):
    out = tmp_path / "run"
    argv = ["train", "resnet20", *TINY_ARGS, "--data", "cifar10", "--root", str(tmp_path / "no-data")]
    assert main([*argv, "--out", str(out), "--no-progress"]) != 0
    assert "cifar-10-batches-py" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(FileNotFoundError):
        train.fit(tiny_model(), train.cifar_recipe(data_root=str(tmp_path / "no-data")), out=out, progress=False)
    assert not out.exists()


def test_cli_model_args_are_typed_by_the_config(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "resnet20", *TINY_ARGS, "-M", "zero_init_residual=false", "-M", "num_classes=10"]
    argv += ["--data", "synthetic", "--batch-size", "16", "--iterations", "1", "--synthetic-eval-images", "16"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    overrides = json.loads((out / "run.json").read_text())["model_overrides"]
    assert overrides["zero_init_residual"] is False and overrides["num_classes"] == 10
    assert json.loads((out / "model" / "config.json").read_text())["config"]["zero_init_residual"] is False


def test_cli_refuses_unusable_run_folders(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["train", "resnet20", "--data", "synthetic", "--out", str(a_file)]) == 2
    assert "out must be a folder" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{}")
    assert main(["train", "resnet20", "--resume", str(broken)]) == 1
    assert "is not a reszoo run record" in capsys.readouterr().err
    (broken / "run.json").write_text("{not json")
    assert main(["train", "resnet20", "--resume", str(broken)]) == 1
    assert "is not a reszoo run record" in capsys.readouterr().err


# -- the degradation experiment ------------------------------------------------------------------


def test_degradation_experiment_writes_csv_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the PNG needs the optional matplotlib extra")
    argv = ["experiment", "degradation", "--out", str(tmp_path), "--depths", "8", *TINY_ARGS[2:]]
    argv += ["--data", "synthetic", "--iterations", "4", "--batch-size", "16", "--log-every", "2", "--eval-every", "2"]
    argv += ["--synthetic-eval-images", "64", "--no-progress"]
    assert main(argv) == 0
    with open(tmp_path / "curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    from reszoo.train.experiment import CSV_COLUMNS

    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert [(r["model"], r["iteration"]) for r in rows] == [
        ("plain8", "2"),
        ("plain8", "4"),
        ("resnet8", "2"),
        ("resnet8", "4"),
    ]
    assert all(0 <= float(r["test_error"]) <= 1 for r in rows)
    assert (tmp_path / "degradation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # plain8 really is plain (no shortcut) and resnet8 residual, with the overridden widths.
    plain = json.loads((tmp_path / "plain8" / "model" / "config.json").read_text())["config"]
    res = json.loads((tmp_path / "resnet8" / "model" / "config.json").read_text())["config"]
    assert (plain["shortcut"], res["shortcut"], res["widths"]) == ("none", "A", [4, 8, 16])
    assert "plain8: train error" in capsys.readouterr().out


def test_degradation_checks_every_model_before_training(tmp_path):
    from reszoo.train.experiment import degradation

    recipe = tiny_recipe(iterations=1)
    with pytest.raises(ValueError, match=r"received depth=9"):
        degradation(recipe, out=tmp_path, depths=(8, 9), progress=False, plot=False)
    with pytest.raises(ValueError, match=r"model_overrides may not set \['depths'\]"):
        degradation(recipe, out=tmp_path, depths=(8,), model_overrides={"depths": (1, 1, 1)}, plot=False)
    with pytest.raises(ValueError, match=r"model_overrides must be None or a dict; received model_overrides=\['x'\]"):
        degradation(recipe, out=tmp_path, depths=(8,), model_overrides=["x"], plot=False)
    with pytest.raises(ValueError, match=r"depths must name at least one CIFAR depth; received depths='20'"):
        degradation(recipe, out=tmp_path, depths="20", plot=False)
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


# -- distributed ---------------------------------------------------------------------------------


@pytest.mark.slow  # three Python processes that each import torch: ~15 s
def test_torchrun_two_processes_gloo_keeps_replicas_identical(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "reszoo"]
    cmd += ["train", "resnet20", *TINY_ARGS, "--data", "synthetic", "--device", "cpu", "--iterations", "6"]
    cmd += [
        "--batch-size",
        "16",
        "--eval-every",
        "3",
        "--synthetic-eval-images",
        "64",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["iterations"] == 6
    digests = summary["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    # Rank 0's saved model is the replicas' common state.
    from safetensors.torch import load_file

    config = json.loads((out / "model" / "config.json").read_text())["config"]
    model = ResNet(ResNetConfig.from_dict(config))
    model.load_state_dict(load_file(out / "model" / "model.safetensors"))
    assert train.state_digest(model) == digests[0]
    assert json.loads((out / "history.jsonl").read_text().splitlines()[-1])["iteration"] == 6
    assert proc.stdout.count("resnet20: 6 iterations") == 1  # rank 0 only


def test_imagenet_path_on_a_tiny_image_folder(tmp_path, tiny_model):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for wnid in ("n01", "n02"):
            (tmp_path / split / wnid).mkdir(parents=True)
            for i in range(4):
                pixels = torch.randint(0, 256, (64, 80, 3), dtype=torch.uint8, generator=g).numpy()
                Image.fromarray(pixels).save(tmp_path / split / wnid / f"{i}.png")
    model = tiny_model(stem="imagenet", num_classes=1000, image_size=224)
    recipe = train.imagenet_recipe(schedule="step", data_root=str(tmp_path)).replace(
        batch_size=4, iterations=3, eval_every=3, checkpoint_every=3, log_every=1, num_workers=0, eval_batch_size=4
    )
    result = train.fit(model, recipe, progress=False)
    # 2 epochs of 8 images in batches of 4 cross an epoch boundary; evaluation covers all 8 val images.
    assert result.iterations == 3 and 0 <= result.test_error <= 1
    assert result.test_error * 8 == pytest.approx(round(result.test_error * 8))


# -- a batch too large for memory is one line (issue 22) ------------------------------------------------

CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 1125899906842624 bytes. Error code 12 (Cannot allocate memory)"
)


def test_a_training_step_out_of_memory_is_one_line_with_a_smaller_batch(tmp_path, monkeypatch, capsys):
    from reszoo.train import loop

    def step(*args):
        raise RuntimeError(CPU_OOM)  # what torch raises when the CPU cannot hold the batch

    monkeypatch.setattr(loop, "_step", step)
    argv = ["train", "resnet20", *TINY_ARGS, "--data", "synthetic", "--iterations", "2", "--no-progress"]
    assert main([*argv, "--batch-size", "4096", "--device", "cpu", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "reszoo train: error: Out of memory in a training step at batch_size=4096 on cpu (tried to allocate "
        "1125899906842624 bytes); try a smaller batch_size (--batch-size, e.g. 2048)."
    )


def test_an_evaluation_out_of_memory_names_the_eval_batch_size(tiny_model):
    from reszoo.errors import OutOfMemoryError

    model = tiny_model()

    def forward_hook(module, args):
        if not module.training:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total ...")

    model.register_forward_pre_hook(forward_hook)
    with pytest.raises(OutOfMemoryError) as info:
        train.fit(model, tiny_recipe(iterations=2, eval_every=2, device="cpu"), progress=False)
    assert str(info.value) == (
        "Out of memory while evaluating at eval_batch_size=128 on cpu (tried to allocate 2.00 GiB); try a smaller "
        "eval_batch_size (--eval-batch-size, e.g. 64)."
    )
    assert isinstance(info.value, RuntimeError) and isinstance(info.value.__cause__, torch.OutOfMemoryError)


def test_batch_fits_passes_other_errors_and_bench_counts_cpu_allocation_as_oom():
    from reszoo.utils.accelerator import batch_fits, failure_kind

    boom = RuntimeError("boom")
    with pytest.raises(RuntimeError) as info, batch_fits(doing="here", field="batch_size", batch_size=8):
        raise boom
    assert info.value is boom
    assert failure_kind(RuntimeError(CPU_OOM)) == "oom"  # a bench row at this size is "oom", not "error"


# -- the family's recipes and networks (issue 23) ------------------------------------------------------
def test_family_recipes_are_the_papers():
    from reszoo.train import recipes as R

    pre = R.preact_cifar_recipe()  # He et al. 2016: the 2015 recipe, warmed up at every depth
    assert (pre.lr, pre.milestones, pre.iterations, pre.weight_decay) == (0.1, (32_000, 48_000), 64_000, 1e-4)
    assert (pre.warmup_iters, pre.warmup_lr) == (400, 0.01)
    wrn = R.wrn_cifar_recipe()  # Zagoruyko & Komodakis 2016: 200 epochs, x0.2 at 60/120/160, Nesterov, wd 5e-4
    per_epoch = 50_000 // 128
    assert (wrn.iterations, wrn.gamma) == (200 * per_epoch, 0.2)
    assert wrn.milestones == (60 * per_epoch, 120 * per_epoch, 160 * per_epoch)
    assert (wrn.lr, wrn.momentum, wrn.nesterov, wrn.weight_decay, wrn.batch_size) == (0.1, 0.9, True, 5e-4, 128)
    rx = R.resnext_cifar_recipe()  # Xie et al. 2017: 300 epochs, /10 at 150 and 225, wd 5e-4, batch 128
    assert (rx.iterations, rx.milestones, rx.gamma, rx.weight_decay, rx.batch_size) == (
        300 * per_epoch,
        (150 * per_epoch, 225 * per_epoch),
        0.1,
        5e-4,
        128,
    )
    assert train.learning_rate(wrn, 60 * per_epoch) == pytest.approx(0.02)
    assert R.wrn_cifar_recipe(data="cifar100", lr=0.05).lr == 0.05  # overrides on top
    # Every registered network of a family with its own recipe gets it; the paper's nets keep theirs.
    assert set(R.FAMILY_RECIPES) <= set(reszoo_models())
    assert R.paper_recipe(model="wrn28_10") == wrn and R.paper_recipe(model="resnext29_32x4d") == rx
    assert R.paper_recipe(model="preresnet20") == pre
    assert R.paper_recipe(model="resnet56", depth=56) == R.cifar_recipe(depth=56)
    assert R.paper_recipe(model="wrn28_10", data="imagenet") == R.imagenet_recipe()


def reszoo_models() -> list[str]:
    import reszoo

    return reszoo.list_models()


def test_train_model_starts_from_the_family_recipe(tmp_path):
    result = trainer.train_model(
        "wrn16_10",
        model_overrides={"depths": (1, 1, 1), "widths": (4, 8, 16), "stem_width": 4, "conv_dropout": 0.3},
        recipe_overrides={"data": "synthetic", "iterations": 2, "batch_size": 8, "eval_every": 0},
        out=tmp_path / "run",
        progress=False,
    )
    assert result.iterations == 2
    saved = json.loads((tmp_path / "run" / "recipe.json").read_text())
    assert (saved["nesterov"], saved["gamma"], saved["weight_decay"]) == (True, 0.2, 5e-4)
    assert isinstance(result.model.layer1[0].dropout, torch.nn.Dropout)


def test_degradation_experiment_takes_registered_models(tmp_path):
    from reszoo.train.experiment import degradation

    recipe = train.cifar_recipe(
        data="synthetic", iterations=2, batch_size=8, log_every=1, eval_every=0, synthetic_eval_images=16
    )
    tiny = {"widths": (4, 8, 16), "stem_width": 4}  # depths are the names' own: 20 layers each
    result = degradation(
        recipe, out=tmp_path, models=("plain20", "preresnet20"), model_overrides=tiny, progress=False, plot=False
    )
    assert list(result.runs) == ["plain20", "preresnet20"]
    with open(tmp_path / "curves.csv", newline="") as f:
        families = {r["model"]: r["family"] for r in csv.DictReader(f)}
    assert families == {"plain20": "plain", "preresnet20": "resnet"}
    with pytest.raises(ValueError, match="depths or models, not both"):
        degradation(recipe, out=tmp_path, depths=(20,), models=("plain20",), plot=False)
    with pytest.raises(ValueError, match="Unknown model 'preresnet21'"):
        degradation(recipe, out=tmp_path, models=("preresnet21",), plot=False)
