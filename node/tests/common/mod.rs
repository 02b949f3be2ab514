//! A cluster of nodes in one process over real loopback sockets, each with its own data
//! directory, started from one genesis with two banks, the platform and a regulator.
#![allow(dead_code)]

use anyhow::{Context, Result, bail, ensure};
use libp2p::Multiaddr;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tally_consensus::{TimeoutConfig, Validator};
use tally_contracts::*;
use tally_crypto::{Hash, PublicKey, SigningKey};
use tally_node::block::BlockResults;
use tally_node::config::{Config, Limits, Mode};
use tally_node::genesis::GenesisFile;
use tally_node::network::PeerAddress;
use tally_node::node::{Node, NodeOptions, wait_for_height};

pub const CHAIN: &str = "tally-cluster";
pub const BANK_A: InstitutionId = InstitutionId(1);
pub const BANK_B: InstitutionId = InstitutionId(2);
pub const PLATFORM: InstitutionId = InstitutionId(3);
pub const REGULATOR: InstitutionId = InstitutionId(5);
/// Every wait in these tests is for a condition, bounded by this. How it was chosen: the
/// slowest condition waited on (a node catching up by sync after a partition, a cut-off
/// peer's redials refused, a faulty proposer's turn coming round) takes a few seconds on an
/// idle 2-core machine and stays under ~15 s with a second CPU-bound process on both cores
/// (the `.ci/repeat --load` runs); 60 s is four times that. A passing test never waits it
/// out: it only bounds how long a broken one takes to say so.
pub const WAIT: Duration = Duration::from_secs(60);
/// How often a wait looks at its condition again.
pub const POLL: Duration = Duration::from_millis(50);

/// Waits until `condition` holds, looking every [`POLL`]; fails naming `what` after
/// [`WAIT`], or at once with the condition's own error.
pub async fn wait_until(
    what: &str,
    mut condition: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if condition().await? {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "not in {WAIT:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

pub fn validator_key(i: usize) -> SigningKey {
    SigningKey::from_seed([100u8.wrapping_add(i as u8); 32])
}

pub fn institution_key(id: InstitutionId) -> SigningKey {
    SigningKey::from_seed([200u8.wrapping_add(id.0 as u8); 32])
}

pub fn wallet_key(id: u128) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..16].copy_from_slice(&id.to_le_bytes());
    SigningKey::from_seed(seed)
}

/// What the test genesis calls each institution.
pub fn institution_name(id: InstitutionId) -> String {
    match id {
        BANK_A => "Bank A".into(),
        BANK_B => "Bank B".into(),
        PLATFORM => "Platform".into(),
        REGULATOR => "Regulator".into(),
        other => format!("Institution {}", other.0),
    }
}

pub fn genesis(validators: usize) -> GenesisFile {
    let roles = |r: &[Roles]| r.iter().fold(Roles::default(), |a, b| a.with(*b));
    let inst = |id, r: Roles| GenesisInstitution {
        id,
        key: institution_key(id).public_key(),
        roles: r,
        name: institution_name(id),
    };
    let ledger = Genesis {
        chain_id: CHAIN.into(),
        time_ms: 1_700_000_000_000,
        currencies: vec![Currency::CNY, Currency::USD],
        institutions: vec![
            inst(BANK_A, roles(&[Roles::BANK, Roles::KYC])),
            inst(BANK_B, roles(&[Roles::BANK, Roles::KYC])),
            inst(PLATFORM, roles(&[Roles::PLATFORM])),
            inst(REGULATOR, Roles::REGULATOR),
        ],
        platform: PLATFORM,
        governance_keys: vec![institution_key(InstitutionId(9)).public_key()],
        governance_threshold: 1,
        issuance_limits: vec![
            (BANK_A, Currency::CNY, 1_000_000_000_000),
            (BANK_B, Currency::CNY, 1_000_000_000_000),
        ],
        fx_credit_lines: vec![],
        tiers: vec![TierLimits {
            single_max: 1_000_000,
            daily_max: 100_000_000,
            yearly_max: NO_CAP,
            cross_border_yearly_max: NO_CAP,
        }],
        merchant_fee_bps_max: 300,
        corridors: vec![],
        sanctions: vec![],
    };
    GenesisFile {
        chain_id: CHAIN.into(),
        validators: (0..validators)
            .map(|i| Validator {
                public_key: validator_key(i).public_key(),
                power: 1,
            })
            .collect(),
        ledger,
        // Heights come about as fast as before the chain was quiet when idle (a block
        // every 100 ms or so): suites that wait for heights on an idle cluster keep their
        // pace. The idle behaviour itself is tested in `cluster.rs` with a longer one.
        heartbeat_ms: TEST_HEARTBEAT_MS,
    }
}

/// The test genesis's heartbeat (see [`GenesisFile::heartbeat_ms`]).
pub const TEST_HEARTBEAT_MS: u64 = 100;

