//! The simulated world: nodes, the event queue, the network, and the checks.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use tally_crypto::{Hash, KeyCache, SigningKey};

use super::{Behaviour, Report, SIM_CHAIN_ID, Scenario, below, chance};
use crate::{
    BlockHash, CommitCertificate, Config, Consensus, DOMAIN_PROPOSAL, EquivocationKind, Height,
    Input, MemoryStore, Message, Output, Proposal, Round, SignedProposal, SignedVote, Signer,
    Timeout, TimeoutConfig, Validator, ValidatorIndex, ValidatorSet, ValidatorSets, Vote,
    verify_message,
};

/// A node sends its own messages of the current round again this often (local time).
const REBROADCAST_MS: u64 = 700;
/// A lagging node asks a peer for decided blocks at most this often.
const SYNC_INTERVAL_MS: u64 = 250;
/// Most decided blocks in one sync answer.
const SYNC_BATCH_MAX: usize = 8;
/// A run that needs more events than this is reported as a violation (a message storm).
const EVENTS_MAX: u64 = 3_000_000;
/// How long a crashed node stays down, at most.
const DOWNTIME_MS_MAX: u64 = 1_500;

#[derive(Debug, Clone)]
enum Packet {
    Consensus(Vec<u8>),
    SyncRequest(Height),
    SyncResponse(Vec<(Vec<u8>, CommitCertificate)>),
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        packet: Packet,
    },
    Timer {
        node: usize,
        incarnation: u64,
        timeout: Timeout,
    },
    Rebroadcast {
        node: usize,
        incarnation: u64,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
}

/// One equivocation slot: (signer, height, round, kind).
type Slot = (ValidatorIndex, Height, Round, EquivocationKind);

struct Node {
    key: SigningKey,
    behaviour: Option<Behaviour>,
    core: Option<Consensus<MemoryStore>>,
    /// The signer's store while the node is down.
    store: Option<MemoryStore>,
    incarnation: u64,
    /// What the host persisted: decided blocks with their certificates, and the last valid
    /// value.
    decided: BTreeMap<Height, (Vec<u8>, CommitCertificate)>,
    valid: Option<crate::ValidRecord>,
    /// Local clock rate, percent of simulated time.
    clock_pct: u64,
    last_sync_ms: Option<u64>,
    /// Distinct contents seen per slot in this incarnation (for the evidence check).
    seen: BTreeMap<Slot, BTreeSet<Hash>>,
    evidence: BTreeSet<Slot>,
    decisions_after_heal: u64,
}

pub(super) struct World<'a> {
    scenario: &'a Scenario,
    rng: ChaCha8Rng,
    now_ms: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Node>,
    sets: ValidatorSets,
    config: Config,
    /// Partitions as (from, until, side of each node).
    partitions: Vec<(u64, u64, Vec<bool>)>,
    crashes_left: u32,
    decided: BTreeMap<Height, BlockHash>,
    /// An equivocating proposer's second block for each block it proposed.
    twins: BTreeMap<BlockHash, BlockHash>,
    report: Report,
    keys: KeyCache,
}

