"""reszoo.bench on CPU with tiny models: results, sweeps, comparisons, output formats, CLI."""

from __future__ import annotations

import csv
import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest
import torch

import reszoo
from reszoo import bench
from reszoo.bench import reporting as report
from reszoo.cli import main
from reszoo.models.reference import reference_cifar_resnet
from reszoo.utils import devices
from reszoo.utils.accelerator import Accelerator, use_accelerator
from reszoo.utils.devices import preferred_memory_format

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conftest import TINY_OVERRIDES  # noqa: E402

FAST = {"warmup": 1, "min_run_time": 0.01}
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mode", ["infer", "train"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_measure_fields(mode, channels_last, tiny_model):
    tiny = tiny_model
    r = bench.measure(tiny(), batch_size=4, mode=mode, device="cpu", channels_last=channels_last, **FAST)
    assert r.status == "ok" and r.runs >= 1
    assert r.images_per_s == pytest.approx(4 / (r.time_median_ms / 1e3))
    assert r.time_iqr_ms >= 0
    assert r.input_size == (3, 32, 32)
    assert r.params == reszoo.count_params(tiny())
    forward = reszoo.count_flops(tiny(), (3, 32, 32))
    assert r.flops_per_image == forward * (3 if mode == "train" else 1)
    assert r.tflops == pytest.approx(r.flops_per_image * r.images_per_s / 1e12)
    assert r.peak_memory_mb is None  # only CUDA reports peak memory


def test_train_step_updates_weights_and_infer_does_not(tiny_model):
    model = tiny_model()
    before = model.fc.weight.detach().clone()
    bench.make_step(model, mode="infer", input_size=(3, 16, 16), batch_size=2, device="cpu")()
    assert torch.equal(model.fc.weight, before)
    step = bench.make_step(model, mode="train", input_size=(3, 16, 16), batch_size=2, device="cpu", dtype="bf16")
    loss = step()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert not torch.equal(model.fc.weight, before)


def test_peak_fraction_from_table_and_override(tiny_model):
    assert bench.peak_tflops_for("NVIDIA H100 80GB HBM3", "bf16") == 989.0
    assert bench.peak_tflops_for("NVIDIA H100 PCIe", "tf32") == 378.0
    assert bench.peak_tflops_for("Some CPU", "fp32") is None
    r = bench.measure(tiny_model(), batch_size=2, device="cpu", peak_tflops=0.5, **FAST)
    assert r.peak_fraction == pytest.approx(r.tflops / 0.5)


def test_sweep_records_oom_and_goes_on(monkeypatch, tiny_model):
    real = bench.build_step

    def fake(model, settings):
        if settings.batch_size == 8:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, settings)

    monkeypatch.setattr(bench.measuring, "build_step", fake)
    rs = bench.sweep(tiny_model, batch_sizes=[2, 8, 4], name="tiny", device="cpu", **FAST)
    assert [r.status for r in rs] == ["ok", "oom", "ok"]
    assert [r.batch_size for r in rs] == [2, 8, 4]
    assert "out of memory" in rs[1].error


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "eval"}, r"'eval'.*infer, train"),
        ({"dtype": "fp8"}, r"'fp8'.*fp32, tf32, bf16, fp16"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1; received batch_size=0"),
        ({"cuda_graphs": True}, "cuda_graphs needs a CUDA device, received device='cpu'"),
        ({"input_size": (16, 16)}, r"input_size must be a sequence of 3 integers >= 1; received input_size=\(16, 16\)"),
        ({"compile": "fastest"}, r"torch.compile mode 'fastest'.*default, .*max-autotune"),
        ({"device": "tpu"}, r"Unknown device 'tpu'\..*Valid names: auto, cpu, cuda, mps"),
    ],
)
def test_bad_options(kwargs, match, tiny_model):
    base = {"mode": "infer", "input_size": (3, 16, 16), "batch_size": 2, "device": "cpu"}
    with pytest.raises(ValueError, match=match):
        bench.make_step(tiny_model(), **{**base, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1; received batch_size=0"),  # was replaced by the default
        ({"mode": "eval"}, r"'eval'.*infer, train"),
        (
            {"input_size": (3, 0, 32)},
            r"input_size must be a sequence of 3 integers >= 1; received input_size=\(3, 0, 32\)",
        ),
        ({"warmup": -1}, "warmup must be an integer >= 0; received warmup=-1"),
        ({"min_run_time": 0}, "min_run_time must be a finite number > 0; received min_run_time=0"),
        ({"peak_tflops": -1.0}, "peak_tflops must be a finite number > 0 or None; received peak_tflops=-1.0"),
        ({"device": ""}, "Unknown device ''. Valid names: auto, cpu, cuda, mps"),
    ],
)
def test_measure_bad_options(kwargs, match, tiny_model):
    with pytest.raises(ValueError, match=match):
        bench.measure(tiny_model(), **{"device": "cpu", **FAST, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "eval"}, r"'eval'.*infer, train"),
        ({"dtype": "fp8"}, r"'fp8'.*fp32, tf32, bf16, fp16"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1; received batch_size=0"),
        ({"rounds": 0}, "rounds must be an integer >= 1; received rounds=0"),
        ({"number": 0}, "number must be an integer >= 1; received number=0"),
    ],
)
def test_compare_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bench.compare("resnet20", **{"device": "cpu", **kwargs})


