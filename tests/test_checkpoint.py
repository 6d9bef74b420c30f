"""Reading checkpoints: every tensor must be backed by bytes the file stores (issue 17 §3)."""

import pytest
import torch

from render.errors import CheckpointError
from render.models.checkpoint import STORED_BYTES_ALLOWANCE, check_stored_tensors, read_checkpoint
from render.models.registry import load_generator
from tests.checkpoints import write_dcgan_of_sizes


def test_refuses_stride_zero_views_when_a_small_file_declares_a_million_channels(tmp_path):
    # The case: a 6 KB state dict whose 10⁶-channel weights are views of one stored float.
    path = write_dcgan_of_sizes(tmp_path / "views.pt", 100, (10**6, 512, 256), stride_zero=True)
    assert path.stat().st_size < 10_000
    with pytest.raises(CheckpointError, match=r"main\.\d+\.\w+ of shape .* has strides \(0,.* overlap") as error:
        load_generator(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("make, overlaps", [
    (lambda: torch.zeros(3, 4), False),
    (lambda: torch.zeros(4, 3).t(), False),            # transposed: non-contiguous but distinct elements
    (lambda: torch.zeros(10)[::2], False),             # strided slice
    (lambda: torch.zeros(1, 5).expand(3, 5), True),    # stride 0
    (lambda: torch.zeros(7).as_strided((3, 3), (2, 1)), True),  # rows overlap
    (lambda: torch.zeros(1).expand(1, 1), False),      # one element
], ids=["contiguous", "transposed", "strided", "expanded", "overlapping rows", "single element"])
def test_check_stored_tensors_refuses_exactly_the_overlapping_views(make, overlaps):
    content = {"w": make()}
    if overlaps:
        with pytest.raises(CheckpointError, match="overlap"):
            check_stored_tensors(content, 1 << 20)
    else:
        check_stored_tensors(content, 1 << 20)


def test_refuses_tensors_that_share_one_storage_when_they_claim_more_than_the_file(tmp_path):
    # Each entry is a full, non-overlapping view of the same 1 MiB storage: 64 MiB claimed by a 1 MiB file.
    shared = torch.zeros(1 << 18)
    path = tmp_path / "shared.pt"
    torch.save({f"t{index}": shared.view(-1) for index in range(64)}, path)
    with pytest.raises(CheckpointError, match="tensors claim at least .* bytes, more than the file's"):
        read_checkpoint(path)


def test_reads_a_checkpoint_when_its_tensors_fill_the_file(tmp_path):
    path = tmp_path / "full.pt"
    torch.save({"a": torch.zeros(1 << 18), "b": torch.zeros(3, 3).t()}, path)
    content = read_checkpoint(path)
    assert content["a"].numel() * 4 < path.stat().st_size + STORED_BYTES_ALLOWANCE
