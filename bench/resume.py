"""What verifying finished outputs costs on resume, side by side in one run.

    .venv/bin/python bench/resume.py [--output-root DIR]

Renders jobs/demo.yaml once (skipped when DIR already holds it), then times,
alternating and repeated, the journal's check of every finished unit with
content verification (size + sha256 of every file, what a run does) and with
sizes only (what resume did before), and a whole `sefa-render run` that finds
everything finished. Files are in the page cache after the first pass, so
the per-byte cost is the hash's; on a cold disk reading the bytes dominates.
Also times the candidate hashes on 64 MiB in memory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from render.journal import Journal  # noqa: E402
from render.plan import WORK_DIR  # noqa: E402

REPEATS = 7


def run_demo(output_root: Path) -> float:
    """Wall time of `sefa-render run jobs/demo.yaml` into output_root."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "render", "run", str(REPO / "jobs" / "demo.yaml"), "--output-root",
                    str(output_root), "--no-progress"], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - started


def hash_rates(size: int = 64 << 20) -> dict[str, float]:
    data = os.urandom(size)
    rates = {}
    for name in ("sha256", "blake2b", "sha512", "md5"):
        started = time.perf_counter()
        hashlib.new(name, data).digest()
        rates[name] = size / (time.perf_counter() - started) / 1e6
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-root", type=Path, help="where the demo is (or is rendered); default a temp dir")
    args = parser.parse_args()
    output_root = args.output_root or Path(tempfile.mkdtemp(prefix="sefa-render-resume-"))
    render_s = run_demo(output_root)
    folder = output_root / "demo"
    journal = Journal(folder / WORK_DIR / "journal.jsonl", folder)
    finished = journal.finished()
    files = [folder / file for result in finished.values() for file in result["files"]]
    size = sum(path.stat().st_size for path in files)

    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(REPEATS):
        for verify in (True, False):
            started = time.perf_counter()
            assert len(journal.finished(verify_content=verify)) == len(finished)
            times[verify].append(time.perf_counter() - started)
    verified, sizes_only = (statistics.median(times[v]) for v in (True, False))
    rerun = statistics.median(run_demo(output_root) for _ in range(3))

    print(f"demo job: {len(finished)} units, {len(files)} files, {size / 1e6:.1f} MB "
          f"(the first `run` here took {render_s:.1f} s); median of {REPEATS}, page cache warm")
    print("| resume check of every finished unit | time (ms) |\n|---|---:|")
    print(f"| sizes only (before) | {sizes_only * 1e3:.1f} |")
    print(f"| size + sha256 of every file (now) | {verified * 1e3:.1f} |")
    cost = verified - sizes_only
    print(f"| difference (per MB) | {cost * 1e3:.1f} ({cost * 1e3 / (size / 1e6):.2f}) |")
    print(f"| `sefa-render run` with everything finished, end to end (median of 3) | {rerun * 1e3:.0f} |")
    print("\nhash throughput in memory (MB/s): " + ", ".join(f"{name} {rate:.0f}" for name, rate in hash_rates().items()))


if __name__ == "__main__":
    main()
