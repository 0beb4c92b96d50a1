"""The networks: parts (stems, shortcuts, blocks, attention), the network assembled from a config, the registry.

``parts`` -> ``resnet`` (``ResNetConfig``, ``make_stages``, ``ResNet``) -> ``registry`` (a name
becomes a config) -> ``zoo`` (the paper's named architectures) and ``family`` (the later papers'
networks from the same parts) -> ``_factory`` (``create_model``, and the one builder that loads
weights when asked). ``features`` makes backbones, ``summary`` counts parameters and MACs,
``reference`` is an independently written CIFAR ResNet used as an oracle.

Importing any of these registers the built-in architectures (as timm's ``models`` package does).
"""

from reszoo.models import family, zoo  # noqa: F401  (registers the built-in architectures)
