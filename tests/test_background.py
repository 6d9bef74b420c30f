import threading
import time

import pytest

from render.sinks.background import BackgroundWriter


def test_jobs_run_in_order_on_one_other_thread():
    seen = []
    with BackgroundWriter() as background:
        for index in range(20):
            background.submit(lambda i: seen.append((i, threading.current_thread().name)), index)
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} != {threading.current_thread().name} and len({name for _, name in seen}) == 1


def test_a_failing_job_raises_in_the_caller():
    def fail():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with BackgroundWriter() as background:
            background.submit(fail)
            time.sleep(0.05)
            background.submit(lambda: None)


def test_waiting_jobs_are_skipped_when_the_caller_fails():
    ran = []
    with pytest.raises(RuntimeError):
        with BackgroundWriter(max_pending=3) as background:
            background.submit(time.sleep, 0.2)
            background.submit(ran.append, 1)
            raise RuntimeError("generator crashed")
    assert ran == []


def test_at_most_max_pending_jobs_wait():
    release = threading.Event()
    with BackgroundWriter(max_pending=1) as background:
        background.submit(release.wait)
        blocked = threading.Thread(target=background.submit, args=(lambda: None,))
        blocked.start()
        time.sleep(0.05)
        assert blocked.is_alive()  # the second submit waits for the first job
        release.set()
        blocked.join(1)
        assert not blocked.is_alive()
