//! The genesis file: the chain's first validator set and the ledger's initial state. Every
//! node of a chain starts from the same file; its hash is stored in the data directory so a
//! node never runs one chain's data with another chain's genesis.
//!
//! `tally genesis` builds the file from a small TOML description ([`GenesisDescription`]),
//! naming roles and currencies in words rather than the ledger's bit sets and byte arrays.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tally_consensus::{Validator, ValidatorSet};
use tally_contracts::{
    Amount, Corridor, Currency, Genesis, GenesisInstitution, INSTITUTION_NAME_BYTES_MAX,
    InstitutionId, NO_CAP, Roles, TierLimits, institution_name_is_valid,
};
use tally_crypto::{Hash, PublicKey};

/// The most bytes a genesis file (or its description) may have.
pub const GENESIS_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// The heartbeat when the description names none: an idle chain commits a block every three
/// seconds (28,800 a day rather than the 864,000 of a block every 100 ms).
pub const HEARTBEAT_MS_DEFAULT: u64 = 3_000;
/// The range a genesis may set. Below 10 ms the chain is never quiet; above 10 minutes
/// nobody can tell an idle chain from a halted one.
pub const HEARTBEAT_MS_RANGE: std::ops::RangeInclusive<u64> = 10..=600_000;

/// What every node of the chain starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisFile {
    pub chain_id: String,
    /// The validator set in force from height 1, in index order.
    pub validators: Vec<Validator>,
    /// The ledger's initial state.
    pub ledger: Genesis,
    /// The longest an idle chain goes without a block, in milliseconds. A height with no
    /// transaction, evidence or validator update to commit starts its first round only
    /// when one arrives or this long after the last block: liveness stays visible, and
    /// the chain does not store empty blocks all day. A proposer with work proposes at
    /// once, so no transaction waits for the heartbeat.
    #[serde(default = "heartbeat_ms_default")]
    pub heartbeat_ms: u64,
}

fn heartbeat_ms_default() -> u64 {
    HEARTBEAT_MS_DEFAULT
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a valid genesis: {reason}")]
    Invalid { path: String, reason: String },
}

