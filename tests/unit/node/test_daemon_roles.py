"""`bcfl run` refuses a config that drops a role the genesis gives it (issue 10, attack 9)."""

from __future__ import annotations

import pytest

from consensus.crypto import FakeSigner, FakeVerifier
from consensus.events import Started, TimeoutFired
from consensus.genesis import make_genesis
from node.config import NodeConfig
from node.daemon import find_me
from node.errors import UserError


def _genesis():  # type: ignore[no-untyped-def]
    signers = [FakeSigner(bytes([i + 1]) * 32) for i in range(4)]
    return make_genesis("c", signers), signers


def test_a_genesis_validator_configured_without_validator_is_refused() -> None:
    """node.roles = ["trainer"] on a seat with power: one sentence naming the fix."""
    genesis, signers = _genesis()
    config = NodeConfig()
    config.node.roles = ["trainer"]
    with pytest.raises(UserError, match="node.roles omits validator") as caught:
        find_me(genesis, signers[0].public_key, config)
    assert "\n" not in str(caught.value)


def test_the_default_roles_are_accepted() -> None:
    """validator + trainer on a validator + trainer seat: both roles in effect."""
    genesis, signers = _genesis()
    who = find_me(genesis, signers[1].public_key, NodeConfig())
    assert who.me == 1 and set(who.roles) == {"trainer", "validator"}


def test_without_the_refusal_the_core_would_still_vote() -> None:
    """Why the refusal exists: the core's right to vote comes from the genesis, not the config,
    so a "trainer-only" node built on a validator seat signs prevotes."""
    from consensus.core import ConsensusCore
    from consensus.types import Height, Round, Step, ValidatorIndex, Vote

    genesis, signers = _genesis()
    core = ConsensusCore(
        genesis,
        verifier=FakeVerifier.for_signers(signers),
        me=ValidatorIndex(0),
        signer=signers[0],
    )
    core.handle(Started(), 0.0)
    actions = core.handle(TimeoutFired(Height(1), Round(0), Step.PROPOSE), 100.0)
    assert any(isinstance(getattr(a, "message", None), Vote) for a in actions)
