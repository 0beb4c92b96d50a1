"""reszoo.diagnose: every finding id fires on a model, recipe or pipeline written as users write them
(tests/_user_resnets.py, plain PyTorch), and faithful implementations written independently draw no
warning and no error; reszoo's own models diagnosed against themselves draw none either."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torch import nn, optim
from torchvision import transforms as T
from torchvision.transforms import v2

import reszoo
from reszoo.diagnosis import FINDINGS, Diagnosis, Finding, compare, diagnose
from reszoo.diagnosis.trace import CAPTURE, HOOKS_ONLY, trace_model
from reszoo.errors import ArgumentTypeError, InvalidArgumentError

sys.path.insert(0, str(Path(__file__).parent))
import _user_resnets as U  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LR = optim.lr_scheduler
C10 = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CIFAR_TRAIN = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(*C10)])
CIFAR_EVAL = T.Compose([T.ToTensor(), T.Normalize(*C10)])

# The ids users and tests key on: removing or renaming one is a breaking change.
# fmt: off
STABLE_IDS = {
    "stem-imagenet-on-cifar", "shortcut-projection", "shortcut-missing", "stride-placement", "depth-mismatch",
    "width-mismatch", "activation-order", "norm-missing", "conv-bias", "head-mismatch", "param-count", "init-conv",
    "init-norm", "bn-momentum", "optimizer-type", "learning-rate", "momentum", "weight-decay", "lr-schedule",
    "warmup-missing", "batch-size", "normalization", "augmentation-missing", "augmentation-in-eval", "input-size",
    # added beyond the list
    "stem-mismatch", "shortcut-zero-pad", "shortcut-variant", "shortcut-extra", "stage-stride", "block-type",
    "activation-type", "norm-type", "dropout", "bn-eps", "weight-decay-norm", "params-not-optimized",
    "training-length", "augmentation-differs",
}
# fmt: on


def sgd(model, lr=0.1, **kw):
    kw = {"momentum": 0.9, "weight_decay": 1e-4, **kw}
    return optim.SGD(model.parameters(), lr=lr, **kw)


def paper_steps(optimizer, epochs=200):
    return LR.MultiStepLR(optimizer, [epochs // 2, epochs * 3 // 4])


def serious(d: Diagnosis) -> list[tuple[str, str, str]]:
    return [(f.id, f.severity, f.message) for f in d.findings if f.severity != "info"]


# -- faithful implementations: no warning, no error ---------------------------------------------------


def test_akamaster_style_option_a_fan_in_with_the_paper_recipe_is_clean():
    model = U.akamaster_resnet(56)
    opt = sgd(model)
    d = diagnose(
        model,
        "resnet56",
        optimizer=opt,
        scheduler=LR.MultiStepLR(opt, [91, 137]),
        epochs=182,
        train_size=45_000,
        train_transform=CIFAR_TRAIN,
        eval_transform=CIFAR_EVAL,
    )
    assert d.findings == [], d.report()
    assert d.ok and d.trace["method"] == CAPTURE


def test_cat_padding_fan_out_with_reszoo_transforms_and_an_iteration_schedule_is_clean():
    from reszoo.data.transforms import cifar_eval_transform, cifar_train_transform

    model = U.CatPadResNet(9)
    opt = sgd(model)
    d = diagnose(
        model,
        "resnet56",
        optimizer=opt,
        scheduler=LR.MultiStepLR(opt, [32_000, 48_000]),
        scheduler_steps="iteration",
        iterations=64_000,
        train_transform=cifar_train_transform(),
        eval_transform=cifar_eval_transform(),
    )
    assert d.findings == [], d.report()


def test_option_a_written_with_pool_modules_reads_as_the_functional_form():
    # nn.AvgPool2d(1, 2) is the same subsampling as x[:, :, ::2, ::2] or F.avg_pool2d(x, 1, 2): a module and
    # its functional form once read as two different operations ("shortcut-variant").
    d = diagnose(U.akamaster_resnet(20, shortcut="avgpool-module"), "resnet20")
    assert d.findings == [], d.report()


def test_a_pre_activation_net_with_a_conv_classifier_is_clean():
    # The last norm as BN + nn.Identity + ReLU, and a 1x1 convolution as the classifier (timm's ResNetV2 way):
    # once read as "no ReLU after the addition", 22 "convolutions without a norm" and a badly initialised conv.
    d = diagnose(U.PreActConvHeadNet(), "preresnet20")
    assert d.findings == [], d.report()


PEERS = [  # (library, model name, reszoo reference): the networks a user would otherwise pick
    ("timm", "resnet50d", "resnet50d"),
    ("timm", "seresnet50", "seresnet50"),
    ("timm", "resnetv2_50", "resnetv2_50"),
    ("torchvision", "resnext50_32x4d", "resnext50_32x4d"),
    ("torchvision", "wide_resnet50_2", "wide_resnet50_2"),
    ("pytorchcv", "preresnet164bn_cifar10", "preresnet164"),
    ("pytorchcv", "wrn28_10_cifar10", "wrn28_10"),
]


@pytest.mark.parametrize("library, name, reference", PEERS, ids=[f"{p[0]}:{p[1]}" for p in PEERS])
def test_the_peers_networks_against_their_reszoo_counterparts_have_no_warning(library, name, reference):
    if library == "timm":
        model = pytest.importorskip("timm", reason="timm is a peer checked here (pip install 'reszoo[test]')")
        model = model.create_model(name)
    elif library == "pytorchcv":
        provider = pytest.importorskip(
            "pytorchcv.model_provider", reason="pytorchcv is a peer checked here (pip install 'reszoo[test]')"
        )
        model = provider.get_model(name)
    else:
        model = getattr(torchvision.models, name)()
    d = diagnose(model, reference)
    assert serious(d) == [], d.report()
    assert [f.id for f in d.findings if f.id.startswith("shortcut")] == [], d.report()


def test_torchvision_resnet50_with_its_recipe_is_clean():
    from reszoo.data.transforms import imagenet_eval_transform, imagenet_train_transform

    model = torchvision.models.resnet50()
    opt = sgd(model)
    d = diagnose(
        model,
        "resnet50",
        optimizer=opt,
        scheduler=LR.MultiStepLR(opt, [30, 60]),
        epochs=90,
        batch_size=256,
        train_transform=imagenet_train_transform(),
        eval_transform=imagenet_eval_transform(),
    )
    assert serious(d) == [] and d.findings == [], d.report()
    # torchvision's own reference transforms (RandomResizedCrop): another augmentation, not a mistake.
    tv = diagnose(
        model,
        "resnet50",
        train_transform=T.Compose(
            [T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(*IMAGENET)]
        ),
        eval_transform=torchvision.models.ResNet50_Weights.IMAGENET1K_V1.transforms(),
    )
    assert serious(tv) == [] and tv.ids() == {"augmentation-differs"}


def test_a_plain_net_written_as_one_sequential_matches_plain20():
    assert serious(diagnose(U.PlainCifarNet(3), "plain20")) == []


def test_resnet110_with_warmup_per_epoch_or_per_iteration_is_clean():
    model = U.akamaster_resnet(110)
    opt = sgd(model)
    per_epoch = LR.LambdaLR(opt, lambda e: 0.1 if e == 0 else (1.0 if e < 100 else 0.1 if e < 150 else 0.01))
    assert serious(diagnose(model, "resnet110", optimizer=opt, scheduler=per_epoch, epochs=200)) == []
    opt = sgd(model)
    warm = LR.SequentialLR(
        opt, [LR.ConstantLR(opt, 0.1, total_iters=400), LR.MultiStepLR(opt, [32_000, 48_000])], [400]
    )
    d = diagnose(model, "resnet110", optimizer=opt, scheduler=warm, iterations=64_000, scheduler_steps="iteration")
    assert serious(d) == []


def test_timm_schedulers_are_stepped_as_timm_steps_them():
    # timm's schedulers take the epoch (step) or the update count (step_update); stepping them as torch's
    # raised a raw TypeError.
    scheduler = pytest.importorskip("timm.scheduler", reason="timm is a peer checked here (pip install 'reszoo[test]')")
    model = U.akamaster_resnet(56)
    opt = sgd(model)
    paper = scheduler.MultiStepLRScheduler(opt, decay_t=[91, 137], decay_rate=0.1)
    assert diagnose(model, "resnet56", optimizer=opt, scheduler=paper, epochs=182).findings == []
    opt = sgd(model)
    late = scheduler.MultiStepLRScheduler(opt, decay_t=[150, 250], decay_rate=0.1)
    assert "lr-schedule" in diagnose(model, "resnet56", optimizer=opt, scheduler=late, epochs=182).ids("warning")
    opt = sgd(model)
    per_update = scheduler.MultiStepLRScheduler(opt, decay_t=[32_000, 48_000], decay_rate=0.1, t_in_epochs=False)
    d = diagnose(model, "resnet56", optimizer=opt, scheduler=per_update, iterations=64_000, scheduler_steps="iteration")
    assert d.findings == [], d.report()


def test_timm_transforms_are_read_as_the_torchvision_ones_they_mirror():
    # timm's RandomResizedCropAndInterpolation is a random-size crop: it was read as no scale augmentation.
    data = pytest.importorskip("timm.data", reason="timm is a peer checked here (pip install 'reszoo[test]')")
    d = diagnose(
        torchvision.models.resnet50(),
        "resnet50",
        train_transform=data.create_transform(224, is_training=True),
        eval_transform=data.create_transform(224),
    )
    assert serious(d) == [], d.report()


def test_equivalent_choices_are_at_most_info():
    # zero-init of each last BN; the 0.2023 std used consistently; ImageNet constants on CIFAR (akamaster);
    # Nesterov; He-uniform; a cosine schedule; linearly scaled lr at batch 256.
    model = U.ZeroInitNet()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
    opt = sgd(model, lr=0.2, nesterov=True)
    std_2023 = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    d = diagnose(
        model,
        "resnet20",
        optimizer=opt,
        scheduler=LR.CosineAnnealingLR(opt, 200),
        epochs=200,
        batch_size=256,
        train_transform=T.Compose([*CIFAR_TRAIN.transforms[:3], T.Normalize(*std_2023)]),
        eval_transform=T.Compose([T.ToTensor(), T.Normalize(*std_2023)]),
    )
    assert serious(d) == [], d.report()
    assert {"init-norm", "init-conv", "momentum", "lr-schedule", "batch-size", "normalization"} <= d.ids("info")
    imagenet_consts = T.Compose([T.ToTensor(), T.Normalize(*IMAGENET)])
    assert diagnose(U.akamaster_resnet(20), "resnet20", eval_transform=imagenet_consts).ids() == {"normalization"}


# -- every id fires on a user-style model, recipe or pipeline -----------------------------------------


def _tv18_cifar_stem():
    m = torchvision.models.resnet18()
    m.conv1, m.maxpool = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.Identity()
    nn.init.kaiming_normal_(m.conv1.weight, mode="fan_out", nonlinearity="relu")
    return m


def _momentum_variants():
    m = U.akamaster_resnet(20)
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    bns[0].momentum, bns[1].momentum, bns[2].momentum = 0.0, None, 0.01
    bns[3].track_running_stats = False
    return m


def _groups(model):
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    return optim.SGD(
        [{"params": decay}, {"params": no_decay, "weight_decay": 0}], lr=0.1, momentum=0.9, weight_decay=1e-4
    )


def _recipe(opt_fn, sched_fn=None, **kw):
    def build():
        model = U.akamaster_resnet(20)
        opt = opt_fn(model)
        return model, "resnet20", {"optimizer": opt, "scheduler": sched_fn(opt) if sched_fn else None, **kw}

    return build


def _data(**kw):
    return lambda: (U.akamaster_resnet(20), "resnet20", kw)


def _net(factory, reference="resnet20", **kw):
    return lambda: (factory(), reference, kw)


def _pretrained_cifar():
    m = U.akamaster_resnet(20)
    m.pretrained_weights = reszoo.get_weights("resnet20-cifar10")  # trained with ImageNet constants
    return m, "resnet20", {"eval_transform": CIFAR_EVAL}


def _random_lambda(x):
    return x.flip(-1) if random.random() < 0.5 else x


_EPOCHS = {"epochs": 200}
# fmt: off
# id: [(case name, expected severity, builder -> (model, reference, kwargs))]
CASES = {
    "stem-imagenet-on-cifar": [("imagenet-stem", "error", _net(lambda: U.ImageNetStemCifarResNet(3)))],
    "stem-mismatch": [("cifar-stem-on-resnet18", "warning", _net(_tv18_cifar_stem, "resnet18"))],
    "shortcut-projection": [("forum-resnet56", "warning", _net(U.ForumResNet56, "resnet56")),
                            ("keras-port", "warning", _net(U.KerasPortResNet20))],
    "shortcut-zero-pad": [("option-a-vs-b", "warning",
                           lambda: (U.akamaster_resnet(20), reszoo.create_model("resnet20", shortcut="B"), {}))],
    "shortcut-variant": [("maxpool-subsample", "info", _net(lambda: U.akamaster_resnet(20, shortcut="maxpool")))],
    "shortcut-missing": [("plain", "error", _net(lambda: U.PlainCifarNet(3)))],
    "shortcut-extra": [("residual-vs-plain", "warning", _net(lambda: U.akamaster_resnet(20), "plain20"))],
    "stride-placement": [("v1-bottleneck", "warning", _net(U.V1ResNet50, "resnet50"))],
    "stage-stride": [("strided-layer1", "warning", _net(U.StridedFirstStageNet))],
    "depth-mismatch": [("resnet32-as-56", "error", _net(lambda: U.akamaster_resnet(32), "resnet56"))],
    "width-mismatch": [("double-width", "error", _net(lambda: U.akamaster_resnet(20, widths=(32, 64, 128))))],
    "block-type": [("bottleneck-cifar", "error", _net(U.BottleneckCifarNet))],
    "activation-order": [("relu-before-add", "warning", _net(lambda: U.akamaster_resnet(20, relu_before_add=True))),
                         ("pre-activation", "warning", _net(U.PreActCifarNet))],
    "activation-type": [("leaky-relu", "warning", _net(U.LeakyNet))],
    "norm-missing": [("no-batchnorm", "warning", _net(U.NoBatchNormNet)),
                     ("keras-projection-without-bn", "warning", _net(U.KerasPortResNet20))],
    "norm-type": [("groupnorm", "warning", _net(U.GroupNormNet))],
    "conv-bias": [("bias-before-bn", "info", _net(lambda: U.akamaster_resnet(20, bias=True)))],
    "dropout": [("dropout-head", "warning", _net(U.FlattenHeadNet))],
    "head-mismatch": [("flatten-hidden-fc", "warning", _net(U.FlattenHeadNet)),
                      ("cifar100-head", "info", _net(lambda: U.akamaster_resnet(20, num_classes=100))),
                      ("softmax-output", "warning",
                       _net(lambda: nn.Sequential(U.akamaster_resnet(20), nn.Softmax(1))))],
    "param-count": [("resnet32-as-56-count", "warning", _net(lambda: U.akamaster_resnet(32), "resnet56")),
                    ("forum-resnet56-count", "info", _net(U.ForumResNet56, "resnet56"))],
    "init-conv": [("pytorch-default", "warning", _net(U.ForumResNet56, "resnet56")),
                  ("keras-xavier", "warning", _net(U.KerasPortResNet20))],
    "init-norm": [("uniform-bn", "warning", _net(U.UniformBNNet)), ("zero-init", "info", _net(U.ZeroInitNet))],
    "bn-momentum": [("keras-0.99", "warning", _net(lambda: U.akamaster_resnet(20, momentum=0.99))),
                    ("momentum-0", "error", _net(_momentum_variants))],
    "bn-eps": [("keras-eps", "info", _net(U.KerasPortResNet20))],
    "optimizer-type": [("adam", "warning", _recipe(lambda m: optim.Adam(m.parameters(), 1e-3), **_EPOCHS))],
    "learning-rate": [("lr-0.01", "warning", _recipe(lambda m: sgd(m, lr=0.01), paper_steps, **_EPOCHS)),
                      ("batch-512-unscaled", "warning", _recipe(sgd, paper_steps, batch_size=512, **_EPOCHS))],
    "momentum": [("no-momentum", "warning", _recipe(lambda m: sgd(m, momentum=0), paper_steps, **_EPOCHS))],
    "weight-decay": [("wd-5e-4", "warning", _recipe(lambda m: sgd(m, weight_decay=5e-4), paper_steps, **_EPOCHS))],
    "weight-decay-norm": [("no-decay-on-bn", "info", _recipe(_groups, paper_steps, **_EPOCHS))],
    "params-not-optimized": [("layer1-only", "warning",
                              _recipe(lambda m: optim.SGD(m.layer1.parameters(), 0.1, momentum=0.9,
                                                          weight_decay=1e-4), paper_steps, **_EPOCHS))],
    "lr-schedule": [("constant", "warning", _recipe(sgd, epochs=182)),
                    ("milestones-150-250-of-300", "warning",
                     _recipe(sgd, lambda o: LR.MultiStepLR(o, [150, 250]), epochs=300)),
                    ("cosine", "info", _recipe(sgd, lambda o: LR.CosineAnnealingLR(o, 200), **_EPOCHS)),
                    ("plateau", "info", _recipe(sgd, LR.ReduceLROnPlateau, **_EPOCHS))],
    "training-length": [("30-epochs", "warning", _recipe(sgd, lambda o: LR.MultiStepLR(o, [15, 22]), epochs=30))],
    "warmup-missing": [("resnet110-no-warmup", "warning", lambda: (
        (m := U.akamaster_resnet(110)), "resnet110", {"optimizer": (o := sgd(m)), "scheduler": paper_steps(o),
                                                     **_EPOCHS}))],
    "batch-size": [("batch-512", "info", _recipe(lambda m: sgd(m, lr=0.4), paper_steps, batch_size=512, **_EPOCHS)),
                   ("batch-8", "warning", _recipe(lambda m: sgd(m, lr=0.00625), paper_steps, batch_size=8,
                                                  **_EPOCHS))],
    "normalization": [
        ("train-eval-differ", "error", _data(train_transform=CIFAR_TRAIN, eval_transform=T.Compose(
            [T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]))),
        ("0-255-constants", "warning", _data(eval_transform=T.Compose(
            [T.ToTensor(), T.Normalize((125.3, 123.0, 113.9), (63.0, 62.1, 66.7))]))),
        ("pretrained-weights-constants", "warning", _pretrained_cifar),
        ("imagenet-constants-on-cifar", "info", _data(eval_transform=T.Compose(
            [T.ToTensor(), T.Normalize(*IMAGENET)]))),
    ],
    "augmentation-missing": [("no-crop-no-flip", "warning", _data(train_transform=CIFAR_EVAL)),
                             ("no-crop", "warning", _data(train_transform=T.Compose(
                                 [T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(*C10)])))],
    "augmentation-differs": [("reflect-autoaugment", "info", _data(train_transform=v2.Compose([
        v2.ToImage(), v2.RandomCrop(32, padding=4, padding_mode="reflect"), v2.RandomHorizontalFlip(),
        v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10), v2.ToDtype(torch.float32, scale=True), v2.Normalize(*C10)])))],
    "augmentation-in-eval": [("flip-in-eval", "error", _data(eval_transform=T.Compose(
                                 [T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(*C10)]))),
                             ("opaque-random-lambda", "error", _data(eval_transform=T.Compose(
                                 [T.ToTensor(), T.Lambda(_random_lambda), T.Normalize(*C10)])))],
    "input-size": [("resize-224", "warning", _data(eval_transform=T.Compose(
                       [T.Resize(224), T.ToTensor(), T.Normalize(*C10)]))),
                   ("input-size-argument", "warning", _data(input_size=224)),
                   ("imagenet-squashed", "info", lambda: (torchvision.models.resnet18(), "resnet18", {
                       "eval_transform": T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize(*IMAGENET)])}))],
}
# fmt: on
CASE_LIST = [(fid, name, severity, build) for fid, cases in CASES.items() for name, severity, build in cases]


def test_every_id_is_stable_and_has_a_case():
    assert set(FINDINGS) == STABLE_IDS
    assert set(CASES) == set(FINDINGS)
    for spec in FINDINGS.values():
        assert spec.category in ("architecture", "initialisation", "recipe", "data") and spec.source


@pytest.mark.parametrize("fid, name, severity, build", CASE_LIST, ids=[f"{c[0]}:{c[1]}" for c in CASE_LIST])
def test_finding_fires(fid, name, severity, build):
    model, reference, kwargs = build()
    d = diagnose(model, reference, **kwargs)
    found = [f for f in d.findings if f.id == fid]
    assert found, f"{fid} did not fire for {name}:\n{d.report()}"
    assert severity in {f.severity for f in found}, d.report()
    for f in found:  # every finding carries its evidence, a fix and a source, and survives JSON
        assert f.evidence and f.fix and f.source and json.loads(json.dumps(f.to_dict(), default=str))


# -- what the trace reads ------------------------------------------------------------------------------


def test_trace_changes_nothing_and_reads_additions_paddings_and_concatenations():
    model = U.CatPadResNet(1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace = trace_model(model, (1, 3, 32, 32))
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    kinds = {o.kind for o in trace.ops}
    assert {"conv", "norm", "act", "add", "cat", "slice", "const", "pool", "linear"} <= kinds
    aka = trace_model(U.akamaster_resnet(20), (1, 3, 32, 32))
    assert {"pad", "slice"} <= {o.kind for o in aka.ops}
    assert sum(o.kind == "add" for o in aka.ops) == 9  # `out += self.shortcut(x)`, seen as an addition


def test_the_paper_structure_is_read_from_user_code():
    d = diagnose(U.akamaster_resnet(56), "resnet56")
    yours, ref = d.structure["yours"], d.structure["reference"]
    assert [len(s["blocks"]) for s in yours["stages"]] == [9, 9, 9] == [len(s["blocks"]) for s in ref["stages"]]
    assert [s["width"] for s in yours["stages"]] == [16, 32, 64] and yours["depth"] == 56
    first = yours["stages"][1]["blocks"][0]
    assert first["shortcut"] == "zero-pad" and first["stride"] == 2 and first["after_add"] == "relu"
    assert yours["params"] == ref["params"] == 853_018


def test_a_model_that_refuses_function_modes_is_read_with_hooks_alone():
    class ModeHater(U.ForumResNet56):
        def forward(self, x):
            if torch._C._is_torch_function_mode_enabled():
                raise RuntimeError("no torch function modes here")
            return super().forward(x)

    d = diagnose(ModeHater(), "resnet56")
    assert d.trace["method"] == HOOKS_ONLY
    assert any("hooks only" in n and "no torch function modes here" in n for n in d.notes)
    assert {"shortcut-projection", "init-conv"} <= d.ids("warning") and d.ok


def test_wrappers_are_unwrapped_and_the_optimizer_and_scheduler_are_left_as_they_were():
    model = U.akamaster_resnet(20)
    opt = sgd(model)
    sched = LR.MultiStepLR(opt, [100, 150])
    d = diagnose(nn.DataParallel(model), "resnet20", optimizer=opt, scheduler=sched, epochs=200)
    assert d.model == "CifarResNet" and serious(d) == []
    assert sched.last_epoch == 0 and opt.param_groups[0]["lr"] == 0.1 and not opt.state


# -- properties: reszoo against itself -----------------------------------------------------------------

_SLOW = {"resnet1202", "resnet101", "resnet152", "resnet50", "resnet34", "plain34"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in reszoo.list_models()]
)
def test_every_registered_model_against_itself_has_no_warning(name):
    d = diagnose(reszoo.create_model(name), name)
    assert d.findings == [], d.report()


@given(
    block=st.sampled_from(["basic", "bottleneck"]),
    depths=st.lists(st.integers(1, 2), min_size=2, max_size=4),
    shortcut=st.sampled_from(["A", "B", "C", "none"]),
    init_mode=st.sampled_from(["fan_in", "fan_out"]),
    zero_init=st.booleans(),
    stride_in_1x1=st.booleans(),
    num_classes=st.sampled_from([10, 100]),
)
def test_any_reszoo_config_against_itself_has_no_warning(
    block, depths, shortcut, init_mode, zero_init, stride_in_1x1, num_classes
):
    config = reszoo.ResNetConfig(
        block=block,
        depths=tuple(depths),
        widths=tuple(8 * 2**i for i in range(len(depths))),
        stem_width=8,
        shortcut=shortcut,
        init_mode=init_mode,
        zero_init_residual=zero_init and shortcut != "none",
        stride_in_1x1=stride_in_1x1,
        num_classes=num_classes,
    )
    model, reference = reszoo.ResNet(config), reszoo.ResNet(config)
    d = diagnose(model, reference)
    assert serious(d) == [], d.report()
    assert d.ids() <= {"init-norm"}  # zero-init of the last norms: info
    assert compare(model, reference).same


# -- compare ---------------------------------------------------------------------------------------------


def test_compare_marks_the_first_block_that_differs():
    c = compare("resnet56", U.ForumResNet56())
    assert not c.same and c.rows[c.first_difference].label == "layer2.0"
    assert ">> layer2.0" in c.report() and "proj 1x1/2+bn" in c.report() and "zero-pad" in c.report()
    assert json.loads(c.to_json())["first_difference"] == c.first_difference
    assert compare(U.akamaster_resnet(56), "resnet56").rows[-1].same  # same parameter count
    assert compare(torchvision.models.resnet50(), "resnet50").same


# -- the API's edges ---------------------------------------------------------------------------------------


def test_bad_arguments_name_the_value_and_the_choices():
    model = U.akamaster_resnet(20)
    with pytest.raises(InvalidArgumentError, match=r"resnet57.*resnet56"):
        diagnose(model, "resnet57")
    with pytest.raises(ArgumentTypeError, match="reference"):
        diagnose(model, torchvision.models.resnet18())
    with pytest.raises(ArgumentTypeError, match="model"):
        diagnose("resnet20", "resnet20")
    with pytest.raises(InvalidArgumentError, match="not both"):
        diagnose(model, "resnet20", epochs=10, iterations=100)
    with pytest.raises(InvalidArgumentError, match="scheduler_steps.*epoch"):
        diagnose(model, "resnet20", scheduler_steps="batch")
    with pytest.raises(InvalidArgumentError, match="Unknown id"):
        Finding("no-such-id", "info", "message")


def test_a_model_that_cannot_run_at_the_reference_size_says_so():
    fixed = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 222 * 222, 10))
    with pytest.raises(InvalidArgumentError, match="fails on a 1x3x32x32 batch"):
        diagnose(fixed, "resnet20")


def test_report_and_json():
    model = U.ForumResNet56()
    d = reszoo.diagnose(model, "resnet56", optimizer=sgd(model, weight_decay=5e-4))
    text = str(d)
    assert text.index("WARNING") < text.index("INFO") and "fix" in text and "evidence" in text
    assert "no train_transform given" in text
    data = json.loads(d.to_json())
    assert data["counts"] == {"error": 0, "warning": len(d.warnings), "info": len(d.of("info"))}
    assert {f["id"] for f in data["findings"]} == d.ids()
    assert reszoo.Diagnosis is Diagnosis and reszoo.Finding is Finding


# -- the command line --------------------------------------------------------------------------------------

USER_FILE = """
import torch, torch.nn as nn, torch.nn.functional as F
from torchvision import transforms as T
import _user_resnets as U

