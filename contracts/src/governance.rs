//! Institutions and the chain's rules (currencies, KYC tier limits, fee schedule, FX
//! corridors, who governs), and the `Govern` transaction that changes them with a quorum
//! of the governance keys.

use serde::{Deserialize, Serialize};
use tally_crypto::PublicKey;

use crate::context::{Tx, TxResult};
use crate::ledger::accounts::{Account, AccountKind};
use crate::state::{decode_record, key};
use crate::transaction::{DisputeOutcome, EncryptionKey, GovernanceAction, Roles};
use crate::types::{AccountId, Amount, Currency, InstitutionId};
use crate::{Event, Rejection};

/// The most KYC tiers.
pub const TIERS_MAX: usize = 8;
/// The most FX corridors.
pub const CORRIDORS_MAX: usize = 256;
/// The most currencies.
pub const CURRENCIES_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Institution {
    pub id: InstitutionId,
    /// The key it signs with, as a sender and as a co-signer; `None` once governance
    /// revoked it (`RevokeInstitutionKey`), until governance gives it a new one
    /// (`ReplaceInstitutionKey`).
    pub key: Option<PublicKey>,
    pub roles: Roles,
    pub nonce: u64,
    /// The X25519 key it receives travel-rule data under, once it registered one
    /// (`SetEncryptionKey`).
    pub encryption_key: Option<EncryptionKey>,
    /// What people call it, shown wherever the institution is named (pages, reports):
    /// set at genesis or by the governance action that added it.
    pub name: String,
}

/// The longest institution name, in bytes of UTF-8.
pub const INSTITUTION_NAME_BYTES_MAX: usize = 64;

/// A name people can read and nobody can use to spoof another: 1 to
/// [`INSTITUTION_NAME_BYTES_MAX`] bytes of [`NAME_CHARACTERS`], single spaces between
/// words, none at either end.
pub fn institution_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= INSTITUTION_NAME_BYTES_MAX
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && !name.contains("  ")
        && name
            .chars()
            .all(|c| NAME_CHARACTERS.iter().any(|r| r.contains(&c)))
}

/// The characters a name may hold, as fixed ranges rather than Unicode properties: a
/// property (letter, whitespace, case) can change with the Unicode version of the compiler
/// that built a validator, and validators built apart must agree on every name. So: printable
/// ASCII, Latin-1 and Latin Extended-A letters, CJK ideographs, kana and Hangul. Left out on
/// purpose: controls, format and invisible characters (bidi overrides, zero-width joiners,
/// tag characters, variation selectors) and the scripts whose letters look like Latin ones
/// (Greek, Cyrillic), so that no name can pass for another's.
pub const NAME_CHARACTERS: [std::ops::RangeInclusive<char>; 10] = [
    ' '..='~',
    '\u{00C0}'..='\u{00D6}',
    '\u{00D8}'..='\u{00F6}',
    '\u{00F8}'..='\u{017F}',
    '\u{3001}'..='\u{3003}',
    '\u{3041}'..='\u{30FF}',
    '\u{3400}'..='\u{4DBF}',
    '\u{4E00}'..='\u{9FFF}',
    '\u{AC00}'..='\u{D7A3}',
    '\u{FF08}'..='\u{FF09}',
];

/// The longest a dispute window or a decision period may be: one year.
pub const DISPUTE_PERIOD_MS_MAX: u64 = 366 * 86_400_000;

/// How disputes run: a payer may dispute a payment up to `window_ms` after it completed;
/// the deciding institution has `decision_ms`; then `default` ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeRules {
    pub window_ms: u64,
    pub decision_ms: u64,
    pub default: DisputeOutcome,
}

impl Default for DisputeRules {
    /// The card schemes' usual: 120 days to dispute, 30 days to decide, and an undecided
    /// dispute ends in the payer's favour (the decider's silence costs the decider's side,
    /// not the customer).
    fn default() -> DisputeRules {
        DisputeRules {
            window_ms: 120 * 86_400_000,
            decision_ms: 30 * 86_400_000,
            default: DisputeOutcome::Refund,
        }
    }
}

impl DisputeRules {
    pub fn is_consistent(&self) -> bool {
        (1..=DISPUTE_PERIOD_MS_MAX).contains(&self.window_ms)
            && (1..=DISPUTE_PERIOD_MS_MAX).contains(&self.decision_ms)
    }
}

/// A limit that does not bind: what a genesis file written before yearly limits gets.
pub const NO_CAP: Amount = Amount::MAX;

fn no_cap() -> Amount {
    NO_CAP
}

