"""Admission: for each rule, a message that passes and one that fails with the rule's code.

Four members: 0-2 are validators and trainers of power 1, 3 is an observer. With three equal
validators the proposer of (height, round) is member (height + round) % 3.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from consensus import admission as adm
from consensus.admission import MAX_ROUND_AHEAD, REASONS, Admission
from consensus.codec import block_hash
from consensus.crypto import FakeSigner, FakeVerifier
from consensus.genesis import make_genesis
from consensus.signing import report_bytes, sign_bytes
from consensus.types import (
    EMPTY_SIGNATURE,
    Attestation,
    Block,
    Candidate,
    EvalReport,
    Genesis,
    Hash,
    Header,
    Height,
    Proposal,
    Round,
    Signature,
    Signed,
    SignedMessage,
    UpdateReceipt,
    ValidatorIndex,
    Vote,
    VoteType,
)

CHAIN = "admission-chain"
H = Hash(b"\x22" * 32)
OTHER = Hash(b"\x33" * 32)
SIGNERS = [FakeSigner(bytes([i + 1]) * 32) for i in range(4)]
OBSERVER = 3


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    roles = [("trainer", "validator")] * 3 + [("observer",)]
    return make_genesis(CHAIN, SIGNERS, roles=roles)


@pytest.fixture(scope="module")
def admission(genesis: Genesis) -> Admission:
    return Admission.for_genesis(genesis, FakeVerifier.for_signers(SIGNERS))


def proposer(h: int, r: int) -> int:
    return (h + r) % 3


def signed(message: Any, who: int | None = None) -> Any:
    """`message` signed by `who` (default: its own signer; a non-member signs with key 0)."""
    if who is None:
        who = message.signer if 0 <= message.signer < len(SIGNERS) else 0
    key = SIGNERS[who]
    return dataclasses.replace(message, signature=key.sign(sign_bytes(CHAIN, message)))


def vote(who: int = 0, h: int = 5, r: int = 0, **kw: Any) -> Vote:
    v = Vote(VoteType.PREVOTE, Height(h), Round(r), H, ValidatorIndex(who))
    return signed(dataclasses.replace(v, **kw))  # type: ignore[no-any-return]


def block(h: int = 5, chain: str = CHAIN) -> Block:
    header = Header(chain, Height(h), Round(0), 1, H, ValidatorIndex(0), H, H, H, H)
    return Block(header, (), (), "", None, (), "no updates", None, ())


def proposal(h: int = 5, r: int = 0, **kw: Any) -> Proposal:
    p = Proposal(Height(h), Round(r), block(h), Round(-1), ValidatorIndex(proposer(h, r)))
    return signed(dataclasses.replace(p, **kw))  # type: ignore[no-any-return]


def receipt(who: int = 1, **kw: Any) -> UpdateReceipt:
    r = UpdateReceipt(ValidatorIndex(who), Height(5), H, H, 100, 0.5, 0.0)
    return signed(dataclasses.replace(r, **kw))  # type: ignore[no-any-return]


def candidate(h: int = 5, r: int = 0, **kw: Any) -> Candidate:
    c = Candidate(
        Height(h), Round(r), ValidatorIndex(proposer(h, r)), H, H, (receipt(),), (), "fedavg"
    )
    return signed(dataclasses.replace(c, **kw))  # type: ignore[no-any-return]


def signed_report(report: EvalReport) -> EvalReport:
    key = SIGNERS[report.evaluator if 0 <= report.evaluator < len(SIGNERS) else 0]
    return dataclasses.replace(report, signature=key.sign(report_bytes(CHAIN, report)))


def attestation(who: int = 1, **kw: Any) -> Attestation:
    report = signed_report(EvalReport(ValidatorIndex(who), H, 50, 0.7, 0.6, 0.8, 0.85))
    a = Attestation(Height(5), H, True, ValidatorIndex(who), kw.pop("report", report))
    return signed(dataclasses.replace(a, **kw))  # type: ignore[no-any-return]


def forged(message: Any) -> Any:
    """The message with another member's signature over the same bytes."""
    return signed(message, who=(message.signer + 1) % 3)


