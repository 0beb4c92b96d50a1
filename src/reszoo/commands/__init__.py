"""Subcommands of the ``reszoo`` CLI: one module each, every module exposes ``register(subparsers)``."""
