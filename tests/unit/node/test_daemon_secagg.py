"""`bcfl run` refuses a genesis promising secure aggregation until the node runs the protocol."""

from __future__ import annotations

import pytest

from consensus.crypto import FakeSigner
from consensus.genesis import make_genesis
from consensus.types import Privacy
from node.daemon import refuse_unbuilt_privacy
from node.errors import UserError


def _genesis(secure: bool):  # type: ignore[no-untyped-def]
    signers = [FakeSigner(bytes([i + 1]) * 32) for i in range(4)]
    return make_genesis("c", signers, privacy=Privacy(secure_aggregation=secure))


def test_a_secure_aggregation_genesis_is_refused_in_one_sentence() -> None:
    """Updates would travel in the clear under a genesis that promises masking."""
    with pytest.raises(UserError, match="does not run yet") as caught:
        refuse_unbuilt_privacy(_genesis(True))
    assert "\n" not in str(caught.value)


def test_a_genesis_without_it_runs() -> None:
    """The default privacy section is accepted."""
    refuse_unbuilt_privacy(_genesis(False))
