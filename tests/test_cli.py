"""The command line: reszoo list / info, python -m reszoo, help without torch, the recipe options, error handling,
generated docs."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reszoo.cli import COMMANDS, build_parser, main
from reszoo.cli._common import check_output_path
from reszoo.cli._recipe_options import add_recipe_options, field_help, given_recipe_fields, recipe_option
from reszoo.errors import (
    ArgumentTypeError,
    FileWriteError,
    HubUnreachableError,
    InvalidArgumentError,
    MissingInputError,
    TrainingInterrupted,
)
from reszoo.train.recipes import Recipe
from reszoo.utils import choices
from reszoo.utils.choices import DEVICES, SCHEDULES

ROOT = Path(__file__).resolve().parent.parent


def test_list_table(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "resnet56" in out and "853,018" in out and "125.49M" in out
    assert "resnet50" in out and "25,557,032" in out and "4.09G" in out


def test_list_json_pattern(capsys):
    assert main(["list", "plain*", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"plain18", "plain20", "plain32", "plain34", "plain44", "plain56", "plain110"}
    row = next(r for r in rows if r["name"] == "plain20")
    assert row["params"] == 269_722 and row["macs"] == 40_551_040 and row["input_size"] == [3, 32, 32]


def test_list_no_match_is_an_error(capsys):
    assert main(["list", "vgg*"]) == 2
    assert "No model matches pattern 'vgg*'" in capsys.readouterr().err


def test_info(capsys):
    assert main(["info", "resnet56"]) == 0
    out = capsys.readouterr().out
    assert "depth 56" in out and "shortcut = 'A'" in out
    assert "layer3.8" in out and "1x64x8x8" in out and "fc" in out


def test_info_unknown_model(capsys):
    assert main(["info", "resnet57"]) == 2
    err = capsys.readouterr().err
    assert "Unknown model or weight entry 'resnet57'" in err and "resnet56" in err


def test_list_pretrained_fits_the_terminal_and_info_has_the_rest(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["list", "--pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 100 and len(lines) > 20  # 181 columns before (full URLs)
    monkeypatch.setenv("COLUMNS", "120")  # room for the longest names (wide_resnet101_2-imagenet-v2) and sources
    assert main(["list", "--pretrained"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 120
    row = next(line for line in lines if line.startswith("resnet56-cifar10 "))
    assert row.split()[-1] == "akamaster/pytorch_resnet_cifar10" and "hf-hub:timm/resnet50.tv_in1k" in "\n".join(lines)
    assert lines[-1] == "full detail (source URL, checksum, pre-processing): reszoo info NAME"
    monkeypatch.setenv("COLUMNS", "90")
    assert main(["list", "--pretrained", "resnet56*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 90 and lines[2].split()[-1] == "akamaster/pytorch_resne..."
    assert main(["info", "resnet56-cifar"]) == 0  # an alias names the entry
    out = capsys.readouterr().out
    assert out.startswith("resnet56-cifar10: weights for resnet56 trained on cifar10, 10 classes")
    url = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet56-4bfd9763.th"
    assert f"  source            {url}\n" in out and "  sha256            4bfd9763... (the file name's prefix)" in out
    assert "top1 93.39 % on cifar10-test" in out and "license           bsd-2-clause" in out


def test_python_dash_m():
    done = subprocess.run(
        [sys.executable, "-m", "reszoo", "list", "resnet2*"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "resnet20" in done.stdout and "269,722" in done.stdout


def test_bad_subcommand_exits_nonzero():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_models_doc_is_generated_from_registry():
    script = ROOT / "scripts" / "gen_model_docs.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"docs/models.md is stale: run python scripts/gen_model_docs.py\n{done.stderr}"


def test_list_csv_uses_the_csv_module(capsys):
    assert main(["list", "resnet5?", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "name,family,depth,shortcut,params,macs,input_size",
        "resnet56,CIFAR,56,A,853018,125485696,3x32x32",
        "resnet50,ImageNet,50,B,25557032,4089184256,3x224x224",
    ]


def test_list_markdown(capsys):
    assert main(["list", "resnet20", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model ") and lines[1].startswith("|---") and "269,722" in lines[2]


def test_every_command_is_documented_and_info_beside_list():
    docs = {p.name: p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    undocumented = [c for c in SUBCOMMANDS if not any(f"reszoo {c} " in text for text in docs.values())]
    assert undocumented == [], f"commands no page names: {undocumented}"
    for page in ("README.md", "models.md", "weights.md"):  # where `reszoo list` is, `reszoo info` is too
        assert "reszoo list" in docs[page] and "reszoo info" in docs[page], page


# What `reszoo --help` and `reszoo COMMAND --help` may not load: torch itself, and with it everything heavy.
HEAVY = ("torch", "torchvision", "huggingface_hub", "numpy")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of the parser as ``reszoo`` builds it: name -> parser."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


SUBCOMMANDS = sorted(_subcommands(build_parser()))


def test_the_subcommands_are_found():
    # Every module of COMMANDS registers at least one; list, info, download, convert, experiment are not module names.
    assert {"bench", "list", "info", "train", "experiment", "download", "convert"} <= set(SUBCOMMANDS)


def _imported_modules(argv: list[str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reszoo", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: reszoo" in done.stdout
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("command", [[], *([c] for c in SUBCOMMANDS)], ids=lambda c: " ".join(c) or "reszoo")
def test_help_imports_no_torch(command):
    imported = _imported_modules([*command, "--help"])
    assert "reszoo.cli" in imported
    assert not sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_argument_of_every_subcommand_has_help(command):
    parser = _subcommands(build_parser())[command]
    missing = [
        a.option_strings[-1] if a.option_strings else a.dest for a in _options(parser) if not (a.help or "").strip()
    ]
    assert not missing, f"reszoo {command}: no help for {missing}"
    assert all(a.help != argparse.SUPPRESS for a in _options(parser))
    parser.format_help()  # every help text formats (a bare % in one would raise here)


def test_every_subcommand_has_a_one_line_summary():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {c.dest: c.help for c in sub._choices_actions}
    assert set(summaries) == set(SUBCOMMANDS) and all(h and h.strip() for h in summaries.values())


def test_no_command_module_imports_another():
    # What commands share lives in the private modules (_common, _recipe_options); a command module
    # importing its sibling would drag the sibling's imports into every command.
    package = ROOT / "src" / "reszoo" / "cli"
    commands = {f"reszoo.cli.{name}" for name in COMMANDS}
    for name in COMMANDS:
        tree = ast.parse((package / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert not (imported & (commands - {f"reszoo.cli.{name}"})), f"reszoo.cli.{name} imports a command module"


# -- the recipe options of train and experiment, made from the Recipe's field types ----------------------


def test_every_recipe_field_is_an_option_with_its_documented_help():
    parser = _subcommands(build_parser())["train"]
    by_dest = {a.dest: a for a in parser._actions}
    documented = field_help()
    assert set(documented) == set(Recipe.field_names()), "document every Recipe field in Recipe's Args: section"
    for name in Recipe.field_names():
        action = by_dest[f"recipe_{name}"]
        assert action.option_strings[0] == "--" + name.replace("_", "-") and action.default is None
        assert action.help == documented[name].replace("%", "%%")
    assert by_dest["recipe_lr"].help == "base learning rate."
    assert by_dest["recipe_data_root"].option_strings == ["--data-root", "--root"]
    assert by_dest["recipe_schedule"].choices == SCHEDULES and by_dest["recipe_device"].choices == DEVICES


def test_recipe_options_parse_to_the_field_types():
    parser = _subcommands(build_parser())["train"]
    args = parser.parse_args(
        ["resnet20", "--lr", "0.05", "--epochs", "3", "--milestones", "10,20", "--mean", "0.5,0.5,0.5"]
        + ["--std", "0.2,0.2,0.2", "--no-amp", "--compile", "--root", "d", "--schedule", "cosine"]
    )
    assert given_recipe_fields(args) == {
        "lr": 0.05,
        "epochs": 3,
        "milestones": (10, 20),
        "mean": (0.5, 0.5, 0.5),
        "std": (0.2, 0.2, 0.2),
        "amp": False,
        "compile": True,
        "data_root": "d",
        "schedule": "cosine",
    }
    assert given_recipe_fields(parser.parse_args(["resnet20"])) == {}  # nothing given: the recipe's own


@dataclasses.dataclass(frozen=True)
class _MoreFields(Recipe):
    """A recipe with a field of each supported type that Recipe does not have (yet).

    Args:
        patience: a new int.
        ratio: a new float or None.
    """

    patience: int = 1
    ratio: float | None = None
    tag: str | None = None
    verbose: bool = False
    sizes: tuple[int, ...] = ()
    scales: tuple[float, ...] | None = None


def test_a_new_recipe_field_of_a_supported_type_gets_an_option():
    parser = argparse.ArgumentParser(prog="reszoo train")
    add_recipe_options(parser, _MoreFields)
    assert "--patience PATIENCE" in parser.format_help() and "--verbose, --no-verbose" in parser.format_help()
    args = parser.parse_args(["--patience", "4", "--ratio", "0.5", "--tag", "x", "--verbose", "--sizes", "1,2"])
    given = given_recipe_fields(args)
    assert given == {"patience": 4, "ratio": 0.5, "tag": "x", "verbose": True, "sizes": (1, 2)}
    assert _MoreFields().replace(**given).sizes == (1, 2)
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["recipe_patience"] == "a new int." and helps["recipe_lr"] == "base learning rate."
    assert helps["recipe_tag"] == "a string or None"  # undocumented: its type in words, never no help


def test_a_recipe_field_of_an_unsupported_type_is_refused_by_name():
    @dataclasses.dataclass(frozen=True)
    class Odd(Recipe):
        limits: dict[str, int] = dataclasses.field(default_factory=dict)

    with pytest.raises(
        ArgumentTypeError,
        match=r"Recipe field 'limits' has type dict\[str, int\], which the command "
        r"line cannot offer as an option; supported: int, float, str, bool",
    ):
        add_recipe_options(argparse.ArgumentParser(), Odd)
    with pytest.raises(ArgumentTypeError, match=r"Recipe field 'pair' has type int \| str"):
        recipe_option("pair", int | str)


def test_recipe_field_help_is_plain_text():
    helps = field_help()
    assert helps["device"].startswith("auto (reszoo.utils.devices.default_device: CUDA, then MPS, then CPU), cpu,")
    assert helps["amp"] == "bf16 autocast; not given: on for CUDA, off elsewhere."
    assert not any("``" in h or ":func:" in h or ":mod:" in h for h in helps.values())


# -- the output options and the choices ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stdout", "message"),
    [
        ("{tmp}", False, "--json takes a file path; received --json {tmp}, which is a folder."),
        ("{tmp}", True, "--json takes a file path or -; received --json {tmp}, which is a folder."),
        (
            "{tmp}/no/r.json",
            True,
            "--json must name a file in an existing folder; received --json {tmp}/no/r.json "
            "({tmp}/no is not a folder).",
        ),
    ],
)
def test_one_output_path_check(tmp_path, value, stdout, message):
    with pytest.raises(InvalidArgumentError) as exc:
        check_output_path("json", value.format(tmp=tmp_path), command="predict", stdout=stdout)
    assert str(exc.value) == message.format(tmp=tmp_path)


def test_output_paths_that_may_be_written_pass(tmp_path):
    check_output_path("csv", str(tmp_path / "r.csv"), command="bench")
    check_output_path("json", "-", command="predict", stdout=True)
    check_output_path("json", None, command="predict")
    (tmp_path / "-").mkdir()
    check_output_path("json", "-", command="predict", stdout=True)  # standard output, not the folder named "-"
    with pytest.raises(InvalidArgumentError, match="which is a folder"):
        check_output_path("csv", str(tmp_path / "-"), command="bench")


# -- no report replaces what a user has (issue 22) --------------------------------------------------------


@pytest.fixture
def shapes(tmp_path):
    """A saved tiny shapes model and a folder of two PNG images per class."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _images import make_image_folder, shapes_model
    from reszoo import save_pretrained

    saved = save_pretrained(shapes_model(), tmp_path / "saved")
    photos = make_image_folder(tmp_path / "photos", per_class=2, layout="single", formats=("png",))
    return saved, sorted(photos.rglob("*.png"))


