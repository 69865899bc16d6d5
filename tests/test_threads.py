"""torch_threads: a command's --threads holds inside its block only, also when the block fails."""

import pytest
import torch

from segnas.threads import torch_threads


def test_the_thread_count_is_set_inside_and_restored_after_even_on_error():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with pytest.raises(RuntimeError):
        with torch_threads(other):
            assert torch.get_num_threads() == other
            raise RuntimeError("the command failed")
    assert torch.get_num_threads() == before
    for unset in (None, 0):  # no --threads: left as it is
        with torch_threads(unset):
            assert torch.get_num_threads() == before