def test_sweep_and_interleaved_bad_options(tiny_model):
    with pytest.raises(
        ValueError,
        match=r"batch_sizes must be a non-empty sequence of batch sizes \(integers, or None for the "
        r"default\); received batch_sizes=\[\]",
    ):
        bench.sweep(tiny_model, batch_sizes=[], name="tiny", device="cpu", **FAST)
    with pytest.raises(ValueError, match="rounds must be an integer >= 1; received rounds=0"):
        bench.interleaved({"a": lambda: None}, rounds=0)


class _TwoGpus(Accelerator):
    """A CUDA stand-in whose current GPU is cuda:1; records what was made current."""

    type = "cuda"

    def __init__(self) -> None:
        self.made_current: list[torch.device] = []

    def device_count(self) -> int:
        return 2

    def current_index(self) -> int:
        return 1

    def set_current(self, device: torch.device) -> None:
        self.made_current.append(device)


def test_pin_device_names_the_current_gpu_for_the_bench_and_the_trainer(monkeypatch):
    for var in ("WORLD_SIZE", "RANK"):  # one process: a bare "cuda" is the current GPU
        monkeypatch.delenv(var, raising=False)
    with use_accelerator("cuda", _TwoGpus()) as gpus:
        assert devices.pin_device("cuda") == torch.device("cuda", 1) and gpus.made_current == []
        assert devices.pin_device("cuda:0", make_current=True) == torch.device("cuda", 0)
        assert gpus.made_current == [torch.device("cuda", 0)]
        settings = bench.measuring.StepSettings(mode="infer", input_size=(3, 8, 8), device="cuda")
        assert settings.device == torch.device("cuda", 1)  # rows say which GPU ran (device_id)
        with pytest.raises(ValueError, match=r"device must be cuda:0 \.\.\. cuda:1; received device='cuda:2'"):
            devices.pin_device("cuda:2")
    assert devices.pin_device("cpu", make_current=True) == torch.device("cpu")


def test_median_iqr():
    assert bench.median_iqr([1.0, 2.0, 3.0, 4.0, 10.0]) == (3.0, 2.0)
    assert bench.median_iqr([0.5]) == (0.5, 0.0)


def test_preferred_memory_format():
    assert preferred_memory_format("cpu") == torch.channels_last
    assert preferred_memory_format("cuda") == torch.channels_last
    with pytest.raises(ValueError, match="'tpu'.*cpu, cuda, mps"):
        preferred_memory_format("tpu")


def test_interleaved_times_every_variant_each_round():
    calls = []
    steps = {k: (lambda k=k: calls.append(k)) for k in ("a", "b")}
    times = bench.interleaved(steps, rounds=3, number=2, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert calls.count("a") == calls.count("b") == 1 + 3 * 2
    # Round-robin, the order alternating: a's block then b's, then b's then a's, ...
    assert calls[2:] == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]


