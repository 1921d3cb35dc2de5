"""The ledger: the chain's state as a pure transition per committed block.

See docs/ARCHITECTURE.md "Blocks, certificates and the ledger".

Per member: accepted and rejected updates, samples contributed, reputation, differential-privacy
budget spent, times slashed. Choices (the issue is silent on the numbers):

- an update accepted into a block with an improvement certificate credits its author
  `CREDIT_ACCEPTED` reputation points and its sample count;
- an update the proposer rejected (and the attesters accepted as rejected) debits
  `DEBIT_REJECTED`, unless its reason is "unavailable" (consensus/rejections.py: the proposer
  could not fetch it, which proves nothing against the trainer);
- equivocation evidence (a duplicate vote, or a double proposal whose type slot is
  `PROPOSAL_OFFENCE`) slashes `SLASH_EVIDENCE` once per (validator, height, round, type); with
  the genesis `safeguards.evidence_consequence = "remove"` it also schedules the offender's
  removal from the member set (roles and power gone) for GOVERNANCE_DELAY heights later;
- the DP budget of every included receipt, accepted or rejected, is spent: the trainer touched
  its private data either way;
- carry-over blocks include no receipts, so only evidence changes the ledger there; except
  with the genesis DP policy on, where a carry-over block includes the receipts its proposer
  held so that their epsilon is spent (no credit, no debit: consensus/privacy.py).

Reputation is an integer so the root never depends on float rounding; the epsilon sums are
floats added in block order, which IEEE 754 makes identical on every node.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from consensus.governance import GOVERNANCE_DELAY, apply_governance
from consensus.rejections import debits
from consensus.types import (
    CHANGE_REMOVE,
    Block,
    Genesis,
    Hash,
    Height,
    Ledger,
    MemberChange,
    ParticipantRecord,
    ScheduledChange,
)

CREDIT_ACCEPTED = 10
DEBIT_REJECTED = 5
SLASH_EVIDENCE = 100


def genesis_ledger(genesis: Genesis) -> Ledger:
    """The state before block 1: every member at zero, the initial model."""
    return Ledger(
        height=Height(0),
        model_hash=genesis.initial_model_hash,
        participants=tuple(ParticipantRecord() for _ in genesis.validators),
        members=genesis.validators,
    )


def apply_block(ledger: Ledger, block: Block, evidence_consequence: str = "slash") -> Ledger:
    """The ledger after `block` (assumed valid: indices in range, receipts deduplicated).

    The member set and its pending changes move first (consensus/governance.py); a member that
    joins at this height starts with an empty record. `evidence_consequence` is the genesis
    `safeguards.evidence_consequence`.
    """
    governed = apply_governance(ledger, block)
    records = list(ledger.participants)
    records += [ParticipantRecord() for _ in range(len(governed.members) - len(records))]
    if block.improvement_certificate is not None:
        for receipt in block.receipts:
            r = records[receipt.author]
            records[receipt.author] = replace(
                r,
                accepted_updates=r.accepted_updates + 1,
                samples_contributed=r.samples_contributed + receipt.n_samples,
                reputation=r.reputation + CREDIT_ACCEPTED,
                epsilon_spent=r.epsilon_spent + float(receipt.epsilon_spent),
                last_update_height=int(block.header.height),
            )
        for receipt, reason in zip(block.rejected, block.rejection_reasons, strict=True):
            r = records[receipt.author]
            debit = debits(reason)
            records[receipt.author] = replace(
                r,
                rejected_updates=r.rejected_updates + int(debit),
                reputation=r.reputation - DEBIT_REJECTED * int(debit),
                epsilon_spent=r.epsilon_spent + float(receipt.epsilon_spent),
                last_update_height=int(block.header.height),
            )
    else:
        for receipt in block.receipts:  # releases without a certified model (DP accounting)
            r = records[receipt.author]
            records[receipt.author] = replace(
                r, epsilon_spent=r.epsilon_spent + float(receipt.epsilon_spent)
            )
    punished = set(ledger.punished)
    removals: list[ScheduledChange] = []
    for evidence in block.all_evidence:
        key, offender = evidence.offence, int(evidence.offender)
        if key in punished:
            continue
        punished.add(key)
        r = records[offender]
        records[offender] = replace(
            r, reputation=r.reputation - SLASH_EVIDENCE, slashed=r.slashed + 1
        )
        if evidence_consequence == "remove":
            removals += _removal(governed, block.header.height, offender, key, removals)
    if removals:
        governed = replace(governed, scheduled=(*governed.scheduled, *removals))
    return replace(
        governed,
        height=block.header.height,
        model_hash=block.header.model_hash,
        participants=tuple(records),
        punished=tuple(sorted(punished)),
    )


def _removal(
    ledger: Ledger,
    height: Height,
    member: int,
    key: tuple[int, int, int, int],
    queued: list[ScheduledChange],
) -> list[ScheduledChange]:
    """The scheduled removal of an offender (none when it already left or is being removed).

    Its id names the offence, so the same evidence can never schedule it twice; a removal that
    no longer applies when due (it would leave no validator power) is dropped there, as every
    governance change is (consensus/governance.py `next_members`).
    """
    target = ledger.members[member]
    if not target.roles:
        return []
    for item in (*ledger.scheduled, *queued):
        if item.change.kind == CHANGE_REMOVE and item.change.target == target.name:
            return []
    offence_id = Hash(hashlib.sha256(b"bcfl/evidence-removal/v1" + repr(key).encode()).digest())
    change = MemberChange(kind=CHANGE_REMOVE, target=target.name)
    return [ScheduledChange(offence_id, change, Height(height + GOVERNANCE_DELAY))]
