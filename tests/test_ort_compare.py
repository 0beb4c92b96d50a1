"""``reszoo bench NAME --compare onnxruntime`` and ``compare_onnxruntime``: the three variants side by
side, their ratios to ONNX Runtime, and the refusals of what the comparison does not measure. No
timing assertions: the ratios are whatever the machine gives; what is checked is that they are
computed from the measured rates and that every variant computes the eager model's outputs.
"""

from __future__ import annotations

import pytest

from reszoo.cli import main


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--mode", "train"], "it does not take --mode train"),
        (["--device", "cuda"], "--device cuda"),
        (["--dtype", "bf16"], "--dtype bf16"),
        (["--channels-last"], "--channels-last True"),
        (["--compile"], "--compare uses default settings; it does not take --compile"),
    ],
)
def test_cli_refuses_what_the_onnxruntime_comparison_does_not_measure(argv, match, capsys):
    assert main(["bench", "resnet20", "--compare", "onnxruntime", *argv]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_compare_onnxruntime_times_three_variants_of_one_model(monkeypatch, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the onnx extra (pip install 'reszoo[onnx]') is not installed")
    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path))
    assert (
        main(["bench", "resnet20", "--compare", "onnxruntime", "--batch-size", "2", "--json", str(tmp_path / "r.json")])
        == 0
    )
    out = capsys.readouterr().out
    for label in ("reszoo:resnet20 eager", "reszoo:resnet20 optimize_for_inference", "onnxruntime:resnet20"):
        assert f"infer: {label} / onnxruntime = " in out
    import json

    rows = json.loads((tmp_path / "r.json").read_text())
    rows = rows["results"] if isinstance(rows, dict) else rows
    by_name = {r["model"]: r for r in rows}
    ort = by_name["onnxruntime:resnet20"]
    assert ort["extra"]["ratio_vs_onnxruntime"] == 1.0
    for r in by_name.values():
        assert r["batch_size"] == 2 and r["images_per_s"] > 0
        assert r["extra"]["ratio_vs_onnxruntime"] == pytest.approx(r["images_per_s"] / ort["images_per_s"])
        assert r["extra"]["max_abs_diff"] < 1e-4  # resnet20's logits are O(1): fp32 agreement
        assert r["extra"]["cpu"]["threads"] >= 1 and r["extra"]["cpu"]["capability"]
    assert by_name["reszoo:resnet20 optimize_for_inference"]["compile"] == "inductor+freezing"
