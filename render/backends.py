"""Where a run's units are rendered: worker processes on this machine (`--backend local`, the default)
or Ray actors (`--backend ray`, `render/ray_backend.py`), for `run` and the queue's `worker` alike.

This module only reads the options; Ray is imported when it is chosen.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, ContextManager

from render.errors import SpecError

if TYPE_CHECKING:
    from render.pool import Cluster

__all__ = ["add_backend_options", "open_cluster"]


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local worker processes (default), or Ray actors (pip install 'sefa-render[ray]')")
    parser.add_argument("--address", help="with --backend ray: the cluster to join, e.g. HEAD:6379 (default: "
                                          "$RAY_ADDRESS, else a local Ray instance for this run)")


def open_cluster(args: argparse.Namespace) -> ContextManager[Cluster | None]:
    """The Ray cluster the options ask for (joined or started when first used), or None for local workers."""
    if args.backend == "local":
        if args.address:
            raise SpecError(f"--address {args.address}: only used with --backend ray")
        return contextlib.nullcontext()
    from render.ray_backend import ray_cluster

    return ray_cluster(args.address, args.workers)