impl<'a> World<'a> {
    pub(super) fn new(scenario: &'a Scenario) -> World<'a> {
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let n = scenario.n;
        let keys: Vec<SigningKey> = (0..n).map(|_| SigningKey::generate(&mut rng)).collect();
        let validators: Vec<Validator> = keys
            .iter()
            .map(|k| Validator {
                public_key: k.public_key(),
                power: 1,
            })
            .collect();
        let mut sets = ValidatorSets::new(valid_set(validators.clone()));
        if let Some(at) = scenario.set_change_at {
            // Double the power of the first honest validator.
            let mut changed = validators;
            if let Some(v) = (0..n)
                .find(|i| !scenario.is_byzantine(*i))
                .and_then(|i| changed.get_mut(i))
            {
                v.power = 2;
            }
            let _ = sets.schedule(Height(at), valid_set(changed));
        }
        let mut config = Config::new(SIM_CHAIN_ID);
        config.timeouts = TimeoutConfig {
            propose_ms: 300,
            prevote_ms: 200,
            precommit_ms: 200,
            round_increase_ms: 100,
            timeout_ms_max: 3_000,
        };
        let skew = u64::from(scenario.faults.clock_skew_pct);
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Node {
                key,
                behaviour: scenario.byzantine.get(&i).copied(),
                core: None,
                store: Some(MemoryStore::new()),
                incarnation: 0,
                decided: BTreeMap::new(),
                valid: None,
                clock_pct: 100 - skew.min(50) + below(&mut rng, 2 * skew.min(50) + 1),
                last_sync_ms: None,
                seen: BTreeMap::new(),
                evidence: BTreeSet::new(),
                decisions_after_heal: 0,
            })
            .collect();
        let mut partitions = Vec::new();
        for _ in 0..scenario.faults.partitions {
            let from = below(&mut rng, scenario.heal_ms);
            let until = from + below(&mut rng, scenario.heal_ms - from + 1);
            let sides = (0..n).map(|_| chance(&mut rng, 50)).collect();
            partitions.push((from, until.min(scenario.heal_ms), sides));
        }
        let mut world = World {
            scenario,
            rng,
            now_ms: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes,
            sets,
            config,
            partitions,
            crashes_left: scenario.faults.crashes,
            decided: BTreeMap::new(),
            twins: BTreeMap::new(),
            report: Report::default(),
            keys: KeyCache::new(64),
        };
        for _ in 0..scenario.faults.crashes {
            let at = below(&mut world.rng, scenario.heal_ms);
            let who = below(&mut world.rng, n as u64) as usize;
            if !scenario.is_byzantine(who) {
                world.push(at, Event::Crash { node: who });
            }
        }
        world
    }

    fn push(&mut self, at_ms: u64, event: Event) {
        self.seq += 1;
        self.events.insert((at_ms, self.seq), event);
    }

    fn honest(&self, node: usize) -> bool {
        !self.scenario.is_byzantine(node)
    }