def test_predict_json_without_its_dash_replaces_no_photo(shapes, capsys):
    saved, images = shapes
    before = images[0].read_bytes()
    # `reszoo predict RUN --json holiday/*.png`: the shell hands the first photo to --json.
    assert main(["predict", str(saved), "--json", *map(str, images)]) == 2
    err = capsys.readouterr().err
    assert f"--json {images[0]} names an existing file that is not a reszoo predict report" in err
    assert "(or - for standard output)" in err and images[0].read_bytes() == before


def test_evaluate_json_into_the_model_folder_is_refused(shapes, capsys):
    saved, images = shapes
    config = (saved / "config.json").read_bytes()
    root = str(images[0].parent.parent)
    args = ["evaluate", str(saved), "--data", "folder", "--root", root, "--num-workers", "0", "--json"]
    assert main([*args, str(saved / "config.json")]) == 2
    assert f"is inside the model folder {saved}, whose files reszoo reads back" in capsys.readouterr().err
    assert (saved / "config.json").read_bytes() == config
    assert main([*args, str(saved / "eval.json")]) == 2  # a new file in it too
    assert not (saved / "eval.json").exists()
    assert main([*args, str(images[0].parent / "r.json")]) == 2
    assert "is inside the input folder" in capsys.readouterr().err


