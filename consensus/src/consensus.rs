//! The Tendermint state machine: Algorithm 1 of "The latest gossip on BFT consensus"
//! (Buchman, Kwon, Milosevic, 2018, arXiv:1807.04938). Each rule cites its line ("L22").
//!
//! [`Consensus::step`] takes one [`Input`] and returns the [`Output`]s the host carries out,
//! in order. Nothing here does I/O, reads a clock or draws randomness: messages, timeouts and
//! the host's answers come in as inputs. After every input the rules are evaluated until none
//! fires, so a rule whose condition became true through an earlier rule fires in the same
//! step, as the paper's "upon" rules do.
//!
//! Deviations from the paper, each for a stated reason:
//! - The proposer schedules the propose timeout too, so a host that never delivers a block
//!   cannot stall the round (L57 then prevotes nil).
//! - `valid(v)` is asked of the host ([`Output::ValidateBlock`]) and answered later; rules that
//!   need it wait for the answer.
//! - The lock survives a restart through the [`Signer`]'s record (see `signer.rs`).

use std::collections::{BTreeMap, BTreeSet};
use tally_crypto::KeyCache;

use crate::Error;
use crate::certificate::CommitCertificate;
use crate::evidence::Evidence;
use crate::message::{
    BLOCK_BYTES_MAX, Message, Proposal, SignedProposal, SignedVote, Vote, VoteKind,
};
use crate::signer::{SignStep, Signer, SignerStore};
use crate::types::{BlockHash, Height, Round, ValidatorIndex};
use crate::validators::{VALIDATORS_MAX, ValidatorSet, ValidatorSets};
use crate::verified::Verified;
use crate::votes::{Added, VoteKeeper};

/// Votes and proposals are kept for rounds at most this far above the current one; the rest
/// are dropped (a Byzantine validator could otherwise fill memory with far-future rounds).
pub const FUTURE_ROUNDS_MAX: u32 = 8;
/// Messages for heights at most this far above the current one are buffered, the rest
/// dropped.
pub const FUTURE_HEIGHTS_MAX: u64 = 2;
/// Most messages buffered for future heights, all heights together.
pub const FUTURE_MESSAGES_MAX: usize = 4 * VALIDATORS_MAX;
/// Most block bytes buffered for future heights.
pub const FUTURE_BLOCK_BYTES_MAX: usize = 2 * BLOCK_BYTES_MAX;
/// Most distinct proposals kept per round. One is honest; a second is equivocation, kept so
/// the block that gathers a quorum can still be decided whichever copy came first.
pub const PROPOSALS_PER_ROUND_MAX: usize = 2;

/// How long each step may wait before timing out. Each grows by `round_increase_ms` per round
/// (so rounds eventually outlast any message delay after the network settles), up to
/// `timeout_ms_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutConfig {
    pub propose_ms: u64,
    pub prevote_ms: u64,
    pub precommit_ms: u64,
    pub round_increase_ms: u64,
    pub timeout_ms_max: u64,
}

impl Default for TimeoutConfig {
    fn default() -> TimeoutConfig {
        TimeoutConfig {
            propose_ms: 1_000,
            prevote_ms: 500,
            precommit_ms: 500,
            round_increase_ms: 250,
            timeout_ms_max: 10_000,
        }
    }
}

impl TimeoutConfig {
    /// The duration of the `kind` timeout in `round`.
    pub fn duration_ms(&self, kind: TimeoutKind, round: Round) -> u64 {
        let base = match kind {
            TimeoutKind::Propose => self.propose_ms,
            TimeoutKind::Prevote => self.prevote_ms,
            TimeoutKind::Precommit => self.precommit_ms,
        };
        base.saturating_add(self.round_increase_ms.saturating_mul(u64::from(round.0)))
            .min(self.timeout_ms_max)
    }
}

/// Known bugs the simulator's sensitivity tests plant, to show the checks can fail; and the
/// "amnesia" Byzantine behaviour, which is `ignore_lock` on a faulty node.
#[cfg(feature = "sim")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlantedBugs {
    /// A quorum of 2f instead of 2f+1 (at least 2/3 of the power instead of more than 2/3).
    pub quorum_2f: bool,
    /// Prevote for a proposal whatever the lock (L22/L28 without the lock condition).
    pub ignore_lock: bool,
}

/// What a consensus instance is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub chain_id: String,
    pub timeouts: TimeoutConfig,
    #[cfg(feature = "sim")]
    pub planted: PlantedBugs,
}

