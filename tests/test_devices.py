import pytest
import torch

from render.devices import WorkerSlot, available_cores, enter_slot, in_process_slot, plan_workers
from render.errors import SpecError


def test_cpu_gets_one_single_threaded_worker_per_core_by_default():
    assert not torch.cuda.is_available()  # the tests run without a GPU
    assert plan_workers("auto") == plan_workers("cpu") == [WorkerSlot("cpu", 1)] * available_cores()


def test_workers_overrides_the_count():
    assert plan_workers("cpu", 3) == [WorkerSlot("cpu", 1)] * 3
    assert plan_workers("cpu", 0) == []
    assert in_process_slot("cpu") == WorkerSlot("cpu", 1)


@pytest.mark.parametrize("device, workers, message", [
    ("cuda", None, "--device cuda: no CUDA device is visible"),
    ("cuda:0", None, r"--device cuda:0: cuda:0 is not visible \(0 CUDA device\(s\)\)"),
    ("cuda:x", None, "expected cuda:N or cuda:N,M"),
    ("gpu", None, "--device gpu: expected auto, cpu, cuda or cuda:N"),
    ("cpu", -1, "--workers -1: expected 0 \\(in-process\\) or more"),
])
def test_impossible_devices_are_input_errors(device, workers, message):
    with pytest.raises(SpecError, match=message):
        plan_workers(device, workers)


def test_gpu_workers_go_round_robin_over_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert [slot.device for slot in plan_workers("auto")] == ["cuda:0", "cuda:1", "cuda:2"]
    assert [slot.device for slot in plan_workers("cuda:0,2", 3)] == ["cuda:0", "cuda:2", "cuda:0"]
    assert in_process_slot("cuda:2").device == "cuda:2"


def test_a_gpu_slot_makes_its_device_current_and_cudnn_deterministic_then_restores_both(monkeypatch):
    current = ["cuda:0"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.__setitem__(0, device))
    threads = torch.get_num_threads()
    assert not torch.backends.cudnn.deterministic
    restore = enter_slot(WorkerSlot("cuda:2", threads + 1))
    assert current == ["cuda:2"] and torch.get_num_threads() == threads + 1 and torch.backends.cudnn.deterministic
    restore()
    assert current == ["cuda:0"] and torch.get_num_threads() == threads and not torch.backends.cudnn.deterministic
    enter_slot(WorkerSlot("cpu", threads))()
    assert current == ["cuda:0"]  # a CPU slot leaves CUDA alone
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    enter_slot(WorkerSlot("cuda:2", threads))()  # a GPU this torch cannot see (a Ray actor's): nothing to enter
    assert current == ["cuda:0"]