# -- the signer property -------------------------------------------------------------------


def test_every_signed_message_names_its_signer() -> None:
    """`signer` reads the type's own signer field (validator, proposer, author, signer)."""
    messages: list[SignedMessage] = [vote(2), proposal(), receipt(1), candidate(), attestation(2)]
    as_protocol: list[Signed] = list(messages)  # each type satisfies the Signed protocol
    assert [m.signer for m in as_protocol] == [2, proposer(5, 0), 1, proposer(5, 0), 2]


def test_signer_is_not_a_wire_field() -> None:
    """The property adds no dataclass field, so the codec's wire format is unchanged."""
    names = {f.name for f in dataclasses.fields(Vote)}
    assert "signer" not in names and "validator" in names


# -- well-formed messages pass ---------------------------------------------------------------


def test_well_formed_messages_are_admitted(admission: Admission) -> None:
    """A correct message of every type passes its check and `admit`."""
    assert admission.vote(vote(), current_height=5, current_round=0) is None
    assert admission.proposal(proposal(), current_height=5, current_round=0) is None
    assert admission.receipt(receipt()) is None
    assert admission.candidate(candidate(), current_height=5, current_round=0) is None
    assert admission.attestation(attestation()) is None
    for message in (vote(), proposal(), receipt(), candidate(), attestation()):
        assert admission.admit(message) is None


# -- rule 1: membership ----------------------------------------------------------------------


def test_non_member_or_wrong_role_is_unknown_signer(admission: Admission) -> None:
    """An index outside the genesis, or a member without the needed role, is unknown-signer."""
    assert admission.vote(vote(who=0, validator=ValidatorIndex(9))) == "unknown-signer"
    assert admission.vote(vote(who=0, validator=ValidatorIndex(-1))) == "unknown-signer"
    assert admission.vote(vote(OBSERVER)) == "unknown-signer"
    assert admission.receipt(receipt(OBSERVER)) == "unknown-signer"
    assert admission.attestation(attestation(OBSERVER)) == "unknown-signer"
    stranger = candidate(proposer=ValidatorIndex(OBSERVER))
    assert admission.candidate(stranger) == "unknown-signer"
    assert admission.proposal(proposal(proposer=ValidatorIndex(7))) == "unknown-signer"


# -- rule 2: chain ---------------------------------------------------------------------------


def test_proposal_of_another_chain_is_wrong_chain(admission: Admission) -> None:
    """A proposal whose block header names another chain is wrong-chain."""
    assert admission.proposal(proposal(block=block(chain="other"))) == "wrong-chain"


# -- rule 3: round window --------------------------------------------------------------------


def test_negative_round_is_round_window(admission: Admission) -> None:
    """A negative round is refused whatever the caller knows."""
    assert admission.vote(vote(r=-1)) == "round-window"
    assert admission.candidate(candidate(r=-1)) == "round-window"
    assert admission.proposal(proposal(r=-1, valid_round=Round(-2))) == "round-window"


def test_round_far_ahead_is_round_window(admission: Admission) -> None:
    """Up to MAX_ROUND_AHEAD rounds past the caller's round pass; one more is round-window."""
    last, beyond = 2 + MAX_ROUND_AHEAD, 3 + MAX_ROUND_AHEAD
    assert admission.vote(vote(r=last), current_height=5, current_round=2) is None
    assert admission.vote(vote(r=beyond), current_height=5, current_round=2) == "round-window"
    assert admission.vote(vote(r=beyond), current_round=2) == "round-window"
    far = proposal(r=beyond)
    assert admission.proposal(far, current_height=5, current_round=2) == "round-window"
    far_candidate = candidate(r=beyond)
    assert admission.candidate(far_candidate, current_height=5, current_round=2) == "round-window"