impl Config {
    pub fn new(chain_id: &str) -> Config {
        Config {
            chain_id: chain_id.to_string(),
            timeouts: TimeoutConfig::default(),
            #[cfg(feature = "sim")]
            planted: PlantedBugs::default(),
        }
    }
}

/// The three steps of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeoutKind {
    Propose,
    Prevote,
    Precommit,
}

/// A timeout the host scheduled and now reports as fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeout {
    pub height: Height,
    pub round: Round,
    pub kind: TimeoutKind,
}

/// What the host feeds in.
#[derive(Debug, Clone)]
pub enum Input {
    /// A proposal or vote from a peer (or from the host's own gossip), already verified
    /// against the validator set in force at its height.
    Message(Verified<Message>),
    /// A timeout scheduled by [`Output::ScheduleTimeout`] fired.
    Timeout(Timeout),
    /// The block to propose, answering [`Output::RequestBlock`].
    BlockToPropose {
        height: Height,
        round: Round,
        block: Vec<u8>,
    },
    /// Whether a proposed block is valid, answering [`Output::ValidateBlock`].
    BlockValidity {
        height: Height,
        block: BlockHash,
        valid: bool,
    },
    /// This height was decided elsewhere: the block and its certificate, from a peer (block
    /// sync). Ignored unless it is for the current height and the certificate verifies.
    Decided {
        block: Vec<u8>,
        certificate: CommitCertificate,
    },
}

/// A block that got a quorum of prevotes in `round` (the paper's validValue), its bytes, and
/// the prevotes that prove it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValidRecord {
    pub height: Height,
    pub round: Round,
    pub block: Vec<u8>,
    pub prevotes: Vec<SignedVote>,
}

/// A decided block with the certificate that proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub height: Height,
    pub round: Round,
    pub block: Vec<u8>,
    pub certificate: CommitCertificate,
}

/// What the host carries out, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send to every validator. The signer already recorded it durably.
    Broadcast(Message),
    /// Feed back `Input::Timeout(timeout)` after `duration_ms` of local time.
    ScheduleTimeout { timeout: Timeout, duration_ms: u64 },
    /// This node proposes at (height, round): build a block and feed back
    /// `Input::BlockToPropose`.
    RequestBlock { height: Height, round: Round },
    /// Check this proposed block and feed back `Input::BlockValidity`.
    ValidateBlock {
        height: Height,
        round: Round,
        block_hash: BlockHash,
        block: Vec<u8>,
    },
    /// Final: persist the block with its certificate before acting on later outputs (they
    /// belong to the next height).
    Decision(Decision),
    /// A validator equivocated: keep, gossip, put on chain.
    Evidence(Evidence),
    /// Store this (replacing any earlier one) and hand it to [`Consensus::recover`] after a
    /// restart at the same height. Not needed for safety (the signer keeps the lock); needed
    /// for liveness, since a node that lost the block it is locked on, and the prevotes that
    /// justify it, could hold a lock no one can release.
    Persist(ValidRecord),
    /// The signer refused or failed to sign; nothing was sent. After a restart this is
    /// expected for the step that was signed before the crash.
    SignerRefused {
        height: Height,
        round: Round,
        error: Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    Pending,
    Valid,
    Invalid,
}

/// Rules that fire only "for the first time" in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Once {
    L34PrevoteTimeout,
    L36PrecommitBlock,
    L47PrecommitTimeout,
}

/// Everything that belongs to the current height and is dropped when it is decided.
#[derive(Debug)]
struct HeightState {
    height: Height,
    round: Round,
    step: Step,
    /// `lockedRound`/`lockedValue` of the paper.
    locked: Option<(Round, BlockHash)>,
    /// `validRound`/`validValue` of the paper.
    valid: Option<(Round, BlockHash)>,
    proposals: BTreeMap<Round, Vec<SignedProposal>>,
    blocks: BTreeMap<BlockHash, Vec<u8>>,
    validity: BTreeMap<BlockHash, Validity>,
    votes: VoteKeeper,
    fired: BTreeSet<(Round, Once)>,
    reported_proposals: BTreeSet<Round>,
    /// This node's index in the set in force at this height, if it is a validator there.
    me: Option<ValidatorIndex>,
}

impl HeightState {
    fn new(height: Height, me: Option<ValidatorIndex>) -> HeightState {
        HeightState {
            height,
            round: Round::ZERO,
            step: Step::Propose,
            locked: None,
            valid: None,
            proposals: BTreeMap::new(),
            blocks: BTreeMap::new(),
            validity: BTreeMap::new(),
            votes: VoteKeeper::default(),
            fired: BTreeSet::new(),
            reported_proposals: BTreeSet::new(),
            me,
        }
    }

