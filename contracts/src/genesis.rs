//! The initial state: institutions with keys and roles, currencies, issuance limits and FX
//! credit lines, KYC tier limits, the fee schedule, corridors, the sanctions list and the
//! governance keys.

use serde::{Deserialize, Serialize};
use tally_crypto::{Hash, PublicKey};

use crate::context::{Tx, TxError};
use crate::execute::{BlockContext, seal};
use crate::governance::{
    CORRIDORS_MAX, CURRENCIES_MAX, Corridor, DisputeRules, Institution, Rules, TIERS_MAX,
    TierLimits, add_institution,
};
use crate::ledger::accounts::AccountKind;
use crate::state::{State, key};
use crate::transaction::Roles;
use crate::types::{AccountId, Amount, Currency, InstitutionId, TimeMs};
use crate::{ExecutionError, StateStore, Write};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisInstitution {
    pub id: InstitutionId,
    pub key: PublicKey,
    pub roles: Roles,
    /// What people call it: see [`crate::institution_name_is_valid`].
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub chain_id: String,
    pub time_ms: TimeMs,
    pub currencies: Vec<Currency>,
    pub institutions: Vec<GenesisInstitution>,
    /// The payment platform (must have the platform role).
    pub platform: InstitutionId,
    pub governance_keys: Vec<PublicKey>,
    pub governance_threshold: u8,
    /// `(bank, currency, limit)`: how much wallet money each bank may issue.
    pub issuance_limits: Vec<(InstitutionId, Currency, Amount)>,
    /// `(provider, currency, limit)`: how far an FX provider's liquidity may go negative.
    pub fx_credit_lines: Vec<(InstitutionId, Currency, Amount)>,
    /// Indexed by KYC tier.
    pub tiers: Vec<TierLimits>,
    pub merchant_fee_bps_max: u16,
    pub corridors: Vec<Corridor>,
    pub sanctions: Vec<Hash>,
}

/// The state genesis writes, to commit before block 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisOutcome {
    pub writes: Vec<Write>,
    pub state_root: Hash,
}

fn invalid(why: &str) -> ExecutionError {
    ExecutionError::Genesis(why.to_string())
}

impl Genesis {
    fn rules(&self) -> Result<Rules, ExecutionError> {
        let mut currencies = self.currencies.clone();
        currencies.sort_unstable();
        currencies.dedup();
        if currencies.len() != self.currencies.len()
            || currencies.is_empty()
            || currencies.len() > CURRENCIES_MAX
            || !currencies.iter().all(|c| c.is_well_formed())
        {
            return Err(invalid("currencies must be 1..=64 distinct ISO codes"));
        }
        let mut governance_keys = self.governance_keys.clone();
        governance_keys.sort_unstable();
        governance_keys.dedup();
        if governance_keys.len() != self.governance_keys.len()
            || !governance_keys.iter().all(PublicKey::is_valid)
            || self.governance_threshold == 0
            || usize::from(self.governance_threshold) > governance_keys.len()
        {
            return Err(invalid(
                "governance keys must be distinct, valid, threshold 1..=n",
            ));
        }
        if self.tiers.is_empty()
            || self.tiers.len() > TIERS_MAX
            || !self.tiers.iter().all(TierLimits::is_consistent)
        {
            return Err(invalid(
                "tiers: 1..=8, single_max <= daily_max <= yearly_max",
            ));
        }
        if self.merchant_fee_bps_max > 10_000 {
            return Err(invalid("merchant fee above 100%"));
        }
        let mut corridors = self.corridors.clone();
        corridors.sort_unstable_by_key(|c| (c.from, c.to));
        corridors.dedup_by_key(|c| (c.from, c.to));
        if corridors.len() != self.corridors.len()
            || corridors.len() > CORRIDORS_MAX
            || corridors.iter().any(|c| {
                c.from == c.to
                    || currencies.binary_search(&c.from).is_err()
                    || currencies.binary_search(&c.to).is_err()
            })
        {
            return Err(invalid("corridors: distinct pairs of enabled currencies"));
        }
        Ok(Rules {
            chain_id: self.chain_id.clone(),
            currencies,
            platform: self.platform,
            governance_keys,
            governance_threshold: self.governance_threshold,
            tiers: self.tiers.clone(),
            merchant_fee_bps_max: self.merchant_fee_bps_max,
            corridors,
            // Set by governance (`SetDisputeRules`, `SetTravelRuleThreshold`).
            disputes: DisputeRules::default(),
            travel_rule_thresholds: Vec::new(),
            recovery_delay_ms: crate::governance::RECOVERY_DELAY_MS_DEFAULT,
        })
    }

    /// Writes the initial state into an empty store: the caller commits `writes`.
    pub fn apply(&self, store: &dyn StateStore) -> Result<GenesisOutcome, ExecutionError> {
        if !store.scan(&[], &[0xff; 2], 1)?.is_empty() {
            return Err(ExecutionError::NotEmpty);
        }
        if self.chain_id.is_empty() || self.chain_id.len() > crate::encoding::CHAIN_ID_BYTES_MAX {
            return Err(invalid("chain id length"));
        }
        let rules = self.rules()?;
        let block = BlockContext {
            height: 0,
            time_ms: self.time_ms,
        };
        let mut state = State::new(store);
        state.put(key::rules(), &rules);
        let mut tx = Tx::new(&mut state, &rules, block, &[]);
        let rejected = |what: &str, e: TxError| match e {
            TxError::Rejected(r) => invalid(&format!("{what}: {}", r.code())),
            TxError::Failed(e) => e,
        };
        for i in &self.institutions {
            add_institution(
                &mut tx,
                &Institution {
                    id: i.id,
                    key: Some(i.key),
                    roles: i.roles,
                    nonce: 0,
                    encryption_key: None,
                    name: i.name.clone(),
                },
            )
            .map_err(|e| rejected("institution", e))?;
        }
        tx.institution_with(rules.platform, Roles::PLATFORM)
            .map_err(|e| rejected("platform", e))?;
        let limits = self
            .issuance_limits
            .iter()
            .map(|l| (l, AccountKind::BankIssuance))
            .chain(
                self.fx_credit_lines
                    .iter()
                    .map(|l| (l, AccountKind::FxLiquidity)),
            );
        for ((institution, currency, limit), kind) in limits {
            let mut account = tx
                .account(AccountId::institutional(*institution, kind, *currency))
                .map_err(|e| rejected("limit for a missing account", e))?;
            account.overdraft_limit = u128::from(*limit);
            tx.put_account(&account);
        }
        for identity in &self.sanctions {
            tx.state.put(key::sanction(*identity), &());
        }
        tx.commit();
        let (writes, head) = seal(store, block, state.into_writes(), &[], &[])?;
        Ok(GenesisOutcome {
            writes,
            state_root: head.state_root,
        })
    }
}