def build():
    return U.ForumResNet56()

good = U.CatPadResNet

def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

def make_scheduler(optimizer):
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, [100, 150])

train = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
flip_eval = T.Compose([T.RandomHorizontalFlip(), T.ToTensor()])
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n" + USER_FILE)
    return path


def test_cli_diagnose_exit_codes_and_json(user_file, tmp_path, capsys):
    from reszoo.cli import main

    spec = f"{user_file}:"
    args = [
        "diagnose",
        spec + "good",
        "-r",
        "resnet56",
        "--optimizer",
        spec + "make_optimizer",
        "--scheduler",
        spec + "make_scheduler",
        "--epochs",
        "200",
        "--train-transform",
        spec + "train",
    ]
    assert main(args) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out
    assert main(args + ["--eval-transform", spec + "flip_eval", "--json", str(tmp_path / "d.json")]) == 1
    assert "ERROR   augmentation-in-eval" in capsys.readouterr().out
    assert json.loads((tmp_path / "d.json").read_text())["counts"]["error"] == 1
    assert main(["diagnose", spec + "build", "-r", "resnet56", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"shortcut-projection", "init-conv"} <= {f["id"] for f in data["findings"]}


def test_cli_bad_arguments_and_broken_user_files(user_file, tmp_path, capsys):
    from reszoo.cli import main

    assert main(["diagnose", f"{user_file}:build", "-r", "resnet57"]) == 2
    assert "resnet56" in capsys.readouterr().err
    assert main(["diagnose", f"{tmp_path}/missing.py:build", "-r", "resnet56"]) == 2
    assert main(["diagnose", f"{user_file}:biuld", "-r", "resnet56"]) == 2
    assert "Did you mean: build" in capsys.readouterr().err
    assert main(["diagnose", f"{user_file}:build", "-r", "resnet56", "--scheduler", f"{user_file}:x"]) == 2
    assert "give --optimizer too" in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\n\nmodel = torch.nn.Linear(3)\n")
    assert main(["diagnose", f"{broken}:model", "-r", "resnet56"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{broken}, line 3: import failed: TypeError" in err


def test_cli_compare(user_file, capsys):
    from reszoo.cli import main

    assert main(["diagnose", "--compare", "resnet56", f"{user_file}:build"]) == 1
    assert ">> layer2.0" in capsys.readouterr().out
    assert main(["diagnose", "--compare", "resnet20", "resnet20"]) == 0


def test_cli_in_a_subprocess(user_file):
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(reszoo.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-m", "reszoo", "diagnose", f"{user_file}:build", "-r", "resnet56",
                           "--json", "-"], capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "shortcut-projection" in {f["id"] for f in json.loads(done.stdout)["findings"]}


def test_the_worked_example_of_the_docs(capsys):
    from reszoo.cli import main

    def run(name, *extra):
        f = f"{ROOT}/docs/examples/{name}.py"
        return main(
            [
                "diagnose",
                f"{f}:ResNet56",
                "-r",
                "resnet56",
                "--optimizer",
                f"{f}:make_optimizer",
                "--scheduler",
                f"{f}:make_scheduler",
                "--train-transform",
                f"{f}:train_transform",
                "--eval-transform",
                f"{f}:test_transform",
                "--json",
                "-",
                *extra,
            ]
        )

    assert run("forum_resnet56", "--epochs", "200") == 1
    forum = json.loads(capsys.readouterr().out)
    assert {(f["id"], f["severity"]) for f in forum["findings"]} == {
        ("normalization", "error"),
        ("shortcut-projection", "warning"),
        ("init-conv", "warning"),
        ("weight-decay", "warning"),
        ("lr-schedule", "warning"),
        ("augmentation-missing", "warning"),
        ("param-count", "info"),
    }
    assert run("fixed_resnet56", "--epochs", "182", "--train-size", "45000") == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_the_findings_table_of_the_docs_is_generated_from_the_code():
    from reszoo.diagnosis.findings import findings_table

    assert findings_table() in (ROOT / "docs" / "diagnose.md").read_text(), (
        "docs/diagnose.md's table is stale: paste reszoo.diagnosis.findings.findings_table() into it"
    )
