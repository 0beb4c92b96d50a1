"""Fuzzing (issue 16): wrong types wherever a setting enters, damaged files of every kind reszoo
reads, random command lines, and writes interrupted at random points.

Each case must end in a clear error of reszoo's own classes (``ReszooError``, which is also the
``TypeError``/``ValueError``/``OSError`` a Python user expects) or in a correct result, never in a
foreign traceback, and no file may be lost: a damaged file is left as it was, and a write that
fails leaves the previous file whole.

Every distinct bad input or fault tried is counted; ``RESZOO_FUZZ_COUNT=path pytest
tests/test_fuzz.py -p no:xdist`` writes the counts per category to ``path`` (JSON).
"""

from __future__ import annotations

import builtins
import collections.abc
import contextlib
import errno
import io
import json
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import reszoo
from reszoo import bench, train, transforms
from reszoo.cli import main
from reszoo.errors import FileWriteError, ReszooError
from reszoo.infer.optimize import BACKENDS, DTYPES
from reszoo.models import registry, summary
from reszoo.models._factory import create_model
from reszoo.models.resnet import ResNet, ResNetConfig
from reszoo.train import recipes
from reszoo.train.recipes import Recipe
from reszoo.utils.checks import is_int, is_number
from reszoo.utils.devices import compile_modes
from reszoo.utils.plaindata import field_types
from reszoo.weights import catalog as weights
from reszoo.weights import hub, pretrained, publish

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_ARGS, TINY_OVERRIDES  # noqa: E402

# Hypothesis examples share module-scoped folders (function-scoped fixtures are not reset between them).
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
# The file, command-line and write tests are cheap (milliseconds an example): 4x the profile's examples.
MANY = 4 * settings.default.max_examples

# -- counting what is tried -------------------------------------------------------------------

TRIED: dict[str, set[str]] = {}


def tried(category: str, what: Any) -> None:
    TRIED.setdefault(category, set()).add(repr(what)[:300])


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    path = os.environ.get("RESZOO_FUZZ_COUNT")
    if path:
        counts = {k: len(v) for k, v in sorted(TRIED.items())}
        Path(path).write_text(json.dumps({"total": sum(counts.values()), **counts}, indent=2) + "\n")


