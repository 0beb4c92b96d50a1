"""Run this first on a GPU: a few seconds that say whether reszoo's benchmark numbers can be trusted.

    python benchmarks/gpu_check.py                 # the best device present
    python benchmarks/gpu_check.py --device cuda:1
    python benchmarks/gpu_check.py --no-compile    # skip the torch.compile check (the slow one)

Checks that fp32 is IEEE fp32 (and tf32 is TF32), that a large matmul reaches a plausible fraction
of the device's peak, that synchronised and unsynchronised timings differ as a GPU's should, that
compiled rows really compile, that CUDA-graph training runs under autocast, and that peak memory is
reported (reszoo.bench.selfcheck). On a CPU the CUDA checks are skipped, each with its reason.
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps (default: the best present)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile check")
    p.add_argument("--size", type=int, default=None, help="matmul size (default 8192 on CUDA, 512 elsewhere)")
    args = p.parse_args(argv)
    if args.size is not None and args.size < 1:
        p.error(f"--size must be an integer >= 1, received {args.size}")

    from reszoo.bench.machine import environment
    from reszoo.bench.selfcheck import format_checks, self_check
    from reszoo.errors import UsageError
    from reszoo.utils.devices import resolve_device

    try:
        device = resolve_device(args.device)
    except UsageError as err:
        p.error(f"--device: {err}")
    env = environment(device)
    keys = ("device_count", "driver", "cuda", "torch")
    facts = ", ".join(f"{k} {env[k]}" for k in keys if env.get(k) is not None)
    print(f"{device}: {env['device_name']} ({facts})", flush=True)
    checks = self_check(device, compile=not args.no_compile, size=args.size)
    print(format_checks(checks))
    return 1 if any(c.status == "fail" for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
