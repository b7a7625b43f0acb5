"""Token-budgeted batches: every input once, each batch's padded size within the budget."""

import random

from tasks.models.batching import token_batches


def test_token_batches_cover_every_row_once_within_the_budget():
    rng = random.Random(3)
    lengths = [rng.choice([3, 12, 30, 64, 200, 256, 900]) for _ in range(500)]
    batches = list(token_batches(lengths, max_tokens=1024, max_rows=64))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) <= 64
        assert len(b) * width <= 1024 or len(b) == 1  # an over-long row rides alone
    # short rows share batches: far fewer batches than rows, more than the long rows alone
    assert sum(1 for n in lengths if n > 1024) <= len(batches) < len(lengths) / 4


def test_an_empty_input_gives_no_batch():
    assert list(token_batches([], max_tokens=512)) == []
