"""Publishing to the Hugging Face Hub: a model card and a push in the reszoo folder format.

``push_to_hub`` writes what :func:`reszoo.weights.hub.save_pretrained` writes, plus a ``README.md`` model
card, and uploads it in one commit; anyone can then ``load_pretrained("hf-hub:owner/name")``. With
no network it fails with one :class:`~reszoo.errors.HubUnreachableError` before anything is sent.

Example::

    import reszoo
    reszoo.push_to_hub(model, "someone/resnet56-cifar10")           # weights, config.json, README.md
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from reszoo.data.constants import HUB_DATASET_IDS
from reszoo.errors import HubUnreachableError, InvalidArgumentError
from reszoo.utils.checks import check_bool, check_str, type_error, value_error
from reszoo.weights.cache import is_offline
from reszoo.weights.hub import architecture_of, config_of, hub_endpoint, is_unreachable, save_pretrained, weights_of
from reszoo.weights.records import WeightsInfo

__all__ = ["check_repo_id", "model_card", "push_to_hub"]


def _card_weights(w: WeightsInfo, same_head: bool) -> list[str]:
    """The model card's "Weights" section."""
    pre = w.preprocessing()
    lines = ["", "## Weights", "", f"- name: `{w.name}`", f"- origin: {w.origin}", f"- license: {w.license}"]
    lines.append(
        f"- pre-processing: resize {pre['resize_size']}, crop {pre['crop_size']}, {pre['interpolation']}, "
        f"mean {tuple(pre['mean'])}, std {tuple(pre['std'])}"
    )
    if w.notes:
        lines.append(f"- notes: {w.notes}")
    if w.metrics and same_head:
        lines += ["", "| dataset | metric | value | source |", "|---|---|---|---|"]
        lines += [f"| {m.dataset} | {m.name} | {m.value} | {m.source} |" for m in w.metrics]
    return lines


def model_card(model: nn.Module, repo_id: str, *, weights: WeightsInfo | None = None) -> str:
    """A Hub model card (README.md with YAML metadata) describing the model and its weights."""
    from huggingface_hub import ModelCard, ModelCardData

    config = config_of(model, "model_card")
    w = weights_of(model, weights)
    arch = architecture_of(config) or "custom ResNet"
    same_head = w is not None and w.num_classes == config.num_classes
    meta = ModelCardData(
        library_name="reszoo",
        pipeline_tag="image-classification",
        tags=["resnet", "reszoo"],
        license=w.license if w is not None else None,
        datasets=[HUB_DATASET_IDS[w.dataset]] if same_head and w.dataset in HUB_DATASET_IDS else None,
    )
    lines = [
        f"# {repo_id}",
        "",
        f"A {arch} (depth {config.depth}, shortcut option {config.shortcut}, {config.num_classes} classes) "
        "in the reszoo format: `model.safetensors` + `config.json` (rebuilds the network without code).",
        "",
        "```python",
        "import reszoo",
        f'model = reszoo.load_pretrained("hf-hub:{repo_id}")',
        "preprocess = model.pretrained_weights.transforms()",
        "```",
    ]
    if w is not None:
        lines += _card_weights(w, same_head)
    body = "\n".join(lines) + "\n"
    return str(ModelCard(f"---\n{meta.to_yaml()}\n---\n\n{body}"))


def check_repo_id(repo_id: Any) -> str:
    """Refuse a Hub repo id that is not ``"owner/name"`` (or ``"name"``), before anything is written or sent."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    expected = "'owner/name' (or 'name')"
    check_str("repo_id", repo_id, what=expected)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise InvalidArgumentError(f"{value_error('repo_id', repo_id, expected)} {err}") from None
    return repo_id


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    weights: WeightsInfo | None = None,
) -> str:
    """Publish a model to a Hub repo in the :func:`save_pretrained` format, with a model card.

    Creates the repo if needed and uploads ``model.safetensors``, ``config.json`` and ``README.md``
    in one commit. Anyone can then ``load_pretrained("hf-hub:" + repo_id)``.

    Args:
        model: a :class:`~reszoo.ResNet`.
        repo_id: ``"owner/name"``.
        private: create the repo private (only when it is created).
        token: a Hub token; default: the logged-in one (``hf auth login`` / ``HF_TOKEN``).
        revision: the branch to commit to.
        commit_message: default ``"Upload {name} with reszoo"``.
        create_pr: open a pull request instead of committing directly.
        weights: the weights record to describe; default ``model.pretrained_weights``.

    Returns:
        The URL of the commit (or pull request).

    Raises:
        HubUnreachableError: offline (``HF_HUB_OFFLINE``) or the Hub cannot be reached; nothing
            was created or uploaded.
    """
    from huggingface_hub import HfApi

    from reszoo._version import __version__

    check_repo_id(repo_id)
    if private is not None and not isinstance(private, bool):
        raise type_error("private", private, "True, False or None")
    check_bool("create_pr", create_pr)
    for key, value in (("token", token), ("revision", revision), ("commit_message", commit_message)):
        check_str(key, value, optional=True)
    w = weights_of(model, weights)
    with tempfile.TemporaryDirectory(prefix="reszoo-push-") as tmp:
        # Written (and the model checked) before the repo is created: a bad model creates nothing.
        save_pretrained(model, tmp, weights=w)
        Path(tmp, "README.md").write_text(model_card(model, repo_id, weights=w), encoding="utf-8")
        api = HfApi(endpoint=hub_endpoint(), token=token, library_name="reszoo", library_version=__version__)
        with _reachable(repo_id):
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=tmp,
                repo_type="model",
                revision=revision,
                create_pr=create_pr,
                commit_message=commit_message or f"Upload {w.name if w else 'model'} with reszoo",
            )
    return str(getattr(info, "pr_url", None) or getattr(info, "commit_url", info))


@contextlib.contextmanager
def _reachable(repo_id: str) -> Iterator[None]:
    """Turn "no connection" inside the block into one :class:`HubUnreachableError`."""
    try:
        yield
    except Exception as err:
        if not is_unreachable(err):
            raise
        why = "HF_HUB_OFFLINE is set" if is_offline() else f"{type(err).__name__}: {err}"
        raise HubUnreachableError(
            f"Cannot push to {repo_id}: the Hugging Face Hub at {hub_endpoint() or 'https://huggingface.co'} "
            f"cannot be reached ({why}). Nothing was uploaded; try again when online."
        ) from None
