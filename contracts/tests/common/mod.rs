//! A small world for tests: a genesis with two banks, the platform, an FX provider and a
//! regulator; helpers to sign, verify and execute transactions block by block, checking
//! the invariants after every block.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use tally_contracts::*;
use tally_crypto::{Hash, KeyCache, SigningKey};

pub const CHAIN: &str = "tally-test";
pub const BANK_A: InstitutionId = InstitutionId(1);
pub const BANK_B: InstitutionId = InstitutionId(2);
pub const PLATFORM: InstitutionId = InstitutionId(3);
pub const FX: InstitutionId = InstitutionId(4);
pub const REGULATOR: InstitutionId = InstitutionId(5);
pub const START_MS: u64 = 1_800_000_000_000;
pub const ISSUANCE_LIMIT: Amount = 1_000_000_000;
/// Tier 0 (a low-verification class): 10_000 single, 20_000 daily, 50_000 a year, 30_000
/// a year abroad; tier 1: 1_000_000 single, 5_000_000 daily, 100_000_000 a year, 5_000_000
/// a year abroad.
pub const TIER0_SINGLE: Amount = 10_000;
pub const TIER0_DAILY: Amount = 20_000;
pub const TIER0_YEARLY: Amount = 50_000;
pub const TIER0_CROSS_BORDER_YEARLY: Amount = 30_000;

pub fn key(seed: u64) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[31] = 0x5a;
    SigningKey::from_seed(bytes)
}

pub fn institution_key(id: InstitutionId) -> SigningKey {
    key(1_000 + u64::from(id.0))
}

pub fn governance_keys() -> Vec<SigningKey> {
    (0..3).map(|i| key(2_000 + i)).collect()
}

pub fn card(n: u8) -> CardToken {
    CardToken([n; 32])
}

pub fn identity(n: u128) -> Hash {
    Hash::digest("identity", &n.to_le_bytes())
}

pub fn genesis() -> Genesis {
    let roles = |r: &[Roles]| r.iter().fold(Roles::default(), |a, b| a.with(*b));
    let inst = |id, r: Roles| GenesisInstitution {
        id,
        key: institution_key(id).public_key(),
        roles: r,
        name: format!("Institution {}", id.0),
    };
    Genesis {
        chain_id: CHAIN.into(),
        time_ms: START_MS,
        currencies: vec![Currency::CNY, Currency::HKD, Currency::USD],
        institutions: vec![
            inst(BANK_A, roles(&[Roles::BANK, Roles::KYC, Roles::ACQUIRER])),
            inst(BANK_B, roles(&[Roles::BANK, Roles::KYC, Roles::ACQUIRER])),
            inst(PLATFORM, roles(&[Roles::PLATFORM, Roles::KYC])),
            inst(FX, Roles::FX_PROVIDER),
            inst(REGULATOR, Roles::REGULATOR),
        ],
        platform: PLATFORM,
        governance_keys: governance_keys().iter().map(|k| k.public_key()).collect(),
        governance_threshold: 2,
        issuance_limits: [BANK_A, BANK_B]
            .iter()
            .flat_map(|b| {
                [Currency::CNY, Currency::HKD, Currency::USD].map(|c| (*b, c, ISSUANCE_LIMIT))
            })
            .collect(),
        fx_credit_lines: [Currency::CNY, Currency::HKD, Currency::USD]
            .map(|c| (FX, c, ISSUANCE_LIMIT))
            .to_vec(),
        tiers: vec![
            TierLimits {
                single_max: TIER0_SINGLE,
                daily_max: TIER0_DAILY,
                yearly_max: TIER0_YEARLY,
                cross_border_yearly_max: TIER0_CROSS_BORDER_YEARLY,
            },
            TierLimits {
                single_max: 1_000_000,
                daily_max: 5_000_000,
                yearly_max: 100_000_000,
                cross_border_yearly_max: 5_000_000,
            },
        ],
        merchant_fee_bps_max: 300,
        corridors: vec![
            Corridor {
                from: Currency::CNY,
                to: Currency::USD,
                single_max: 500_000,
            },
            Corridor {
                from: Currency::HKD,
                to: Currency::CNY,
                single_max: 500_000,
            },
        ],
        sanctions: vec![identity(666)],
    }
}

#[derive(Debug)]
pub struct World {
    pub store: MemoryStore,
    pub height: u64,
    pub time_ms: u64,
    pub cache: KeyCache,
    pub check: bool,
}

pub fn ok(r: &Receipt) {
    assert_eq!(r.result, Ok(()), "expected success: {r:?}");
}

pub fn rejected(r: &Receipt, why: Rejection) {
    assert_eq!(r.result, Err(why), "expected {}: {r:?}", why.code());
    assert!(r.events.is_empty());
}

impl World {
    /// A world continuing from a saved state.
    pub fn from_parts(store: MemoryStore, height: u64, time_ms: u64) -> World {
        World {
            store,
            height,
            time_ms,
            cache: KeyCache::default(),
            check: true,
        }
    }