    fn validity(&self, block: BlockHash) -> Option<Validity> {
        self.validity.get(&block).copied()
    }
}

/// One validator's (or observer's) consensus: the current height's state, the validator
/// sets, and the signer. See the module documentation.
#[derive(Debug)]
pub struct Consensus<S: SignerStore> {
    config: Config,
    sets: ValidatorSets,
    signer: Option<Signer<S>>,
    state: HeightState,
    future: BTreeMap<Height, Vec<Verified<Message>>>,
    future_count: usize,
    future_block_bytes: usize,
    keys: KeyCache,
    started: bool,
}

impl<S: SignerStore> Consensus<S> {
    /// Consensus starting at `height` (the one after the last block the host has stored).
    /// With no signer it follows and decides but never votes (an observer). With a signer
    /// that already signed at `height` (a restart), it resumes that round with the lock the
    /// signer recorded. Call [`Consensus::start`] before any input.
    pub fn new(
        config: Config,
        sets: ValidatorSets,
        height: Height,
        signer: Option<Signer<S>>,
    ) -> Consensus<S> {
        let me = my_index(&sets, height, signer.as_ref());
        Consensus {
            config,
            sets,
            signer,
            state: HeightState::new(height, me),
            future: BTreeMap::new(),
            future_count: 0,
            future_block_bytes: 0,
            keys: KeyCache::new(4 * VALIDATORS_MAX),
            started: false,
        }
    }

    /// Starts the first round (or resumes the round the signer was in).
    pub fn start(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if self.started {
            return out;
        }
        self.started = true;
        let height = self.state.height;
        let resume = self
            .signer
            .as_ref()
            .and_then(|s| s.last_signed())
            .filter(|last| last.height == height);
        match resume {
            Some(last) => {
                self.state.locked = self
                    .signer
                    .as_ref()
                    .and_then(|s| s.lock_at(height))
                    .map(|l| (l.round, l.block));
                self.start_round(last.round, &mut out);
                // Our votes of that round count again and can be sent again.
                let recent: Vec<SignedVote> = self
                    .signer
                    .as_ref()
                    .map(|s| s.recent_votes().to_vec())
                    .unwrap_or_default();
                for vote in recent.into_iter().filter(|v| v.vote.height == height) {
                    self.accept_vote(vote, &mut out);
                }
                // What was signed before the crash is not signed again.
                self.state.step = match last.step {
                    SignStep::Propose => Step::Propose,
                    SignStep::Prevote => Step::Prevote,
                    SignStep::Precommit => Step::Precommit,
                };
            }
            None => self.start_round(Round::ZERO, &mut out),
        }
        self.run_rules(&mut out);
        out
    }

    /// Takes back a [`ValidRecord`] the host persisted, after a restart and before
    /// [`Consensus::start`]. Ignored unless it is for the current height; its prevotes are
    /// checked again, and it is refused unless they are a quorum for its block.
    pub fn recover(&mut self, record: ValidRecord) -> Result<(), Error> {
        let height = self.state.height;
        let set = self.sets.require(height)?;
        if record.height != height {
            return Err(Error::WrongHeight {
                expected: height,
                got: record.height,
            });
        }
        let block = BlockHash::of(&record.block);
        let mut power = 0;
        let mut counted = BTreeSet::new();
        for v in &record.prevotes {
            let key = set
                .get(v.vote.validator)
                .map(|x| x.public_key)
                .ok_or(Error::UnknownValidator(v.vote.validator))?;
            v.verify_signature(&key, &self.config.chain_id)?;
            let matches = v.vote.kind == VoteKind::Prevote
                && v.vote.height == height
                && v.vote.round == record.round
                && v.vote.block == Some(block);
            if matches && counted.insert(v.vote.validator) {
                power += set.power(v.vote.validator);
            }
        }
        if power < self.quorum() {
            return Err(Error::InsufficientPower {
                power,
                quorum: self.quorum(),
            });
        }
        for v in record.prevotes {
            self.accept_vote(v, &mut Vec::new());
        }
        self.state.blocks.insert(block, record.block);
        self.state.validity.insert(block, Validity::Valid);
        self.state.valid = Some((record.round, block));
        Ok(())
    }

    /// Schedules a validator-set change at `at` (after the current height).
    pub fn schedule_validator_set(&mut self, at: Height, set: ValidatorSet) -> Result<(), Error> {
        if at <= self.state.height {
            return Err(Error::ScheduleOrder {
                at,
                last: self.state.height,
            });
        }
        self.sets.schedule(at, set)
    }