def test_round_bound_applies_only_at_the_current_height(admission: Admission) -> None:
    """Without a current round, or for another height, a high round is not bounded."""
    beyond = 3 + MAX_ROUND_AHEAD
    assert admission.vote(vote(r=beyond)) is None
    assert admission.vote(vote(r=beyond), current_height=4, current_round=0) is None


# -- rule 4: proposer ------------------------------------------------------------------------


def test_proposal_or_candidate_from_another_validator_is_not_proposer(
    admission: Admission,
) -> None:
    """A proposal or candidate not signed by proposer_for(height, round) is not-proposer."""
    other = ValidatorIndex((proposer(5, 0) + 1) % 3)
    assert admission.proposal(proposal(proposer=other)) == "not-proposer"
    assert admission.candidate(candidate(proposer=other)) == "not-proposer"
    assert admission.candidate(candidate(r=1)) is None  # the proposer of round 1 is another


# -- rule 5: valid round ---------------------------------------------------------------------


def test_valid_round_outside_its_bounds_is_valid_round(admission: Admission) -> None:
    """-1 <= valid_round < round: below -1, or at or above the round, is valid-round."""
    assert admission.proposal(proposal(r=2, valid_round=Round(1))) is None
    assert admission.proposal(proposal(r=2, valid_round=Round(2))) == "valid-round"
    assert admission.proposal(proposal(r=2, valid_round=Round(-2))) == "valid-round"
    assert admission.proposal(proposal(r=0, valid_round=Round(0))) == "valid-round"


# -- rule 6: proposal height -----------------------------------------------------------------


def test_proposal_of_a_block_of_another_height_is_height_mismatch(admission: Admission) -> None:
    """The proposed block must be of the proposal's height."""
    assert admission.proposal(proposal(block=block(h=6))) == "height-mismatch"


# -- rule 7: payload shape -------------------------------------------------------------------


def test_attestation_with_someone_elses_report_is_report_mismatch(admission: Admission) -> None:
    """The report must be the signer's and about the attested candidate."""
    others = EvalReport(ValidatorIndex(2), H, 50, 0.7, 0.6, 0.8, 0.85)
    elsewhere = EvalReport(ValidatorIndex(1), OTHER, 50, 0.7, 0.6, 0.8, 0.85)
    assert admission.attestation(attestation(report=others)) == "report-mismatch"
    assert admission.attestation(attestation(report=elsewhere)) == "report-mismatch"


def test_attestation_with_overlong_metric_name_is_report_mismatch(admission: Admission) -> None:
    """A report names its metric in at most 32 characters; a fallback "loss" name is admitted;
    the name is covered by the evaluator's signature."""
    own = signed_report(EvalReport(ValidatorIndex(1), H, 50, 0.7, 0.6, 0.7, 0.6, "loss"))
    long_name = signed_report(EvalReport(ValidatorIndex(1), H, 50, 0.7, 0.6, 0.7, 0.6, "x" * 33))
    assert admission.attestation(attestation(report=own)) is None
    assert admission.attestation(attestation(report=long_name)) == "report-mismatch"
    renamed = dataclasses.replace(own, metric_name="auc")  # the signature was over "loss"
    assert admission.attestation(attestation(report=renamed)) == "bad-signature"


def test_candidate_without_updates_or_rule_is_empty_candidate(admission: Admission) -> None:
    """A candidate aggregates at least one update with a named rule."""
    assert admission.candidate(candidate(receipts=())) == "empty-candidate"
    assert admission.candidate(candidate(rule="")) == "empty-candidate"


def test_candidate_whose_rejections_lack_reasons_is_bad_rejections(admission: Admission) -> None:
    """Every rejected receipt carries one well-formed reason code, in order."""
    rejected = (receipt(2),)
    assert admission.candidate(candidate(rejected=rejected)) == "bad-rejections"
    bad = candidate(rejected=rejected, rejection_reasons=("Outlier!",))
    assert admission.candidate(bad) == "bad-rejections"
    extra = candidate(rejected=rejected, rejection_reasons=("outlier", "outlier"))
    assert admission.candidate(extra) == "bad-rejections"
    good = candidate(rejected=rejected, rejection_reasons=("outlier",))
    assert admission.candidate(good) is None