pub fn sign(sender: Party, nonce: u64, keys: &[&SigningKey], kind: TxKind) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN.into(),
        sender,
        nonce,
        kind,
    }
    .sign(keys)
}

/// Register, bind a card and top up `amount`: nonces 0, 1, 2 of wallet `id`.
pub fn open_wallet(id: u128, amount: Amount) -> Vec<SignedTransaction> {
    open_wallet_of(id, amount, Hash::digest("identity", &id.to_le_bytes()))
}

/// [`open_wallet`] for the person whose identity digest is `identity` (one person may hold
/// several wallets).
pub fn open_wallet_of(id: u128, amount: Amount, identity: Hash) -> Vec<SignedTransaction> {
    let k = wallet_key(id);
    let bank = institution_key(BANK_A);
    let card = CardToken(Hash::digest("card", &id.to_le_bytes()).0);
    let party = Party::Account(AccountId(id));
    vec![
        sign(
            party,
            0,
            &[&k, &bank],
            TxKind::RegisterAccount {
                account: AccountId(id),
                key: k.public_key(),
                currency: Currency::CNY,
                institution: BANK_A,
                tier: 0,
                identity,
            },
        ),
        sign(
            party,
            1,
            &[&k, &bank],
            TxKind::BindCard { card, bank: BANK_A },
        ),
        sign(
            party,
            2,
            &[&k, &bank],
            TxKind::TopUp {
                id: TransferId(id),
                card,
                amount,
            },
        ),
    ]
}

/// Wallet `from` pays `to` with nonce `nonce` (from 3 on, after [`open_wallet`]).
pub fn transfer(from: u128, to: u128, nonce: u64, amount: Amount) -> SignedTransaction {
    sign(
        Party::Account(AccountId(from)),
        nonce,
        &[&wallet_key(from)],
        TxKind::Transfer {
            id: TransferId((from << 64) | u128::from(nonce)),
            to: AccountId(to),
            amount,
            memo: tally_contracts::Memo::NONE,
        },
    )
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub genesis: GenesisFile,
    pub nodes: Vec<Option<Node>>,
    /// Where each started node listens, by index.
    addresses: Vec<Option<(PublicKey, Multiaddr)>>,
    pub options: NodeOptions,
    /// The `[limits]` every node of the cluster starts with.
    pub limits: Limits,
}

impl Cluster {
    pub fn new(genesis: GenesisFile) -> Result<Cluster> {
        Ok(Cluster {
            dir: tempfile::tempdir()?,
            genesis,
            nodes: Vec::new(),
            addresses: Vec::new(),
            options: NodeOptions {
                timeouts: TimeoutConfig {
                    propose_ms: 500,
                    prevote_ms: 250,
                    precommit_ms: 250,
                    round_increase_ms: 250,
                    timeout_ms_max: 5_000,
                },
                sync: true,
            },
            limits: Limits::default(),
        })
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    pub fn config(&self, i: usize, mode: Mode, observers: BTreeSet<PublicKey>) -> Result<Config> {
        let peers = self
            .addresses
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(_, a)| a.clone())
            .map(|(public_key, address)| PeerAddress {
                public_key,
                address,
            })
            .collect();
        Ok(Config {
            mode,
            listen_address: "/ip4/127.0.0.1/tcp/0".parse()?,
            peers,
            observers,
            data_dir: self.data_dir(i),
            key_file: self.dir.path().join("unused.key"),
            public_key: validator_key(i).public_key(),
            api_address: "127.0.0.1:0".parse::<SocketAddr>()?,
            genesis_file: self.dir.path().join("unused.json"),
            limits: self.limits,
            test_faults: Default::default(),
            api: Default::default(),
            pruning: Default::default(),
            snapshots: None,
            state_sync: Default::default(),
            webhooks: None,
        })
    }

    /// Starts node `i` (validator key `i`), dialling every node started so far.
    pub async fn start(&mut self, i: usize) -> Result<()> {
        self.start_with(i, Mode::Validator, BTreeSet::new()).await
    }

    pub async fn start_with(
        &mut self,
        i: usize,
        mode: Mode,
        observers: BTreeSet<PublicKey>,
    ) -> Result<()> {
        let config = self.config(i, mode, observers)?;
        self.start_config(i, config).await
    }

    /// Starts node `i` (validator key `i`) with `config`, as [`Cluster::config`] made it and
    /// a test edited it.
    pub async fn start_config(&mut self, i: usize, config: Config) -> Result<()> {
        let node = Node::start(
            &config,
            validator_key(i),
            &self.genesis,
            self.options.clone(),
        )
        .await
        .with_context(|| format!("node {i} did not start"))?;
        let address = node
            .listen_addresses
            .first()
            .cloned()
            .context("no listen address")?;
        while self.nodes.len() <= i {
            self.nodes.push(None);
            self.addresses.push(None);
        }
        if let Some(slot) = self.addresses.get_mut(i) {
            *slot = Some((node.public_key, address));
        }
        if let Some(slot) = self.nodes.get_mut(i) {
            *slot = Some(node);
        }
        Ok(())
    }

