"""Same job, same pixels: rendering in parallel processes on a busy CPU changes nothing before encoding.

Issue 8: videos differed from run to run on a loaded machine. The cause was
the encoder (see render/sinks/video.py and test_video.py); this test pins
the other half of the claim, that synthesis, resizing, 8-bit conversion,
labels and the hand-off to the writer thread give the same arrays whatever
the timing. Frames are digested where the renderer hands them to the
writers, so the encoder cannot hide or cause a difference; the digesting
writer is slower than the renderer, so a buffer reused before the writer
thread consumed it shows up (checked by making `GridLayout.compose` reuse its
output array: the test fails).
"""

import copy
import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

from frame_digests import frame_digests
from jobs import TINY_JOB, write_job

RENDERS = 2     # other processes rendering the same job while this one does
REPEATS = 3     # renders per process: each one in a different state of memory and timing
BUSY_LOOPS = 1  # processes that only load the CPU


def test_frames_are_identical_when_rendered_in_parallel_processes_on_a_busy_cpu(tmp_path):
    spec = copy.deepcopy(TINY_JOB)
    spec["schedules"]["loop"]["frames"] = 40                               # three batches: hand-offs to the writer
    spec["outputs"][0]["video"].update(cell_size=48, side_by_side=True)  # resize up, labels, two cells a seed
    spec["outputs"][1]["dataset"]["image_size"] = 24                       # resize down (antialiased)
    job = write_job(tmp_path, spec)
    busy = [subprocess.Popen([sys.executable, "-c", "print(flush=True)\nwhile True: pass"], stdout=subprocess.PIPE)
            for _ in range(BUSY_LOOPS)]
    # Forked from a fork server, as the real workers are (render/forkserver.py).
    with ProcessPoolExecutor(RENDERS, mp_context=multiprocessing.get_context("forkserver")) as pool:
        try:
            for process in busy:
                process.stdout.readline()  # it runs
            renders = [pool.submit(frame_digests, job, tmp_path / f"render{index}") for index in range(RENDERS * REPEATS)]
            expected = frame_digests(job, tmp_path / "here")
            outputs = [render.result(timeout=300) for render in renders] + [frame_digests(job, tmp_path / "again")]
        finally:
            for process in busy:
                process.kill()
                process.wait()
    assert sum(len(digests) for digests in expected.values()) == 2 * 40 + 20 * 5  # every frame and image was seen
    assert all(output == expected for output in outputs)