def test_a_report_replaces_only_a_report_of_its_own_command(shapes, tmp_path, capsys):
    saved, images = shapes
    out = tmp_path / "p.json"
    for _ in range(2):  # the second run replaces the first one's report
        assert main(["predict", str(saved), str(images[0]), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["report"] == "reszoo predict"
    root = str(images[0].parent.parent)
    evaluate = ["evaluate", str(saved), "--data", "folder", "--root", root, "--num-workers", "0"]
    assert main([*evaluate, "--json", str(out)]) == 2
    assert "not a reszoo evaluate report" in capsys.readouterr().err
    (tmp_path / "notes.json").write_text('{"mine": 1}\n')
    with pytest.raises(InvalidArgumentError, match="not a reszoo predict report"):
        check_output_path("json", str(tmp_path / "notes.json"), command="predict", stdout=True)


def test_an_output_is_never_an_input_nor_in_a_run_folder(tmp_path):
    image, run = tmp_path / "a.png", tmp_path / "run"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "model").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "recipe.json").write_text("{}")
    (tmp_path / "checkpoint.pt").write_bytes(b"a checkpoint of the user's own")  # alone, it makes no run folder
    check_output_path("json", str(tmp_path / "new.json"), command="evaluate")
    with pytest.raises(InvalidArgumentError, match=r"a.png is one of the inputs; a report never replaces"):
        check_output_path("json", str(image), command="predict", inputs=[image], stdout=True)
    link = tmp_path / "link.json"
    link.symlink_to(image)
    with pytest.raises(InvalidArgumentError, match="link.json is one of the inputs"):  # resolved
        check_output_path("json", str(link), command="predict", inputs=[str(image)])
    for inside in (run / "summary2.json", run / "model" / "r.json"):
        with pytest.raises(InvalidArgumentError, match=f"is inside the run folder {run}"):
            check_output_path("json", str(inside), command="evaluate")
    (tmp_path / "runs").symlink_to(run)
    with pytest.raises(InvalidArgumentError, match="is inside the run folder"):
        check_output_path("json", str(tmp_path / "runs" / "r.json"), command="evaluate")


