"""Seeds that once failed, kept as regression tests (docs/ARCHITECTURE.md "Testing layers")."""

from __future__ import annotations

from consensus.simulator import SimConfig, run_one


def test_lagging_node_catches_up_after_its_sync_request_was_lost() -> None:
    """Seed 3 (silent, partition): a node that missed a commit keeps asking for blocks until it has them.

    The core asks for sync once per round; this node's request was lost in the partition and it
    sat in the precommit step (no timeout there without 2f+1 precommits), so the whole network
    stalled one validator short of a quorum until the node shell retried sync periodically.
    """
    config = SimConfig(
        validators=7, byzantine=2, behaviour="silent", heights=10, drop=0.2, partition=True
    )
    result = run_one(config, 3)
    assert result.violations == []
    assert result.committed_height == 10


def test_twins_do_not_deadlock_locked_validators() -> None:
    """Seed 10 (twins, partition): validators locked on a polka that includes a twin's vote still decide.

    Honest members 3, 4 and 6 had counted the other twin copy's round-0 prevote first, so the
    polka that locked members 0 and 2 never existed in their view and every later round stalled
    (fixed in the core by counting an equivocator's conflicting vote towards its own value).
    """
    config = SimConfig(
        validators=7, byzantine=2, behaviour="twins", heights=10, drop=0.2, partition=True
    )
    result = run_one(config, 10)
    assert result.safety_violations == []
    assert result.committed_height == 10


def test_withheld_precommits_do_not_strand_locked_validators() -> None:
    """Seed 79 (withhold, partition): honest validators locked in round 0 still decide height 4.

    The two withholding validators (partition bridges) committed height 4 from precommits they
    never forwarded; four honest validators stayed locked on the round-0 value while a fifth
    never saw that polka, so re-proposals of the locked value could not gather prevotes for 20+
    rounds (fixed in the core: a re-proposal carries the prevotes of its valid round).
    """
    config = SimConfig(
        validators=7, byzantine=2, behaviour="withhold", heights=10, drop=0.2, partition=True
    )
    result = run_one(config, 79)
    assert result.violations == []
    assert result.committed_height == 10
