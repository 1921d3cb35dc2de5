"""The upon-rules of Tendermint's Algorithm 1 (rules 3-11 of consensus/core.py's list).

A mixin of `ConsensusCore`, split out only to keep each module readable: it shares the core's
state and is never used alone. Each rule is one method that fires at most once per call and
says whether it did; `_progress` applies them until none fires. Thresholds are checked on
verified votes only; pending votes are batch-verified when (and only when) they could tip one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from consensus.events import Action, ScheduleTimeout, TimeoutFired
from consensus.pol import LearningState, ProposerStage
from consensus.types import (
    Block,
    CommitCertificate,
    Genesis,
    Hash,
    Height,
    Proposal,
    Round,
    Step,
    ValidatorIndex,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet
from consensus.votes import VoteSet


class TendermintRules:
    """Algorithm 1's rules over the core's vote and proposal logs."""

    # State owned by ConsensusCore (declared for the type checker).
    genesis: Genesis
    validator_set: ValidatorSet
    height: Height
    round: Round
    step: Step
    _votes: dict[tuple[int, VoteType], VoteSet]
    _proposals: dict[int, tuple[Proposal, Hash]]
    _blocks: dict[Hash, Block]
    _rounds_seen: set[int]
    _prevote_timeout_done: set[int]
    _precommit_timeout_done: set[int]
    _polka_done: set[int]
    _locked_value: Block | None
    _locked_hash: Hash | None
    _locked_round: int
    _valid_value: Block | None
    _valid_round: int
    _pol: LearningState

    if TYPE_CHECKING:

        def _verify_votes(self, votes: Sequence[Vote]) -> list[bool]: ...
        def _reject(self, reason: str) -> None: ...
        def _cast(self, vote_type: VoteType, value: Hash | None, out: list[Action]) -> None: ...
        def _valid(self, bhash: Hash) -> bool: ...
        def _persist_lock(self, out: list[Action]) -> None: ...
        def _commit_certificate(self, vs: VoteSet, value: Hash) -> CommitCertificate: ...
        def _commit(
            self,
            block: Block,
            bhash: Hash,
            cert: CommitCertificate,
            now: float,
            out: list[Action],
        ) -> None: ...
        def _start_round(self, round_: Round, now: float, out: list[Action]) -> None: ...
        def _advance_learning(self, now: float, out: list[Action]) -> None: ...
        def _propose_carry_over(self, reason: str, now: float, out: list[Action]) -> None: ...

    def _quorum_for(self, round_: int, vote_type: VoteType, value: Hash | None) -> bool:
        """2f+1 verified votes for `value`; verifies pending ones only if they could tip it."""
        vs = self._votes.get((round_, vote_type))
        if vs is None:
            return False
        vset = self.validator_set
        if vset.has_quorum(vs.power_for(value, verified_only=True)):
            return True
        if vset.has_quorum(vs.power_for(value, verified_only=False)):
            bad = vs.verify_pending(lambda v: v == value, self._verify_votes, vset.power)
            for _ in bad:
                self._reject("vote with a bad signature")
            return vset.has_quorum(vs.power_for(value, verified_only=True))
        return False

    def _quorum_any(self, round_: int, vote_type: VoteType) -> bool:
        """2f+1 verified votes of any value (lines 34 and 47)."""
        vs = self._votes.get((round_, vote_type))
        if vs is None:
            return False
        vset = self.validator_set
        if vset.has_quorum(vs.verified_total):
            return True
        if vset.has_quorum(vs.verified_total + vs.pending_total):
            bad = vs.verify_pending(lambda v: True, self._verify_votes, vset.power)
            for _ in bad:
                self._reject("vote with a bad signature")
            return vset.has_quorum(vs.verified_total)
        return False

    def _round_senders(self, round_: int, *, verified_only: bool) -> set[ValidatorIndex]:
        senders: set[ValidatorIndex] = set()
        for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            vs = self._votes.get((round_, vote_type))
            if vs is not None:
                senders |= vs.senders(verified_only=verified_only)
        if round_ in self._proposals:
            senders.add(self._proposals[round_][0].proposer)
        return senders

    # -- the rules -------------------------------------------------------------------------

    def _progress(self, now: float, out: list[Action]) -> None:
        """Apply every enabled upon-rule until none fires (the order does not matter)."""
        height = self.height
        while True:
            if self._rule_decide(now, out) or self.height != height:
                return
            fired = (
                self._rule_skip_round(now, out)
                or self._rule_prevote_on_proposal(out)
                or self._rule_prevote_timeout(out)
                or self._rule_polka(out)
                or self._rule_nil_polka(out)
                or self._rule_precommit_timeout(out)
            )
            if not fired:
                return

    def _rule_prevote_on_proposal(self, out: list[Action]) -> bool:
        """Lines 22-33."""
        if self.step != Step.PROPOSE or self.round not in self._proposals:
            return False
        proposal, bhash = self._proposals[self.round]
        vr = proposal.valid_round
        locked_hash = self._locked_hash
        if vr == -1:
            ok = self._valid(bhash) and (self._locked_round == -1 or locked_hash == bhash)
        elif vr < self.round and self._quorum_for(vr, VoteType.PREVOTE, bhash):
            ok = self._valid(bhash) and (self._locked_round <= vr or locked_hash == bhash)
        else:
            return False
        self._cast(VoteType.PREVOTE, bhash if ok else None, out)
        self.step = Step.PREVOTE
        return True

    def _rule_prevote_timeout(self, out: list[Action]) -> bool:
        """Lines 34-35."""
        r = self.round
        if self.step != Step.PREVOTE or r in self._prevote_timeout_done:
            return False
        if not self._quorum_any(r, VoteType.PREVOTE):
            return False
        self._prevote_timeout_done.add(r)
        t = self.genesis.timeouts
        out.append(
            ScheduleTimeout(self.height, self.round, Step.PREVOTE, t.prevote + r * t.prevote_delta)
        )
        return True

    def _rule_polka(self, out: list[Action]) -> bool:
        """Lines 36-43."""
        r = self.round
        if self.step < Step.PREVOTE or r in self._polka_done or r not in self._proposals:
            return False
        _, bhash = self._proposals[r]
        if not self._quorum_for(r, VoteType.PREVOTE, bhash) or not self._valid(bhash):
            return False
        self._polka_done.add(r)
        block = self._blocks[bhash]
        if self.step == Step.PREVOTE:
            self._locked_value = block
            self._locked_hash = bhash
            self._locked_round = r
            self._persist_lock(out)
            self._cast(VoteType.PRECOMMIT, bhash, out)
            self.step = Step.PRECOMMIT
        self._valid_value = block
        self._valid_round = r
        return True

    def _rule_nil_polka(self, out: list[Action]) -> bool:
        """Lines 44-46."""
        if self.step != Step.PREVOTE or not self._quorum_for(self.round, VoteType.PREVOTE, None):
            return False
        self._cast(VoteType.PRECOMMIT, None, out)
        self.step = Step.PRECOMMIT
        return True

    def _rule_precommit_timeout(self, out: list[Action]) -> bool:
        """Lines 47-48."""
        r = self.round
        if r in self._precommit_timeout_done or not self._quorum_any(r, VoteType.PRECOMMIT):
            return False
        self._precommit_timeout_done.add(r)
        t = self.genesis.timeouts
        out.append(
            ScheduleTimeout(
                self.height, self.round, Step.PRECOMMIT, t.precommit + r * t.precommit_delta
            )
        )
        return True

    def _rule_decide(self, now: float, out: list[Action]) -> bool:
        """Lines 49-54, in any round of the height."""
        vset = self.validator_set
        for (r, vote_type), vs in sorted(self._votes.items()):
            if vote_type != VoteType.PRECOMMIT:
                continue
            for value in sorted(v for v in vs.values() if v is not None):
                if value not in self._blocks:
                    continue
                if not vset.has_quorum(vs.power_for(value, verified_only=False)):
                    continue
                if self._quorum_for(r, VoteType.PRECOMMIT, value) and self._valid(value):
                    cert = self._commit_certificate(vs, value)
                    self._commit(self._blocks[value], value, cert, now, out)
                    return True
        return False

    def _rule_skip_round(self, now: float, out: list[Action]) -> bool:
        """Lines 55-56: f+1 distinct validators at a higher round."""
        vset = self.validator_set
        for r in sorted((r for r in self._rounds_seen if r > self.round), reverse=True):
            if vset.has_one_third(vset.power_of(self._round_senders(r, verified_only=True))):
                self._start_round(Round(r), now, out)
                return True
            if vset.has_one_third(vset.power_of(self._round_senders(r, verified_only=False))):
                for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                    vs = self._votes.get((r, vote_type))
                    if vs is not None:
                        for _ in vs.verify_pending(lambda v: True, self._verify_votes, vset.power):
                            self._reject("vote with a bad signature")
                if vset.has_one_third(vset.power_of(self._round_senders(r, verified_only=True))):
                    self._start_round(Round(r), now, out)
                    return True
        return False

    def _on_timeout(self, event: TimeoutFired, now: float, out: list[Action]) -> None:
        """Lines 57-67, plus the two proof-of-learning timeouts."""
        if event.height != self.height:
            return
        if event.step == Step.UPDATE_WINDOW:
            self._pol.window_closed = True
            self._advance_learning(now, out)
            return
        if event.round != self.round:
            return
        if event.step == Step.ATTESTATION:
            if self._pol.stage == ProposerStage.ATTESTING and self._pol.stage_round == self.round:
                self._propose_carry_over("attestation timeout", now, out)
            return
        if event.step == Step.PROPOSE and self.step == Step.PROPOSE:
            self._cast(VoteType.PREVOTE, None, out)
            self.step = Step.PREVOTE
        elif event.step == Step.PREVOTE and self.step == Step.PREVOTE:
            self._cast(VoteType.PRECOMMIT, None, out)
            self.step = Step.PRECOMMIT
        elif event.step == Step.PRECOMMIT:
            self._start_round(Round(self.round + 1), now, out)
            return
        else:
            return
        self._progress(now, out)