def test_diagnose_json_never_replaces_the_users_code(tmp_path, capsys):
    net = tmp_path / "net.py"
    net.write_text("import reszoo\nbuild = lambda: reszoo.create_model('resnet20')\n")
    code = net.read_text()
    assert main(["diagnose", f"{net}:build", "-r", "resnet20", "--json", str(net)]) == 2
    assert f"--json {net} is one of the inputs" in capsys.readouterr().err and net.read_text() == code


def test_bench_outputs_replace_only_bench_reports(tmp_path, capsys):
    from reszoo.bench import reporting
    from reszoo.bench.measuring import BenchResult

    row = BenchResult("tiny", "infer", "cpu", 2, (3, 32, 32), "fp32", False, None, False, images_per_s=10.0, runs=3)
    photo, notes = tmp_path / "photo.png", tmp_path / "notes.csv"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    notes.write_text("name,phone\nada,1\n")
    for option, path in (("plot", photo), ("csv", notes), ("json", notes)):
        argv = ["bench", "resnet20", "--batch-size", "2", "--min-run-time", "0.01", f"--{option}", str(path)]
        assert main(argv) == 2
        assert "is not a reszoo bench report" in capsys.readouterr().err
    assert photo.read_bytes()[8:] == bytes(64) and notes.read_text() == "name,phone\nada,1\n"
    assert main(["bench", "resnet20", "--json", str(tmp_path / "b"), "--csv", str(tmp_path / "b")]) == 2
    assert "--json, --csv and --plot write different files" in capsys.readouterr().err
    reporting.to_json([row], str(tmp_path / "r.json"), env={})
    reporting.to_csv([row], str(tmp_path / "r.csv"))
    outputs = {"json": tmp_path / "r.json", "csv": tmp_path / "r.csv"}
    if importlib.util.find_spec("matplotlib") is not None:
        reporting.plot([row], str(tmp_path / "r.png"))
        outputs["plot"] = tmp_path / "r.png"
    for option, path in outputs.items():  # earlier reports: replaced
        check_output_path(option, str(path), command="bench")
    with pytest.raises(InvalidArgumentError, match="not a reszoo predict report"):
        check_output_path("json", str(tmp_path / "r.json"), command="predict")