def test_reference_cifar_resnet_matches_reszoo_architecture():
    ref, ours = reference_cifar_resnet(20), reszoo.create_model("resnet20")
    assert reszoo.count_params(ref) == reszoo.count_params(ours)
    assert reszoo.count_flops(ref, (3, 32, 32)) == reszoo.count_flops(ours, (3, 32, 32))
    # Same tensors in the same order: copying the weights across gives the same outputs.
    for p_ref, p_ours in zip(ref.state_dict().values(), ours.state_dict().values(), strict=True):
        p_ref.copy_(p_ours)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ref.eval()(x), ours.eval()(x))
    with pytest.raises(ValueError, match="6n\\+2"):
        reference_cifar_resnet(21)


def test_comparison_models():
    assert list(bench.comparison_models("resnet20")) == ["reszoo:resnet20", "reference:resnet20"]
    assert list(bench.comparison_models("resnet18")) == ["reszoo:resnet18", "torchvision:resnet18"]
    assert list(bench.comparison_models("resnext50_32x4d")) == ["reszoo:resnext50_32x4d", "torchvision:resnext50_32x4d"]
    with pytest.raises(ValueError, match="plain18"):
        bench.comparison_models("plain18")
    with pytest.raises(ValueError, match="preresnet20"):  # neither torchvision nor the reference net has it
        bench.comparison_models("preresnet20")
    with pytest.raises(ValueError, match="Unknown model 'resnet57'"):
        bench.comparison_models("resnet57")
    with pytest.raises(ValueError, match="Unknown peer 'keras'"):
        bench.comparison_models("resnet18", peer="keras")


def test_compare_with_timm_needs_timm_or_says_so():
    if importlib.util.find_spec("timm") is None:
        with pytest.raises(ValueError, match=r"needs timm, which is not installed \(pip install timm\)"):
            bench.comparison_models("resnet50d", peer="timm")
        return
    assert list(bench.comparison_models("resnetv2_50", peer="timm")) == ["reszoo:resnetv2_50", "timm:resnetv2_50"]
    with pytest.raises(ValueError, match="wrn28_10"):
        bench.comparison_models("wrn28_10", peer="timm")


@pytest.mark.parametrize("peer", ["torchvision", "timm"])
def test_compare_starts_from_the_peers_weights_and_checks_the_outputs(peer):
    if peer == "timm" and importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed (pip install '.[test]' installs it)")
    name = "resnet18" if peer == "torchvision" else "resnetv2_50"
    rs = bench.compare(name, peer=peer, device="cpu", batch_size=1, rounds=2, number=1)
    assert [r.model for r in rs] == [f"reszoo:{name}", f"{peer}:{name}"]
    assert rs[0].extra["max_abs_diff"] == 0.0
    assert rs[1].extra["max_abs_diff"] <= 1e-5 * max(1.0, rs[1].extra["max_abs_output"])


def test_compare_ratios():
    rs = bench.compare("resnet20", device="cpu", batch_size=2, rounds=2, number=1)
    assert [r.model for r in rs] == ["reszoo:resnet20", "reference:resnet20"]
    assert rs[0].extra["ratio_vs_reszoo"] == 1.0
    assert rs[1].extra["ratio_vs_reszoo"] == pytest.approx(rs[0].images_per_s / rs[1].images_per_s)


@pytest.fixture(scope="module")
def result():
    """One measurement of the tiny network, shared by the output-format tests (they only read it)."""
    return bench.measure(
        reszoo.create_model("resnet20", **TINY_OVERRIDES), batch_size=2, device="cpu", name="tiny", **FAST
    )


def test_report_names_stay_reachable_from_bench():
    for name in ("to_table", "to_json", "to_csv", "plot", "summary_line"):
        assert getattr(bench, name) is getattr(report, name)
    with pytest.raises(AttributeError, match="no attribute 'to_yaml'"):
        bench.to_yaml  # noqa: B018