def offline(monkeypatch: Any, root: Path) -> None:
    """No network and a private weights cache (huggingface_hub reads HF_HUB_OFFLINE once, at import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("RESZOO_CACHE", str(root / "cache"))


def assert_clean(err: BaseException, *, kinds: tuple[type, ...] = (TypeError, ValueError)) -> None:
    """A reszoo error of one of the expected built-in kinds, with a message."""
    assert isinstance(err, ReszooError), f"foreign {type(err).__module__}.{type(err).__name__}: {err}"
    assert isinstance(err, kinds), f"{type(err).__name__} is none of {kinds}: {err}"
    assert str(err).strip(), "an error without a message"


# -- 1. wrong types: every settings field, every public function's arguments -------------------


def fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has a type ``hint`` allows (an oracle written apart from reszoo.utils.plaindata)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if origin is tuple:
        items = args[:1] * len(value) if isinstance(value, (tuple, list)) and args[-1:] == (Ellipsis,) else args
        return isinstance(value, (tuple, list)) and len(items) == len(value) and all(map(fits, value, items))
    if origin is type:
        return isinstance(value, type) and issubclass(value, args[0])
    if hint is collections.abc.Callable or origin is collections.abc.Callable:
        return callable(value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_int(value)
    if hint is float:
        return is_number(value)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


TEXT = st.sampled_from(["", "false", "true", "False", "0", "1", "no", "yes", "none", "None", "x", "resnet20", "cpu"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    TEXT,
)
ODD = st.sampled_from(
    [
        b"x",
        bytearray(b"1"),
        object(),
        int,
        float,
        complex(1, 2),
        frozenset({1}),
        range(3),
        Ellipsis,
        np.float32(0.5),
        np.array([1, 2]),
        torch.tensor(1.0),
        torch.tensor([3]),
        torch.float16,
        torch.device("cpu"),
        Path("x"),
    ]
)
CONTAINERS = st.one_of(
    st.lists(SCALARS, max_size=3),
    st.lists(SCALARS, max_size=3).map(tuple),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
)
VALUES = st.one_of(SCALARS, ODD, CONTAINERS)


# Fields that take more than their annotation says, on purpose (documented).
WIDER = {(Recipe, "data_root"): os.PathLike}  # kept as str
SETTINGS_FIELDS = [(cls, name) for cls in (ResNetConfig, Recipe) for name in cls.field_names()]


@pytest.mark.parametrize(("cls", "name"), SETTINGS_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in SETTINGS_FIELDS])
@FUZZ
@given(data=st.data())
def test_every_settings_field_refuses_a_wrong_type(cls, name, data):
    hint, wider = field_types(cls)[name], WIDER.get((cls, name), ())
    value = data.draw(VALUES.filter(lambda v: not fits(v, hint) and not isinstance(v, wider)), label=name)
    tried(f"wrong type: {cls.__name__} field", (name, value))
    for make in (lambda: cls(**{name: value}), lambda: cls.from_dict({name: value})):
        with pytest.raises(ReszooError) as exc:
            make()
        assert_clean(exc.value)
        assert name in str(exc.value)


# What each public argument takes; anything else must be refused with a clean error.
def _opt(check):
    return lambda v: v is None or check(v)


BOOL = lambda v: isinstance(v, bool)  # noqa: E731
INT = is_int
NUM = is_number
STR = lambda v: isinstance(v, str)  # noqa: E731
PATH = lambda v: isinstance(v, (str, os.PathLike))  # noqa: E731
MODULE = lambda v: isinstance(v, torch.nn.Module)  # noqa: E731
SEQ = lambda v: isinstance(v, collections.abc.Sequence) and not isinstance(v, (str, bytes, bytearray))  # noqa: E731
INTS = lambda v: SEQ(v) and all(is_int(i) for i in v)  # noqa: E731
NUMS = lambda v: SEQ(v) and all(is_number(i) for i in v)  # noqa: E731
DEVICE = lambda v: v is None or isinstance(v, (str, torch.device))  # noqa: E731
MAPPING = lambda v: v is None or isinstance(v, collections.abc.Mapping)  # noqa: E731
CALLABLE = callable
FLOAT_DTYPE = lambda v: (STR(v) and v in DTYPES) or (isinstance(v, torch.dtype) and v in DTYPES.values())  # noqa: E731
FLOAT_BATCH = lambda v: isinstance(v, torch.Tensor) and v.dim() == 4 and v.is_floating_point()  # noqa: E731


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """What the calls need: a tiny model, a saved folder of it, a scratch folder, a tiny recipe."""
    root = tmp_path_factory.mktemp("fuzz-args")
    saved = root / "saved"
    hub.save_pretrained(ResNet(ResNetConfig(**TINY_OVERRIDES)), saved)
    ns = types.SimpleNamespace(root=root, saved=saved)
    ns.model = lambda: ResNet(ResNetConfig(**TINY_OVERRIDES))
    ns.recipe = Recipe(
        data="synthetic", batch_size=4, iterations=1, eval_every=0, synthetic_eval_images=8, eval_batch_size=8
    )
    return ns


TINY = dict(TINY_OVERRIDES)
# Each public function with arguments that work, to be spoiled one at a time (built per call: cheap).
CALLS: dict[str, Any] = {
    "create_model": lambda w: (create_model, {"name": "resnet20", **TINY}),
    "list_models": lambda w: (registry.list_models, {"pattern": "resnet*"}),
    "default_config": lambda w: (registry.default_config, {"name": "resnet20"}),
    "ResNet": lambda w: (ResNet, {"config": ResNetConfig(**TINY)}),
    "load_pretrained": lambda w: (pretrained.load_pretrained, {"name": str(w.saved)}),
    "save_pretrained": lambda w: (hub.save_pretrained, {"model": w.model(), "save_directory": str(w.root / "out")}),
    "push_to_hub": lambda w: (publish.push_to_hub, {"model": w.model(), "repo_id": "me/tiny"}),
    "fit": lambda w: (train.fit, {"model": w.model(), "recipe": w.recipe, "progress": False}),
    "train_model": lambda w: (
        train.train_model,
        {"name": "resnet20", "model_overrides": TINY, "recipe_overrides": w.recipe.to_dict(), "progress": False},
    ),
    "measure": lambda w: (bench.measure, {"model": w.model(), "batch_size": 1, "warmup": 0, "min_run_time": 0.001}),
    "sweep": lambda w: (
        bench.sweep,
        {"model_fn": w.model, "batch_sizes": [1], "name": "tiny", "warmup": 0, "min_run_time": 0.001},
    ),
    "optimize_for_inference": lambda w: (reszoo.optimize_for_inference, {"model": w.model()}),
    # The arguments that only one path takes are spoiled on that path.
    "optimize_for_inference:int8": lambda w: (
        reszoo.optimize_for_inference,
        {"model": w.model(), "dtype": "int8", "calibration": [torch.randn(2, *w.model().config.input_size)]},
    ),
    "optimize_for_inference:onnxruntime": lambda w: (
        reszoo.optimize_for_inference,
        {"model": w.model(), "backend": "onnxruntime", "input_size": w.model().config.input_size},
    ),
    "normalization": lambda w: (transforms.normalization, {"dataset": "cifar10"}),
    "eval_transform": lambda w: (transforms.eval_transform, {"mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_size": 8}),
    "cifar_eval_transform": lambda w: (transforms.cifar_eval_transform, {}),
    "cifar_train_transform": lambda w: (transforms.cifar_train_transform, {}),
    "imagenet_train_transform": lambda w: (transforms.imagenet_train_transform, {}),
    "imagenet_eval_transform": lambda w: (transforms.imagenet_eval_transform, {}),
    "ten_crop_transform": lambda w: (transforms.ten_crop_transform, {}),
    "cifar_recipe": lambda w: (recipes.cifar_recipe, {}),
    "imagenet_recipe": lambda w: (recipes.imagenet_recipe, {}),
    "learning_rate": lambda w: (recipes.learning_rate, {"recipe": w.recipe, "iteration": 0}),
    "count_params": lambda w: (summary.count_params, {"model": w.model()}),
    "count_macs": lambda w: (summary.count_macs, {"model": w.model(), "input_size": (3, 8, 8)}),
    "get_weights": lambda w: (weights.get_weights, {"name": "resnet20-cifar10"}),
    "list_pretrained": lambda w: (weights.list_pretrained, {}),
}


ARGS: dict[str, dict[str, Any]] = {
    "create_model": {
        "name": STR,
        "pretrained": lambda v: v is None or isinstance(v, (bool, str, os.PathLike)),
        "features_only": BOOL,
        "out_indices": lambda v: v is None or is_int(v) or INTS(v),
    },
    "list_models": {"pattern": _opt(STR)},
    "default_config": {"name": STR},
    "ResNet": {"config": lambda v: v is None or isinstance(v, ResNetConfig)},
    "load_pretrained": {
        "name": PATH,
        "num_classes": _opt(INT),
        "device": DEVICE,
        "checkpoint": _opt(PATH),
        "revision": _opt(STR),
        "check_hash": BOOL,
    },
    "save_pretrained": {"model": MODULE, "save_directory": PATH, "weights": lambda v: v is None},
    "push_to_hub": {
        "model": MODULE,
        "repo_id": STR,
        "private": _opt(BOOL),
        "token": _opt(STR),
        "revision": _opt(STR),
        "commit_message": _opt(STR),
        "create_pr": BOOL,
        "weights": lambda v: v is None,
    },
    "fit": {
        "model": MODULE,
        "recipe": lambda v: isinstance(v, Recipe),
        "out": _opt(PATH),
        "resume": BOOL,
        "progress": BOOL,
        "on_step": _opt(CALLABLE),
    },
    "train_model": {
        "name": STR,
        "model_overrides": MAPPING,
        "recipe_overrides": MAPPING,
        "out": _opt(PATH),
        "resume": BOOL,
        "progress": BOOL,
        "on_step": _opt(CALLABLE),
    },
    "measure": {
        "model": MODULE,
        "input_size": _opt(INTS),
        "batch_size": _opt(INT),
        "mode": STR,
        "device": DEVICE,
        "dtype": STR,
        "channels_last": BOOL,
        "compile": _opt(STR),
        "cuda_graphs": BOOL,
        "warmup": _opt(INT),
        "min_run_time": NUM,
        "peak_tflops": _opt(NUM),
        "name": _opt(STR),
    },
    "sweep": {"model_fn": CALLABLE, "batch_sizes": lambda v: SEQ(v) and all(_opt(INT)(b) for b in v), "name": STR},
    "optimize_for_inference": {
        "model": MODULE,
        "channels_last": BOOL,
        "fold_bn": BOOL,
        "compile": _opt(BOOL),
        "compile_mode": lambda v: v is None or (STR(v) and v in compile_modes()),
        # Float dtypes (a CPU without bf16/fp16 kernels refuses those: test_optimize.py tests that);
        # int8 needs calibration, so it is spoiled below.
        "dtype": _opt(FLOAT_DTYPE),
        "backend": lambda v: STR(v) and v in BACKENDS,
        "calibration": lambda v: v is None,  # dtype="int8" only
        "input_size": lambda v: v is None,  # backend="onnxruntime" only
        "example_inputs": lambda v: v is None,  # backend="auto" only
        "check": lambda v: v is None,  # dtype="int8" only
        "min_agreement": lambda v: v is None,  # with check only
    },
    "optimize_for_inference:int8": {
        "calibration": lambda v: SEQ(v) and len(v) > 0 and all(map(FLOAT_BATCH, v)),
        "compile": lambda v: v is None or v is True,  # int8 is always compiled
        # held-out images: a DataLoader, batches, a 4-D float tensor or an (inputs, targets) pair
        "check": lambda v: v is None or FLOAT_BATCH(v) or (SEQ(v) and len(v) > 0 and all(map(FLOAT_BATCH, v))),
        "min_agreement": lambda v: v is None,  # the call passes no check
    },
    "optimize_for_inference:onnxruntime": {
        "input_size": _opt(lambda v: INTS(v) and len(v) == 3 and all(i >= 1 for i in v)),  # None: the config's
        "dtype": lambda v: v is None or (STR(v) and v == "fp32") or v is torch.float32,  # runs the fp32 model
        "compile": lambda v: v is None or v is False,
    },
    "normalization": {"dataset": STR},
    "eval_transform": {"mean": NUMS, "std": NUMS, "crop_size": INT, "resize_size": _opt(INT), "interpolation": STR},
    "cifar_eval_transform": {"mean": NUMS, "std": NUMS},
    "cifar_train_transform": {"mean": NUMS, "std": NUMS, "padding": INT, "crop_size": INT},
    "imagenet_train_transform": {
        "mean": NUMS,
        "std": NUMS,
        "recipe": STR,
        "crop_size": INT,
        "scale_range": INTS,
        "pca_std": NUM,
        "interpolation": STR,
    },
    "imagenet_eval_transform": {
        "resize_size": INT,
        "crop_size": INT,
        "mean": NUMS,
        "std": NUMS,
        "interpolation": STR,
    },
    "ten_crop_transform": {"resize_size": INT, "crop_size": INT, "mean": NUMS, "std": NUMS, "interpolation": STR},
    "cifar_recipe": {"depth": _opt(INT)},
    "imagenet_recipe": {"schedule": STR},
    "learning_rate": {"recipe": lambda v: isinstance(v, Recipe), "iteration": INT, "plateau_drops": INT},
    "count_params": {"model": MODULE, "trainable_only": BOOL},
    "count_macs": {"model": MODULE, "input_size": INTS},
    "get_weights": {"name": STR},
    "list_pretrained": {"pattern": _opt(STR), "include_aliases": BOOL},
}
ARG_CASES = [pytest.param(fn, arg, id=f"{fn}.{arg}") for fn, args in ARGS.items() for arg in args]


# 108 arguments: half the profile's examples each (12 in CI), and no shrinking (a failure shows its
# value as drawn), keep this within seconds.
@pytest.mark.parametrize(("fn", "arg"), ARG_CASES)
@settings(FUZZ, max_examples=max(10, settings.default.max_examples // 2), phases=NO_SHRINK)
@given(data=st.data())
def test_public_functions_refuse_wrong_types(fn, arg, data, world, monkeypatch):
    offline(monkeypatch, world.root)  # a call that got through would fail offline, not upload
    value = data.draw(VALUES.filter(lambda v: not ARGS[fn][arg](v)), label=arg)
    tried("wrong type: public argument", (fn, arg, value))
    call, kwargs = CALLS[fn](world)
    with pytest.raises(ReszooError) as exc:
        call(**{**kwargs, arg: value})
    assert_clean(exc.value)


# Calls that need more than this test has: the network, or an optional extra (then they run only
# where it is installed; int8 exports and calibrates, ONNX Runtime exports: a few seconds each).
NEEDS = {
    "push_to_hub": "network",
    "optimize_for_inference:int8": "torchao",
    "optimize_for_inference:onnxruntime": "onnxruntime",
}


@pytest.mark.filterwarnings("ignore::reszoo.infer.quantize.CalibrationWarning")  # int8 on 2 tiny images
def test_the_calls_work_as_given(world, monkeypatch):
    """The unspoiled calls succeed, so each refusal above is the spoiled argument's doing."""
    import importlib.util

    monkeypatch.setenv("RESZOO_CACHE", str(world.root / "cache"))
    for fn, make in CALLS.items():
        need = NEEDS.get(fn)
        if need == "network" or (need is not None and importlib.util.find_spec(need) is None):
            continue
        call, kwargs = make(world)
        call(**kwargs)


