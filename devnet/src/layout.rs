//! A devnet's directory: the institutions' keys, the genesis, and one directory per node
//! with its key, configuration and data. Made once; a second `up` on the same directory
//! reads it back and resumes that network, never regenerating anything.
//!
//! ```text
//! DIR/devnet.json              what was made: chain id, institutions, nodes and their ports
//! DIR/genesis.toml             the description `tally genesis` read
//! DIR/genesis.json             the genesis every node starts from
//! DIR/institutions/NAME.key    each institution's signing key: its API credential too
//! DIR/institutions/identity.secret  the identity secret the KYC banks and the regulator
//!                              digest identities with (their clients' --identity-secret);
//!                              no node is given it
//! DIR/tls/ca.pem, ca.key       the devnet's certificate authority for the API's TLS
//! DIR/nodes/NAME/tally.toml    a node's configuration (node.key, data/ and node.log beside it,
//!                              api-cert.pem and api-key.pem: its API certificate)
//! ```
//!
//! Every node serves its API over TLS with a certificate from the devnet CA, for
//! `127.0.0.1` and `localhost`; clients trust `DIR/tls/ca.pem` (`--ca-cert`). A real
//! deployment never shares a CA key like this: each institution brings its own certificate.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use tally_contracts::InstitutionId;
use tally_crypto::{IdentitySecret, KeyFile, PublicKey, SigningKey};

use tally_sdk::travel_rule::SecretKey;
use tally_sdk::{Api, ClientTls, Credential, new_key};

/// The chain id every devnet uses.
pub const CHAIN_ID: &str = "tally-devnet";
/// Each node's store, under its directory (its `tally.toml`'s `data_dir`).
const DATA_DIR: &str = "data";

/// An institution of the devnet's genesis.
#[derive(Debug, Clone, Copy)]
pub struct InstitutionSpec {
    pub id: u32,
    /// The file and directory name (`institutions/NAME.key`).
    pub name: &'static str,
    /// What people call it, on chain from the genesis.
    pub display_name: &'static str,
    pub roles: &'static [&'static str],
}

pub const BANK_A: InstitutionSpec = InstitutionSpec {
    id: 1,
    name: "bank-a",
    display_name: "Bank A",
    roles: &["bank", "kyc", "acquirer"],
};
pub const BANK_B: InstitutionSpec = InstitutionSpec {
    id: 2,
    name: "bank-b",
    display_name: "Bank B",
    roles: &["bank", "kyc", "acquirer"],
};
pub const PLATFORM: InstitutionSpec = InstitutionSpec {
    id: 3,
    name: "platform",
    display_name: "Platform",
    roles: &["platform", "kyc"],
};
/// The Hong Kong side of the CNY→HKD corridor.
pub const HK_BANK: InstitutionSpec = InstitutionSpec {
    id: 4,
    name: "hk-bank",
    display_name: "HK Bank",
    roles: &["bank", "kyc", "acquirer"],
};
pub const REGULATOR: InstitutionSpec = InstitutionSpec {
    id: 5,
    name: "regulator",
    display_name: "Regulator",
    roles: &["regulator"],
};
pub const FX_PROVIDER: InstitutionSpec = InstitutionSpec {
    id: 6,
    name: "fx-provider",
    display_name: "FX Provider",
    roles: &["fx_provider"],
};

pub const INSTITUTIONS: [InstitutionSpec; 6] =
    [BANK_A, BANK_B, PLATFORM, HK_BANK, REGULATOR, FX_PROVIDER];
/// The institutions whose keys govern the chain (the four that run the first validators).
const GOVERNORS: [InstitutionSpec; 4] = [BANK_A, BANK_B, PLATFORM, HK_BANK];
const CURRENCIES: [&str; 3] = ["CNY", "HKD", "USD"];
/// How much wallet money each bank may issue, per currency (minor units).
const ISSUANCE_LIMIT: u64 = 1_000_000_000_000;
/// How far the FX provider's liquidity may go below zero, per currency.
const FX_CREDIT_LINE: u64 = 1_000_000_000_000;

