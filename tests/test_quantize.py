"""int8 through PT2E: a trained network keeps its predictions, and bad calibration data is named.

The agreement test trains the tiny network for 200 steps on a task it can learn (which
quadrant holds a bright square), because int8 of a random network says nothing: its logits are
nearly tied, so any rounding flips them, and an untrained "agreement" would be luck either way.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from reszoo.infer.quantize import calibration_batches, quantize_int8, torchao_pt2e

SIDE = 16
CLASSES = 4


def _task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images with a bright 6x6 square in one of four quadrants; the label is the quadrant."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.randn(n, 3, SIDE, SIDE, generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    half = SIDE // 2
    for i, label in enumerate(y.tolist()):
        top, left = (label // 2) * half + 1, (label % 2) * half + 1
        colour = 1.0 + torch.rand(3, 1, 1, generator=g)
        x[i, :, top : top + 6, left : left + 6] += colour
    return x, y


def _trained(tiny_model) -> torch.nn.Module:
    torch.manual_seed(0)
    model = tiny_model(num_classes=CLASSES)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    model.train()
    for step in range(200):
        x, y = _task(64, seed=step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_int8_agrees_with_fp32_on_held_out_inputs_of_a_trained_model(tiny_model):
    pytest.importorskip("torchao", reason="int8 needs torchao (pip install 'reszoo[int8]'), not installed")
    from reszoo.infer.optimize import optimize_for_inference

    model = _trained(tiny_model)
    held_out, labels = _task(1000, seed=10_000)  # seeds above the training ones: unseen inputs
    with torch.inference_mode():
        fp32 = model(held_out).argmax(1)
    assert (fp32 == labels).float().mean() > 0.95, "the task must be learnt for agreement to mean anything"
    calibration = [_task(64, seed=20_000 + i) for i in range(4)]  # (inputs, targets) pairs, as a loader
    int8 = optimize_for_inference(model, dtype="int8", calibration=calibration)
    with torch.inference_mode():
        got = torch.cat([int8(b) for b in held_out.split(250)]).argmax(1)  # a batch size not calibrated on
        single = int8(held_out[:1]).argmax(1)  # and a batch of one
    agreement = (got == fp32).float().mean().item()
    assert agreement >= 0.99, f"int8 agrees with fp32 on {agreement:.1%} of held-out inputs"
    assert single.item() == got[0].item()


def test_calibration_is_required_and_checked():
    with pytest.raises(ValueError, match=r"needs calibration data.*received calibration=None"):
        calibration_batches(None, 3)
    with pytest.raises(TypeError, match=r"calibration must be an iterable of input batches"):
        calibration_batches(torch.randn(2, 3, 8, 8), 3)  # one tensor: its rows are not batches
    with pytest.raises(ValueError, match=r"calibration holds no batches"):
        calibration_batches([], 3)
    with pytest.raises(ValueError, match=r"calibration batch 1 must be a float tensor \(N, C, H, W\); received a "):
        calibration_batches([torch.randn(2, 3, 8, 8), torch.randn(3, 8, 8)], 3)
    with pytest.raises(ValueError, match=r"calibration batch 0 has 1 channels; the model takes in_chans=3"):
        calibration_batches([torch.randn(2, 1, 8, 8)], 3)
    with pytest.raises(ValueError, match=r"calibration batch 0 must be a float tensor.*received str"):
        calibration_batches(["images"], 3)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    (got,) = calibration_batches([(x, torch.zeros(2))], 3)  # (inputs, targets) as a DataLoader yields
    assert got.dtype == torch.float32 and torch.equal(got, x.float())


def test_int8_refused_off_x86(tiny_model, monkeypatch):
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    with pytest.raises(ValueError, match=r"dtype='int8' quantizes for x86 CPUs.*'aarch64'"):
        quantize_int8(tiny_model(), [torch.randn(2, 3, 8, 8)])


def test_missing_torchao_names_the_extra(tiny_model, monkeypatch):
    from reszoo.infer.optimize import optimize_for_inference  # what a user calls

    real = importlib.import_module

    def without_torchao(name, *args):
        if name.startswith("torchao"):
            raise ImportError(f"No module named {name.split('.')[0]!r}")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_torchao)
    monkeypatch.setattr("platform.machine", lambda: "x86_64")  # the x86 check comes first
    with pytest.raises(ValueError, match=r"torchao's PT2E flow.*pip install 'reszoo\[int8\]'"):
        torchao_pt2e()
    with pytest.raises(ValueError, match=r"pip install 'reszoo\[int8\]'"):
        quantize_int8(tiny_model(), [torch.randn(2, 3, 8, 8)])
    with pytest.raises(ValueError, match=r"torchao's PT2E flow.*pip install 'reszoo\[int8\]'"):
        optimize_for_inference(tiny_model(), dtype="int8", calibration=[torch.randn(2, 3, 8, 8)])
