"""Gossip caps follow the member set; the simulator refuses what a daemon would refuse."""

from __future__ import annotations

from consensus.bounds import GOSSIP_BASE_CAPS, GOSSIP_HARD_CAP, gossip_size_caps
from consensus.sim.wire import Wire
from consensus.types import Hash, Height, Round, ValidatorIndex, Vote, VoteType
from node.network.topics import DEFAULT_SIZE_CAPS, Topic, size_caps_for


def test_caps_grow_with_members_up_to_the_hard_cap() -> None:
    small, large = gossip_size_caps(4), gossip_size_caps(300)
    assert small["consensus"] < large["consensus"] <= GOSSIP_HARD_CAP
    assert small["receipts"] == large["receipts"] == GOSSIP_BASE_CAPS["receipts"]
    assert gossip_size_caps(10_000)["consensus"] == GOSSIP_HARD_CAP
    assert size_caps_for(300)[Topic.CONSENSUS] == large["consensus"]
    assert DEFAULT_SIZE_CAPS[Topic.CONSENSUS] == GOSSIP_BASE_CAPS["consensus"]


def test_the_simulated_wire_refuses_an_oversized_message() -> None:
    wire = Wire(4)
    vote = Vote(VoteType.PREVOTE, Height(1), Round(0), Hash(bytes(32)), ValidatorIndex(0))
    assert wire.fits(vote) and not wire.oversized_messages
    wire.size_caps["consensus"] = 10  # a cap below a vote's size
    assert not wire.fits(vote)
    assert wire.oversized_messages == {"Vote": 1}
    assert wire.max_message_bytes["Vote"] > 10