def test_receipt_with_impossible_statistics_is_bad_statistics(admission: Admission) -> None:
    """No samples, or a negative privacy budget, is bad-statistics."""
    assert admission.receipt(receipt(n_samples=0)) == "bad-statistics"
    assert admission.receipt(receipt(epsilon_spent=-0.5)) == "bad-statistics"
    assert admission.receipt(receipt(epsilon_spent=0.5)) is None


# -- rule 8: signature -----------------------------------------------------------------------


def test_borrowed_or_missing_signature_is_bad_signature(admission: Admission) -> None:
    """Another member's signature, or the empty placeholder, is bad-signature."""
    assert admission.vote(forged(vote())) == "bad-signature"
    assert admission.proposal(forged(proposal())) == "bad-signature"
    assert admission.receipt(forged(receipt())) == "bad-signature"
    assert admission.candidate(forged(candidate())) == "bad-signature"
    assert admission.attestation(forged(attestation())) == "bad-signature"
    unsigned = dataclasses.replace(vote(), signature=Signature(bytes(96)))
    assert admission.vote(unsigned) == "bad-signature"


def test_signature_of_another_chain_is_bad_signature(genesis: Genesis) -> None:
    """The chain id is inside the sign-bytes: the same vote on another chain does not verify."""
    elsewhere = dataclasses.replace(genesis, chain_id="elsewhere")
    admission = Admission.for_genesis(elsewhere, FakeVerifier.for_signers(SIGNERS))
    assert admission.vote(vote()) == "bad-signature"


def test_verify_false_skips_only_the_signature(admission: Admission) -> None:
    """verify=False admits a forgery but still applies every other rule."""
    assert admission.vote(forged(vote()), verify=False) is None
    assert admission.attestation(forged(attestation()), verify=False) is None
    assert admission.receipt(forged(receipt()), verify=False) is None
    assert admission.vote(vote(OBSERVER), verify=False) == "unknown-signer"
    bad_round = proposal(r=1, valid_round=Round(1))
    assert admission.proposal(bad_round, verify=False) == "valid-round"


def test_proposal_signature_with_a_precomputed_block_hash(admission: Admission) -> None:
    """A caller's block hash is used for the sign-bytes instead of hashing the block again."""
    p = proposal()
    assert admission.proposal(p, block_hash=block_hash(p.block)) is None
    assert admission.proposal(p, block_hash=OTHER) == "bad-signature"


def test_batch_verified_flags_each_message(admission: Admission) -> None:
    """One flag per message, across different sign-bytes; forgeries and strangers are False."""
    nil_vote = vote(1, block_hash=None)
    stranger = vote(0, validator=ValidatorIndex(9))
    batch = [vote(0), forged(vote(1)), vote(2), nil_vote, stranger, attestation(2)]
    assert admission.batch_verified(batch) == [True, False, True, True, False, True]
    assert admission.batch_verified([]) == []


# -- reason codes ----------------------------------------------------------------------------


def test_reason_codes_are_closed_and_kebab_case() -> None:
    """REASONS lists every code constant once, each a lowercase kebab-case label value."""
    constants = {v for k, v in vars(adm).items() if k.isupper() and isinstance(v, str)}
    assert constants == set(REASONS) and len(REASONS) == len(set(REASONS))
    assert all(r == r.lower() and " " not in r and "_" not in r for r in REASONS)


def test_eval_report_numbers_must_carry_their_evaluators_signature(admission: Admission) -> None:
    """Numbers changed after signing, or never signed, are bad-signature (the verdict's
    signature does not cover them)."""
    good = attestation()
    altered = dataclasses.replace(good.report, metric_after=0.99)
    unsigned = dataclasses.replace(good.report, signature=EMPTY_SIGNATURE)
    assert admission.attestation(good) is None
    assert admission.attestation(attestation(report=altered)) == "bad-signature"
    assert admission.attestation(attestation(report=unsigned)) == "bad-signature"
