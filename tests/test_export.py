"""`reszoo export` and reszoo.infer.export.export_model: the artefact is written only after it matched eager."""

from __future__ import annotations

import os
import sys

import pytest
import torch

import reszoo
import reszoo.infer.export
from reszoo import cli
from reszoo.errors import ArgumentTypeError, ExportCheckError, InvalidArgumentError
from reszoo.infer.export import export_model, format_for

X = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(7))


def run_artefact(path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    """The file on disk, loaded independently of reszoo.infer.export, run on ``x``."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        if fmt == "pt2":
            return torch.export.load(str(path)).module()(x)
        return torch.jit.load(str(path))(x)


@pytest.fixture
def folder(tmp_path):
    """A save_pretrained folder of resnet20 and the (eval) network it holds."""
    ref = reszoo.resnet20().eval()
    reszoo.save_pretrained(ref, tmp_path / "weights")
    return tmp_path / "weights", ref


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
@pytest.mark.parametrize("fmt", ["onnx", "pt2", "torchscript"])
def test_each_format_with_weights_and_a_dynamic_batch(fmt, folder, tmp_path):
    weights, ref = folder
    out = tmp_path / "out" / f"resnet20.{fmt}"  # the folder is created
    result = export_model("resnet20", out, format=fmt, weights=weights, dynamic_batch=True)
    assert result.path == out and out.is_file() and result.size_bytes == out.stat().st_size
    assert result.checked_batches == (2, 1, 5) and result.input_shape == (2, 3, 32, 32)
    assert 0 <= result.max_abs_diff <= result.tolerance
    assert result.opset >= 18 if fmt == "onnx" else result.opset is None
    with torch.no_grad():
        want = ref(X)
    assert (run_artefact(out, fmt, X) - want).abs().max() <= max(1e-4, 1e-5 * want.abs().max())  # the weights went in
    assert sorted(os.listdir(out.parent)) == [out.name]  # no staging folder left behind


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_cli_prints_the_difference_and_a_static_batch_stays_static(folder, tmp_path, capsys):
    out = tmp_path / "r20.pt2"
    argv = ["export", "resnet20", str(out), "--weights", str(folder[0]), "--input-size", "3", "40", "48"]
    assert cli.main([*argv, "--batch-size", "2", "--static"]) == 0
    line = capsys.readouterr().out.strip()
    assert (
        line.startswith(f"wrote {out} (torch.export.export, batch fixed at 2, ")
        and "torch.export.load vs eager on batches [2] of (3, 40, 48)" in line
    )
    assert "max |diff| = 0.00e+00" in line  # the same kernels as eager
    module = torch.export.load(str(out)).module()
    with pytest.raises(AssertionError, match=r"x\.size\(\)\[0\] == 2"):  # exported for a batch of 2 only
        module(torch.randn(3, 3, 40, 48))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resnet50_onnx(tmp_path):
    torch.manual_seed(0)
    result = export_model(reszoo.resnet50(), tmp_path / "r50.onnx", dynamic_batch=True)
    assert result.max_abs_diff <= result.tolerance and result.checked_batches == (2, 1, 5)
    assert result.max_abs_diff > 0  # ONNX Runtime's kernels are not torch's: a real comparison happened


@pytest.mark.filterwarnings("ignore:.*torch.jit.*:FutureWarning")
def test_torchscript_is_scripted_and_traced_where_script_cannot_read_the_module(tmp_path):
    result = export_model("resnet20", tmp_path / "r20.pt", input_size=(3, 24, 40))
    assert result.format == "torchscript" and result.method == "torch.jit.script"
    scripted = torch.jit.load(str(tmp_path / "r20.pt"))
    assert scripted(torch.randn(1, 3, 64, 32)).shape == (1, 10)  # any size: no trace was specialised

    class Generators(torch.nn.Module):  # TorchScript cannot compile a generator expression
        def forward(self, x):
            return sum(t * 2 for t in (x, x))

    result = export_model(Generators(), tmp_path / "g.pt", input_size=(3, 4, 4))
    assert result.method == "torch.jit.trace" and result.max_abs_diff == 0


def test_a_failed_check_leaves_out_as_it_was(tmp_path, monkeypatch):
    out = tmp_path / "model.pt2"
    out.write_bytes(b"the previous export")
    monkeypatch.setattr(reszoo.infer.export, "ATOL", -1.0)  # no difference can pass
    monkeypatch.setattr(reszoo.infer.export, "RTOL", -1.0)
    with pytest.raises(ExportCheckError, match=r"pt2 export of resnet20: torch.export.load differs .* was not written"):
        export_model("resnet20", out)
    assert out.read_bytes() == b"the previous export" and sorted(os.listdir(tmp_path)) == ["model.pt2"]


# -- a deployment's batch: any size unless a fixed one is asked for (issue 22) ---------------------------


def test_the_cli_writes_a_pt2_file_for_any_batch_by_default(tmp_path, capsys):
    out = tmp_path / "r20.pt2"
    assert cli.main(["export", "resnet20", str(out)]) == 0
    assert "(torch.export.export, any batch, " in capsys.readouterr().out
    module = torch.export.load(str(out)).module()
    assert [tuple(module(torch.randn(n, 3, 32, 32)).shape) for n in (1, 5)] == [(1, 10), (5, 10)]


def test_an_onnx_file_takes_any_batch_by_default_and_a_fixed_one_only_when_asked(tiny_model, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX export is the optional extra reszoo[onnx]")
    model = tiny_model().eval()
    result = export_model(model, tmp_path / "any.onnx")
    assert result.dynamic_batch and result.checked_batches == (2, 1, 5)
    with torch.no_grad():
        for n in (1, 5):
            x = torch.randn(n, 3, 32, 32)
            assert (run_artefact(tmp_path / "any.onnx", "onnx", x) - model(x)).abs().max() <= result.tolerance
    fixed = export_model(model, tmp_path / "fixed.onnx", dynamic_batch=False, batch_size=3)
    assert not fixed.dynamic_batch and "batch fixed at 3" in fixed.summary()
    assert run_artefact(tmp_path / "fixed.onnx", "onnx", torch.randn(3, 3, 32, 32)).shape == (3, 10)
    with pytest.raises(Exception, match="(?i)dimension|shape"):  # ONNX Runtime refuses another batch
        run_artefact(tmp_path / "fixed.onnx", "onnx", torch.randn(5, 3, 32, 32))


def test_format_follows_the_suffix_unless_given():
    assert [format_for(f) for f in ("a.onnx", "a.PT2", "a.pt", "a.bin")] == ["onnx", "pt2", "torchscript", "onnx"]
    assert format_for("a.onnx", "pt2") == "pt2"


# -- bad input: one clear error each, before any export --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"format": "tflite"}, InvalidArgumentError, r"Unknown format 'tflite'\. Valid names: onnx, pt2, torchscript"),
        ({"format": "pt2", "opset": 18}, InvalidArgumentError, r"opset applies to format='onnx' only"),
        ({"opset": 13}, InvalidArgumentError, r"opset must be an integer >= 18 and <= \d+ or None; received opset=13"),
        ({"dynamic_batch": "yes"}, ArgumentTypeError, r"dynamic_batch must be True or False"),
        ({"dynamic_batch": True, "batch_size": 1}, InvalidArgumentError, r"batch_size must be >= 2 with dynamic"),
        ({"batch_size": 1}, InvalidArgumentError, r"For a file fixed at batch 1: dynamic_batch=False \(reszoo export"),
        ({"dynamic_batch": False, "batch_size": 0}, InvalidArgumentError, r"batch_size must be an integer >= 1"),
        ({"input_size": (1, 32, 32)}, InvalidArgumentError, r"input_size=\(1, 32, 32\) has 1 channels .* in_chans=3"),
        ({"input_size": (3, 2, 2)}, InvalidArgumentError, r"smaller than the network's total stride"),
        ({"weights": "resnet20-cifar11"}, InvalidArgumentError, r"Unknown pretrained='resnet20-cifar11'"),
    ],
)  # fmt: skip
def test_bad_arguments(kwargs, error, message, tmp_path):
    with pytest.raises(error, match=message):
        export_model("resnet20", tmp_path / "m.onnx", **kwargs)
    assert not os.listdir(tmp_path)


def test_out_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgumentError, match=r"cannot be written: .*file is a file, not a folder"):
        export_model("resnet20", tmp_path / "file" / "sub" / "m.onnx")
    with pytest.raises(InvalidArgumentError, match=r"is a folder; give a file"):
        export_model("resnet20", tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write in any folder")
def test_out_in_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(InvalidArgumentError, match="no permission to write in"):
        export_model("resnet20", locked / "m.onnx")


def test_a_missing_onnx_dependency_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(InvalidArgumentError, match=r"not installed: onnxruntime\. .*pip install 'reszoo\[onnx\]'"):
        export_model("resnet20", tmp_path / "m.onnx")
    export_model("resnet20", tmp_path / "m.pt2")  # the other formats do not need it


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resnet21", "m.onnx"], "Unknown model 'resnet21'. Did you mean: resnet32, resnet20"),
        (["resnet20", "m.pt2", "--opset", "18"], "opset applies to format='onnx' only"),
        (["resnet20", "m.onnx", "--weights", "resnet56-cifar10"], "holds weights for resnet56, not resnet20"),
        (["resnet20", "m.onnx", "--weights", "./missing"], "pretrained='./missing' is not a folder"),
        (["resnet20", "m.onnx", "--static"], "--static fixes the batch size of the file: give it with --batch-size N"),
        (["resnet20", "m.onnx", "--batch-size", "1"], "for a file fixed at batch 1: --batch-size 1 --static"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reszoo export: error: ") and message in err and err.count("\n") == 1
    assert not os.listdir(tmp_path)


def test_cli_unknown_format_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["export", "resnet20", "m.onnx", "--format", "tflite"])
    assert info.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
