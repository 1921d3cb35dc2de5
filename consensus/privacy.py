"""The genesis differential-privacy policy as chain rules (docs/THREAT-MODEL.md "Differential
privacy"): what a receipt may claim, and when a site's budget is spent.

Each site's releases are steps of the Gaussian mechanism with sampling rate 1; epsilon after k
releases, eps(k), comes from an injected `Accountant` (learning.dp.PolicyAccountant wraps
opacus's RDP accountant; this module imports no learning code, so the core stays pure).

Rules, all against the parent ledger's record of the receipt's author:

1. A receipt's `epsilon_spent` is that release's increment: the ledger's per-site epsilon plus
   the claim must be eps(j) for some release count j above the one the ledger already holds
   (within `EPSILON_RTOL`). An honest site whose every release reached a block claims
   eps(k) - eps(k-1); one whose earlier release ended in a carry-over block (no receipts there)
   also accounts that release, so its ledger epsilon is always its accountant's. Anything else
   is refused as ``dp-increment``.
2. The claim must not take the site past `Privacy.epsilon_budget`: ``dp-budget`` (checked
   first, so a made-up huge claim costs no search).
3. A trainer whose next release would pass the budget is exhausted: it stops contributing, and
   the proposer no longer waits for it (`expected_trainers`), so the chain stays live.

The ledger adds the claims (consensus/ledger.py), so its per-site epsilon is the authority and,
being chain state, survives restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from consensus.types import Ledger, ParticipantRecord, Privacy, UpdateReceipt

DP_BUDGET = "dp-budget"
"""A receipt that would take its site past the genesis epsilon budget."""

DP_INCREMENT = "dp-increment"
"""A receipt whose epsilon is not the increment of a release under the genesis policy."""

DP_NOISE_SHARES = "dp-noise-shares"
"""A model block (distributed DP) aggregating fewer updates than the genesis noise shares."""

EPSILON_RTOL = 1e-9
"""Relative tolerance between float sums of increments and the accountant's eps(j)."""

MAX_RELEASES = 2**40
"""No release count beyond this is searched (bounds the work a made-up claim can cause)."""


class Accountant(Protocol):
    """Epsilon after a number of releases of the genesis mechanism (deterministic)."""

    def epsilon_after(self, releases: int) -> float:
        """eps(releases) at the genesis delta; 0.0 for none."""
        ...


def _close(value: float, target: float) -> bool:
    return abs(value - target) <= EPSILON_RTOL * max(1.0, abs(target))


class PrivacyRules:
    """The rules above for one genesis policy; `accountant` is required when DP is on."""

    def __init__(self, policy: Privacy, accountant: Accountant | None) -> None:
        if policy.dp_enabled and accountant is None:
            raise ValueError(
                "the genesis turns differential privacy on, so the core needs an accountant"
                " (learning.PolicyAccountant)"
            )
        self.policy = policy
        self._accountant = accountant

    @property
    def enabled(self) -> bool:
        """True when the genesis turns DP on."""
        return self.policy.dp_enabled

    def epsilon_after(self, releases: int) -> float:
        """eps(releases) under the policy (0.0 with DP off)."""
        if self._accountant is None or releases <= 0:
            return 0.0
        return self._accountant.epsilon_after(releases)

    def releases_behind(self, epsilon: float) -> int | None:
        """The release count j with eps(j) = `epsilon`, or None when no count gives it."""
        if epsilon == 0.0:
            return 0
        if not epsilon > 0:
            return None
        high = 1
        while self.epsilon_after(high) < epsilon and not _close(self.epsilon_after(high), epsilon):
            high *= 2
            if high > MAX_RELEASES:
                return None
        low = high // 2  # eps(low) is below epsilon (or low is 0)
        while high - low > 1:
            mid = (low + high) // 2
            eps = self.epsilon_after(mid)
            if eps < epsilon and not _close(eps, epsilon):
                low = mid
            else:
                high = mid
        return high if _close(self.epsilon_after(high), epsilon) else None

    def over_budget(self, epsilon: float) -> bool:
        """True when `epsilon` is past the genesis budget (never without a budget)."""
        budget = self.policy.epsilon_budget
        return budget > 0 and epsilon > budget and not _close(epsilon, budget)

    def exhausted(self, record: ParticipantRecord) -> bool:
        """True when this site's next release would pass the budget (rule 3)."""
        if not self.enabled or self.policy.epsilon_budget <= 0:
            return False
        releases = self.releases_behind(record.epsilon_spent)
        if releases is None:
            return True
        return self.over_budget(self.epsilon_after(releases + 1))

    def receipt_problem(
        self, receipt: UpdateReceipt, record: ParticipantRecord
    ) -> tuple[str, str] | None:
        """(reason, sentence) when `receipt` breaks rule 1 or 2 against its author's
        record, else None."""
        if not self.enabled:
            return None
        who = f"receipt of member {receipt.author}"
        total = record.epsilon_spent + receipt.epsilon_spent
        if receipt.epsilon_spent > 0 and self.over_budget(total):  # checked first: no search
            return (
                DP_BUDGET,
                f"{who} would take its epsilon to {total:.6g}, past the genesis budget"
                f" {self.policy.epsilon_budget:g}",
            )
        before = self.releases_behind(record.epsilon_spent)
        after = self.releases_behind(total) if receipt.epsilon_spent > 0 else None
        if before is None or after is None or after <= before:
            return (
                DP_INCREMENT,
                f"{who} claims epsilon {receipt.epsilon_spent:.6g}, which is not the increment"
                " of a release under the genesis privacy policy",
            )
        return None

    def receipts_problem(
        self, receipts: Sequence[UpdateReceipt], ledger: Ledger
    ) -> tuple[str, str] | None:
        """The first `receipt_problem` among `receipts` (one per author) against `ledger`."""
        if not self.enabled:
            return None
        for receipt in receipts:
            if receipt.author < 0:
                continue  # the caller's structural checks refuse it
            problem = self.receipt_problem(receipt, record_of(ledger, receipt.author))
            if problem is not None:
                return problem
        return None

    def noise_shares_problem(self, included: int) -> str | None:
        """Why a model aggregating `included` updates lacks the genesis noise shares, or None:
        with distributed DP the sum carries the accounted noise only from m shares on."""
        shares = self.policy.dp_noise_shares
        if shares and included < shares:
            return (
                f"{DP_NOISE_SHARES}: {included} update(s) carry less than the"
                f" {shares} noise shares the genesis DP guarantee needs"
            )
        return None

    def active_trainers(self, trainers: Sequence[int], ledger: Ledger) -> int:
        """How many of `trainers` still have budget for a release (rule 3)."""
        return sum(1 for t in trainers if not self.exhausted(record_of(ledger, t)))


def problem_reason(problem: str, default: str) -> str:
    """The reason code of a validity `problem` sentence: a DP code when it starts with one."""
    for code in (DP_BUDGET, DP_INCREMENT, DP_NOISE_SHARES):
        if problem.startswith(code + ":"):
            return code
    return default


def record_of(ledger: Ledger, member: int) -> ParticipantRecord:
    """A member's ledger record; a fresh one for a member that joined at this height (its
    record is created by the first block it is part of, consensus/governance.py)."""
    if 0 <= member < len(ledger.participants):
        return ledger.participants[member]
    return ParticipantRecord()