/// What a KYC tier — an account class, in the style of the regulators' class I / II / III
/// accounts — lets a person move out. Amounts are minor units of the paying wallet's
/// currency. The sending wallet's tier sets the limits; the amounts counted against them
/// are the person's (its identity digest): per day and year, across all its wallets at the
/// institution holding the wallet; abroad, across all its wallets everywhere. Days are UTC
/// days of block time, years UTC calendar years ([`crate::utc_year`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierLimits {
    /// The most one payment may take.
    pub single_max: Amount,
    /// The most a person may send in one day from its wallets at one institution.
    pub daily_max: Amount,
    /// The most a person may send in one year from its wallets at one institution: small
    /// for a low-verification class.
    #[serde(default = "no_cap")]
    pub yearly_max: Amount,
    /// The most a person may send abroad (cross-border transfers) in one year, from all
    /// its wallets at every institution.
    #[serde(default = "no_cap")]
    pub cross_border_yearly_max: Amount,
}

impl TierLimits {
    /// Limits that make sense: a payment within a day, a day within a year.
    pub fn is_consistent(&self) -> bool {
        self.single_max <= self.daily_max && self.daily_max <= self.yearly_max
    }
}

/// A cross-border corridor: conversions from `from` to `to` are allowed, each debiting at
/// most `single_max` (in `from`'s minor units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corridor {
    pub from: Currency,
    pub to: Currency,
    pub single_max: Amount,
}

/// The chain's rules, one record in state, changed only by `Govern`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub chain_id: String,
    /// Sorted, no duplicates.
    pub currencies: Vec<Currency>,
    /// The payment platform: merchant fees go to its fee account.
    pub platform: InstitutionId,
    /// Sorted, no duplicates.
    pub governance_keys: Vec<PublicKey>,
    pub governance_threshold: u8,
    /// Indexed by KYC tier.
    pub tiers: Vec<TierLimits>,
    pub merchant_fee_bps_max: u16,
    /// Sorted by (from, to).
    pub corridors: Vec<Corridor>,
    pub disputes: DisputeRules,
    /// Per sender's currency, sorted: from which debit a cross-border transfer must carry
    /// travel-rule data. A currency not listed has no requirement.
    pub travel_rule_thresholds: Vec<(Currency, Amount)>,
    /// How long an account recovery (`RecoverAccount`) waits, announced, before the new key
    /// takes over: the time the account's holder has to see it and cancel it.
    #[serde(default = "default_recovery_delay_ms")]
    pub recovery_delay_ms: u64,
}

/// A day of block time: long enough for a customer to see a recovery announced in its
/// wallet and cancel it, short enough for one who really lost the phone.
pub const RECOVERY_DELAY_MS_DEFAULT: u64 = 86_400_000;
/// The longest recovery delay governance may set: 30 days.
pub const RECOVERY_DELAY_MS_MAX: u64 = 30 * 86_400_000;

fn default_recovery_delay_ms() -> u64 {
    RECOVERY_DELAY_MS_DEFAULT
}

impl Rules {
    pub fn tier(&self, tier: u8) -> Option<TierLimits> {
        self.tiers.get(usize::from(tier)).copied()
    }

    /// The travel-rule threshold for transfers out of `currency`, if governance set one.
    pub fn travel_rule_threshold(&self, currency: Currency) -> Option<Amount> {
        self.travel_rule_thresholds
            .binary_search_by_key(&currency, |(c, _)| *c)
            .ok()
            .and_then(|i| self.travel_rule_thresholds.get(i))
            .map(|(_, threshold)| *threshold)
    }

    pub fn corridor(&self, from: Currency, to: Currency) -> Option<Corridor> {
        self.corridors
            .iter()
            .find(|c| c.from == from && c.to == to)
            .copied()
    }
}

/// The accounts an institution holds in one currency, by role.
pub(crate) fn institutional_kinds(roles: Roles) -> Vec<AccountKind> {
    let mut kinds = Vec::new();
    if roles.contains(Roles::BANK) {
        kinds.push(AccountKind::BankIssuance);
        kinds.push(AccountKind::BankSettlement);
    }
    if roles.contains(Roles::PLATFORM) {
        kinds.push(AccountKind::Fee);
    }
    if roles.contains(Roles::FX_PROVIDER) {
        kinds.push(AccountKind::FxLiquidity);
    }
    kinds
}