    pub fn new() -> World {
        let mut store = MemoryStore::new();
        let out = genesis().apply(&store).unwrap();
        store.apply(&out.writes);
        check_invariants(&store).unwrap();
        World {
            store,
            height: 0,
            time_ms: START_MS,
            cache: KeyCache::default(),
            check: true,
        }
    }

    pub fn nonce(&self, party: Party) -> u64 {
        match party {
            Party::Account(id) => query::account(&self.store, id)
                .unwrap()
                .map_or(0, |a| a.holder.nonce),
            Party::Institution(id) => query::institution(&self.store, id)
                .unwrap()
                .map_or(0, |i| i.nonce),
        }
    }

    pub fn sign(&self, sender: Party, keys: &[&SigningKey], kind: TxKind) -> SignedTransaction {
        self.sign_nonce(sender, self.nonce(sender), keys, kind)
    }

    pub fn sign_nonce(
        &self,
        sender: Party,
        nonce: u64,
        keys: &[&SigningKey],
        kind: TxKind,
    ) -> SignedTransaction {
        Transaction {
            chain_id: CHAIN.into(),
            sender,
            nonce,
            kind,
        }
        .sign(keys)
    }

    pub fn advance(&mut self, ms: u64) {
        self.time_ms += ms;
    }

    /// Verifies and executes `txs` as the next block; commits; checks invariants.
    pub fn block(&mut self, txs: Vec<SignedTransaction>) -> BlockOutcome {
        let verified: Vec<VerifiedTransaction> = verify_transactions(CHAIN, txs, &mut self.cache)
            .into_iter()
            .map(|v| v.expect("signatures verify"))
            .collect();
        self.height += 1;
        self.time_ms += 1_000;
        let out = Ledger::execute_block(
            &self.store,
            BlockContext {
                height: self.height,
                time_ms: self.time_ms,
            },
            &verified,
        )
        .unwrap();
        self.store.apply(&out.writes);
        if self.check {
            check_invariants(&self.store).unwrap();
        }
        out
    }

    pub fn submit(&mut self, sender: Party, keys: &[&SigningKey], kind: TxKind) -> Receipt {
        let signed = self.sign(sender, keys, kind);
        self.block(vec![signed]).receipts.remove(0)
    }

    pub fn institution(&mut self, id: InstitutionId, kind: TxKind) -> Receipt {
        self.submit(Party::Institution(id), &[&institution_key(id)], kind)
    }

    /// Registers a consumer wallet held by `bank`; its key is `key(id)`.
    pub fn consumer(
        &mut self,
        id: u128,
        bank: InstitutionId,
        tier: u8,
        currency: Currency,
    ) -> SigningKey {
        self.person_wallet(id, bank, tier, currency, identity(id))
    }

    /// Registers a consumer wallet of the person `who` held by `bank`; its key is
    /// `key(id)`. One person may have several wallets, at one institution or more.
    pub fn person_wallet(
        &mut self,
        id: u128,
        bank: InstitutionId,
        tier: u8,
        currency: Currency,
        who: Hash,
    ) -> SigningKey {
        let k = key(id as u64);
        let r = self.submit(
            Party::Account(AccountId(id)),
            &[&k, &institution_key(bank)],
            TxKind::RegisterAccount {
                account: AccountId(id),
                key: k.public_key(),
                currency,
                institution: bank,
                tier,
                identity: who,
            },
        );
        ok(&r);
        k
    }

    /// Binds card `id as u8` from `bank` (if not bound) and tops up `amount`.
    pub fn fund(&mut self, id: u128, bank: InstitutionId, amount: Amount) {
        let k = key(id as u64);
        let c = card(id as u8);
        let bank_key = institution_key(bank);
        let binding = self.submit(
            Party::Account(AccountId(id)),
            &[&k, &bank_key],
            TxKind::BindCard { card: c, bank },
        );
        assert!(
            binding.result == Ok(()) || binding.result == Err(Rejection::CardAlreadyBound),
            "{binding:?}"
        );
        let r = self.submit(
            Party::Account(AccountId(id)),
            &[&k, &bank_key],
            TxKind::TopUp {
                id: TransferId(u128::from(self.height) << 64 | id),
                card: c,
                amount,
            },
        );
        ok(&r);
    }

    /// Registers a merchant at `acquirer` with `fee_bps`; its key is `key(id)`.
    pub fn merchant(
        &mut self,
        id: u128,
        acquirer: InstitutionId,
        fee_bps: u16,
        currency: Currency,
    ) -> SigningKey {
        let k = key(id as u64);
        let r = self.submit(
            Party::Institution(acquirer),
            &[&institution_key(acquirer), &k],
            TxKind::RegisterMerchant {
                account: AccountId(id),
                key: k.public_key(),
                currency,
                fee_bps,
                identity: identity(id),
            },
        );
        ok(&r);
        k
    }

    pub fn account(&self, id: u128) -> Account {
        query::account(&self.store, AccountId(id)).unwrap().unwrap()
    }

    pub fn balance(&self, id: u128) -> i128 {
        self.account(id).balance()
    }

    pub fn institutional(&self, inst: InstitutionId, kind: AccountKind, c: Currency) -> Account {
        query::account(&self.store, AccountId::institutional(inst, kind, c))
            .unwrap()
            .unwrap()
    }
}
