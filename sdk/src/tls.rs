//! What a client trusts to prove a node is the node: the CA certificates of one PEM file
//! (rustls with the ring provider; no OpenSSL), and nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a client's TLS configuration could not be made.
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
}

/// A client's TLS configuration trusting only the CA certificates in `ca_file`. It names no
/// ALPN protocol: the HTTP client sets its own.
pub fn client_config(ca_file: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let pem_error = |reason: String| TlsError::Pem {
        path: ca_file.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(ca_file).map_err(|source| TlsError::Read {
        path: ca_file.to_path_buf(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| pem_error(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| pem_error(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(pem_error("no CERTIFICATE block".to_string()));
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
