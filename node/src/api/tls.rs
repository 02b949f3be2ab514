//! TLS for the API (rustls with the ring provider; no OpenSSL): the node's server
//! configuration from a certificate chain and key in PEM files, and the certificates a
//! devnet uses (a CA and one server certificate per node for `127.0.0.1` and `localhost`),
//! made with rcgen. A real institution brings its own certificate and key instead. Clients
//! trust a CA file through the SDK (`tally_sdk::tls`).
//!
//! Certificates are ECDSA P-256: what browsers (the regulator's page) and every TLS stack
//! accept. Only TLS 1.3 and 1.2 with rustls' default cipher suites are offered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration or certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("TLS configuration refused: {0}")]
    Config(String),
    #[error("certificate: {0}")]
    Certificate(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file, in order (a chain: the node's first).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The server's TLS configuration: its certificate chain and private key (PEM files).
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let chain = certificates(cert_file)?;
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| pem_error(key_file, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(format!("{}: {e}", cert_file.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

fn certificate_error(e: rcgen::Error) -> TlsError {
    TlsError::Certificate(e.to_string())
}

/// Valid from the start of last year to the start of the year after next: dates from the
/// clock, so the certificates made today stay valid about two years.
fn validity(params: &mut rcgen::CertificateParams) {
    const SECONDS_PER_YEAR: i64 = 31_556_952;
    let now = crate::clock::now_s();
    let year = i32::try_from(1970 + now / SECONDS_PER_YEAR).unwrap_or(2026);
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
}

fn new_key() -> Result<rcgen::KeyPair, TlsError> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(certificate_error)
}

/// A new certificate authority named `name`.
pub fn new_ca(name: &str) -> Result<Issued, TlsError> {
    let key = new_key()?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(certificate_error)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    let cert = params.self_signed(&key).map_err(certificate_error)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A server certificate for `names` (IP addresses or DNS names), signed by the CA `ca`.
pub fn new_server_certificate(ca: &Issued, names: &[String]) -> Result<Issued, TlsError> {
    if names.is_empty() {
        return Err(TlsError::Certificate(
            "a server certificate needs at least one name".to_string(),
        ));
    }
    let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem).map_err(certificate_error)?;
    let issuer = rcgen::CertificateParams::from_ca_cert_pem(&ca.cert_pem)
        .map_err(certificate_error)?
        .self_signed(&ca_key)
        .map_err(certificate_error)?;
    let key = new_key()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(certificate_error)?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, first.as_str());
    }
    params.is_ca = rcgen::IsCa::NoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params);
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(certificate_error)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