pub const VALIDATORS_MAX: usize = 16;
pub const OBSERVERS_MAX: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeMode {
    Validator,
    Audit,
}

/// One node of the devnet, as recorded in `devnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeSpec {
    pub name: String,
    pub mode: NodeMode,
    pub public_key: PublicKey,
    pub p2p_address: SocketAddr,
    pub api_address: SocketAddr,
}

/// What `devnet.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub chain_id: String,
    pub nodes: Vec<NodeSpec>,
    /// The CA certificate clients trust (`--ca-cert`), relative to the devnet directory.
    #[serde(default)]
    pub ca_cert: PathBuf,
    /// Each institution's credential for the API: who it is and its key file (relative).
    #[serde(default)]
    pub credentials: Vec<CredentialSpec>,
    /// Where the devnet's nodes may deliver webhooks (`[webhooks] allow`): one loopback
    /// port, reserved with the nodes' (the bench's black-hole endpoint, a merchant's shop).
    #[serde(default)]
    pub webhook_sink: Option<SocketAddr>,
}

/// An institution's API credential as `devnet.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialSpec {
    pub name: String,
    /// `institution:ID`, what `--as` takes.
    pub party: String,
    pub key_file: PathBuf,
}

/// The names a devnet node's API certificate carries.
const API_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// A devnet directory, made or read back.
#[derive(Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Layout {
    /// Reads the devnet in `dir` if there is one, else makes a new one there.
    /// `heartbeat_ms`: the genesis's heartbeat (`tally genesis`'s default if `None`); a
    /// resumed devnet keeps the one it was made with.
    pub fn create_or_resume(
        dir: &Path,
        validators: usize,
        observers: usize,
        heartbeat_ms: Option<u64>,
        tally_bin: &Path,
    ) -> Result<(Layout, bool)> {
        if dir.join("devnet.json").exists() {
            return Ok((Layout::read(dir)?, true));
        }
        ensure!(
            (1..=VALIDATORS_MAX).contains(&validators),
            "--validators must be 1..={VALIDATORS_MAX}"
        );
        ensure!(
            observers <= OBSERVERS_MAX,
            "--observers must be 0..={OBSERVERS_MAX}"
        );
        Ok((
            Layout::create(dir, validators, observers, heartbeat_ms, tally_bin)?,
            false,
        ))
    }

    pub fn read(dir: &Path) -> Result<Layout> {
        let path = dir.join("devnet.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a devnet manifest", path.display()))?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    fn create(
        dir: &Path,
        validators: usize,
        observers: usize,
        heartbeat_ms: Option<u64>,
        tally_bin: &Path,
    ) -> Result<Layout> {
        std::fs::create_dir_all(dir.join("institutions"))
            .with_context(|| format!("creating {}", dir.display()))?;
        for institution in INSTITUTIONS {
            KeyFile::write_new(&new_key()?, &institution_key_path(dir, institution))?;
            // The X25519 key it receives travel-rule data under (mode 0600, like its key).
            SecretKey::generate()?.write_new(&encryption_key_path(dir, institution))?;
        }
        let secret = identity_secret_path(dir);
        let out = Command::new(tally_bin)
            .args(["keys", "identity-secret", "--out"])
            .arg(&secret)
            .output()
            .with_context(|| format!("running {}", tally_bin.display()))?;
        ensure!(
            out.status.success(),
            "tally keys identity-secret failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let names: Vec<(String, NodeMode)> = (0..validators)
            .map(|i| (format!("validator-{i}"), NodeMode::Validator))
            .chain((0..observers).map(|i| (format!("audit-{i}"), NodeMode::Audit)))
            .collect();
        let mut addresses = crate::ports::reserve_loopback_addresses(names.len() * 2 + 1)?;
        let webhook_sink = addresses.pop();
        let mut nodes = Vec::new();
        for ((name, mode), pair) in names.into_iter().zip(addresses.chunks(2)) {
            let [p2p_address, api_address] = pair else {
                bail!("not enough free ports");
            };
            let node_dir = dir.join("nodes").join(&name);
            std::fs::create_dir_all(&node_dir)?;
            let key = new_key()?;
            KeyFile::write_new(&key, &node_dir.join("node.key"))?;
            nodes.push(NodeSpec {
                name,
                mode,
                public_key: key.public_key(),
                p2p_address: *p2p_address,
                api_address: *api_address,
            });
        }
        let ca = make_ca(dir)?;
        for node in &nodes {
            let cert =
                tally_node::api::tls::new_server_certificate(&ca, &API_NAMES.map(str::to_string))?;
            let node_dir = dir.join("nodes").join(&node.name);
            write_private(&node_dir.join("api-key.pem"), &cert.key_pem)?;
            std::fs::write(node_dir.join("api-cert.pem"), &cert.cert_pem)?;
        }
        let manifest = Manifest {
            chain_id: CHAIN_ID.to_string(),
            nodes,
            ca_cert: PathBuf::from("tls").join("ca.pem"),
            credentials: INSTITUTIONS
                .iter()
                .map(|i| CredentialSpec {
                    name: i.name.to_string(),
                    party: format!("institution:{}", i.id),
                    key_file: PathBuf::from("institutions").join(format!("{}.key", i.name)),
                })
                .collect(),
            webhook_sink,
        };
        let layout = Layout {
            dir: dir.to_path_buf(),
            manifest,
        };
        layout.write_genesis(heartbeat_ms, tally_bin)?;
        for node in &layout.manifest.nodes {
            std::fs::write(layout.config_path(node), layout.config_text(node))?;
        }
        // Written last: its presence means the directory is complete.
        std::fs::write(
            dir.join("devnet.json"),
            serde_json::to_string_pretty(&layout.manifest)?,
        )?;
        Ok(layout)
    }

    pub fn node_dir(&self, node: &NodeSpec) -> PathBuf {
        self.dir.join("nodes").join(&node.name)
    }

    /// Where the node keeps its store (its configuration's `data_dir`).
    pub fn data_dir(&self, node: &NodeSpec) -> PathBuf {
        self.node_dir(node).join(DATA_DIR)
    }

    pub fn config_path(&self, node: &NodeSpec) -> PathBuf {
        self.node_dir(node).join("tally.toml")
    }

    /// Appends TOML to a node's `tally.toml`, e.g. a `[limits]` or `[test_faults]` section
    /// for a test. Read by the node at its next start; every section may appear once.
    pub fn append_config(&self, node: &NodeSpec, text: &str) -> Result<()> {
        use std::io::Write;
        let path = self.config_path(node);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "\n{}", text.trim_end())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The CA certificate the devnet's nodes' API certificates chain to.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.ca_cert)
    }

    /// The client TLS trust of this devnet: its CA alone.
    pub fn client_tls(&self) -> Result<ClientTls> {
        Ok(ClientTls::from_ca_file(&self.ca_cert_path())?)
    }

    /// The API of the devnet node at `address` over TLS, without credentials.
    pub fn api_at(&self, address: SocketAddr) -> Result<Api> {
        Ok(Api::https(address, &self.client_tls()?))
    }

    /// `node`'s API over TLS, without credentials.
    pub fn api(&self, node: &NodeSpec) -> Result<Api> {
        self.api_at(node.api_address)
    }

    /// The API at `address`, signed as `institution`.
    pub fn api_as(&self, address: SocketAddr, institution: InstitutionSpec) -> Result<Api> {
        Ok(self.api_at(address)?.signed_as(Credential::of_party(
            tally_contracts::Party::Institution(institution_id(institution)),
            self.institution_key(institution)?,
        )))
    }

    /// The API at `address`, signed as the regulator, who may read everything: what test
    /// harnesses, the story's checks and the load generator's block reader use.
    pub fn regulator_api_at(&self, address: SocketAddr) -> Result<Api> {
        self.api_as(address, REGULATOR)
    }

    /// `node`'s API, signed as the regulator.
    pub fn regulator_api(&self, node: &NodeSpec) -> Result<Api> {
        self.regulator_api_at(node.api_address)
    }

    /// The network's identity secret: for the banks' and the regulator's clients only.
    pub fn identity_secret_path(&self) -> PathBuf {
        identity_secret_path(&self.dir)
    }

    pub fn identity_secret(&self) -> Result<IdentitySecret> {
        let path = self.identity_secret_path();
        IdentitySecret::read(&path).with_context(|| {
            format!(
                "reading the identity secret {} (a devnet made before identity secrets: \
                 make one with `tally keys identity-secret --out {}`)",
                path.display(),
                path.display()
            )
        })
    }

    pub fn institution_key(&self, institution: InstitutionSpec) -> Result<SigningKey> {
        Ok(KeyFile::read(&institution_key_path(
            &self.dir,
            institution,
        ))?)
    }

    /// The institution's X25519 travel-rule key (`institutions/NAME.x25519`).
    pub fn encryption_key(&self, institution: InstitutionSpec) -> Result<SecretKey> {
        Ok(SecretKey::read(&encryption_key_path(
            &self.dir,
            institution,
        ))?)
    }

    pub fn encryption_key_path(&self, institution: InstitutionSpec) -> PathBuf {
        encryption_key_path(&self.dir, institution)
    }

    pub fn validators(&self) -> impl Iterator<Item = &NodeSpec> {
        self.manifest
            .nodes
            .iter()
            .filter(|n| n.mode == NodeMode::Validator)
    }

    pub fn auditors(&self) -> impl Iterator<Item = &NodeSpec> {
        self.manifest
            .nodes
            .iter()
            .filter(|n| n.mode == NodeMode::Audit)
    }

    /// Builds the genesis with `tally genesis`, from a description written here.
    fn write_genesis(&self, heartbeat_ms: Option<u64>, tally_bin: &Path) -> Result<()> {
        let mut keys = Vec::new();
        for institution in INSTITUTIONS {
            keys.push((institution, self.institution_key(institution)?.public_key()));
        }
        let key_of = |spec: InstitutionSpec| {
            keys.iter()
                .find(|(i, _)| i.id == spec.id)
                .map(|(_, k)| k.to_hex())
                .unwrap_or_default()
        };
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        let mut text = format!(
            "chain_id = \"{CHAIN_ID}\"\ntime_ms = {time_ms}\ncurrencies = {CURRENCIES:?}\n\
             platform = {}\ngovernance_threshold = 3\nmerchant_fee_bps_max = 100\n",
            PLATFORM.id
        );
        if let Some(ms) = heartbeat_ms {
            text.push_str(&format!("heartbeat_ms = {ms}\n"));
        }
        let governors: Vec<String> = GOVERNORS.iter().map(|g| key_of(*g)).collect();
        text.push_str(&format!("governance_keys = {governors:?}\n"));
        text.push_str("validators = [\n");
        for node in self.validators() {
            text.push_str(&format!(
                "  {{ public_key = \"{}\", power = 1 }},\n",
                node.public_key
            ));
        }
        text.push_str("]\ninstitutions = [\n");
        for institution in INSTITUTIONS {
            text.push_str(&format!(
                "  {{ id = {}, name = {:?}, public_key = \"{}\", roles = {:?} }},\n",
                institution.id,
                institution.display_name,
                key_of(institution),
                institution.roles
            ));
        }
        text.push_str("]\nissuance_limits = [\n");
        for bank in [BANK_A, BANK_B, HK_BANK] {
            for currency in CURRENCIES {
                text.push_str(&format!(
                    "  {{ institution = {}, currency = \"{currency}\", limit = {ISSUANCE_LIMIT} }},\n",
                    bank.id
                ));
            }
        }
        text.push_str("]\nfx_credit_lines = [\n");
        for currency in CURRENCIES {
            text.push_str(&format!(
                "  {{ institution = {}, currency = \"{currency}\", limit = {FX_CREDIT_LINE} }},\n",
                FX_PROVIDER.id
            ));
        }
        // Tier 0: a basic, low-verification wallet (¥1,000 a payment, ¥5,000 a day, a person
        // ¥20,000 a year, ¥5,000 a year abroad); tier 1: a verified one (¥5,000 a payment,
        // ¥20,000 a day, ¥500,000 a year, ¥50,000 a year abroad).
        text.push_str(
            "]\ntiers = [\n  { single_max = 100000, daily_max = 500000, yearly_max = 2000000, \
             cross_border_yearly_max = 500000 },\n  \
             { single_max = 500000, daily_max = 2000000, yearly_max = 50000000, \
             cross_border_yearly_max = 5000000 },\n]\ncorridors = [\n",
        );
        for (from, to) in [
            ("CNY", "HKD"),
            ("HKD", "CNY"),
            ("CNY", "USD"),
            ("USD", "CNY"),
        ] {
            text.push_str(&format!(
                "  {{ from = \"{from}\", to = \"{to}\", single_max = 10000000 }},\n"
            ));
        }
        text.push_str("]\n");
        let description = self.dir.join("genesis.toml");
        std::fs::write(&description, text)?;
        let out = Command::new(tally_bin)
            .arg("genesis")
            .arg("--in")
            .arg(&description)
            .arg("--out")
            .arg(self.dir.join("genesis.json"))
            .output()
            .with_context(|| format!("running {}", tally_bin.display()))?;
        ensure!(
            out.status.success(),
            "tally genesis failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// A node's `tally.toml`. Paths are relative to the node's directory.
    fn config_text(&self, node: &NodeSpec) -> String {
        let mode = match node.mode {
            NodeMode::Validator => "validator",
            NodeMode::Audit => "audit",
        };
        // Validators admit the audit nodes as observers; every node dials the validators.
        let observers: Vec<String> = self.auditors().map(|a| a.public_key.to_hex()).collect();
        let mut text = format!(
            "mode = \"{mode}\"\nlisten_address = \"{}\"\napi_address = \"{}\"\n\
             data_dir = \"{DATA_DIR}\"\nkey_file = \"node.key\"\ngenesis_file = \"../../genesis.json\"\n",
            node.p2p_address, node.api_address
        );
        if node.mode == NodeMode::Validator {
            text.push_str(&format!("observers = {observers:?}\n"));
        }
        // A local devnet lets anyone scrape its metrics; a bank's node would not.
        text.push_str(
            "\n[api]\ntls_cert_file = \"api-cert.pem\"\ntls_key_file = \"api-key.pem\"\n\
             metrics_public = true\n",
        );
        if let Some(sink) = self.manifest.webhook_sink {
            // Webhooks go to the devnet's one sink, and nowhere else.
            text.push_str(&format!(
                "\n[webhooks]\nallow = [\"http://{sink}\"]\nper_party_max = 256\n"
            ));
        }
        for peer in self.validators().filter(|v| v.name != node.name) {
            text.push_str(&format!(
                "\n[[peers]]\naddress = \"{}\"\npublic_key = \"{}\"\n",
                peer.p2p_address, peer.public_key
            ));
        }
        text
    }
}

/// The devnet CA: its certificate and key in `DIR/tls/`.
fn identity_secret_path(dir: &Path) -> PathBuf {
    dir.join("institutions").join("identity.secret")
}

fn make_ca(dir: &Path) -> Result<tally_node::api::tls::Issued> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).with_context(|| format!("creating {}", tls.display()))?;
    let ca = tally_node::api::tls::new_ca("Tally devnet CA")?;
    write_private(&tls.join("ca.key"), &ca.key_pem)?;
    std::fs::write(tls.join("ca.pem"), &ca.cert_pem)?;
    Ok(ca)
}

/// A new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn institution_key_path(dir: &Path, institution: InstitutionSpec) -> PathBuf {
    dir.join("institutions")
        .join(format!("{}.key", institution.name))
}

/// True if nothing listens on `address` now (a resumed network needs its ports back).
pub fn port_is_free(address: SocketAddr) -> bool {
    TcpListener::bind(address).is_ok()
}

pub fn institution_id(spec: InstitutionSpec) -> InstitutionId {
    InstitutionId(spec.id)
}

fn encryption_key_path(dir: &Path, institution: InstitutionSpec) -> PathBuf {
    dir.join("institutions")
        .join(format!("{}.x25519", institution.name))
}
