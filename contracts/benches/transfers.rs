//! Executed simple transfers per second on one core, in memory and over redb (one read
//! transaction and one durable write transaction per block of 10,000 transfers, as the node). Signing and verification happen
//! before the clock starts: this measures the contracts and the store. Execution includes
//! the state root (the ledger tree's update); its share is measured apart by updating the
//! tree again over the same snapshot, outside the timed total.
//!
//! Run: `cargo bench -p tally-contracts` (BENCH_BLOCKS raises the number of blocks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use tally_contracts::*;
use tally_crypto::{KeyCache, SigningKey};

const CHAIN: &str = "tally-bench";
const BANK: InstitutionId = InstitutionId(1);
const PLATFORM: InstitutionId = InstitutionId(2);
const ACCOUNTS: u64 = 10_000;
const BLOCK_TXS: usize = 10_000;
const START_MS: u64 = 1_800_000_000_000;

fn key(seed: u64) -> SigningKey {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    SigningKey::from_seed(bytes)
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        time_ms: START_MS,
        currencies: vec![Currency::CNY],
        institutions: vec![
            GenesisInstitution {
                id: BANK,
                key: key(1_000_001).public_key(),
                roles: Roles::BANK.with(Roles::KYC).with(Roles::ACQUIRER),
                name: "Bank".into(),
            },
            GenesisInstitution {
                id: PLATFORM,
                key: key(1_000_002).public_key(),
                roles: Roles::PLATFORM,
                name: "Platform".into(),
            },
        ],
        platform: PLATFORM,
        governance_keys: vec![key(1_000_003).public_key()],
        governance_threshold: 1,
        issuance_limits: vec![(BANK, Currency::CNY, AMOUNT_MAX)],
        fx_credit_lines: vec![],
        tiers: vec![TierLimits {
            single_max: 1_000_000_000,
            daily_max: AMOUNT_MAX,
            yearly_max: NO_CAP,
            cross_border_yearly_max: NO_CAP,
        }],
        merchant_fee_bps_max: 100,
        corridors: vec![],
        sanctions: vec![],
    }
}

trait Committing: StateStore {
    /// Runs `execute` over one view of the state for a whole block.
    fn with_snapshot<R>(&self, execute: impl FnOnce(&dyn StateStore) -> R) -> R;
    fn commit(&mut self, writes: Vec<Write>);
}

impl Committing for MemoryStore {
    fn with_snapshot<R>(&self, execute: impl FnOnce(&dyn StateStore) -> R) -> R {
        execute(self)
    }

    fn commit(&mut self, writes: Vec<Write>) {
        MemoryStore::commit(self, writes);
    }
}

/// The node's store: one redb table, one durable write transaction per block.
struct RedbStore {
    db: redb::Database,
}

const STATE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("state");

/// One read transaction's view of the state, as the node's `StateSnapshot`.
struct RedbSnapshot {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

fn fail(e: impl Into<redb::Error>) -> StoreError {
    StoreError(e.into().to_string())
}

impl RedbStore {
    fn snapshot(&self) -> Result<RedbSnapshot, StoreError> {
        use redb::ReadableDatabase;
        let txn = self.db.begin_read().map_err(fail)?;
        Ok(RedbSnapshot {
            table: txn.open_table(STATE).map_err(fail)?,
        })
    }
}

impl StateStore for RedbSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        use redb::ReadableTable;
        let value = self.table.get(key).map_err(fail)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StoreError> {
        use redb::ReadableTable;
        if start >= end {
            return Ok(Vec::new());
        }
        self.table
            .range(start..end)
            .map_err(fail)?
            .take(limit)
            .map(|r| {
                r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                    .map_err(fail)
            })
            .collect()
    }
}

impl StateStore for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.snapshot()?.get(key)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StoreError> {
        self.snapshot()?.scan(start, end, limit)
    }
}

impl Committing for RedbStore {
    fn with_snapshot<R>(&self, execute: impl FnOnce(&dyn StateStore) -> R) -> R {
        let snapshot = self.snapshot().unwrap();
        execute(&snapshot)
    }

    fn commit(&mut self, writes: Vec<Write>) {
        let txn = self.db.begin_write().unwrap();
        {
            let mut table = txn.open_table(STATE).unwrap();
            for w in writes {
                match w.value {
                    Some(v) => {
                        table.insert(w.key.as_slice(), v.as_slice()).unwrap();
                    }
                    None => {
                        table.remove(w.key.as_slice()).unwrap();
                    }
                }
            }
        }
        txn.commit().unwrap();
    }
}

fn sign(sender: Party, nonce: u64, keys: &[&SigningKey], kind: TxKind) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN.into(),
        sender,
        nonce,
        kind,
    }
    .sign(keys)
}

fn verify(txs: Vec<SignedTransaction>, cache: &mut KeyCache) -> Vec<VerifiedTransaction> {
    verify_transactions(CHAIN, txs, cache)
        .into_iter()
        .map(|v| v.unwrap())
        .collect()
}

struct Chain<S> {
    store: S,
    height: u64,
}

