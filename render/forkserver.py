"""Start the fork server that worker processes are forked from, as early as possible.

Workers are not plain forks of the coordinator: torch's thread pools do not
survive a fork of a process that has used them. Instead a fork server imports
torch and our modules once, never runs a torch op, and forks each worker from
that clean state: one import of torch instead of one per worker. Importing
torch takes over a second, so the CLI starts the server before it imports
torch itself, and the two imports run side by side.

This module imports nothing heavy, on purpose.
"""

import multiprocessing
import multiprocessing.forkserver

__all__ = ["start_fork_server", "WORKER_MODULE"]

WORKER_MODULE = "render.pool"  # what every worker needs, preloaded in the server


def start_fork_server() -> None:
    """Start the server (once; later calls do nothing) with the worker modules preloaded."""
    multiprocessing.set_forkserver_preload([WORKER_MODULE])
    multiprocessing.forkserver.ensure_running()