    pub fn node(&self, i: usize) -> Result<&Node> {
        self.nodes
            .get(i)
            .and_then(Option::as_ref)
            .with_context(|| format!("node {i} is not running"))
    }

    pub fn take(&mut self, i: usize) -> Result<Node> {
        self.nodes
            .get_mut(i)
            .and_then(Option::take)
            .with_context(|| format!("node {i} is not running"))
    }

    pub fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    /// Node `i`'s committed height: its storage head. The chain task writes a block before
    /// it moves the `committed` watch, so a transaction found in storage can be a block
    /// ahead of the watch; tests that compare nodes at "the height" must use the head.
    pub fn height(&self, i: usize) -> Result<u64> {
        let node = self.node(i)?;
        let watched = *node.context.committed.borrow();
        Ok(node.context.storage.head()?.unwrap_or(0).max(watched))
    }

    /// Waits until node `i` has committed `height`.
    pub async fn wait_height(&self, i: usize, height: u64) -> Result<()> {
        let mut committed = self.node(i)?.context.committed.clone();
        ensure!(
            wait_for_height(&mut committed, height, WAIT).await,
            "node {i} did not reach height {height} in {WAIT:?} (at {})",
            *committed.borrow()
        );
        Ok(())
    }

    pub async fn wait_all(&self, height: u64) -> Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.is_some() {
                self.wait_height(i, height).await?;
            }
        }
        Ok(())
    }

    /// Submits each transaction to node `pick(tx index)`, retrying while the node is busy.
    pub async fn submit_all(
        &self,
        txs: &[SignedTransaction],
        pick: impl Fn(usize) -> usize,
    ) -> Result<Vec<Hash>> {
        let mut hashes = Vec::with_capacity(txs.len());
        for (n, tx) in txs.iter().enumerate() {
            let node = self.node(pick(n))?;
            let bytes = encoding::encode(tx);
            let mut tries = 0;
            loop {
                match node.context.submit(bytes.clone()).await {
                    Ok(hash) => {
                        hashes.push(hash);
                        break;
                    }
                    Err(tally_node::service::SubmitError::Mempool(
                        tally_node::mempool::MempoolError::Busy,
                    )) if tries < 600 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => bail!("transaction {n} refused: {e}"),
                }
            }
        }
        Ok(hashes)
    }

    /// Waits until node `i` has committed every transaction, each accepted by the ledger.
    pub async fn wait_committed_ok(&self, i: usize, hashes: &[Hash]) -> Result<()> {
        for hash in hashes {
            let receipt = self.wait_committed(i, hash).await?;
            ensure!(
                receipt.result.is_ok(),
                "transaction {hash} rejected: {receipt:?}"
            );
        }
        Ok(())
    }

    /// The receipt of `hash` once node `i` committed it, accepted or rejected.
    pub async fn wait_committed(&self, i: usize, hash: &Hash) -> Result<tally_contracts::Receipt> {
        let node = self.node(i)?;
        let deadline = tokio::time::Instant::now() + WAIT;
        let location = loop {
            if let Some(l) = node.context.storage.tx_location(hash)? {
                break l;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "transaction {hash} not committed in time on node {i}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let results = node
            .context
            .storage
            .results(location.height)?
            .context("results missing")?;
        let results = BlockResults::decode(&results)?;
        let receipt = results
            .receipts
            .get(location.index as usize)
            .context("receipt missing")?;
        ensure!(receipt.tx == *hash, "receipt for another transaction");
        Ok(receipt.clone())
    }

    /// Every running node holds the same blocks and the same state roots up to `height`.
    pub fn assert_same_chain(&self, height: u64) -> Result<()> {
        let nodes: Vec<&Node> = self.running().collect();
        let first = nodes.first().context("no node running")?;
        for h in 1..=height {
            let block = first.context.storage.block(h)?.context("block missing")?;
            let results = BlockResults::decode(
                &first
                    .context
                    .storage
                    .results(h)?
                    .context("results missing")?,
            )?;
            for other in nodes.iter().skip(1) {
                let theirs = other.context.storage.block(h)?;
                ensure!(
                    theirs.as_ref() == Some(&block),
                    "block {h} differs on {}",
                    other.public_key
                );
                let their_results = BlockResults::decode(
                    &other
                        .context
                        .storage
                        .results(h)?
                        .context("results missing")?,
                )?;
                ensure!(
                    their_results.state_root == results.state_root,
                    "state root after block {h} differs on {}",
                    other.public_key
                );
            }
        }
        Ok(())
    }

    pub async fn shutdown(mut self) -> Result<()> {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.shutdown().await?;
        }
        Ok(())
    }
}