def test_json_schema(tmp_path, result):
    path = tmp_path / "r.json"
    report.to_json([result], str(path), env=bench.environment("cpu"))
    doc = json.loads(path.read_text())
    assert set(doc) == {"report", "environment", "results"} and doc["report"] == "reszoo bench"
    env = doc["environment"]
    assert {"date", "device_type", "device_name", "torch", "cuda", "cudnn", "threads", "torchvision"} <= set(env)
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    (row,) = doc["results"]
    types = {
        "model": str, "mode": str, "device": str, "batch_size": int, "input_size": list, "dtype": str,
        "channels_last": bool, "status": str, "images_per_s": float, "time_median_ms": float,
        "time_iqr_ms": float, "runs": int, "params": int, "flops_per_image": int, "tflops": float,
    }  # fmt: skip
    for key, typ in types.items():
        assert isinstance(row[key], typ), key
    assert row["input_size"] == [3, 32, 32] and row["compile"] is None and row["peak_memory_mb"] is None


def test_csv_and_table(tmp_path, result):
    r = result
    report.to_csv([r], str(tmp_path / "r.csv"))
    (row,) = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert row["model"] == "tiny" and row["input_size"] == "3x32x32" and float(row["images_per_s"]) > 0
    table = report.to_table([r])
    assert "img/s" in table.splitlines()[0] and "tiny" in table.splitlines()[2]


def test_plot(tmp_path, result):
    pytest.importorskip("matplotlib", reason="plotting is an optional extra")
    path = tmp_path / "p.png"
    report.plot([result], str(path))
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_cli_bench(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["bench", "resnet20", "--batch-size", "2", "4", "--min-run-time", "0.01", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "resnet20" in text and "img/s" in text
    doc = json.loads(out.read_text())
    assert [r["batch_size"] for r in doc["results"]] == [2, 4]
    assert all(r["channels_last"] for r in doc["results"])  # the CPU default layout


def test_cli_bench_unknown_model(capsys):
    assert main(["bench", "resnet57"]) == 2
    assert "Unknown model 'resnet57'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--batch-size", "0"], "--batch-size: must be an integer >= 1, received '0'"),
        (["--input-size", "3", "-1", "32"], "--input-size: must be an integer >= 1, received '-1'"),
        (["--min-run-time", "0"], "--min-run-time: must be a finite number > 0, received '0'"),
        (["--peak-tflops", "nan"], "--peak-tflops: must be a finite number > 0, received 'nan'"),
        (["--device", "tpu"], "--device: Unknown device 'tpu'. Did you mean: cpu? Valid names: auto, cpu, cuda, mps"),
        (["--dtype", "fp8"], "--dtype: invalid choice: 'fp8'"),
    ],
)
def test_cli_bench_bad_values_are_argparse_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "resnet20", *argv])
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--compile", "fastest"], "Unknown torch.compile mode 'fastest'. Did you mean: default? Valid names: default"),
        (["--cuda-graphs", "--device", "cpu"], "cuda_graphs needs a CUDA device, received device='cpu'"),
        (["--compare", "torchvision", "--compile"], "--compare uses default settings; it does not take --compile"),
        (
            ["--compare", "torchvision", "--min-run-time", "1", "--input-size", "3", "8", "8"],
            "it does not take --input-size, --min-run-time",
        ),
        (["--compare", "torchvision", "--batch-size", "2", "4"], "--compare takes one --batch-size, received 2"),
    ],
)
def test_cli_bench_bad_combinations(argv, match, capsys):
    assert main(["bench", "resnet20", *argv]) == 2
    assert match in capsys.readouterr().err