def test_the_library_checks_against_the_same_choices_the_parser_offers():
    code = "import sys; import reszoo.utils.choices; print(','.join(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "", "reszoo.utils.choices is plain data"
    from reszoo.bench import measuring
    from reszoo.data.constants import DATASETS as DATASET_INFO
    from reszoo.infer import evaluation, export, inputs
    from reszoo.train import recipes
    from reszoo.utils import devices

    # One tuple each, not a copy: the library module offers the object of reszoo.utils.choices.
    assert measuring.MODES is choices.BENCH_MODES and measuring.DTYPES is choices.DTYPES is devices.DTYPES
    assert devices.DEVICE_TYPES is choices.DEVICE_TYPES and recipes.DEVICES is choices.DEVICES
    assert recipes.SCHEDULES is choices.SCHEDULES and export.FORMATS is choices.EXPORT_FORMATS
    assert export.SUFFIXES is choices.EXPORT_SUFFIXES and inputs.PROTOCOLS is choices.EVAL_PROTOCOLS
    assert evaluation.DATA_IDS is choices.EVAL_DATASETS and evaluation.SPLITS is choices.EVAL_SPLITS
    # The test sets by name are the dataset ids of reszoo.data.constants, and an image folder.
    assert choices.EVAL_DATASETS[:-1] == tuple(DATASET_INFO) and choices.EVAL_DATASETS[-1] == "folder"
    assert set(choices.EVAL_SPLITS) == set(choices.EVAL_DATASETS)
    assert set(export.SUFFIXES.values()) == set(choices.EXPORT_FORMATS)


