"""The command line: reszoo list / info, python -m reszoo, error handling, generated docs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reszoo.cli import COMMANDS, main
from reszoo.errors import FileWriteError, HubUnreachableError, MissingInputError, TrainingInterrupted

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
    assert "Unknown model 'resnet57'" in err and "resnet56" in err


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


# What `reszoo --help` and `reszoo COMMAND --help` may not load: torch itself, and with it everything heavy.
HEAVY = ("torch", "torchvision", "huggingface_hub", "numpy")


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)], ids=lambda c: " ".join(c) or "reszoo")
def test_help_imports_no_torch(command):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reszoo", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "usage: reszoo" in done.stdout and "reszoo.cli" in imported
    assert not sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY))


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