# -- 2. damaged files of every kind reszoo reads -----------------------------------------------


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` truncated, with bytes flipped, zeroed, replaced, or junk around it."""
    n = len(data)
    kind = draw(st.sampled_from(["truncate", "flip", "zeros", "junk-after", "junk-before", "random", "empty"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(n - 1, 0)))]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, n - 1))
            out[i] ^= draw(st.integers(1, 255))
        return bytes(out)
    if kind == "zeros":
        i = draw(st.integers(0, n - 1))
        j = draw(st.integers(i + 1, min(n, i + 4096)))
        return data[:i] + bytes(j - i) + data[j:]
    if kind == "junk-after":
        return data + draw(st.binary(min_size=1, max_size=64))
    if kind == "junk-before":
        return draw(st.binary(min_size=1, max_size=64)) + data
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=512))
    return b""


def json_values(integers: Any) -> Any:
    return st.recursive(
        st.one_of(st.none(), st.booleans(), integers, st.floats(allow_nan=False), TEXT, st.text(max_size=5)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
        max_leaves=6,
    )


# Small integers: a damaged run.json or checkpoint may ask training for 10**9 iterations, which a
# test cannot wait for.
JSON_VALUES = json_values(st.integers(-5, 100))
# A saved folder's config.json is read by a loader that bounds what it may ask for (issue 22), so
# it gets huge numbers too: 10**9 blocks, a crop of 200,000 pixels, 10**30 classes.
HOSTILE_JSON_VALUES = json_values(st.one_of(st.integers(-5, 100), st.integers(1_000, 10**30)))


@st.composite
def mutated_json(draw, doc: Any, values: Any = JSON_VALUES) -> Any:
    """``doc`` with one value somewhere replaced by another JSON value, or one key removed."""
    doc = json.loads(json.dumps(doc))
    if not isinstance(doc, (dict, list)) or not doc or draw(st.integers(0, 9)) == 0:
        return draw(values)  # the whole document
    node = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and draw(st.integers(0, 3)) == 0:
            del node[key]
        else:
            node[key] = draw(values)
        return doc


@st.composite
def damaged_json(draw, text: str, values: Any = JSON_VALUES) -> bytes:
    """A JSON file damaged as bytes or as a document."""
    if draw(st.booleans()):
        return draw(damaged(text.encode()))
    return json.dumps(draw(mutated_json(json.loads(text), values))).encode()


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """The files reszoo reads, as it writes them: a saved model, a finished run, a legacy checkpoint."""
    from _refnets import RefCifarResNet, akamaster_checkpoint, randomize_

    root = tmp_path_factory.mktemp("fuzz-files")
    torch.manual_seed(0)
    saved = hub.save_pretrained(ResNet(ResNetConfig(**TINY_OVERRIDES)), root / "saved")
    run = root / "run"
    recipe = dict(data="synthetic", batch_size=4, iterations=2, checkpoint_every=1, synthetic_eval_images=8)
    train.train_model("resnet20", model_overrides=TINY, recipe_overrides=recipe, out=run, progress=False)
    torch.save(akamaster_checkpoint(randomize_(RefCifarResNet(option="A", head="linear"))), root / "legacy.th")
    return types.SimpleNamespace(root=root, saved=saved, run=run, legacy=root / "legacy.th")


@contextlib.contextmanager
def copy_of(folder: Path) -> Any:
    """A scratch copy of ``folder`` for one example (hypothesis examples share the module's fixtures)."""
    scratch = Path(tempfile.mkdtemp(dir=folder.parent))
    try:
        dest = scratch / folder.name
        shutil.copytree(folder, dest) if folder.is_dir() else shutil.copy2(folder, dest)
        yield dest
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def outcome(read: Any, damaged_file: Path, *, writes: bool = False) -> Any:
    """Run ``read``: a result, or a clean reszoo error; the damaged file is never removed or changed
    (by a reader; a call that ``writes`` may replace it when it succeeds)."""
    before = damaged_file.read_bytes()
    try:
        result = read()
    except ReszooError as err:
        assert_clean(err, kinds=(Exception,))
        result = err
    if isinstance(result, ReszooError) or not writes:
        assert damaged_file.read_bytes() == before, f"{damaged_file.name} was changed or removed"
    return result


def _digest(model: torch.nn.Module) -> str:
    return train.state_digest(model)


@settings(FUZZ, max_examples=MANY)
@given(data=st.data())
def test_damaged_saved_model_folder(originals, data):
    name = data.draw(st.sampled_from(["model.safetensors", "config.json"]))
    original = (originals.saved / name).read_bytes()
    bad = data.draw(
        damaged(original) if name.endswith("safetensors") else damaged_json(original.decode(), HOSTILE_JSON_VALUES)
    )
    tried(f"damaged {name}", bad)
    with copy_of(originals.saved) as folder:
        (folder / name).write_bytes(bad)
        got = outcome(lambda: pretrained.load_pretrained(str(folder)), folder / name)
        if not isinstance(got, ReszooError):  # loaded: then with exactly the saved weights
            assert _digest(got) == _digest(pretrained.load_pretrained(str(originals.saved)))


@settings(FUZZ, max_examples=MANY)
@given(data=st.data())
def test_damaged_run_json_and_recipe_json(originals, data):
    from reszoo.train.runfolder import resume_settings

    name = data.draw(st.sampled_from(["run.json", "recipe.json"]))
    bad = data.draw(damaged_json((originals.run / name).read_text()))
    tried(f"damaged {name}", bad)
    with copy_of(originals.run) as run:
        (run / name).write_bytes(bad)
        if name == "run.json":
            got = outcome(lambda: resume_settings(run, "resnet20", {}, {}), run / name)
            if not isinstance(got, ReszooError):
                recipe, overrides = got
                assert isinstance(recipe, Recipe) and isinstance(overrides, dict)
                # What train_model checks before building: the overrides make a valid config.
                outcome(lambda: registry.default_config("resnet20").replace(**overrides), run / name)
        else:  # nothing in reszoo reads recipe.json back; a reader would go through Recipe.from_dict
            got = outcome(lambda: Recipe.from_dict(_json_or_error(run / name)), run / name)
            assert isinstance(got, (Recipe, ReszooError))


def _json_or_error(path: Path) -> Any:
    from reszoo.errors import InvalidArgumentError

    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidArgumentError(f"{path} is not JSON ({err}).") from None


@settings(FUZZ, max_examples=MANY)
@given(data=st.data())
def test_damaged_checkpoint(originals, data):
    from reszoo.train.runfolder import load_checkpoint

    original = (originals.run / "checkpoint.pt").read_bytes()
    bad = data.draw(damaged(original))
    tried("damaged checkpoint.pt", bad)
    with copy_of(originals.run) as run:
        (run / "checkpoint.pt").write_bytes(bad)
        got = outcome(lambda: load_checkpoint(run), run / "checkpoint.pt")
        if isinstance(got, ReszooError):
            return
        assert got["iteration"] >= 0 and isinstance(got["model"], dict)
        recipe = Recipe(data="synthetic", batch_size=4, iterations=2, synthetic_eval_images=8)
        model = ResNet(ResNetConfig(**TINY_OVERRIDES))
        try:
            train.fit(model, recipe, out=run, resume=True, progress=False)
        except ReszooError as err:
            assert_clean(err, kinds=(Exception,))


CHECKPOINT_FIELDS = st.sampled_from(["iteration", "model", "optimizer", "plateau", "errors", "rng", "format"])


@settings(FUZZ, max_examples=MANY)
@given(key=CHECKPOINT_FIELDS, value=st.one_of(JSON_VALUES, st.just(torch.zeros(3)), st.just("drop")))
def test_checkpoint_with_wrong_contents(originals, key, value):

    ckpt = torch.load(originals.run / "checkpoint.pt", weights_only=True)
    if value == "drop":
        del ckpt[key]
    else:
        ckpt[key] = value
    tried("checkpoint.pt with a wrong field", (key, value))
    with copy_of(originals.run) as run:
        torch.save(ckpt, run / "checkpoint.pt")
        recipe = Recipe(data="synthetic", batch_size=4, iterations=2, synthetic_eval_images=8)
        model = ResNet(ResNetConfig(**TINY_OVERRIDES))
        fit = lambda: train.fit(model, recipe, out=run, resume=True, progress=False)  # noqa: E731
        got = outcome(fit, run / "recipe.json", writes=True)
        assert isinstance(got, (ReszooError, train.FitResult))


@settings(FUZZ, max_examples=MANY)
@given(data=st.data())
def test_damaged_legacy_checkpoint(originals, data):
    from reszoo.weights.convert import convert_state_dict, fit_state_dict, read_checkpoint

    original = originals.legacy.read_bytes()
    bad = data.draw(damaged(original))
    tried("damaged legacy .th", bad)
    with copy_of(originals.legacy) as path:
        path.write_bytes(bad)
        model = ResNet(ResNetConfig(**TINY_OVERRIDES))

        def read() -> Any:
            sd = fit_state_dict(convert_state_dict("akamaster", read_checkpoint(path)), model)
            return model.load_state_dict(sd)

        got = outcome(read, path)
        assert "weights_only" not in str(got), "torch's advice to unpickle the file reached the message"
        if not isinstance(got, ReszooError):  # no checksum in a legacy file: a flipped weight loads as it is
            assert set(model.state_dict()) == set(ResNet(ResNetConfig(**TINY_OVERRIDES)).state_dict())


# -- 3. random command lines -------------------------------------------------------------------

BAD_TEXT = ["-1", "0", "nan", "inf", "1e309", "x", "", " ", "true", "2,", ",", "3.5", "-", "é", "1,x", "none"]


def _opts(*specs: tuple[str, list[str]]) -> Any:
    """Lists of options drawn from ``specs`` (flag, good values), each value good or bad."""
    option = st.sampled_from(specs).flatmap(
        lambda spec: (
            st.tuples(st.just(spec[0]), st.sampled_from(spec[1] + BAD_TEXT)) if spec[1] else st.tuples(st.just(spec[0]))
        )
    )
    return st.lists(option, max_size=4).map(lambda opts: [part for opt in opts for part in opt])


def _train_options(paths: Any) -> list[tuple[str, list[str]]]:
    """The options of ``reszoo train`` and ``reszoo experiment`` the fuzzer draws, with good values."""
    return [
        ("--lr", ["0.01"]),
        ("--momentum", ["0.5"]),
        ("--iterations", ["2"]),
        ("--batch-size", ["2"]),
        ("--milestones", ["1", "1,2"]),
        ("--schedule", ["step", "plateau", "cosine"]),
        ("--device", ["cpu", "tpu", "cuda:9"]),
        ("--seed", ["3"]),
        ("--resume", [paths.emptydir, paths.afile, "/nonexistent/run"]),
        ("-M", ["num_classes=10", "zero_init_residual=maybe", "depths=", "colour=red", "=3", "widths=4,8"]),
        ("--gamma", ["0.5", "2"]),
        ("--weight-decay", ["0"]),
        ("--warmup-iters", ["1"]),
        ("--checkpoint-every", ["1"]),
        ("--amp", []),
        ("--nesterov", []),
        ("--data", ["cifar10", "mnist"]),
        ("--root", [paths.emptydir]),
    ]


@st.composite
def command_lines(draw, paths: Any) -> list[str]:
    """A command line of a real subcommand, with options drawn good or bad; runs are tiny when valid."""
    out = draw(st.sampled_from([paths.fresh(), paths.afile, paths.afile + "/sub", paths.emptydir, paths.fresh()]))
    command = draw(st.sampled_from(["list", "info", "train", "experiment", "bench", "download", "convert", "export"]))
    if command == "list":
        base = ["list", draw(st.sampled_from(["resnet2*", "plain2*", "vgg*", "", "[", "*50"]))]
        return base + draw(_opts(("--format", ["table", "json", "csv", "markdown", "yaml"]), ("--pretrained", [])))
    if command == "info":
        return ["info", draw(st.sampled_from(["resnet20", "resnet57", "", "resnet*", "hf-hub:x/y"]))]
    if command in ("train", "experiment"):
        tiny = [*TINY_ARGS, "--data", "synthetic", "--iterations", "1", "--batch-size", "4", "--no-progress"]
        tiny += ["--synthetic-eval-images", "8", "--eval-every", "0"]
        if command == "train":
            base = ["train", draw(st.sampled_from(["resnet20", "resnet21", "plain20", ""])), *tiny, "--out", out]
        else:
            base = ["experiment", "degradation", "--out", out, "--depths", draw(st.sampled_from(["8", "8,9", "x", ""]))]
            base += tiny[2:]  # experiment sets depths itself
        return base + draw(_opts(*_train_options(paths)))
    if command == "bench":
        base = ["bench", draw(st.sampled_from(["resnet20", "vgg*", ""]))]
        base += ["--device", "cpu", "--min-run-time", "0.01", "--batch-size", "2"]
        return base + draw(
            _opts(
                ("--mode", ["infer", "train", "both"]),
                ("--batch-size", ["1"]),
                ("--dtype", ["fp32", "tf32", "fp8"]),
                ("--channels-last", []),
                ("--compile", ["fastest"]),
                ("--json", [paths.fresh() + ".json", paths.emptydir, "/nonexistent/r.json"]),
                ("--csv", [paths.fresh() + ".csv", paths.emptydir]),
                ("--min-run-time", ["0.01"]),
                ("--peak-tflops", ["1"]),
                ("--compare", ["nothing"]),
                ("--input-size", []),
            )
        )
    if command == "download":
        return ["download", draw(st.sampled_from(["resnet20-cifar10", "nothing-such", "", "hf-hub:a/b"]))]
    if command == "convert":
        base = ["convert", draw(st.sampled_from(["resnet20-cifar10", "nothing-such", ""])), out]
        return base + draw(_opts(("--checkpoint", [paths.afile, "/nonexistent/x.th"]), ("--no-check-hash", [])))
    base = ["export", draw(st.sampled_from(["resnet57", "", "vgg"])), out]
    return base + draw(_opts(("--format", ["onnx", "tflite"]), ("--opset", ["7"]), ("--dynamic-batch", [])))


@pytest.fixture(scope="module")
def cli_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-cli")
    (root / "afile").write_text("not a folder")
    (root / "empty").mkdir()
    counter = iter(range(10**6))
    return types.SimpleNamespace(
        root=root,
        afile=str(root / "afile"),
        emptydir=str(root / "empty"),
        fresh=lambda: str(root / f"new{next(counter)}"),
    )


def run_cli(argv: list[str], capsys: Any) -> tuple[int, str]:
    """``main(argv)``: exit 0, 1 or 2; a failure is one ``reszoo ...: error:`` line, never a traceback."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: usage lines, then one error line
        code = exit_.code
    err = capsys.readouterr().err
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code:
        errors = [line for line in err.splitlines() if line.startswith("reszoo") and ": error: " in line]
        assert len(errors) == 1, (argv, err)
    return code, err


@pytest.mark.timeout(600)
@settings(FUZZ, max_examples=MANY)
@given(data=st.data())
def test_random_command_lines(data, cli_paths, capsys, monkeypatch):
    offline(monkeypatch, cli_paths.root)
    monkeypatch.chdir(cli_paths.root)  # a bad value may be a relative path: it lands here
    argv = data.draw(command_lines(cli_paths))
    tried("command line", argv)
    run_cli(argv, capsys)


# -- 4. writes interrupted at random points ----------------------------------------------------

WRITE_ERRNOS = [errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EROFS]


class _Faulty:
    """A file that takes ``budget`` more bytes, then fails as a full (or broken) disk does."""

    def __init__(self, file: Any, budget: int, code: int) -> None:
        self._file, self._budget, self._code = file, budget, code

    def write(self, data: Any) -> int:
        if len(data) > self._budget:
            self._file.write(data[: self._budget])
            self._budget = 0
            raise OSError(self._code, os.strerror(self._code))
        self._budget -= len(data)
        return self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> _Faulty:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


@contextlib.contextmanager
def fault(monkeypatch: Any, *, point: str, budget: int, code: int) -> Any:
    """Make the next atomic write fail: after ``budget`` bytes ("write"), at fsync, or at the rename."""
    from reszoo.utils import fileio

    real_open = builtins.open

    def faulty_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real_open(file, mode, *args, **kwargs)
        name = os.path.basename(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else ""
        if point == "write" and "w" in mode and name.startswith(".") and name.endswith(".tmp"):
            return _Faulty(f, budget, code)
        return f

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", faulty_open)
        m.setattr(io, "open", faulty_open)
        if point == "fsync":
            m.setattr(fileio.os, "fsync", fail)
        if point == "replace":
            m.setattr(fileio.os, "replace", fail)
        yield


def _write(writer: str, folder: Path, version: int) -> list[Path]:
    """Write ``version`` (0: the old content, 1: the new) with one of reszoo's writers; the files it writes."""
    from reszoo.bench import reporting
    from reszoo.train.runfolder import save_checkpoint, write_json

    torch.manual_seed(version)
    model = ResNet(ResNetConfig(**TINY_OVERRIDES))
    row = bench.BenchResult("tiny", "infer", "cpu", 2, (3, 8, 8), "fp32", False, None, False, runs=version)
    if writer == "run.json":
        write_json(folder / "run.json", {"version": version, "rows": list(range(500))})
        return [folder / "run.json"]
    if writer == "checkpoint.pt":
        ckpt = {"iteration": version, "model": model.state_dict(), "optimizer": {}, "errors": {}}
        save_checkpoint(folder / "checkpoint.pt", ckpt | {"plateau": {"best": 1.0, "bad": 0, "drops": 0}})
        return [folder / "checkpoint.pt"]
    if writer == "saved model":
        hub.save_pretrained(model, folder / "model")
        return [folder / "model" / "model.safetensors", folder / "model" / "config.json"]
    if writer == "bench.json":
        reporting.to_json([row] * 50, str(folder / "bench.json"), env={"version": version})
        return [folder / "bench.json"]
    reporting.to_csv([row] * 50, str(folder / "bench.csv"))
    return [folder / "bench.csv"]


WRITERS = ["run.json", "checkpoint.pt", "saved model", "bench.json", "bench.csv"]


@pytest.fixture(scope="module")
def new_contents(tmp_path_factory):
    """What each writer writes as version 1, written once without faults."""
    out = {}
    for writer in WRITERS:
        folder = tmp_path_factory.mktemp("new")
        out[writer] = [_content(f) for f in _write(writer, folder, 1)]
    return out


def _content(path: Path) -> Any:
    """A file's content: its bytes, or its tensors' digest for safetensors (whose header order varies)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        from reszoo.utils.fileio import tensors_digest

        return tensors_digest(load_file(path))
    return path.read_bytes()


@settings(FUZZ, max_examples=MANY)
@given(
    writer=st.sampled_from(WRITERS),
    point=st.sampled_from(["write", "write", "write", "fsync", "replace"]),
    budget=st.integers(0, 100_000),
    code=st.sampled_from(WRITE_ERRNOS),
)
def test_interrupted_writes_keep_the_old_file(tmp_path_factory, monkeypatch, new_contents, writer, point, budget, code):
    folder = tmp_path_factory.mktemp("write")
    files = _write(writer, folder, 0)
    old = [_content(f) for f in files]
    tried("interrupted write", (writer, point, budget, errno.errorcode[code]))
    with fault(monkeypatch, point=point, budget=budget, code=code):
        try:
            _write(writer, folder, 1)
        except FileWriteError as err:
            assert err.errno == code and "unchanged" in str(err)
            named = [f for f in files if str(f) in str(err)]
            assert len(named) == 1, f"the error names none of {files}: {err}"
            assert _content(named[0]) == old[files.index(named[0])], "the previous file was damaged"
        else:  # the fault came after the last byte (or at the fsync of a writer that does not sync)
            assert point != "replace"
    for f, before, after in zip(files, old, new_contents[writer], strict=True):
        assert _content(f) in (before, after), f"{f.name} is neither the old file nor the new one"
    assert not list(folder.rglob("*.tmp")), "a temporary file was left"


def test_a_rust_writer_failing_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    """safetensors reports the OS error only in its message: "... (os error 28)"."""
    import safetensors.torch

    model = ResNet(ResNetConfig(**TINY_OVERRIDES))
    hub.save_pretrained(model, tmp_path)
    old = (tmp_path / "model.safetensors").read_bytes()

    def full(tensors: Any, filename: str, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"partial")
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    tried("interrupted write", ("model.safetensors", "rust", errno.ENOSPC))
    with pytest.raises(FileWriteError, match=r"Cannot write .*model.safetensors: No space left on device") as exc:
        hub.save_pretrained(model, tmp_path)
    assert exc.value.errno == errno.ENOSPC
    assert (tmp_path / "model.safetensors").read_bytes() == old


# -- 5. hostile folders: tensors of any dtype and value, image trees of links, pipes and odd files ----

DTYPES_IN_FILES = [torch.float16, torch.bfloat16, torch.float64, torch.float32, torch.int32, torch.int64, torch.bool]
DTYPES_IN_FILES += [torch.uint8, torch.int8]
NOT_FINITE = [None, float("nan"), float("inf"), -float("inf"), 1e300]


@settings(FUZZ, max_examples=MANY)
@given(data=st.data())
def test_hostile_tensors_in_a_saved_folder(originals, data):
    from safetensors.torch import load_file, save_file

    tensors = load_file(originals.saved / "model.safetensors")
    keys = data.draw(st.lists(st.sampled_from(sorted(tensors)), min_size=1, max_size=3, unique=True))
    changes = []
    for key in keys:
        dtype, value = data.draw(st.sampled_from(DTYPES_IN_FILES)), data.draw(st.sampled_from(NOT_FINITE))
        t = tensors[key].double() if value is not None else tensors[key]
        if value is not None and t.numel():
            t = t.flatten().index_fill(0, torch.tensor([data.draw(st.integers(0, t.numel() - 1))]), value)
        tensors[key] = t.reshape(tensors[key].shape).to(dtype)
        changes.append((key, str(dtype), value))
    tried("hostile tensors in model.safetensors", changes)
    with copy_of(originals.saved) as folder:
        save_file(tensors, folder / "model.safetensors")
        got = outcome(lambda: pretrained.load_pretrained(str(folder)), folder / "model.safetensors")
        if isinstance(got, ReszooError):
            assert any(k in str(got) for k in keys) and "model.safetensors" in str(got), got
            return
        state = got.state_dict()  # loaded: every weight float32 and finite, every counter int64
        assert all(
            t.dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.float32) for k, t in state.items()
        )
        assert all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())


IMAGE_ENTRIES = ["png", "jpg", "png16", "text", "bomb", "pipe", "broken", "loop", "up", "twin"]


def _write_entry(folder: Path, i: int, kind: str) -> bool:
    """One entry of a hostile class folder; True when it is a new image that must be counted once."""
    import struct
    import zlib

    import PIL.Image

    path = folder / f"e{i}.{'jpg' if kind == 'jpg' else 'png'}"
    if kind in ("png", "jpg"):
        PIL.Image.new("RGB", (8, 8), (i * 20 % 256, 50, 90)).save(path)
    elif kind == "png16":
        PIL.Image.fromarray(np.full((8, 8), 1000 * i, dtype=np.uint16)).save(path)
    elif kind == "text":
        path.write_text("not an image")
    elif kind == "bomb":  # a header claiming 900 megapixels, and almost no data
        ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 2, 0, 0, 0)
        chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))  # noqa: E731
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    elif kind == "pipe":
        os.mkfifo(path)
    elif kind == "broken":
        os.symlink("/nonexistent/image.png", path)
    elif kind == "loop":
        os.symlink(".", folder / f"loop{i}")
    elif kind == "up":
        os.symlink("..", folder / f"up{i}")  # the root: every class again
    elif kind == "twin":  # a second name for the first image: counted once
        first = sorted(p for p in folder.iterdir() if p.suffix in (".png", ".jpg") and p.is_file())
        if first:
            os.symlink(first[0].name, path)
    return kind in ("png", "jpg", "png16")


@pytest.mark.timeout(120, method="thread")  # a pipe opened by mistake would block forever
@settings(FUZZ, max_examples=MANY // 2)
@given(data=st.data())
def test_hostile_image_folders(tmp_path_factory, data):
    import warnings

    from reszoo.data.imagefiles import find_images
    from reszoo.data.imagefolder import ImageFiles, scan_folder

    root = tmp_path_factory.mktemp("hostile-images")
    expected = {}
    for cls in ("a", "b"):
        (root / cls).mkdir()
        kinds = ["png", *data.draw(st.lists(st.sampled_from(IMAGE_ENTRIES), max_size=6))]
        expected[cls] = sum(_write_entry(root / cls, i, kind) for i, kind in enumerate(kinds))
        tried("hostile image folder", (cls, kinds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = scan_folder(root, split="all")
        assert split.class_counts() == expected
        for i in range(len(split.samples)):
            image, _ = ImageFiles(split)[i]
            assert image.mode == "RGB" and image.size == (8, 8)
        assert len(find_images([root])) >= sum(expected.values())


# -- 6. reports that would replace a user's file (issue 22) -------------------------------------

# The options of each command that write a report (reszoo.cli._common.check_output_path is the one rule).
REPORTS = [("predict", "json"), ("evaluate", "json"), ("diagnose", "json"), ("bench", "json"), ("bench", "csv")]
REPORTS += [("bench", "plot")]


@st.composite
def user_file(draw: Any) -> bytes:
    """What a user may have where a report is asked for: photos, notes, JSON and CSV of their own, anything."""
    kind = draw(st.sampled_from(["png", "jpeg", "json", "csv", "text", "bytes"]))
    tail = draw(st.binary(max_size=64))
    if kind == "png":
        return b"\x89PNG\r\n\x1a\n" + tail
    if kind == "jpeg":
        return b"\xff\xd8\xff\xe0" + tail
    if kind == "json":
        keys = st.text(max_size=8).filter(lambda k: k != "report")
        value = draw(st.dictionaries(keys, st.integers() | st.text(max_size=8), max_size=4))
        if draw(st.booleans()):  # a report of reszoo, but of another command
            value["report"] = f"reszoo {draw(st.sampled_from(['train', 'list', 'export', 'predict2']))}"
        return json.dumps(value).encode()
    if kind == "csv":
        header = draw(st.lists(st.text("abcdefghij_", min_size=1, max_size=8), min_size=1, max_size=5))
        return (",".join(header) + "\n1,2\n").encode()
    return draw(st.text(max_size=64)).encode() if kind == "text" else tail


@settings(FUZZ, max_examples=MANY)
@given(content=user_file(), report=st.sampled_from(REPORTS), where=st.sampled_from(["file", "input", "run", "model"]))
def test_a_report_never_replaces_a_users_file(tmp_path_factory, content, report, where):
    from reszoo.cli._common import check_output_path
    from reszoo.errors import InvalidArgumentError

    command, option = report
    folder = tmp_path_factory.mktemp("outputs")
    if where == "run":
        (folder / "run.json").write_text("{}")
        (folder / "recipe.json").write_text("{}")
    if where == "model":
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"")
    path = folder / ("new.out" if where in ("run", "model") else "mine.out")
    if where in ("file", "input"):
        path.write_bytes(content)
    inputs = [path] if where == "input" else []
    tried("report over a user's file", (command, option, where, content[:64]))
    with pytest.raises(InvalidArgumentError) as exc:
        check_output_path(option, str(path), command=command, inputs=inputs, stdout=option == "json")
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    if where in ("file", "input"):
        assert path.read_bytes() == content, "the user's file changed"
    else:
        assert not path.exists()
