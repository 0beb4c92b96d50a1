"""Pretrained weights: the catalog, and everything between a name and a loaded model.

``records`` and ``catalog`` (the records and the entries, as plain data) -> ``cache`` (bytes on
disk, verified) and ``hub`` (the reszoo folder format, Hugging Face Hub downloads) -> ``convert``
(other projects' key layouts) -> ``untrusted`` (what a folder from elsewhere may ask for) ->
``pretrained`` (``load_pretrained``: resolve, fetch and verify, convert, build, load) and
``publish`` (model cards, ``push_to_hub``).

This face offers the records' and the catalog's names: ``reszoo.weights.Weights``, ``reszoo.weights.DEFAULT_WEIGHTS``.
"""

from reszoo.weights.catalog import (
    DEFAULT_WEIGHTS,
    WEIGHTS,
    default_weights,
    find_by_repo,
    get_weights,
    list_pretrained,
    pretrained_table,
)
from reszoo.weights.records import HubSource, LocalSource, Metric, Source, UrlSource, Weights, WeightsInfo

__all__ = [
    "DEFAULT_WEIGHTS",
    "WEIGHTS",
    "HubSource",
    "LocalSource",
    "Metric",
    "Source",
    "UrlSource",
    "Weights",
    "WeightsInfo",
    "default_weights",
    "find_by_repo",
    "get_weights",
    "list_pretrained",
    "pretrained_table",
]