    pub(super) fn run(mut self) -> Report {
        for i in 0..self.nodes.len() {
            self.boot(i);
        }
        let end_ms = self.scenario.heal_ms + self.scenario.liveness_ms_max;
        let mut processed: u64 = 0;
        while let Some(((at, _), event)) = self.events.pop_first() {
            if at > end_ms || self.live_enough() {
                break;
            }
            self.now_ms = at;
            processed += 1;
            if processed > EVENTS_MAX {
                self.violation(format!("more than {EVENTS_MAX} events"));
                break;
            }
            self.handle(event);
        }
        self.final_checks();
        self.report.sim_ms = self.now_ms;
        self.report.nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match &n.core {
                Some(c) => format!(
                    "node {i} {:?}: {:?} {:?} {:?} locked {:?}, decided {}",
                    n.behaviour,
                    c.height(),
                    c.round(),
                    c.current_step(),
                    c.locked(),
                    n.decided.len()
                ),
                None => format!("node {i}: down"),
            })
            .collect();
        self.report.common_height = (0..self.nodes.len())
            .filter(|i| self.honest(*i))
            .filter_map(|i| self.nodes.get(i))
            .map(|n| n.decided.keys().next_back().map_or(0, |h| h.0))
            .min()
            .unwrap_or(0);
        self.report
    }

    fn live_enough(&self) -> bool {
        self.now_ms > self.scenario.heal_ms
            && self
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| self.honest(*i))
                .all(|(_, n)| n.decisions_after_heal >= self.scenario.liveness_heights)
    }

    fn violation(&mut self, what: String) {
        self.report
            .violations
            .push(format!("t={}ms: {what}", self.now_ms));
    }

    fn local_delay(&self, node: usize, duration_ms: u64) -> u64 {
        let pct = self.nodes.get(node).map_or(100, |n| n.clock_pct);
        duration_ms.saturating_mul(pct) / 100
    }

    // ---- lifecycle ---------------------------------------------------------------------

    fn boot(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(store) = node.store.take() else {
            return;
        };
        let Ok(mut signer) = Signer::new(node.key.clone(), SIM_CHAIN_ID, store) else {
            return;
        };
        let byzantine = self.scenario.byzantine.get(&i).copied();
        let mut config = self.config.clone();
        if byzantine.is_none() {
            config.planted = self.scenario.planted;
            if self.scenario.signer_persists_late {
                signer = signer.with_late_persist();
            }
        }
        if byzantine == Some(Behaviour::Amnesia) {
            config.planted.ignore_lock = true;
        }
        let height = node
            .decided
            .keys()
            .next_back()
            .and_then(|h| h.next())
            .unwrap_or(Height(1));
        let mut core = Consensus::new(config, self.sets.clone(), height, Some(signer));
        if let Some(record) = node.valid.clone().filter(|r| r.height == height) {
            let _ = core.recover(record);
        }
        let outputs = core.start();
        node.core = Some(core);
        let incarnation = node.incarnation;
        let at = self.now_ms + self.local_delay(i, REBROADCAST_MS);
        self.push(
            at,
            Event::Rebroadcast {
                node: i,
                incarnation,
            },
        );
        self.carry_out(i, outputs);
    }

    fn crash(&mut self, i: usize) {
        let heal_ms = self.scenario.heal_ms;
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let Some(core) = node.core.take() else {
            return;
        };
        // Only the signer's store and the host's decided blocks survive.
        node.store = core.into_signer().map(|s| s.into_store());
        node.incarnation += 1;
        node.seen.clear();
        node.last_sync_ms = None;
        let down = 1 + below(&mut self.rng, DOWNTIME_MS_MAX);
        let at = (self.now_ms + down)
            .min(heal_ms.saturating_sub(1))
            .max(self.now_ms + 1);
        self.push(at, Event::Restart { node: i });
    }

    // ---- events ------------------------------------------------------------------------

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, packet } => self.deliver(to, from, packet),
            Event::Timer {
                node,
                incarnation,
                timeout,
            } => {
                if self.nodes.get(node).map(|n| n.incarnation) == Some(incarnation) {
                    self.feed(node, Input::Timeout(timeout));
                }
            }
            Event::Rebroadcast { node, incarnation } => self.rebroadcast(node, incarnation),
            Event::Crash { node } => {
                if self.now_ms < self.scenario.heal_ms {
                    self.crash(node);
                }
            }
            Event::Restart { node } => self.boot(node),
        }
    }

    fn rebroadcast(&mut self, i: usize, incarnation: u64) {
        let Some(node) = self.nodes.get(i) else {
            return;
        };
        if node.incarnation != incarnation || node.core.is_none() {
            return;
        }
        let quiet = matches!(
            node.behaviour,
            Some(
                Behaviour::Silent
                    | Behaviour::DoubleVoter
                    | Behaviour::BadSender
                    | Behaviour::Amnesia
            )
        );
        let messages = node
            .core
            .as_ref()
            .map(|c| c.messages_to_resend())
            .unwrap_or_default();
        if !quiet {
            for m in messages {
                self.send_all(i, &m.encode(), 0);
            }
        }
        let at = self.now_ms + self.local_delay(i, REBROADCAST_MS);
        self.push(
            at,
            Event::Rebroadcast {
                node: i,
                incarnation,
            },
        );
    }

    fn deliver(&mut self, to: usize, from: usize, packet: Packet) {
        let Some(node) = self.nodes.get(to) else {
            return;
        };
        let Some(core) = node.core.as_ref() else {
            return;
        };
        let my_height = core.height();
        let my_round = core.round();
        match packet {
            Packet::Consensus(bytes) => {
                let Ok(message) = Message::decode(&bytes) else {
                    return;
                };
                let Some(set) = self.sets.at(message.height()) else {
                    return;
                };
                let Ok(verified) = verify_message(message, set, SIM_CHAIN_ID) else {
                    return;
                };
                let (h, r) = (verified.height(), verified.round());
                if h > my_height {
                    self.maybe_sync(to, from, my_height);
                }
                if h == my_height
                    && r <= my_round.saturating_add(crate::FUTURE_ROUNDS_MAX)
                    && let Some(node) = self.nodes.get_mut(to)
                {
                    let (slot, content) = slot_of(verified.get());
                    node.seen.entry(slot).or_default().insert(content);
                }
                self.feed(to, Input::Message(verified));
            }
            Packet::SyncRequest(from_height) => {
                if matches!(node.behaviour, Some(Behaviour::Silent)) {
                    return;
                }
                let blocks: Vec<(Vec<u8>, CommitCertificate)> = node
                    .decided
                    .range(from_height..)
                    .take(SYNC_BATCH_MAX)
                    .map(|(_, b)| b.clone())
                    .collect();
                if !blocks.is_empty() {
                    self.send(to, from, Packet::SyncResponse(blocks), 0);
                }
            }
            Packet::SyncResponse(blocks) => {
                for (block, certificate) in blocks {
                    let current = self
                        .nodes
                        .get(to)
                        .and_then(|n| n.core.as_ref())
                        .map(|c| c.height());
                    if current == Some(certificate.height) {
                        self.feed(to, Input::Decided { block, certificate });
                    }
                }
            }
        }
    }

    fn maybe_sync(&mut self, i: usize, peer: usize, height: Height) {
        let now = self.now_ms;
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        if node
            .last_sync_ms
            .is_some_and(|t| now < t + SYNC_INTERVAL_MS)
        {
            return;
        }
        node.last_sync_ms = Some(now);
        self.send(i, peer, Packet::SyncRequest(height), 0);
    }

    /// Feeds an input to a running node and carries out what it asks, host answers included.
    fn feed(&mut self, i: usize, input: Input) {
        let Some(core) = self.nodes.get_mut(i).and_then(|n| n.core.as_mut()) else {
            return;
        };
        let outputs = core.step(input);
        self.carry_out(i, outputs);
    }

    fn carry_out(&mut self, i: usize, outputs: Vec<Output>) {
        let mut answers = Vec::new();
        for output in outputs {
            match output {
                Output::Broadcast(message) => self.broadcast(i, message),
                Output::ScheduleTimeout {
                    timeout,
                    duration_ms,
                } => {
                    let incarnation = self.nodes.get(i).map_or(0, |n| n.incarnation);
                    let at = self.now_ms + self.local_delay(i, duration_ms);
                    self.push(
                        at,
                        Event::Timer {
                            node: i,
                            incarnation,
                            timeout,
                        },
                    );
                }
                Output::RequestBlock { height, round } => {
                    let bad =
                        self.nodes.get(i).and_then(|n| n.behaviour) == Some(Behaviour::BadSender);
                    let prefix = if bad { "bad" } else { "block" };
                    let block = format!(
                        "{prefix} h={} r={} by={i} t={} x={}",
                        height.0,
                        round.0,
                        self.now_ms,
                        self.rng.next_u64()
                    )
                    .into_bytes();
                    answers.push(Input::BlockToPropose {
                        height,
                        round,
                        block,
                    });
                }
                Output::ValidateBlock {
                    height,
                    block_hash,
                    block,
                    ..
                } => answers.push(Input::BlockValidity {
                    height,
                    block: block_hash,
                    valid: block.starts_with(b"block "),
                }),
                Output::Decision(decision) => self.on_decision(i, decision),
                Output::Evidence(evidence) => {
                    let slot = (
                        evidence.validator(),
                        evidence.height(),
                        evidence.round(),
                        evidence.kind(),
                    );
                    self.report.evidence += 1;
                    let verdict = self
                        .sets
                        .at(evidence.height())
                        .map(|s| evidence.verify(s, SIM_CHAIN_ID));
                    if verdict != Some(Ok(())) {
                        self.violation(format!(
                            "node {i} emitted evidence that does not verify: {verdict:?}"
                        ));
                    }
                    if self.honest(evidence.validator().as_usize()) {
                        self.violation(format!(
                            "honest validator {} equivocated (evidence from node {i}: {slot:?})",
                            evidence.validator()
                        ));
                    }
                    if let Some(node) = self.nodes.get_mut(i) {
                        node.evidence.insert(slot);
                    }
                }
                Output::Persist(record) => {
                    if let Some(node) = self.nodes.get_mut(i) {
                        node.valid = Some(record);
                    }
                }
                Output::SignerRefused { .. } => {}
            }
        }
        for answer in answers {
            self.feed(i, answer);
        }
    }

    fn on_decision(&mut self, i: usize, decision: crate::Decision) {
        let height = decision.height;
        let hash = BlockHash::of(&decision.block);
        let verdict =
            decision
                .certificate
                .verify_for(&self.sets, SIM_CHAIN_ID, height, hash, &mut self.keys);
        if let Err(e) = verdict {
            self.violation(format!(
                "node {i} decided height {height} with a certificate that does not verify: {e}"
            ));
        }
        let after_heal = self.now_ms >= self.scenario.heal_ms;
        let honest = self.honest(i);
        if let Some(node) = self.nodes.get_mut(i) {
            node.decided
                .insert(height, (decision.block, decision.certificate));
            if after_heal {
                node.decisions_after_heal += 1;
            }
        }
        if !honest {
            return;
        }
        self.report.decisions += 1;
        match self.decided.get(&height) {
            Some(other) if *other != hash => {
                let other = *other;
                self.violation(format!(
                    "agreement: node {i} decided {hash:?} at height {height}, another honest node {other:?}"
                ));
            }
            Some(_) => {}
            None => {
                self.decided.insert(height, hash);
            }
        }
    }

    // ---- sending -----------------------------------------------------------------------

    fn send(&mut self, from: usize, to: usize, packet: Packet, extra_delay_ms: u64) {
        if from == to {
            return;
        }
        let now = self.now_ms;
        let cut = self.partitions.iter().any(|(start, until, sides)| {
            now >= *start && now < *until && sides.get(from) != sides.get(to)
        });
        let faults = self.scenario.faults;
        if cut || chance(&mut self.rng, faults.loss_pct) {
            return;
        }
        if matches!(packet, Packet::Consensus(_)) {
            self.report.messages += 1;
        }
        let copies = if chance(&mut self.rng, faults.duplicate_pct) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let spread = faults.delay_ms_max.saturating_sub(faults.delay_ms_min);
            let delay = faults.delay_ms_min + below(&mut self.rng, spread + 1) + extra_delay_ms;
            self.push(
                now + delay,
                Event::Deliver {
                    to,
                    from,
                    packet: packet.clone(),
                },
            );
        }
    }

    fn send_all(&mut self, from: usize, bytes: &[u8], extra_delay_ms: u64) {
        for to in 0..self.nodes.len() {
            self.send(from, to, Packet::Consensus(bytes.to_vec()), extra_delay_ms);
        }
    }

    /// Sends a node's message, as its behaviour dictates.
    fn broadcast(&mut self, i: usize, message: Message) {
        let behaviour = self.nodes.get(i).and_then(|n| n.behaviour);
        match behaviour {
            None => {
                self.send_all(i, &message.encode(), 0);
                self.maybe_crash_after_send(i, &message);
            }
            Some(Behaviour::Amnesia) => {
                // Withholds each copy half the time, so peers see different quorums.
                let bytes = message.encode();
                for to in 0..self.nodes.len() {
                    if chance(&mut self.rng, 50) {
                        self.send(i, to, Packet::Consensus(bytes.clone()), 0);
                    }
                }
            }
            Some(Behaviour::Silent) => {}
            Some(Behaviour::DoubleVoter) => {
                self.send_all(i, &message.encode(), 0);
                if let Message::Vote(v) = &message {
                    let twin = self.twin_vote(i, v);
                    self.send_all(i, &Message::Vote(twin).encode(), 0);
                }
            }
            Some(Behaviour::EquivocatingProposer) => {
                let Message::Proposal { proposal, block } = &message else {
                    self.send_all(i, &message.encode(), 0);
                    // It backs its second block with votes too.
                    if let Message::Vote(v) = &message
                        && let Some(twin) = v.vote.block.and_then(|b| self.twins.get(&b)).copied()
                    {
                        let vote = self.sign_vote(
                            i,
                            Vote {
                                block: Some(twin),
                                ..v.vote
                            },
                        );
                        self.send_all(i, &Message::Vote(vote).encode(), 0);
                    }
                    return;
                };
                let mut other_block = block.clone();
                other_block.extend_from_slice(b" twin");
                let twin = self.sign_proposal(
                    i,
                    // A fresh block: it asks locked validators to ignore their lock.
                    Proposal {
                        block: BlockHash::of(&other_block),
                        pol_round: None,
                        ..proposal.proposal
                    },
                );
                self.twins
                    .insert(proposal.proposal.block, twin.proposal.block);
                let twin_message = Message::Proposal {
                    proposal: twin,
                    block: other_block,
                };
                let (first, second) = (message.encode(), twin_message.encode());
                // Each half of the network sees one version first and the other later.
                for to in 0..self.nodes.len() {
                    let (a, b) = if chance(&mut self.rng, 50) {
                        (&first, &second)
                    } else {
                        (&second, &first)
                    };
                    self.send(i, to, Packet::Consensus(a.clone()), 0);
                    let later = 50 + below(&mut self.rng, 300);
                    self.send(i, to, Packet::Consensus(b.clone()), later);
                }
            }
            Some(Behaviour::BadSender) => self.bad_sender(i, message),
        }
    }

    fn maybe_crash_after_send(&mut self, i: usize, message: &Message) {
        let risky = match message {
            Message::Proposal { .. } => true,
            Message::Vote(v) => v.vote.kind == crate::VoteKind::Precommit,
        };
        if risky
            && self.crashes_left > 0
            && self.now_ms + 1 < self.scenario.heal_ms
            && chance(&mut self.rng, self.scenario.faults.crash_after_send_pct)
        {
            self.crashes_left -= 1;
            self.push(self.now_ms + 1, Event::Crash { node: i });
        }
    }

    fn bad_sender(&mut self, i: usize, message: Message) {
        let Message::Vote(v) = message else {
            // Its proposals carry invalid blocks already (see RequestBlock).
            self.send_all(i, &message.encode(), 0);
            return;
        };
        // Instead of its real prevote: one for a block nobody proposed. Not equivocation: it
        // sends only this one.
        let vote = if v.vote.kind == crate::VoteKind::Prevote {
            let unknown = BlockHash(Hash::digest(
                "sim/unknown",
                &self.rng.next_u64().to_le_bytes(),
            ));
            self.sign_vote(
                i,
                Vote {
                    block: Some(unknown),
                    ..v.vote
                },
            )
        } else {
            v
        };
        self.send_all(i, &Message::Vote(vote).encode(), 0);
        // A copy with a broken signature.
        let mut broken = vote;
        if let Some(b) = broken.signature.0.get_mut(7) {
            *b ^= 0x20;
        }
        self.send_all(i, &Message::Vote(broken).encode(), 0);
        // Its vote in another validator's name.
        let n = self.nodes.len() as u32;
        let mut impersonated = vote;
        impersonated.vote.validator = ValidatorIndex((vote.vote.validator.0 + 1) % n);
        self.send_all(i, &Message::Vote(impersonated).encode(), 0);
        // Bytes that do not decode, and a non-canonical encoding.
        let mut trailing = Message::Vote(vote).encode();
        trailing.push(0);
        self.send_all(i, &trailing, 0);
        let garbage: Vec<u8> = (0..below(&mut self.rng, 64))
            .map(|_| self.rng.next_u32() as u8)
            .collect();
        self.send_all(i, &garbage, 0);
    }

    fn twin_vote(&mut self, i: usize, v: &SignedVote) -> SignedVote {
        let block = match v.vote.block {
            Some(_) => None,
            None => Some(BlockHash(Hash::digest(
                "sim/twin",
                &self.rng.next_u64().to_le_bytes(),
            ))),
        };
        self.sign_vote(i, Vote { block, ..v.vote })
    }

    /// Signs with the raw key, past the safe signer: what a Byzantine validator can do.
    fn sign_vote(&self, i: usize, vote: Vote) -> SignedVote {
        let signature = self
            .nodes
            .get(i)
            .map_or(tally_crypto::Signature([0; 64]), |n| {
                n.key
                    .sign(vote.kind.domain(), SIM_CHAIN_ID, &vote.signing_bytes())
            });
        SignedVote { vote, signature }
    }

    fn sign_proposal(&self, i: usize, proposal: Proposal) -> SignedProposal {
        let signature = self
            .nodes
            .get(i)
            .map_or(tally_crypto::Signature([0; 64]), |n| {
                n.key
                    .sign(DOMAIN_PROPOSAL, SIM_CHAIN_ID, &proposal.signing_bytes())
            });
        SignedProposal {
            proposal,
            signature,
        }
    }

    // ---- checks ------------------------------------------------------------------------

    fn final_checks(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.honest(i) {
                continue;
            }
            let Some(node) = self.nodes.get(i) else {
                continue;
            };
            let missed: Vec<Slot> = node
                .seen
                .iter()
                .filter(|(slot, contents)| contents.len() > 1 && !node.evidence.contains(slot))
                .map(|(slot, _)| *slot)
                .collect();
            let short = node.decisions_after_heal < self.scenario.liveness_heights;
            let after = node.decisions_after_heal;
            for slot in missed {
                self.violation(format!(
                    "node {i} saw validator {} equivocate at {slot:?} but emitted no evidence",
                    slot.0
                ));
            }
            if short {
                self.violation(format!(
                    "liveness: node {i} decided {after} heights in {}ms after healing, needs {}",
                    self.scenario.liveness_ms_max, self.scenario.liveness_heights
                ));
            }
        }
    }
}

/// The slot a message occupies and a digest of what it says there.
fn slot_of(message: &Message) -> (Slot, Hash) {
    match message {
        Message::Proposal { proposal, .. } => {
            let p = proposal.proposal;
            (
                (p.proposer, p.height, p.round, EquivocationKind::Proposal),
                Hash::digest("sim/slot", &p.signing_bytes()),
            )
        }
        Message::Vote(v) => {
            let kind = match v.vote.kind {
                crate::VoteKind::Prevote => EquivocationKind::Prevote,
                crate::VoteKind::Precommit => EquivocationKind::Precommit,
            };
            (
                (v.vote.validator, v.vote.height, v.vote.round, kind),
                Hash::digest("sim/slot", &v.vote.signing_bytes()),
            )
        }
    }
}

/// The simulator builds its sets from freshly generated keys with positive powers.
fn valid_set(validators: Vec<Validator>) -> ValidatorSet {
    match ValidatorSet::new(validators) {
        Ok(set) => set,
        Err(e) => unreachable!("simulated validator set is valid: {e}"),
    }
}