/// Creates an institution and its accounts in every currency.
pub(crate) fn add_institution(tx: &mut Tx<'_, '_>, institution: &Institution) -> TxResult {
    if !institution.key.is_some_and(|k| k.is_valid()) {
        return Err(Rejection::InvalidKey.into());
    }
    if !institution_name_is_valid(&institution.name) {
        return Err(Rejection::InvalidField.into());
    }
    let k = key::institution(institution.id);
    if tx.state.contains(&k)? {
        return Err(Rejection::InstitutionExists.into());
    }
    // A name that differs only in case would let one institution pass for another on
    // every page and report that names it.
    let (start, end) = key::tag_range(key::INSTITUTION);
    // ASCII case only: it is the same on every platform and every compiler.
    let name = institution.name.to_ascii_lowercase();
    for (k, v) in tx.state.scan(&start, &end, usize::MAX)? {
        let other: Institution = decode_record(&k, &v)?;
        if other.name.to_ascii_lowercase() == name {
            return Err(Rejection::InstitutionNameTaken.into());
        }
    }
    tx.state.put(k, institution);
    for currency in tx.rules.currencies.clone() {
        for kind in institutional_kinds(institution.roles) {
            let id = AccountId::institutional(institution.id, kind, currency);
            tx.put_account(&Account::new(id, kind, currency, institution.id));
        }
    }
    Ok(())
}

fn set_overdraft(
    tx: &mut Tx<'_, '_>,
    institution: InstitutionId,
    kind: AccountKind,
    currency: Currency,
    limit: Amount,
) -> TxResult {
    tx.require_currency(currency)?;
    let mut account = tx.account(AccountId::institutional(institution, kind, currency))?;
    account.overdraft_limit = u128::from(limit);
    tx.put_account(&account);
    Ok(())
}

/// `Govern`: needs signatures from `governance_threshold` of the governance keys.
///
/// In a case about an institution's key, that key's own signature does not count toward
/// the quorum: the key may be the one stolen, and a thief must not help decide what
/// happens to it.
pub(crate) fn govern(tx: &mut Tx<'_, '_>, action: &GovernanceAction) -> TxResult {
    let accused = match action {
        GovernanceAction::ReplaceInstitutionKey { institution, .. }
        | GovernanceAction::RevokeInstitutionKey { institution } => {
            tx.institution(*institution)?.key
        }
        _ => None,
    };
    let signed = tx
        .rules
        .governance_keys
        .iter()
        .filter(|k| Some(**k) != accused && tx.signed_by(k))
        .count();
    if signed < usize::from(tx.rules.governance_threshold) {
        return Err(Rejection::GovernanceQuorum.into());
    }
    let mut rules = tx.rules.clone();
    let name = match action {
        GovernanceAction::AddInstitution {
            id,
            key,
            roles,
            name,
        } => {
            add_institution(
                tx,
                &Institution {
                    id: *id,
                    key: Some(*key),
                    roles: *roles,
                    nonce: 0,
                    encryption_key: None,
                    name: name.clone(),
                },
            )?;
            "AddInstitution"
        }
        GovernanceAction::SetIssuanceLimit {
            bank,
            currency,
            limit,
        } => {
            tx.institution_with(*bank, Roles::BANK)?;
            set_overdraft(tx, *bank, AccountKind::BankIssuance, *currency, *limit)?;
            "SetIssuanceLimit"
        }
        GovernanceAction::SetFxCreditLine {
            provider,
            currency,
            limit,
        } => {
            tx.institution_with(*provider, Roles::FX_PROVIDER)?;
            set_overdraft(tx, *provider, AccountKind::FxLiquidity, *currency, *limit)?;
            "SetFxCreditLine"
        }
        GovernanceAction::SetTierLimits {
            tier,
            single_max,
            daily_max,
            yearly_max,
            cross_border_yearly_max,
        } => {
            let index = usize::from(*tier);
            let limits = TierLimits {
                single_max: *single_max,
                daily_max: *daily_max,
                yearly_max: *yearly_max,
                cross_border_yearly_max: *cross_border_yearly_max,
            };
            if index >= TIERS_MAX || index > rules.tiers.len() || !limits.is_consistent() {
                return Err(Rejection::InvalidField.into());
            }
            match rules.tiers.get_mut(index) {
                Some(slot) => *slot = limits,
                None => rules.tiers.push(limits),
            }
            "SetTierLimits"
        }
        GovernanceAction::SetFeeSchedule {
            merchant_fee_bps_max,
        } => {
            if *merchant_fee_bps_max > 10_000 {
                return Err(Rejection::InvalidField.into());
            }
            rules.merchant_fee_bps_max = *merchant_fee_bps_max;
            "SetFeeSchedule"
        }
        GovernanceAction::SetCorridor {
            from,
            to,
            single_max,
        } => {
            tx.require_currency(*from)?;
            tx.require_currency(*to)?;
            if from == to {
                return Err(Rejection::InvalidField.into());
            }
            let corridor = Corridor {
                from: *from,
                to: *to,
                single_max: *single_max,
            };
            match rules
                .corridors
                .binary_search_by_key(&(*from, *to), |c| (c.from, c.to))
            {
                Ok(i) => {
                    if let Some(slot) = rules.corridors.get_mut(i) {
                        *slot = corridor;
                    }
                }
                Err(i) => {
                    if rules.corridors.len() >= CORRIDORS_MAX {
                        return Err(Rejection::InvalidField.into());
                    }
                    rules.corridors.insert(i, corridor);
                }
            }
            "SetCorridor"
        }
        GovernanceAction::SetDisputeRules {
            window_ms,
            decision_ms,
            default,
        } => {
            let disputes = DisputeRules {
                window_ms: *window_ms,
                decision_ms: *decision_ms,
                default: *default,
            };
            if !disputes.is_consistent() {
                return Err(Rejection::InvalidField.into());
            }
            rules.disputes = disputes;
            "SetDisputeRules"
        }
        GovernanceAction::SetTravelRuleThreshold {
            currency,
            threshold,
        } => {
            tx.require_currency(*currency)?;
            let thresholds = &mut rules.travel_rule_thresholds;
            match thresholds.binary_search_by_key(currency, |(c, _)| *c) {
                Ok(i) => {
                    if let Some(slot) = thresholds.get_mut(i) {
                        slot.1 = *threshold;
                    }
                }
                Err(i) => thresholds.insert(i, (*currency, *threshold)),
            }
            "SetTravelRuleThreshold"
        }
        GovernanceAction::ReplaceInstitutionKey {
            institution,
            new_key,
        } => {
            replace_institution_key(tx, &mut rules, *institution, *new_key)?;
            "ReplaceInstitutionKey"
        }
        GovernanceAction::RevokeInstitutionKey { institution } => {
            revoke_institution_key(tx, &mut rules, *institution)?;
            "RevokeInstitutionKey"
        }
        GovernanceAction::SetRecoveryDelay { delay_ms } => {
            if !(1..=RECOVERY_DELAY_MS_MAX).contains(delay_ms) {
                return Err(Rejection::InvalidField.into());
            }
            rules.recovery_delay_ms = *delay_ms;
            "SetRecoveryDelay"
        }
    };
    tx.state.put(key::rules(), &rules);
    tx.emit(Event::GovernanceApplied {
        action: name.to_string(),
    });
    Ok(())
}