def _script(name, argv):
    """Run ``benchmarks/<name>.py`` as a script; returns the finished process (exit code, stderr)."""
    path = ROOT / "benchmarks" / f"{name}.py"
    return subprocess.run([sys.executable, str(path), *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--devices", "tpu"], "--devices: invalid choice: 'tpu'"),
        (["--devices", "cpu", "--cuda-graphs"], "--cuda-graphs needs --devices cuda alone, received devices ['cpu']"),
        (["--devices", "cpu", "--compile", "fastest"], "unknown --compile 'fastest'; valid choices: default"),
        (["--devices", "cpu", "--pattern", "vgg*"], "--pattern 'vgg*' matches no model; valid names: "),
    ],
)
def test_run_suite_rejects_bad_arguments(argv, match, tmp_path):
    done = _script("run_suite", [*argv, "--out-dir", str(tmp_path)])
    assert done.returncode == 2, done.stderr
    assert match in done.stderr
    assert not list(tmp_path.iterdir())  # rejected before measuring anything


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--targets", "speed"], "--targets: invalid choice: 'speed'"),
        (["--rounds", "1"], "--rounds must be at least 2 (a median and an interquartile range need two), received 1"),
    ],
)
def test_compare_script_rejects_bad_arguments(argv, match):
    done = _script("compare", argv)
    assert done.returncode == 2, done.stderr
    assert match in done.stderr


# -- honest output (issue 16): few runs, spread, dtypes, a busy or oversubscribed CPU, long sweeps --


def _row(**kw):
    return bench.BenchResult("tiny", "infer", "cpu", 2, (3, 8, 8), "fp32", False, None, False, **kw)


@pytest.mark.parametrize(
    ("times", "note"),
    [
        ([0.010] * 4, "few runs: only 4 timed runs (< 5)"),
        ([0.010], "few runs: only 1 timed run (< 5)"),
        ([0.010, 0.010, 0.010, 0.020, 0.020, 0.020], "noisy: the spread (IQR / median) is 67% (> 20%)"),
        ([0.010, 0.0101, 0.0099, 0.010, 0.0102], None),
    ],
)
def test_rows_say_when_they_should_not_be_trusted(tmp_path, times, note):
    r = _row()
    bench.measuring.fill_times(r, times)
    assert r.runs == len(times)
    if note is None:
        assert r.warnings == [] and report.to_table([r]).splitlines()[2].rstrip().endswith("-")
        return
    (warning,) = r.warnings
    assert warning.startswith(note)
    row = report.to_table([r]).splitlines()[2]
    assert row.rstrip().endswith(note.split(":")[0]) and "note" in report.to_table([r]).splitlines()[0]
    if len(times) == 1:
        assert "(1 run)" in row and "(0.00)" not in row  # one run has no spread to show
    report.to_json([r], str(tmp_path / "r.json"), env={})
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["warnings"] == [warning]
    report.to_csv([r], str(tmp_path / "r.csv"))
    assert next(csv.DictReader((tmp_path / "r.csv").open()))["warnings"] == warning
    assert report.notes([r]) == [f"tiny infer bs=2 fp32: {warning}"]


def test_tf32_off_an_nvidia_gpu_is_refused(tiny_model, capsys):
    with pytest.raises(ValueError, match=r"dtype='tf32' is the TensorFloat-32 mode .* on device='cpu' it would be"):
        bench.measure(tiny_model(), device="cpu", dtype="tf32", **FAST)
    assert main(["bench", "resnet20", "--device", "cpu", "--dtype", "tf32"]) == 2
    assert "plain fp32, so it is refused" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_a_dtype_without_cpu_kernels_is_measured_with_a_warning(monkeypatch, tiny_model, dtype):
    from reszoo.bench import machine
    from reszoo.utils import cpuinfo

    features = cpuinfo.cpu_features()
    monkeypatch.setattr(machine, "cpu_features", lambda: {**features, dtype: False})
    r = bench.measure(tiny_model(), batch_size=2, device="cpu", dtype=dtype, **FAST)
    assert r.status == "ok" and r.dtype == dtype
    expected = f"slow dtype: {dtype} on a CPU without {cpuinfo.NEEDS[dtype]} runs through slow fallback kernels"
    assert any(w.startswith(expected) for w in r.warnings)
    assert "slow dtype" in report.to_table([r]).splitlines()[2]
    monkeypatch.setattr(machine, "cpu_features", lambda: {**features, dtype: True})
    assert machine.dtype_warning(dtype, torch.device("cpu")) is None
    assert machine.dtype_warning(dtype, torch.device("meta")) is None  # not a CPU: nothing to say


