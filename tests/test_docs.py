"""Every Python block of README.md and docs/*.md runs as written (issue 22), as doctest runs a file.

Each page's ```` ```python ```` blocks run in order in one namespace, in a temporary working
directory, offline (``HF_HUB_OFFLINE=1``, a private ``RESZOO_CACHE``). What a reader is assumed to
have is there: the original ResNet-20/56 checkpoints of the ``resnet20-cifar10`` and
``resnet56-cifar10`` entries in the cache (from ``../shared/data``, beside the checkout, or
``$RESZOO_SHARED_DATA``), ``resnet20-12fca82f.th`` in the working directory, ``photos/``, a
small image folder of three classes (``photos/train/<class>/``, ``photos/val/<class>/``), and two
single images, ``cat.jpg`` and ``dog.png`` (PIL-drawn shapes, as the folder's). ``HOME`` is a
temporary folder too, so a page's ``~/data`` is the test's own.

A block that cannot run here says so in its first line, visible to readers too::

    # needs: network (CIFAR-10 is downloaded)
    # needs: gpu
    # needs: network, gpu (the Hub's resnet50 weights, on CUDA)

``network``: a download (datasets, Hub-only weights, a GitHub repository) or data that must first be
downloaded; ``gpu``: a CUDA device. A ``gpu`` block runs where CUDA is present; a ``network`` block
never runs here. Any other need is refused, so a typo cannot skip a block. A block that is skipped
leaves nothing in the namespace: the blocks after it must not need its names.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# The shared data folder: $RESZOO_SHARED_DATA, else shared/data beside the checkout, else inside it.
SHARED = next(
    (p for p in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if p.is_dir()),
    ROOT.parent / "shared" / "data",
)
SHARED = Path(os.environ["RESZOO_SHARED_DATA"]) if os.environ.get("RESZOO_SHARED_DATA") else SHARED
# The original checkpoints a page may load by entry name (the cache is filled with them) or by file.
CHECKPOINTS = {
    "resnet20-cifar10": "akamaster-resnet20-12fca82f.th",
    "resnet56-cifar10": "akamaster-resnet56-4bfd9763.th",
}
NEEDS = {"network": "needs the network", "gpu": "needs a CUDA device"}
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_NEEDS = re.compile(r"#\s*needs:\s*(?P<what>[a-z]+(?:\s*,\s*[a-z]+)*)\s*(?:\((?P<why>.*)\))?\s*")
# Pages whose blocks take more than about 10 s on 2 CPU cores (torch.compile, ONNX export, a fine-tune).
SLOW = {"README.md", "benchmarks.md", "ecosystem.md", "export.md", "finetune.md", "training.md"}


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the block's first code line
    code: str
    needs: frozenset[str]


def blocks(path: Path) -> list[Block]:
    """The ```python blocks of a page, with the needs their first line declares."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        code = match.group(1)
        first = code.split("\n", 1)[0].strip()
        needs: frozenset[str] = frozenset()
        if first.startswith("#") and "needs" in first:
            parsed = _NEEDS.fullmatch(first)
            assert parsed, (
                f"{path.name}: a needs line reads '# needs: network' or '# needs: network, gpu'; got {first!r}"
            )
            needs = frozenset(n.strip() for n in parsed["what"].split(","))
            unknown = sorted(needs - set(NEEDS))
            assert not unknown, f"{path.name}: unknown need {unknown} in {first!r}; known: {sorted(NEEDS)}"
        found.append(Block(path.name, text[: match.start(1)].count("\n") + 1, code, needs))
    return found


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WITH_CODE = [p for p in PAGES if blocks(p)]


def _unmet(block: Block) -> list[str]:
    have = {"gpu": torch.cuda.is_available(), "network": False}
    return [NEEDS[n] for n in sorted(block.needs) if not have[n]]


@pytest.fixture
def reader(tmp_path, monkeypatch):
    """A working directory with what the pages assume a reader has, offline."""
    from huggingface_hub import constants

    sys.path.insert(0, str(Path(__file__).parent))
    from _images import draw_shape, make_image_folder
    from reszoo.models import registry
    from reszoo.weights.cache import original_path
    from reszoo.weights.catalog import get_weights

    # A page may register a model (docs/parts.md): it stays that page's.
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_CONFIGS", dict(registry._CONFIGS))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("RESZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # "~/data" of a page is the test's own
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if not all((SHARED / f).is_file() for f in CHECKPOINTS.values()):
        pytest.skip(f"the original ResNet-20/56 checkpoints are not in {SHARED} (set RESZOO_SHARED_DATA)")
    for entry, file in CHECKPOINTS.items():
        cached = original_path(get_weights(entry))  # as a download would have left it
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / file, cached)
        shutil.copyfile(SHARED / file, work / cached.name)
    make_image_folder(work / "photos", per_class=22, val_per_class=4)  # 66 training images: one batch of 64
    rng = random.Random(0)
    for name, shape in (("cat.jpg", "circle"), ("dog.png", "square")):  # the single images the pages predict
        draw_shape(shape, size=48, rng=rng).save(work / name)
    return work


def run_page(page: Path) -> dict[str, list[str]]:
    """Run the page's blocks in order in one namespace; returns the blocks run and skipped (with reasons)."""
    namespace: dict = {"__name__": f"docs:{page.name}"}
    done: dict[str, list[str]] = {"ran": [], "skipped": []}
    for block in blocks(page):
        where = f"{block.page}:{block.line}"
        unmet = _unmet(block)
        if unmet:
            done["skipped"].append(f"{where} ({', '.join(unmet)})")
            continue
        start = time.perf_counter()
        try:
            # A block may show a warning on purpose (a new head, a small calibration set): the reader
            # sees it; the test records it rather than printing it after a green run.
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 (the docs are ours)
        except Exception as err:
            pytest.fail(f"{where}: the block raised {type(err).__name__}: {err}", pytrace=False)
        done["ran"].append(f"{where} ({time.perf_counter() - start:.1f} s)")
    return done


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=pytest.mark.slow, id=p.name) if p.name in SLOW else pytest.param(p, id=p.name)
        for p in WITH_CODE
    ],
)
def test_every_python_block_of_a_page_runs(page, reader):
    done = run_page(page)
    print(f"{page.name}: ran {done['ran']}; skipped {done['skipped']}")  # shown with -s
    if not done["ran"]:
        pytest.skip(f"every block of {page.name} is marked: {done['skipped']}")


def test_the_needs_marker_is_read_and_a_typo_is_refused(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```python\n# needs: network, gpu (the Hub, on CUDA)\nx = 1\n```\n\n```python\nprint(1)\n```\n",
        encoding="utf-8",
    )
    assert [(b.line, b.needs) for b in blocks(page)] == [(2, {"network", "gpu"}), (7, frozenset())]
    page.write_text("```python\n# needs: netwrok\nx = 1\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"unknown need \['netwrok'\]"):
        blocks(page)
    page.write_text("```python\nundefined_name\n```\n", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match=r"page.md:2: the block raised NameError"):
        run_page(page)
