"""``reszoo download`` and ``reszoo convert``: fill the weights cache, turn an original checkpoint into files."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fill the weights cache ahead of going offline")
    p.add_argument("names", nargs="+", help="weight names, aliases, wildcards or hf-hub:owner/repo")
    p.add_argument("--force", action="store_true", help="download (and convert) again even if cached")
    p.set_defaults(func=run_download)

    p = sub.add_parser(
        "convert", help="turn an entry's original checkpoint into model.safetensors + config.json (ready to publish)"
    )
    p.add_argument("name", help="a weight entry, e.g. resnet20-cifar10")
    p.add_argument("output_dir", help="where model.safetensors and config.json go")
    p.add_argument("--checkpoint", default=None, help="a local copy of the original file (default: download it)")
    p.add_argument("--no-check-hash", action="store_true", help="skip the sha256 check of --checkpoint")
    p.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="also upload to this Hub repo")
    p.set_defaults(func=run_convert)


def _expand(names: list[str]) -> list[str]:
    """Weight names and hf-hub: repos, wildcards expanded; every name is checked before any download."""
    from reszoo.errors import InvalidArgumentError
    from reszoo.weights.catalog import get_weights, list_pretrained
    from reszoo.weights.hub import HF_PREFIX, parse_hub_name

    out = []
    for name in names:
        if name.startswith(HF_PREFIX):
            parse_hub_name(name)
            out.append(name)
        elif any(c in name for c in "*?["):
            matches = list_pretrained(name)
            if not matches:
                raise InvalidArgumentError(f"No weight entry matches {name!r}; see 'reszoo list --pretrained'.")
            out += matches
        else:
            out.append(get_weights(name).name)  # fails with the closest names
    return list(dict.fromkeys(out))


def run_download(args: argparse.Namespace) -> int:
    from reszoo.weights.pretrained import download

    for name in _expand(args.names):
        path = download(name, force=args.force)
        print(f"{name}: {path}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from reszoo.weights.pretrained import convert_checkpoint, load_pretrained
    from reszoo.weights.publish import check_repo_id, push_to_hub

    if args.push_to_hub:
        check_repo_id(args.push_to_hub)  # before converting, not after
    out = convert_checkpoint(args.name, args.output_dir, checkpoint=args.checkpoint, check_hash=not args.no_check_hash)
    print(f"{args.name}: wrote {out / 'model.safetensors'} and {out / 'config.json'}")
    if args.push_to_hub:
        url = push_to_hub(load_pretrained(str(out)), args.push_to_hub)
        print(f"pushed to {url}")
    return 0