def test_environment_reports_load_threads_and_cores(monkeypatch):
    from reszoo.bench import machine

    monkeypatch.setattr(machine.os, "getloadavg", lambda: (0.2, 0.2, 0.2), raising=False)
    monkeypatch.setattr(machine, "usable_cores", lambda: 4)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    env = bench.environment("cpu")
    assert (env["cores"], env["threads"], env["processes"], env["load_average"]) == (4, 4, 1, 0.2)
    assert env["busy"] is False and env["oversubscribed"] is False and bench.environment_warnings(env) == []
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (3.5, 1.0, 1.0), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    env = bench.environment("cpu")
    assert env["busy"] is True and env["oversubscribed"] is True
    busy, over = bench.environment_warnings(env)
    assert busy.startswith("the CPU is busy: load average 3.5 on 4 cores before the run")
    assert over.startswith("4 torch threads x 2 processes > 4 cores: threads will contend")


def test_cli_warns_about_a_busy_cpu(monkeypatch, capsys):
    from reszoo.bench import machine

    monkeypatch.setattr(machine.os, "getloadavg", lambda: (99.0, 1.0, 1.0), raising=False)
    assert main(["bench", "resnet20", "--device", "cpu", "--batch-size", "1", "--min-run-time", "0.01"]) == 0
    assert "warning: the CPU is busy: load average 99.0" in capsys.readouterr().err


class _Bar:
    """tqdm's place in a test: records what a sweep reports."""

    made: list = []

    def __init__(self, total, **kwargs):
        self.total, self.kwargs, self.n, self.descriptions = total, kwargs, 0, []
        _Bar.made.append(self)

    def update(self, n):
        self.n += n

    def set_description(self, text):
        self.descriptions.append(text)

    def close(self):
        pass


def test_a_sweep_shows_progress_and_keeps_its_rows_when_interrupted(tmp_path, monkeypatch, capsys):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", _Bar)
    real = bench.measuring.measure
    calls = []

    def measure(*args, **kwargs):
        calls.append(kwargs["batch_size"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third measurement
        return real(*args, **kwargs)

    monkeypatch.setattr(bench.measuring, "measure", measure)
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    argv = [
        "bench",
        "resnet20",
        "--device",
        "cpu",
        "--mode",
        "both",
        "--batch-size",
        "1",
        "2",
        "--min-run-time",
        "0.01",
    ]
    assert main([*argv, "--json", str(js), "--csv", str(cs)]) == 130
    assert capsys.readouterr().err.strip().endswith("reszoo bench: interrupted")
    bar = _Bar.made[-1]
    assert (bar.total, bar.n, bar.kwargs["disable"]) == (4, 2, None)  # 1 model x 2 modes x 2 batch sizes
    assert bar.descriptions == ["resnet20 infer", "resnet20 train"]
    rows = json.loads(js.read_text())["results"]
    assert [(r["mode"], r["batch_size"]) for r in rows] == [("infer", 1), ("infer", 2)]
    assert len(list(csv.DictReader(cs.open()))) == 2


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("--json", "{tmp}", "--json takes a file path; received --json {tmp}, which is a folder"),
        ("--csv", "{tmp}/no/such/r.csv", "--csv must name a file in an existing folder"),
        ("--plot", "{tmp}", "is a folder"),
    ],
)
def test_cli_bench_output_paths_are_checked_before_measuring(tmp_path, monkeypatch, capsys, option, value, match):
    if option == "--plot":
        pytest.importorskip("matplotlib", reason="--plot is checked for matplotlib first")
    monkeypatch.setattr(bench.measuring, "measure", lambda *a, **k: pytest.fail("measured"))
    value = value.format(tmp=tmp_path)
    assert main(["bench", "resnet20", "--device", "cpu", option, value]) == 2
    err = capsys.readouterr().err
    assert match.format(tmp=tmp_path) in err and len(err.strip().splitlines()) == 1
