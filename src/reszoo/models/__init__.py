"""The networks: parts (stems, shortcuts, blocks), the network assembled from a config, the registry.

``parts`` -> ``resnet`` (``ResNetConfig``, ``make_stages``, ``ResNet``) -> ``registry`` (a name
becomes a config) -> ``zoo`` (the named architectures) -> ``_factory`` (``create_model``, and the
one builder that loads weights when asked). ``features`` makes backbones, ``summary`` counts
parameters and MACs, ``reference`` is an independently written CIFAR ResNet used as an oracle.

Importing any of these registers the built-in architectures (as timm's ``models`` package does).
"""

from reszoo.models import zoo  # noqa: F401  (registers the built-in architectures)