impl<S: Committing> Chain<S> {
    /// Executes and commits one block; returns the time for both, for execution alone, for
    /// the state root's share of it, and how many transactions applied.
    fn block(&mut self, txs: &[VerifiedTransaction]) -> (Duration, Duration, Duration, usize) {
        self.height += 1;
        let started = Instant::now();
        let context = BlockContext {
            height: self.height,
            time_ms: START_MS + self.height * 1_000,
        };
        let out = self
            .store
            .with_snapshot(|state| Ledger::execute_block(state, context, txs))
            .unwrap();
        let executed = started.elapsed();
        // The root's share: the same tree update again, over the same snapshot, from the
        // block's writes (`update` leaves out the tree's own nodes and the head record).
        let root_started = Instant::now();
        let update = self
            .store
            .with_snapshot(|state| commitment::update(state, self.height, &out.writes))
            .unwrap();
        let rooting = root_started.elapsed();
        assert_eq!(update.root, out.head.ledger_root);
        let commit_started = Instant::now();
        self.store.commit(out.writes);
        let elapsed = executed + commit_started.elapsed();
        let ok = out.receipts.iter().filter(|r| r.result.is_ok()).count();
        (elapsed, executed, rooting, ok)
    }
}

/// Registers and funds the accounts; returns the per-block transfer batches.
fn prepare<S: Committing>(
    chain: &mut Chain<S>,
    blocks: usize,
    cache: &mut KeyCache,
) -> Vec<Vec<VerifiedTransaction>> {
    let bank = key(1_000_001);
    let keys: Vec<SigningKey> = (0..ACCOUNTS).map(key).collect();
    let card = CardToken([1; 32]);
    let mut setup = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let id = AccountId(i as u128 + 1);
        setup.push(vec![
            sign(
                Party::Account(id),
                0,
                &[k, &bank],
                TxKind::RegisterAccount {
                    account: id,
                    key: k.public_key(),
                    currency: Currency::CNY,
                    institution: BANK,
                    tier: 0,
                    identity: tally_crypto::Hash::digest("id", &id.0.to_le_bytes()),
                },
            ),
            sign(
                Party::Account(id),
                1,
                &[k, &bank],
                TxKind::BindCard { card, bank: BANK },
            ),
            sign(
                Party::Account(id),
                2,
                &[k, &bank],
                TxKind::TopUp {
                    id: TransferId(u128::MAX - id.0),
                    card,
                    amount: 1_000_000,
                },
            ),
        ]);
    }
    for step in 0..3 {
        let txs: Vec<SignedTransaction> = setup.iter().map(|s| s[step].clone()).collect();
        let (_, _, _, ok) = chain.block(&verify(txs, cache));
        assert_eq!(ok, ACCOUNTS as usize, "setup step {step}");
    }
    (0..blocks)
        .map(|b| {
            let txs: Vec<SignedTransaction> = (0..BLOCK_TXS)
                .map(|t| {
                    let from = t as u64 % ACCOUNTS;
                    let to = (from + 1 + b as u64) % ACCOUNTS;
                    sign(
                        Party::Account(AccountId(u128::from(from) + 1)),
                        3 + b as u64,
                        &[&keys[from as usize]],
                        TxKind::Transfer {
                            id: TransferId((b * BLOCK_TXS + t) as u128 + 1),
                            to: AccountId(u128::from(to) + 1),
                            amount: 1 + (t % 100) as u64,
                            memo: tally_contracts::Memo::NONE,
                        },
                    )
                })
                .collect();
            verify(txs, cache)
        })
        .collect()
}

fn run<S: Committing>(name: &str, store: S, blocks: usize, cache: &mut KeyCache) {
    let mut chain = Chain { store, height: 0 };
    let genesis = genesis().apply(&chain.store).unwrap();
    chain.store.commit(genesis.writes);
    let batches = prepare(&mut chain, blocks, cache);
    let mut total = Duration::ZERO;
    let mut executing = Duration::ZERO;
    let mut rooting = Duration::ZERO;
    let mut applied = 0;
    for batch in &batches {
        let (elapsed, executed, root, ok) = chain.block(batch);
        assert_eq!(ok, batch.len(), "every transfer applies");
        total += elapsed;
        executing += executed;
        rooting += root;
        applied += ok;
    }
    let rate = applied as f64 / total.as_secs_f64();
    let per_block = |d: Duration| d.as_secs_f64() * 1_000.0 / blocks as f64;
    println!(
        "{name:>6}: {applied} transfers in {blocks} blocks of {BLOCK_TXS}: {:.3} s, {rate:.0} transfers/s, {:.1} ms/block ({:.1} ms executing, of which {:.1} ms the state root; {:.1} ms committing)",
        total.as_secs_f64(),
        per_block(total),
        per_block(executing),
        per_block(rooting),
        per_block(total - executing),
    );
}

fn main() {
    let blocks: usize = std::env::var("BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut cache = KeyCache::default();
    println!("executed simple transfers (single thread; verification excluded)");
    run("memory", MemoryStore::new(), blocks, &mut cache);
    let dir = std::env::temp_dir().join(format!("tally-bench-redb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The node's default page cache.
    let db = redb::Database::builder()
        .set_cache_size(64 * 1024 * 1024)
        .create(dir.join("state.redb"))
        .unwrap();
    {
        let txn = db.begin_write().unwrap();
        txn.open_table(STATE).unwrap();
        txn.commit().unwrap();
    }
    run("redb", RedbStore { db }, blocks, &mut cache);
    let _ = std::fs::remove_dir_all(&dir);
}
