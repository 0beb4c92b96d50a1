"""Why does my ResNet do worse than the paper's? A user's model, recipe and pre-processing set
beside a reszoo reference.

``reszoo.diagnose(model, "resnet56", optimizer=..., scheduler=..., epochs=..., train_transform=...,
eval_transform=...)`` runs the model once, reads what runs as a ResNet, and names every
difference from the reference, its recipe and its pre-processing as a :class:`Finding` with a
stable id (:data:`FINDINGS`), evidence and a fix. :func:`compare` sets two networks side by
side, block by block.

One module per job: ``trace`` (one forward pass recorded by hooks and a torch function mode) ->
``structure`` (read as stem, blocks, stages, head) -> ``architecture``, ``layers``,
``initialisation``, ``recipe``, ``schedule``, ``pipeline``/``preprocessing`` (the findings) ->
``findings`` (the id table, ``Finding``, ``Diagnosis``) -> ``report``; ``comparison`` is
``--compare``; ``reference`` holds the reference values (all from reszoo's registry, recipes and
constants), ``specs`` loads ``FILE.py:NAME``, ``api`` is :func:`diagnose`.

This face offers the names below, each imported on first use.

Example:
    >>> import reszoo
    >>> print(reszoo.diagnose(reszoo.create_model("resnet20"), "resnet20").ids())
    set()
"""

from reszoo.utils.lazy import lazy_face

_NAMES = {
    "diagnose": "reszoo.diagnosis.api",
    **dict.fromkeys(("compare", "Comparison"), "reszoo.diagnosis.comparison"),
    **dict.fromkeys(("FINDINGS", "Diagnosis", "Finding", "FindingSpec"), "reszoo.diagnosis.findings"),
    "load_object": "reszoo.diagnosis.specs",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_face(__name__, _NAMES)
