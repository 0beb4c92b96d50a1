"""Subcommands of the ``reszoo`` CLI: one module each, every module exposes ``register(subparsers)``.

A command module imports only argparse and the standard library at its top; the library is
imported inside ``register`` (cheap parts, for choices) and the handlers, so that building the
parser for ``reszoo --help`` loads no trainer, benchmark, Hub client or torchvision code.
"""
