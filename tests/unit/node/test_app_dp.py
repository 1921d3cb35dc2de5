"""A site under the genesis DP policy (node/app.py): noise and budget come from the genesis,
the release count is durable, and the site's config cannot weaken the policy."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from consensus import codec
from consensus.crypto import BlsSigner
from consensus.genesis import make_genesis
from consensus.types import Privacy, ValidatorIndex
from learning import PolicyAccountant, builtin_task, initial_weights
from node.app import LearningApp
from node.config import ConfigError, NodeConfig, from_dict
from node.home import NodeHome

ACCOUNTANT = PolicyAccountant(1.5, 1e-5)
POLICY = Privacy(
    clip_norm=0.5,
    noise_multiplier=1.5,
    delta=1e-5,
    epsilon_budget=ACCOUNTANT.epsilon_after(3) + 1e-6,
)


def _app(home: Path) -> tuple[LearningApp, bytes]:
    task = builtin_task("breast-cancer")
    model = initial_weights(task, 0)
    genesis = make_genesis(
        "dp-app-test",
        [BlsSigner(bytes([9]) * 32)],
        task=task.to_dict(),
        initial_model_hash=codec.sha256(model),
        privacy=POLICY,
    )
    (home / "data").mkdir(exist_ok=True)
    return LearningApp(genesis, NodeConfig(), home, ValidatorIndex(0)), model


def test_a_release_is_counted_durably_and_reports_the_accountants_epsilon(tmp_path: Path) -> None:
    """The first release spends eps(1), and its count is on disk (0600) before it leaves."""
    app, model = _app(tmp_path)
    outcome = app.train(model, 1)
    assert outcome.update is not None
    assert outcome.epsilon_spent == ACCOUNTANT.epsilon_after(1)
    path = NodeHome(tmp_path).dp_releases_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restarted, _ = _app(tmp_path)
    assert restarted.releases.count == 1


def test_a_release_the_ledger_missed_still_counts(tmp_path: Path) -> None:
    """After one release whose block was a carry-over (ledger: 0), the next is release 2."""
    app, model = _app(tmp_path)
    app.train(model, 1)
    outcome = app.train(model, 2, ledger_releases=0)
    assert outcome.epsilon_spent == ACCOUNTANT.epsilon_after(2)


def test_the_ledger_is_the_floor_when_the_local_count_is_lost(tmp_path: Path) -> None:
    """A home without its release file still stops at the ledger's count (restart, new disk)."""
    app, model = _app(tmp_path)
    assert app.releases.count == 0
    outcome = app.train(model, 5, ledger_releases=3)
    assert outcome.update is None and outcome.skipped == "dp-budget"
    outcome = app.train(model, 5, ledger_releases=2)
    assert outcome.update is not None and app.releases.count == 3


@pytest.mark.parametrize("key", ["dp_clip_norm", "dp_noise_multiplier", "dp_epsilon"])
def test_a_site_config_cannot_set_its_own_dp(key: str) -> None:
    """training.dp_* is refused in one sentence: the genesis policy binds every site."""
    with pytest.raises(ConfigError, match="genesis privacy policy") as caught:
        from_dict({"training": {key: 0.1}})
    assert "\n" not in str(caught.value)


def test_bcfl_status_says_when_the_budget_is_spent() -> None:
    """The status table names the ledger's epsilon and that the site stopped contributing."""
    from node.commands.status import format_status

    spent = {"epsilon_spent": 1.99, "epsilon_budget": 2.0, "delta": 1e-5, "budget_exhausted": True}
    text = format_status({"privacy": spent})
    assert "epsilon 1.9900 of 2.0" in text and "no longer contributes" in text
    assert "differential privacy off" in format_status({"privacy": None})
    live = format_status({"privacy": {**spent, "budget_exhausted": False}})
    assert "no longer contributes" not in live
