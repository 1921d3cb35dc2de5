"""Voting power, quorum thresholds, proposer selection and signer bitfields."""

from __future__ import annotations

from collections import Counter

import pytest

from consensus.types import Height, PublicKey, Round, Signature, ValidatorInfo
from consensus.validators import ValidatorSet


def members(powers: list[int]) -> list[ValidatorInfo]:
    return [
        ValidatorInfo(
            name=f"m{i}",
            public_key=PublicKey(bytes([i]) * 48),
            proof_of_possession=Signature(bytes(96)),
            peer_id=f"p{i}",
            power=p,
            roles=("trainer", "validator") if p else ("trainer",),
        )
        for i, p in enumerate(powers)
    ]


def test_n6_equal_power_needs_five() -> None:
    """Quorum is strictly more than 2/3: 4 of 6 is not enough, 5 of 6 is."""
    vs = ValidatorSet(members([1] * 6))
    assert not vs.has_quorum(4)
    assert vs.has_quorum(5)


def test_quorum_with_unequal_power() -> None:
    """Power, not head count: 10 + 1 of (10, 1, 1, 1) is 11/13 > 2/3; three small ones are not."""
    vs = ValidatorSet(members([10, 1, 1, 1]))
    assert vs.has_quorum(vs.power_of([0, 1]))
    assert not vs.has_quorum(vs.power_of([1, 2, 3]))
    assert vs.has_one_third(vs.power_of([0]))
    assert not vs.has_one_third(vs.power_of([1, 2, 3]))


def test_exactly_two_thirds_is_not_a_quorum() -> None:
    """2 of 3 equal votes is exactly 2/3: not a quorum; 1 of 3 is not more than 1/3."""
    vs = ValidatorSet(members([1, 1, 1]))
    assert not vs.has_quorum(2)
    assert not vs.has_one_third(1)
    assert vs.has_one_third(2)


def test_quorum_peers_counts_the_others_a_largest_validator_must_reach() -> None:
    """4 equal: 2 others (3 of 4 > 2/3); (10, 1, 1, 1): none (10/13 > 2/3 alone), (5, 2, 2, 2):
    two (9 of 11); a trainer-only member is never needed; a single validator needs nobody."""
    assert ValidatorSet(members([1] * 4)).quorum_peers() == 2
    assert ValidatorSet(members([10, 1, 1, 1])).quorum_peers() == 0
    assert ValidatorSet(members([5, 2, 2, 2])).quorum_peers() == 2
    assert ValidatorSet(members([1, 1, 1, 0])).quorum_peers() == 2
    assert ValidatorSet(members([1])).quorum_peers() == 0


def test_trainer_only_members_have_no_vote() -> None:
    """A power-0 trainer is in the set (bitfield, receipts) but never votes or proposes."""
    vs = ValidatorSet(members([1, 1, 1, 0]))
    assert vs.total_power == 3 and not vs.is_validator(3) and vs.is_trainer(3)
    assert all(vs.proposer_for(Height(h), Round(0)) != 3 for h in range(50))


def test_proposer_is_weighted_round_robin() -> None:
    """Over a cycle each validator proposes in proportion to its power, spread out."""
    vs = ValidatorSet(members([3, 1, 2]))
    picks = [vs.proposer_for(Height(h), Round(0)) for h in range(6)]
    assert Counter(picks) == {0: 3, 1: 1, 2: 2}
    assert picks[0] != picks[1] or picks[1] != picks[2]  # not three in a row
    assert [vs.proposer_for(Height(5), Round(r)) for r in range(3)] == [
        vs.proposer_for(Height(5 + r), Round(0)) for r in range(3)
    ]


def test_proposer_selection_is_identical_across_instances() -> None:
    """Two nodes building the set independently agree on every proposer."""
    a, b = ValidatorSet(members([5, 2, 7, 1])), ValidatorSet(members([5, 2, 7, 1]))
    assert all(
        a.proposer_for(Height(h), Round(r)) == b.proposer_for(Height(h), Round(r))
        for h in range(1, 30)
        for r in range(5)
    )


@pytest.mark.parametrize("n", [1, 7, 8, 9, 100])
def test_bitfield_round_trip_and_size(n: int) -> None:
    """ceil(n/8) bytes; duplicates collapse; bits past the last member are malformed."""
    vs = ValidatorSet(members([1] * n))
    field = vs.bitfield([0, n - 1, n - 1])
    assert len(field) == (n + 7) // 8
    assert vs.indices(field) == sorted({0, n - 1})
    assert vs.indices(field + b"\x00") is None
    if n % 8:
        assert vs.indices(field[:-1] + bytes([field[-1] | 0x80])) is None
