"""The job queue: submit jobs now, render them later with workers that share one local SQLite file.

- `store`: the SQLite file, its states and leases (no torch: reading the queue is fast);
- `submit`: validate and freeze job specs, queue them;
- `worker`: the worker pool fed from the queue (imports torch);
- `report`, `commands`: what the CLI prints, and its subcommands.
"""
