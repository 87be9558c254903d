"""EpochSampler: epoch length, rank shares, reshuffling and exact mid-epoch resume."""

from __future__ import annotations

from collections import Counter

import pytest

from deeptrain_trainer.data import EpochSampler


def sampler(num_records: int = 10, items: int = 0, rank: int = 0, world_size: int = 1, seed: int = 0) -> EpochSampler:
    return EpochSampler(num_records, num_items_per_epoch=items, rank=rank, world_size=world_size, seed=seed)


def test_default_epoch_is_a_permutation_of_the_dataset() -> None:
    order = list(sampler())
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert len(sampler()) == 10


def test_more_items_than_records_cycles_through_fresh_permutations() -> None:
    order = list(sampler(num_records=10, items=25))
    assert len(order) == 25
    assert sorted(order[:10]) == list(range(10)) and sorted(order[10:20]) == list(range(10))
    assert order[:10] != order[10:20]
    assert max(Counter(order).values()) == 3


def test_fewer_items_than_records_takes_distinct_items() -> None:
    order = list(sampler(num_records=10, items=4))
    assert len(order) == 4 and len(set(order)) == 4


def test_epochs_reshuffle_and_repeat_with_the_same_seed() -> None:
    first = sampler()
    epoch0 = list(first)
    first.set_epoch(1)
    second = sampler()
    second.set_epoch(1)
    assert list(first) != epoch0 and list(first) == list(second)
    assert list(sampler(seed=1)) != epoch0


def test_two_ranks_get_disjoint_equal_shares_covering_the_epoch() -> None:
    shares = [list(sampler(num_records=10, rank=rank, world_size=2)) for rank in range(2)]
    assert len(shares[0]) == len(shares[1]) == 5
    assert set(shares[0]).isdisjoint(shares[1]) and set(shares[0]) | set(shares[1]) == set(range(10))


def test_uneven_epoch_is_padded_by_wrapping() -> None:
    ranks = [sampler(num_records=7, rank=rank, world_size=2) for rank in range(2)]
    shares = [list(r) for r in ranks]
    assert [len(share) for share in shares] == [4, 4] and [len(r) for r in ranks] == [4, 4]
    order = ranks[0].epoch_order()
    assert set(shares[0]) | set(shares[1]) == set(range(7)) and order[7] == order[0]


@pytest.mark.parametrize("consumed", [0, 3, 8])
def test_set_start_resumes_exactly_where_the_epoch_stopped(consumed: int) -> None:
    full = sampler(num_records=20, items=30, rank=1, world_size=2)
    full.set_epoch(4)
    expected = list(full)[consumed:]
    resumed = sampler(num_records=20, items=30, rank=1, world_size=2)
    resumed.set_epoch(4)
    resumed.set_start(consumed)
    assert list(resumed) == expected and len(resumed) == len(expected)
    resumed.set_epoch(5)
    assert len(resumed) == 15  # a new epoch starts from its beginning


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="rank 2"):
        sampler(rank=2, world_size=2)
    with pytest.raises(ValueError, match="start 11"):
        sampler().set_start(11)