impl GenesisFile {
    /// Reads and checks a genesis file (JSON).
    pub fn load(path: &Path) -> Result<GenesisFile, GenesisError> {
        let text = read_bounded(path)?;
        let file: GenesisFile = serde_json::from_str(&text).map_err(|e| GenesisError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        file.check().map_err(|reason| GenesisError::Invalid {
            path: path.display().to_string(),
            reason,
        })?;
        Ok(file)
    }

    /// The JSON text of the file.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Names this genesis: stored in the data directory at first start, compared after.
    pub fn hash(&self) -> Hash {
        Hash::digest("tally-genesis", &tally_consensus::encode(self))
    }

    pub fn validator_set(&self) -> Result<ValidatorSet, tally_consensus::Error> {
        ValidatorSet::new(self.validators.clone())
    }

    /// The checks that need no ledger: the ledger's own are made when it is applied.
    pub fn check(&self) -> Result<(), String> {
        if self.chain_id != self.ledger.chain_id {
            return Err(format!(
                "chain id {:?} differs from the ledger's {:?}",
                self.chain_id, self.ledger.chain_id
            ));
        }
        self.validator_set().map_err(|e| e.to_string())?;
        if !HEARTBEAT_MS_RANGE.contains(&self.heartbeat_ms) {
            return Err(format!(
                "heartbeat_ms {} is outside {}..={}",
                self.heartbeat_ms,
                HEARTBEAT_MS_RANGE.start(),
                HEARTBEAT_MS_RANGE.end()
            ));
        }
        Ok(())
    }
}

fn read_bounded(path: &Path) -> Result<String, GenesisError> {
    let refused = |reason: String| GenesisError::Read {
        path: path.display().to_string(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| refused(e.to_string()))?
        .len();
    if len > GENESIS_FILE_BYTES_MAX {
        return Err(refused(format!(
            "{len} bytes, limit {GENESIS_FILE_BYTES_MAX}"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))
}

/// The description `tally genesis` reads (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisDescription {
    pub chain_id: String,
    /// Genesis time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// ISO 4217 codes, e.g. `["CNY", "HKD", "USD"]`.
    pub currencies: Vec<String>,
    pub validators: Vec<ValidatorEntry>,
    pub institutions: Vec<InstitutionEntry>,
    /// The payment platform's institution id.
    pub platform: u32,
    /// Hex public keys of the governance signers, and how many must co-sign.
    pub governance_keys: Vec<String>,
    pub governance_threshold: u8,
    #[serde(default)]
    pub issuance_limits: Vec<LimitEntry>,
    #[serde(default)]
    pub fx_credit_lines: Vec<LimitEntry>,
    /// Per KYC tier, from tier 0.
    pub tiers: Vec<TierEntry>,
    #[serde(default)]
    pub merchant_fee_bps_max: u16,
    #[serde(default)]
    pub corridors: Vec<CorridorEntry>,
    /// Hex hashes of sanctioned identities.
    #[serde(default)]
    pub sanctions: Vec<String>,
    /// See [`GenesisFile::heartbeat_ms`]; [`HEARTBEAT_MS_DEFAULT`] when absent.
    pub heartbeat_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorEntry {
    pub public_key: String,
    pub power: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionEntry {
    pub id: u32,
    pub public_key: String,
    /// Any of `bank`, `platform`, `fx_provider`, `acquirer`, `regulator`, `kyc`.
    pub roles: Vec<String>,
    /// What people call it ("Bank A"): pages and reports show it. Left out, the institution
    /// is called "Institution ID".
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitEntry {
    pub institution: u32,
    pub currency: String,
    pub limit: Amount,
}

/// A KYC tier's (account class's) limits, in minor units of the paying wallet's currency.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierEntry {
    pub single_max: Amount,
    /// A person's outflow per UTC day, across its wallets at one institution.
    pub daily_max: Amount,
    /// A person's outflow per UTC calendar year at one institution; no cap when left out.
    #[serde(default)]
    pub yearly_max: Option<Amount>,
    /// A person's cross-border transfers per UTC calendar year, everywhere; no cap when
    /// left out.
    #[serde(default)]
    pub cross_border_yearly_max: Option<Amount>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorridorEntry {
    pub from: String,
    pub to: String,
    pub single_max: Amount,
}

fn currency(code: &str) -> Result<Currency, String> {
    let bytes: [u8; 3] = code
        .as_bytes()
        .try_into()
        .map_err(|_| format!("currency {code:?} is not a 3-letter ISO code"))?;
    let c = Currency(bytes);
    if !c.is_well_formed() {
        return Err(format!("currency {code:?} is not 3 upper-case letters"));
    }
    Ok(c)
}

fn public_key(what: &str, hex: &str) -> Result<PublicKey, String> {
    let key = PublicKey::from_hex(hex).map_err(|e| format!("{what}: {e}"))?;
    if !key.is_valid() {
        return Err(format!("{what}: not a usable ed25519 key"));
    }
    Ok(key)
}

fn role(name: &str) -> Result<Roles, String> {
    Roles::NAMED
        .iter()
        .find(|(word, _)| *word == name)
        .map(|(_, role)| *role)
        .ok_or_else(|| format!("unknown role {name:?}"))
}

impl GenesisDescription {
    /// Reads a description (TOML).
    pub fn load(path: &Path) -> Result<GenesisDescription, GenesisError> {
        let text = read_bounded(path)?;
        toml::from_str(&text).map_err(|e| GenesisError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// The genesis file this description stands for, checked as far as it can be without a
    /// store (the ledger's rules are checked by applying it to an empty one).
    pub fn build(&self) -> Result<GenesisFile, String> {
        let limits = |entries: &[LimitEntry]| -> Result<Vec<_>, String> {
            entries
                .iter()
                .map(|l| {
                    Ok((
                        InstitutionId(l.institution),
                        currency(&l.currency)?,
                        l.limit,
                    ))
                })
                .collect()
        };
        let ledger = Genesis {
            chain_id: self.chain_id.clone(),
            time_ms: self.time_ms,
            currencies: self
                .currencies
                .iter()
                .map(|c| currency(c))
                .collect::<Result<_, _>>()?,
            institutions: self
                .institutions
                .iter()
                .map(|i| {
                    let roles = i.roles.iter().try_fold(Roles::default(), |acc, r| {
                        Ok::<_, String>(acc.with(role(r)?))
                    })?;
                    Ok(GenesisInstitution {
                        id: InstitutionId(i.id),
                        key: public_key(&format!("institution {}", i.id), &i.public_key)?,
                        roles,
                        name: match &i.name {
                            Some(name) if !institution_name_is_valid(name) => {
                                return Err(format!(
                                    "institution {}: the name {name:?} is not 1 to \
                                     {INSTITUTION_NAME_BYTES_MAX} bytes of printable text \
                                     without surrounding or doubled spaces",
                                    i.id
                                ));
                            }
                            Some(name) => name.clone(),
                            None => format!("Institution {}", i.id),
                        },
                    })
                })
                .collect::<Result<_, String>>()?,
            platform: InstitutionId(self.platform),
            governance_keys: self
                .governance_keys
                .iter()
                .map(|k| public_key("governance key", k))
                .collect::<Result<_, _>>()?,
            governance_threshold: self.governance_threshold,
            issuance_limits: limits(&self.issuance_limits)?,
            fx_credit_lines: limits(&self.fx_credit_lines)?,
            tiers: self
                .tiers
                .iter()
                .map(|t| TierLimits {
                    single_max: t.single_max,
                    daily_max: t.daily_max,
                    yearly_max: t.yearly_max.unwrap_or(NO_CAP),
                    cross_border_yearly_max: t.cross_border_yearly_max.unwrap_or(NO_CAP),
                })
                .collect(),
            merchant_fee_bps_max: self.merchant_fee_bps_max,
            corridors: self
                .corridors
                .iter()
                .map(|c| {
                    Ok(Corridor {
                        from: currency(&c.from)?,
                        to: currency(&c.to)?,
                        single_max: c.single_max,
                    })
                })
                .collect::<Result<_, String>>()?,
            sanctions: self
                .sanctions
                .iter()
                .map(|h| Hash::from_hex(h).map_err(|e| format!("sanction: {e}")))
                .collect::<Result<_, _>>()?,
        };
        let file = GenesisFile {
            chain_id: self.chain_id.clone(),
            validators: self
                .validators
                .iter()
                .map(|v| {
                    Ok(Validator {
                        public_key: public_key("validator", &v.public_key)?,
                        power: v.power,
                    })
                })
                .collect::<Result<_, String>>()?,
            ledger,
            heartbeat_ms: self.heartbeat_ms.unwrap_or(HEARTBEAT_MS_DEFAULT),
        };
        file.check()?;
        // The ledger's own checks, on a scratch store.
        file.ledger
            .apply(&tally_contracts::MemoryStore::new())
            .map_err(|e| e.to_string())?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_crypto::SigningKey;

    fn hex(seed: u8) -> String {
        SigningKey::from_seed([seed; 32]).public_key().to_hex()
    }

    fn description() -> String {
        format!(
            r#"
chain_id = "t"
time_ms = 1000
currencies = ["CNY", "USD"]
platform = 3
governance_keys = ["{g}"]
governance_threshold = 1
validators = [{{ public_key = "{v1}", power = 1 }}, {{ public_key = "{v2}", power = 2 }}]
institutions = [
  {{ id = 1, name = "Bank A", public_key = "{b}", roles = ["bank", "kyc"] }},
  {{ id = 3, public_key = "{p}", roles = ["platform"] }},
]
issuance_limits = [{{ institution = 1, currency = "CNY", limit = 1000 }}]
tiers = [
  {{ single_max = 10, daily_max = 20 }},
  {{ single_max = 10, daily_max = 20, yearly_max = 300, cross_border_yearly_max = 50 }},
]
"#,
            g = hex(9),
            v1 = hex(1),
            v2 = hex(2),
            b = hex(5),
            p = hex(6)
        )
    }

    #[test]
    fn a_description_builds_a_genesis_that_round_trips() -> Result<(), String> {
        let d: GenesisDescription = toml::from_str(&description()).map_err(|e| e.to_string())?;
        let file = d.build()?;
        assert_eq!(file.validators.len(), 2);
        assert_eq!(file.validators.get(1).map(|v| v.power), Some(2));
        // A tier written without yearly limits (as before they existed) has none.
        let tiers = &file.ledger.tiers;
        assert_eq!(
            tiers
                .first()
                .map(|t| (t.yearly_max, t.cross_border_yearly_max)),
            Some((NO_CAP, NO_CAP))
        );
        assert_eq!(
            tiers
                .get(1)
                .map(|t| (t.yearly_max, t.cross_border_yearly_max)),
            Some((300, 50))
        );
        let back: GenesisFile = serde_json::from_str(&file.to_json()).map_err(|e| e.to_string())?;
        assert_eq!(back, file);
        assert_eq!(back.hash(), file.hash());
        assert_eq!(file.heartbeat_ms, HEARTBEAT_MS_DEFAULT);
        // A name as written; an institution written without one is called by its id.
        let names: Vec<&str> = file
            .ledger
            .institutions
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(names, ["Bank A", "Institution 3"]);
        let text = description().replacen("platform = 3", "platform = 3\nheartbeat_ms = 500", 1);
        let d: GenesisDescription = toml::from_str(&text).map_err(|e| e.to_string())?;
        let quick = d.build()?;
        assert_eq!(quick.heartbeat_ms, 500);
        // The heartbeat is part of the chain's identity: nodes must agree on it.
        assert_ne!(quick.hash(), file.hash());
        Ok(())
    }

    #[test]
    fn mistakes_are_refused() -> Result<(), String> {
        for (from, to) in [
            ("\"CNY\", \"USD\"", "\"CNY\", \"usd\""),
            ("\"kyc\"", "\"king\""),
            ("power = 2", "power = 0"),
            ("platform = 3", "platform = 4"),
            ("yearly_max = 300", "yearly_max = 19"),
            ("platform = 3", "platform = 3\nheartbeat_ms = 0"),
            ("platform = 3", "platform = 3\nheartbeat_ms = 600001"),
            ("\"Bank A\"", "\" Bank A\""),
            ("\"Bank A\"", "\"Bank\\u202eA\""),
            ("\"Bank A\"", "\"\""),
        ] {
            let text = description().replacen(from, to, 1);
            assert_ne!(text, description());
            let d: GenesisDescription = toml::from_str(&text).map_err(|e| e.to_string())?;
            assert!(d.build().is_err(), "{to} was accepted");
        }
        Ok(())
    }
}