# -- the error policy for the failures of issue 16 -------------------------------------------------


def _raising(err):
    def run(args):
        raise err

    return run


@pytest.mark.parametrize(
    ("err", "code", "line"),
    [
        (KeyboardInterrupt(), 130, "reszoo list: interrupted"),
        (
            TrainingInterrupted("SIGTERM at iteration 3 of 9; ...", signum=15),
            143,
            "reszoo list: stopped: SIGTERM at iteration 3 of 9; ...",
        ),
        (
            FileWriteError(28, "Cannot write x/checkpoint.pt: No space left", "x"),
            1,
            "reszoo list: error: Cannot write x/checkpoint.pt: No space left",
        ),
        (
            HubUnreachableError("Cannot push to me/x: offline."),
            1,
            "reszoo list: error: Cannot push to me/x: offline.",
        ),
        (PermissionError(13, "Permission denied", "/x"), 1, "reszoo list: error: [Errno 13] Permission denied: '/x'"),
        (
            # What torch's DataLoader re-raises for an error in a worker (ExceptionWrapper.reraise).
            MissingInputError(
                "Caught MissingInputError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                'last):\n  File "x.py", line 1, in f\nreszoo.errors.MissingInputError: Cannot read image '
                "photos/cat/3.png: truncated.\n"
            ),
            2,
            "reszoo list: error: Cannot read image photos/cat/3.png: truncated.",
        ),
    ],
    ids=["ctrl-c", "sigterm", "disk-full", "offline", "permission", "worker"],
)
def test_expected_failures_are_one_line_with_their_exit_code(monkeypatch, capsys, err, code, line):
    from reszoo.cli import models

    monkeypatch.setattr(models, "run_list", _raising(err))
    assert main(["list"]) == code
    captured = capsys.readouterr()
    assert captured.err.strip() == line and "Traceback" not in captured.err


def test_a_bug_keeps_its_traceback(monkeypatch):
    from reszoo.cli import models

    monkeypatch.setattr(models, "run_list", _raising(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError):
        main(["list"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "refused"])
def test_push_to_hub_offline_is_one_clear_error(monkeypatch, how, tiny_model):
    """What ``reszoo convert --push-to-hub`` meets with no network (a refused port stands for one)."""
    from huggingface_hub import constants

    import reszoo

    # huggingface_hub reads HF_HUB_OFFLINE once, at import: set both, whichever came first.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", how == "HF_HUB_OFFLINE")
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        reason = "HF_HUB_OFFLINE is set"
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
        reason = "Connect"
    with pytest.raises(HubUnreachableError) as exc:
        reszoo.push_to_hub(tiny_model(), "me/tiny", token="hf_test")
    message = str(exc.value)
    assert message.startswith("Cannot push to me/tiny: the Hugging Face Hub at ") and reason in message
    assert "Nothing was uploaded" in message and isinstance(exc.value, ConnectionError)


# -- a batch too large for memory is one line (issue 22) ------------------------------------------------


def test_predict_and_evaluate_out_of_memory_are_one_line(shapes, monkeypatch, capsys):
    import torch

    from reszoo import ResNet

    saved, images = shapes

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB. GPU 0 has a total capacity of")

    monkeypatch.setattr(ResNet, "forward", forward)
    assert main(["predict", str(saved), str(images[0]), "--batch-size", "64"]) == 1
    assert capsys.readouterr().err.strip() == (
        "reszoo predict: error: Out of memory while predicting at batch_size=64 on cuda (tried to allocate 3.00 GiB); "
        "try a smaller batch_size (--batch-size, e.g. 32)."
    )
    root = str(images[0].parent.parent)
    argv = ["evaluate", str(saved), "--data", "folder", "--root", root, "--num-workers", "0", "--device", "cpu"]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        "reszoo evaluate: error: Out of memory while evaluating at batch_size=100 on cpu (tried to allocate 3.00 GiB); "
        "try a smaller batch_size (--batch-size, e.g. 50)."
    )
