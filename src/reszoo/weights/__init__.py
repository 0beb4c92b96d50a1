"""Pretrained weights: the catalog, and everything between a name and a loaded model.

``catalog`` (the entries as plain data) -> ``cache`` (bytes on disk, verified) and ``hub`` (the
reszoo folder format, Hugging Face Hub downloads) -> ``convert`` (other projects' key layouts) ->
``pretrained`` (``load_pretrained``: resolve, fetch and verify, convert, build, load) and
``publish`` (model cards, ``push_to_hub``).

This face offers the catalog's names: ``reszoo.weights.Weights``, ``reszoo.weights.DEFAULT_WEIGHTS``.
"""

from reszoo.weights.catalog import (
    DEFAULT_WEIGHTS,
    WEIGHTS,
    HubSource,
    LocalSource,
    Metric,
    Source,
    UrlSource,
    Weights,
    default_weights,
    find_by_repo,
    get_weights,
    list_pretrained,
    pretrained_table,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "WEIGHTS",
    "HubSource",
    "LocalSource",
    "Metric",
    "Source",
    "UrlSource",
    "Weights",
    "default_weights",
    "find_by_repo",
    "get_weights",
    "list_pretrained",
    "pretrained_table",
]