/// Gives an institution a new key (its old one compromised, lost, or revoked): from this
/// transaction on the old key signs nothing, as a sender or a co-signer, and the API knows
/// only the new one from the block that commits it. The new key co-signs (proof of
/// possession: a key no one holds would lock the institution out without saying so). If
/// the old key was a governance key, the new one takes its place there, so the old key
/// loses its vote too. There is no transaction by which an institution changes its own
/// key: a thief holding it can neither move first nor undo this.
fn replace_institution_key(
    tx: &mut Tx<'_, '_>,
    rules: &mut Rules,
    id: InstitutionId,
    new_key: PublicKey,
) -> TxResult {
    let mut institution = tx.institution(id)?;
    if !new_key.is_valid()
        || institution.key == Some(new_key)
        || rules.governance_keys.binary_search(&new_key).is_ok()
    {
        return Err(Rejection::InvalidKey.into());
    }
    tx.require_cosigner(&new_key)?;
    if let Some(old) = institution.key
        && let Ok(i) = rules.governance_keys.binary_search(&old)
    {
        rules.governance_keys.remove(i);
        let at = rules.governance_keys.partition_point(|k| *k < new_key);
        rules.governance_keys.insert(at, new_key);
    }
    institution.key = Some(new_key);
    tx.state.put(key::institution(id), &institution);
    Ok(())
}

/// Takes an institution's key away (compromised, with no new key ready): it signs nothing
/// until [`replace_institution_key`]. Its accounts, customers and obligations stay as they
/// are. A governance key it held is dropped from the governance keys: the quorum that
/// decided this was reached without it, so the rest still reach the threshold.
fn revoke_institution_key(tx: &mut Tx<'_, '_>, rules: &mut Rules, id: InstitutionId) -> TxResult {
    let mut institution = tx.institution(id)?;
    let Some(old) = institution.key else {
        return Err(Rejection::KeyRevoked.into());
    };
    if let Ok(i) = rules.governance_keys.binary_search(&old) {
        rules.governance_keys.remove(i);
        if rules.governance_keys.len() < usize::from(rules.governance_threshold) {
            return Err(Rejection::GovernanceQuorum.into());
        }
    }
    institution.key = None;
    tx.state.put(key::institution(id), &institution);
    Ok(())
}
