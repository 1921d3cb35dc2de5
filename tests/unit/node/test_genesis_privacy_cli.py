"""`bcfl genesis` privacy flags: the policy they write, the noise they calibrate, their errors."""

from __future__ import annotations

import argparse

import pytest

from learning.dp import DpConfig, epsilon_after
from node.commands import genesis as genesis_command
from node.errors import UserError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    genesis_command.add_arguments(parser)
    return parser.parse_args(["info.json", "--out", "x", *argv])


def test_no_flag_leaves_dp_off() -> None:
    """Without --dp-* flags the genesis policy has DP off."""
    policy = genesis_command.privacy_policy(_args())
    assert policy.clip_norm == 0.0 and policy.epsilon_budget == 0.0


def test_an_epsilon_without_noise_calibrates_the_noise_to_the_planned_rounds() -> None:
    """--dp-epsilon 2 --dp-rounds 10 gives a multiplier whose budget lasts about 10 releases."""
    policy = genesis_command.privacy_policy(_args("--dp-epsilon", "2", "--dp-rounds", "10"))
    assert policy.clip_norm == genesis_command.DEFAULT_DP_CLIP
    assert policy.epsilon_budget == 2.0
    config = DpConfig(epsilon=2.0, delta=policy.delta, noise_multiplier=policy.noise_multiplier)
    assert epsilon_after(config, 10) <= 2.0 < epsilon_after(config, 12)


def test_explicit_noise_is_kept() -> None:
    """--dp-noise is written as given, with the clip and delta."""
    policy = genesis_command.privacy_policy(
        _args("--dp-clip", "0.5", "--dp-noise", "1.3", "--dp-delta", "1e-6")
    )
    assert (policy.clip_norm, policy.noise_multiplier, policy.delta) == (0.5, 1.3, 1e-6)


@pytest.mark.parametrize(
    "argv",
    [("--dp-clip", "1"), ("--dp-clip", "-1", "--dp-noise", "1"), ("--dp-epsilon", "0")],
)
def test_bad_privacy_flags_are_one_sentence(argv: tuple[str, ...]) -> None:
    """A clip without noise or budget, a negative clip, a zero budget: one-sentence errors."""
    with pytest.raises(UserError) as exc:
        genesis_command.privacy_policy(_args(*argv))
    assert "\n" not in str(exc.value) and str(exc.value).startswith("--dp-")