    pub fn height(&self) -> Height {
        self.state.height
    }

    pub fn round(&self) -> Round {
        self.state.round
    }

    pub fn current_step(&self) -> Step {
        self.state.step
    }

    /// The lock: the round and block this node precommitted last at this height.
    pub fn locked(&self) -> Option<(Round, BlockHash)> {
        self.state.locked
    }

    /// The valid value (`validRound`, `validValue` of the paper): the latest block seen with
    /// a quorum of prevotes at this height.
    pub fn valid(&self) -> Option<(Round, BlockHash)> {
        self.state.valid
    }

    pub fn validator_sets(&self) -> &ValidatorSets {
        &self.sets
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Gives back the signer (the simulator keeps its store across a crash).
    pub fn into_signer(self) -> Option<Signer<S>> {
        self.signer
    }

    /// Messages worth sending again when peers may have missed them: this node's own of the
    /// current and previous round, its votes of the rounds a proof of lock may need, and the
    /// prevotes proving its valid value. Its own proposal is left out once every other
    /// validator has voted for its block in that round: each then holds the block, and a
    /// proposal carries the whole block (issue 13: it was resent every second regardless).
    /// Algorithm 1 assumes gossip that eventually delivers; over a lossy network the host
    /// calls this on a timer and retransmits.
    pub fn messages_to_resend(&self) -> Vec<Message> {
        let Some(me) = self.state.me else {
            return Vec::new();
        };
        let state = &self.state;
        let current = state.round;
        // Also the rounds whose prevotes someone may need as a proof of lock (L28): our
        // locked and valid rounds, and the proof-of-lock round of this round's proposal.
        let mut rounds: BTreeSet<Round> = [current.0.checked_sub(1).map(Round), Some(current)]
            .into_iter()
            .flatten()
            .collect();
        rounds.extend(state.locked.map(|(r, _)| r));
        rounds.extend(state.valid.map(|(r, _)| r));
        rounds.extend(
            state
                .proposals
                .get(&current)
                .into_iter()
                .flatten()
                .filter_map(|p| p.proposal.pol_round),
        );
        let mut messages = Vec::new();
        for round in rounds {
            for p in self.state.proposals.get(&round).into_iter().flatten() {
                if p.proposal.proposer == me
                    && !self.all_others_hold(round, p.proposal.block, me)
                    && let Some(block) = self.state.blocks.get(&p.proposal.block)
                {
                    messages.push(Message::Proposal {
                        proposal: *p,
                        block: block.clone(),
                    });
                }
            }
            for v in self.state.votes.votes_of(round, me) {
                messages.push(Message::Vote(v));
            }
        }
        // The proof of lock for our valid value, everyone's prevotes: the paper assumes a
        // correct node's messages reach all (gossip relays them). Without this relay a node
        // could hold a valid value others cannot accept, for ever.
        if let Some((round, block)) = state.valid {
            for v in state.votes.prevotes_for(round, block) {
                if v.vote.validator != me {
                    messages.push(Message::Vote(v));
                }
            }
        }
        messages
    }

    /// Whether every validator but `me` has voted for `block` in `round`.
    fn all_others_hold(&self, round: Round, block: BlockHash, me: ValidatorIndex) -> bool {
        let Some(set) = self.set() else {
            return false;
        };
        let holders = self.state.votes.holders_of(round, block);
        set.validators()
            .iter()
            .filter_map(|v| set.index_of(&v.public_key))
            .filter(|i| *i != me)
            .all(|i| holders.contains(&i))
    }

    /// Feeds one input; returns what the host must do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.started {
            out.extend(self.start());
        }
        match input {
            Input::Message(message) => self.on_message(message, &mut out),
            Input::Timeout(timeout) => self.on_timeout(timeout, &mut out),
            Input::BlockToPropose {
                height,
                round,
                block,
            } => self.on_block_to_propose(height, round, block, &mut out),
            Input::BlockValidity {
                height,
                block,
                valid,
            } => {
                if height == self.state.height
                    && self.state.validity(block) == Some(Validity::Pending)
                {
                    let v = if valid {
                        Validity::Valid
                    } else {
                        Validity::Invalid
                    };
                    self.state.validity.insert(block, v);
                }
            }
            Input::Decided { block, certificate } => self.on_decided(block, certificate, &mut out),
        }
        self.run_rules(&mut out);
        out
    }

    // ---- thresholds -------------------------------------------------------------------

    fn set(&self) -> Option<&ValidatorSet> {
        self.sets.at(self.state.height)
    }

    fn quorum(&self) -> u64 {
        let Some(set) = self.set() else {
            return u64::MAX;
        };
        #[cfg(feature = "sim")]
        if self.config.planted.quorum_2f {
            return set.power_total() * 2 / 3;
        }
        set.quorum_power()
    }

    fn one_third(&self) -> u64 {
        self.set().map_or(u64::MAX, |s| s.one_third_power())
    }

    fn ignores_lock(&self) -> bool {
        #[cfg(feature = "sim")]
        if self.config.planted.ignore_lock {
            return true;
        }
        false
    }

    // ---- inputs -----------------------------------------------------------------------

    fn on_message(&mut self, message: Verified<Message>, out: &mut Vec<Output>) {
        let height = message.height();
        // The signature must have been checked against the set in force at its height.
        let Some(set) = self.sets.at(height) else {
            return;
        };
        if set.id() != message.set_id() {
            return;
        }
        if height < self.state.height {
            return;
        }
        if height > self.state.height {
            self.buffer_future(message);
            return;
        }
        self.accept(message.into_inner(), out);
    }

    fn buffer_future(&mut self, message: Verified<Message>) {
        let height = message.height();
        let within = self
            .state
            .height
            .checked_add(FUTURE_HEIGHTS_MAX)
            .is_none_or(|max| height <= max);
        let bytes = match message.get() {
            Message::Proposal { block, .. } => block.len(),
            Message::Vote(_) => 0,
        };
        if !within
            || self.future_count >= FUTURE_MESSAGES_MAX
            || self.future_block_bytes.saturating_add(bytes) > FUTURE_BLOCK_BYTES_MAX
        {
            return;
        }
        self.future_count += 1;
        self.future_block_bytes += bytes;
        self.future.entry(height).or_default().push(message);
    }

    /// Takes a verified message of the current height into the state.
    fn accept(&mut self, message: Message, out: &mut Vec<Output>) {
        if message.round() > self.state.round.saturating_add(FUTURE_ROUNDS_MAX) {
            return;
        }
        match message {
            Message::Proposal { proposal, block } => self.accept_proposal(proposal, block, out),
            Message::Vote(vote) => self.accept_vote(vote, out),
        }
    }

    fn accept_proposal(&mut self, proposal: SignedProposal, block: Vec<u8>, out: &mut Vec<Output>) {
        let p = proposal.proposal;
        let state = &mut self.state;
        let kept = state.proposals.entry(p.round).or_default();
        if kept.contains(&proposal) {
            return;
        }
        if let Some(first) = kept.first().copied()
            && state.reported_proposals.insert(p.round)
            && let Some(evidence) = Evidence::proposals(first, proposal)
        {
            out.push(Output::Evidence(evidence));
        }
        if kept.len() >= PROPOSALS_PER_ROUND_MAX {
            return;
        }
        kept.push(proposal);
        if let std::collections::btree_map::Entry::Vacant(slot) = state.validity.entry(p.block) {
            slot.insert(Validity::Pending);
            out.push(Output::ValidateBlock {
                height: p.height,
                round: p.round,
                block_hash: p.block,
                block: block.clone(),
            });
        }
        state.blocks.entry(p.block).or_insert(block);
    }

    fn accept_vote(&mut self, vote: SignedVote, out: &mut Vec<Output>) {
        let power = self.set().map_or(0, |s| s.power(vote.vote.validator));
        if power == 0 {
            return;
        }
        if let Added::Conflict(Some(evidence)) = self.state.votes.add(vote, power) {
            out.push(Output::Evidence(*evidence));
        }
    }

    fn on_timeout(&mut self, t: Timeout, out: &mut Vec<Output>) {
        if t.height != self.state.height || t.round != self.state.round {
            return;
        }
        match t.kind {
            // L57: upon OnTimeoutPropose(h_p, round_p) while step = propose: prevote nil.
            TimeoutKind::Propose if self.state.step == Step::Propose => {
                self.vote(VoteKind::Prevote, None, out);
                self.state.step = Step::Prevote;
            }
            // L61: upon OnTimeoutPrevote(h_p, round_p) while step = prevote: precommit nil.
            TimeoutKind::Prevote if self.state.step == Step::Prevote => {
                self.vote(VoteKind::Precommit, None, out);
                self.state.step = Step::Precommit;
            }
            // L65: upon OnTimeoutPrecommit(h_p, round_p): StartRound(round_p + 1).
            TimeoutKind::Precommit => {
                if let Some(next) = self.state.round.next() {
                    self.start_round(next, out);
                }
            }
            _ => {}
        }
    }

    fn on_block_to_propose(
        &mut self,
        height: Height,
        round: Round,
        block: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        let state = &self.state;
        let Some(me) = state.me else { return };
        let is_proposer = self.set().map(|s| s.proposer(height, round)) == Some(me);
        let already = state
            .proposals
            .get(&round)
            .is_some_and(|ps| ps.iter().any(|p| p.proposal.proposer == me));
        if height != state.height
            || round != state.round
            || state.step != Step::Propose
            || !is_proposer
            || already
            || block.len() > BLOCK_BYTES_MAX
        {
            return;
        }
        let hash = BlockHash::of(&block);
        self.propose(hash, None, block, out);
    }

    fn on_decided(
        &mut self,
        block: Vec<u8>,
        certificate: CommitCertificate,
        out: &mut Vec<Output>,
    ) {
        let height = self.state.height;
        if certificate.height != height || certificate.block != BlockHash::of(&block) {
            return;
        }
        let Some(set) = self.sets.at(height) else {
            return;
        };
        if certificate
            .verify_with(set, &self.config.chain_id, &mut self.keys)
            .is_err()
        {
            return;
        }
        out.push(Output::Decision(Decision {
            height,
            round: certificate.round,
            block,
            certificate,
        }));
        self.enter_next_height(out);
    }

    // ---- actions ------------------------------------------------------------------------

    /// StartRound (L11-L21): the proposer proposes `validValue` if it has one, else asks the
    /// host for a block; every node schedules the propose timeout.
    fn start_round(&mut self, round: Round, out: &mut Vec<Output>) {
        let state = &mut self.state;
        state.round = round;
        state.step = Step::Propose;
        let height = state.height;
        let proposer = self.sets.at(height).map(|s| s.proposer(height, round));
        if state.me.is_some() && state.me == proposer {
            // L14-L19: proposal ← validValue if not nil, else getValue().
            let valid = state
                .valid
                .and_then(|(vr, b)| state.blocks.get(&b).map(|bytes| (vr, b, bytes.clone())));
            match valid {
                Some((valid_round, hash, bytes)) => {
                    self.propose(hash, Some(valid_round), bytes, out)
                }
                None => out.push(Output::RequestBlock { height, round }),
            }
        }
        self.schedule(TimeoutKind::Propose, out);
    }

    /// L19: broadcast PROPOSAL(h_p, round_p, proposal, validRound).
    fn propose(
        &mut self,
        block: BlockHash,
        pol_round: Option<Round>,
        bytes: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        let (Some(me), Some(signer)) = (self.state.me, self.signer.as_mut()) else {
            return;
        };
        let proposal = Proposal {
            height: self.state.height,
            round: self.state.round,
            pol_round,
            block,
            proposer: me,
        };
        match signer.sign_proposal(proposal) {
            Ok(signed) => {
                // Our own block is valid: we built it, or it already got a quorum of prevotes.
                self.state.validity.insert(block, Validity::Valid);
                self.state.blocks.insert(block, bytes.clone());
                self.state
                    .proposals
                    .entry(proposal.round)
                    .or_default()
                    .push(signed);
                out.push(Output::Broadcast(Message::Proposal {
                    proposal: signed,
                    block: bytes,
                }));
            }
            Err(error) => out.push(Output::SignerRefused {
                height: proposal.height,
                round: proposal.round,
                error,
            }),
        }
    }

    /// Signs, counts and broadcasts this node's vote for the current round.
    fn vote(&mut self, kind: VoteKind, block: Option<BlockHash>, out: &mut Vec<Output>) {
        let (Some(me), Some(signer)) = (self.state.me, self.signer.as_mut()) else {
            return;
        };
        let vote = Vote {
            kind,
            height: self.state.height,
            round: self.state.round,
            block,
            validator: me,
        };
        match signer.sign_vote(vote) {
            Ok(signed) => {
                self.accept_vote(signed, out);
                out.push(Output::Broadcast(Message::Vote(signed)));
            }
            Err(error) => out.push(Output::SignerRefused {
                height: vote.height,
                round: vote.round,
                error,
            }),
        }
    }

    fn schedule(&self, kind: TimeoutKind, out: &mut Vec<Output>) {
        let round = self.state.round;
        out.push(Output::ScheduleTimeout {
            timeout: Timeout {
                height: self.state.height,
                round,
                kind,
            },
            duration_ms: self.config.timeouts.duration_ms(kind, round),
        });
    }

    /// After a decision: reset the height's state, start round 0 of the next height (no
    /// commit wait), and take in what was buffered for it.
    fn enter_next_height(&mut self, out: &mut Vec<Output>) {
        let Some(next) = self.state.height.next() else {
            // Height u64::MAX was decided: there is nothing left to agree on.
            return;
        };
        let me = my_index(&self.sets, next, self.signer.as_ref());
        self.state = HeightState::new(next, me);
        self.start_round(Round::ZERO, out);
        let buffered = std::mem::take(&mut self.future);
        self.future_count = 0;
        self.future_block_bytes = 0;
        for (height, messages) in buffered {
            for message in messages {
                if height == next {
                    self.on_message(message, out);
                } else {
                    self.buffer_future(message);
                }
            }
        }
    }

    // ---- rules --------------------------------------------------------------------------

    /// Fires rules until none applies. Terminates: every rule that fires moves the height,
    /// round or step forward or marks a once-per-round rule as done.
    fn run_rules(&mut self, out: &mut Vec<Output>) {
        while self.fire_one(out) {}
    }

    fn fire_one(&mut self, out: &mut Vec<Output>) -> bool {
        self.l49_decide(out)
            || self.l55_skip_round(out)
            || self.l22_prevote(out)
            || self.l28_prevote_pol(out)
            || self.l34_prevote_timeout(out)
            || self.l36_precommit_block(out)
            || self.l44_precommit_nil(out)
            || self.l47_precommit_timeout(out)
    }

    /// L49: upon PROPOSAL(h_p, r, v, *) and 2f+1 PRECOMMIT(h_p, r, id(v)) while
    /// decision_p[h_p] = nil: if valid(v), decide v and start the next height. Any round r.
    fn l49_decide(&mut self, out: &mut Vec<Output>) -> bool {
        let quorum = self.quorum();
        let state = &self.state;
        let decided = state
            .votes
            .precommitted_blocks()
            .into_iter()
            .find(|(_, block, power)| {
                *power >= quorum && state.validity(*block) == Some(Validity::Valid)
            });
        let Some((round, block, _)) = decided else {
            return false;
        };
        let Some(bytes) = state.blocks.get(&block).cloned() else {
            return false;
        };
        let certificate = CommitCertificate::from_precommits(
            state.height,
            round,
            block,
            state.votes.precommits(round),
        );
        out.push(Output::Decision(Decision {
            height: state.height,
            round,
            block: bytes,
            certificate,
        }));
        self.enter_next_height(out);
        true
    }

    /// L55: upon f+1 messages (h_p, round, *, *) with round > round_p: StartRound(round).
    fn l55_skip_round(&mut self, out: &mut Vec<Output>) -> bool {
        let threshold = self.one_third();
        let state = &self.state;
        let target = state
            .votes
            .rounds_above(state.round)
            .into_iter()
            .find(|r| state.votes.signer_power(*r) >= threshold);
        match target {
            Some(round) => {
                self.start_round(round, out);
                true
            }
            None => false,
        }
    }

    /// L22: upon PROPOSAL(h_p, round_p, v, -1) from proposer(h_p, round_p) while
    /// step = propose: prevote id(v) if valid(v) and (lockedRound = -1 or lockedValue = v),
    /// else nil.
    fn l22_prevote(&mut self, out: &mut Vec<Output>) -> bool {
        let state = &self.state;
        if state.step != Step::Propose {
            return false;
        }
        let candidate = state
            .proposals
            .get(&state.round)
            .into_iter()
            .flatten()
            .filter(|p| p.proposal.pol_round.is_none())
            .find_map(|p| {
                let block = p.proposal.block;
                match state.validity(block) {
                    Some(Validity::Valid) => Some((block, true)),
                    Some(Validity::Invalid) => Some((block, false)),
                    _ => None,
                }
            });
        let Some((block, valid)) = candidate else {
            return false;
        };
        let lock_allows = match state.locked {
            None => true,
            Some((_, locked)) => locked == block || self.ignores_lock(),
        };
        let choice = (valid && lock_allows).then_some(block);
        self.vote(VoteKind::Prevote, choice, out);
        self.state.step = Step::Prevote;
        true
    }

    /// L28: upon PROPOSAL(h_p, round_p, v, vr) and 2f+1 PREVOTE(h_p, vr, id(v)) while
    /// step = propose and 0 <= vr < round_p: prevote id(v) if valid(v) and (lockedRound <= vr
    /// or lockedValue = v), else nil.
    fn l28_prevote_pol(&mut self, out: &mut Vec<Output>) -> bool {
        let quorum = self.quorum();
        let state = &self.state;
        if state.step != Step::Propose {
            return false;
        }
        let candidate = state
            .proposals
            .get(&state.round)
            .into_iter()
            .flatten()
            .find_map(|p| {
                let vr = p.proposal.pol_round.filter(|vr| *vr < state.round)?;
                let block = p.proposal.block;
                let power = state.votes.power_for(vr, VoteKind::Prevote, Some(block));
                if power < quorum {
                    return None;
                }
                match state.validity(block) {
                    Some(Validity::Valid) => Some((block, vr, true)),
                    Some(Validity::Invalid) => Some((block, vr, false)),
                    _ => None,
                }
            });
        let Some((block, vr, valid)) = candidate else {
            return false;
        };
        let lock_allows = match state.locked {
            None => true,
            Some((locked_round, locked)) => {
                locked_round <= vr || locked == block || self.ignores_lock()
            }
        };
        let choice = (valid && lock_allows).then_some(block);
        self.vote(VoteKind::Prevote, choice, out);
        self.state.step = Step::Prevote;
        true
    }

    /// L34: upon 2f+1 PREVOTE(h_p, round_p, *) while step = prevote for the first time:
    /// schedule OnTimeoutPrevote(h_p, round_p).
    fn l34_prevote_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        let state = &self.state;
        let round = state.round;
        if state.step != Step::Prevote
            || state.votes.power_any(round, VoteKind::Prevote) < self.quorum()
            || !self.state.fired.insert((round, Once::L34PrevoteTimeout))
        {
            return false;
        }
        self.schedule(TimeoutKind::Prevote, out);
        true
    }

    /// L36: upon PROPOSAL(h_p, round_p, v, *) and 2f+1 PREVOTE(h_p, round_p, id(v)) while
    /// valid(v) and step >= prevote for the first time: if step = prevote, lock v and
    /// precommit it; in either case validValue = v, validRound = round_p.
    fn l36_precommit_block(&mut self, out: &mut Vec<Output>) -> bool {
        let quorum = self.quorum();
        let state = &self.state;
        let round = state.round;
        if state.step == Step::Propose || state.fired.contains(&(round, Once::L36PrecommitBlock)) {
            return false;
        }
        let block = state
            .proposals
            .get(&round)
            .into_iter()
            .flatten()
            .map(|p| p.proposal.block)
            .find(|b| {
                state.validity(*b) == Some(Validity::Valid)
                    && state.votes.power_for(round, VoteKind::Prevote, Some(*b)) >= quorum
            });
        let Some(block) = block else {
            return false;
        };
        self.state.fired.insert((round, Once::L36PrecommitBlock));
        if self.state.step == Step::Prevote {
            self.state.locked = Some((round, block));
            self.vote(VoteKind::Precommit, Some(block), out);
            self.state.step = Step::Precommit;
        }
        self.state.valid = Some((round, block));
        if let Some(bytes) = self.state.blocks.get(&block) {
            out.push(Output::Persist(ValidRecord {
                height: self.state.height,
                round,
                block: bytes.clone(),
                prevotes: self.state.votes.prevotes_for(round, block),
            }));
        }
        true
    }

    /// L44: upon 2f+1 PREVOTE(h_p, round_p, nil) while step = prevote: precommit nil.
    fn l44_precommit_nil(&mut self, out: &mut Vec<Output>) -> bool {
        let state = &self.state;
        if state.step != Step::Prevote
            || state.votes.power_for(state.round, VoteKind::Prevote, None) < self.quorum()
        {
            return false;
        }
        self.vote(VoteKind::Precommit, None, out);
        self.state.step = Step::Precommit;
        true
    }

    /// L47: upon 2f+1 PRECOMMIT(h_p, round_p, *) for the first time: schedule
    /// OnTimeoutPrecommit(h_p, round_p).
    fn l47_precommit_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        let round = self.state.round;
        if self.state.votes.power_any(round, VoteKind::Precommit) < self.quorum()
            || !self.state.fired.insert((round, Once::L47PrecommitTimeout))
        {
            return false;
        }
        self.schedule(TimeoutKind::Precommit, out);
        true
    }
}

fn my_index<S: SignerStore>(
    sets: &ValidatorSets,
    height: Height,
    signer: Option<&Signer<S>>,
) -> Option<ValidatorIndex> {
    let key = signer?.public_key();
    sets.at(height)?.index_of(&key)
}
