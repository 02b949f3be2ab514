//! RFC 9421 HTTP Message Signatures, as Tally's API speaks them: a client proves which party
//! it is by signing each request with the ed25519 key the ledger holds for that party (an
//! institution's key, an account's device key), and the node checks the signature against
//! the key at its head.
//!
//! ```text
//! Signature-Input: tally=("@method" "@authority" "@path" "@query" "content-digest");\
//!                  created=1767225600;keyid="institution:1";alg="ed25519"
//! Signature: tally=:<64 bytes, base64>:
//! Content-Digest: sha-256=:<32 bytes, base64>:          (RFC 9530, when there is a body)
//! ```
//!
//! The signature base is built as RFC 9421 section 2.5 says: one line per covered component,
//! `"<name>": <value>`, then `"@signature-params": <the inner list as serialized>`; the
//! ed25519 signature covers its bytes as they are (section 3.3.6), with no Tally domain
//! framing, so any RFC 9421 library can speak to the node. It cannot be mistaken for a Tally
//! object's signature: those cover bytes starting `tally-sig-v1`, a base starts with `"`.
//!
//! Only what a Tally client needs is supported: the derived components `@method`,
//! `@authority`, `@path`, `@query`, `@target-uri` and `@scheme`, and header fields by name
//! without parameters. Anything else is refused with a reason, never skipped.

use http::{HeaderMap, Method, Uri};
use sfv::{BareItem, Dictionary, InnerList, Item, ListEntry, Parser};
use sha2::Digest;
use tally_crypto::{PublicKey, Signature};

pub const SIGNATURE_INPUT: &str = "signature-input";
pub const SIGNATURE: &str = "signature";
pub const CONTENT_DIGEST: &str = "content-digest";
/// The label Tally's client gives its signature.
pub const LABEL: &str = "tally";
/// The one algorithm accepted (RFC 9421 section 3.3.6).
pub const ALGORITHM: &str = "ed25519";
/// The most a signature header may hold; a real one is about 200 bytes.
pub const HEADER_BYTES_MAX: usize = 4_096;
/// The most components one signature may cover.
pub const COMPONENTS_MAX: usize = 16;

/// What the client signs: where the request goes, and its body's digest when it has one.
pub const COVERED: [&str; 4] = ["@method", "@authority", "@path", "@query"];
/// What a node signs on a webhook delivery (a node's webhooks): where it goes, and its body.
pub const WEBHOOK_COVERED: [&str; 5] =
    ["@method", "@authority", "@path", "@query", "content-digest"];

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("Signature-Input and Signature must come together")]
    Incomplete,
    #[error("{field}: {reason}")]
    Malformed { field: &'static str, reason: String },
    #[error("no signature labelled {0:?} in Signature")]
    NoSignatureForLabel(String),
    #[error("more than one signature and none labelled \"tally\"")]
    Ambiguous,
    #[error("component {0}: {1}")]
    Component(String, String),
    #[error("the signature must cover {0}")]
    NotCovered(&'static str),
    #[error("the signature parameter {0} is missing")]
    MissingParameter(&'static str),
    #[error("alg {0:?} is not supported; use \"ed25519\"")]
    Algorithm(String),
    #[error("the signature does not verify for keyid {0:?}")]
    BadSignature(String),
    #[error("Content-Digest does not match the body")]
    DigestMismatch,
    #[error("Content-Digest has no sha-256 or sha-512 digest")]
    NoKnownDigest,
}

fn malformed(field: &'static str, reason: impl std::fmt::Display) -> SignatureError {
    SignatureError::Malformed {
        field,
        reason: reason.to_string(),
    }
}

/// The parts of a request a signature can cover.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub method: &'a Method,
    /// `https` or `http`: how the request reached the node.
    pub scheme: &'a str,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

impl Message<'_> {
    /// The target host as the client named it (`Host` in HTTP/1.1), lower case.
    fn authority(&self) -> Result<String, SignatureError> {
        let authority = match self.uri.authority() {
            Some(a) => a.as_str().to_string(),
            None => self
                .headers
                .get(http::header::HOST)
                .ok_or_else(|| component("@authority", "the request has no Host"))?
                .to_str()
                .map_err(|_| component("@authority", "Host is not text"))?
                .to_string(),
        };
        Ok(authority.to_ascii_lowercase())
    }

    fn path(&self) -> &str {
        match self.uri.path() {
            "" => "/",
            path => path,
        }
    }

    fn query(&self) -> String {
        format!("?{}", self.uri.query().unwrap_or(""))
    }

    /// The value of one covered component (RFC 9421 sections 2.1 and 2.2).
    fn component(&self, item: &Item) -> Result<String, SignatureError> {
        let name = match &item.bare_item {
            BareItem::String(s) => s.as_str(),
            _ => return Err(malformed(SIGNATURE_INPUT, "a component name is a string")),
        };
        if !item.params.is_empty() {
            return Err(component(name, "component parameters are not supported"));
        }
        match name {
            "@method" => Ok(self.method.as_str().to_string()),
            "@authority" => self.authority(),
            "@path" => Ok(self.path().to_string()),
            "@query" => Ok(self.query()),
            "@scheme" => Ok(self.scheme.to_string()),
            "@target-uri" => {
                let query = self
                    .uri
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                Ok(format!(
                    "{}://{}{}{query}",
                    self.scheme,
                    self.authority()?,
                    self.path()
                ))
            }
            derived if derived.starts_with('@') => Err(component(derived, "not supported")),
            field => {
                if field.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(component(field, "field names are lower case"));
                }
                let mut values = Vec::new();
                for value in self.headers.get_all(field) {
                    let text = value
                        .to_str()
                        .map_err(|_| component(field, "the field is not text"))?;
                    values.push(text.trim().to_string());
                }
                if values.is_empty() {
                    return Err(component(field, "the request has no such field"));
                }
                Ok(values.join(", "))
            }
        }
    }
}

fn component(name: &str, reason: &str) -> SignatureError {
    SignatureError::Component(name.to_string(), reason.to_string())
}

/// A signature as presented: its label, what it covers, its parameters and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Presented {
    pub label: String,
    covered: InnerList,
    pub keyid: String,
    /// Seconds since the Unix epoch.
    pub created: i64,
    pub expires: Option<i64>,
    signature: Signature,
}

fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed(name, "give the field once"));
    }
    if value.len() > HEADER_BYTES_MAX {
        return Err(malformed(
            name,
            format!("longer than {HEADER_BYTES_MAX} bytes"),
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| malformed(name, "not text"))
}

fn dictionary(field: &'static str, text: &str) -> Result<Dictionary, SignatureError> {
    Parser::new(text)
        .parse_dictionary()
        .map_err(|e| malformed(field, e))
}

fn integer(list: &InnerList, name: &str) -> Result<Option<i64>, SignatureError> {
    match list.params.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_integer()
            .map(|i| Some(i64::from(i)))
            .ok_or_else(|| malformed(SIGNATURE_INPUT, format!("{name} is an integer"))),
    }
}

fn string<'a>(list: &'a InnerList, name: &str) -> Result<Option<&'a str>, SignatureError> {
    match list.params.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_string()
            .map(|s| Some(s.as_str()))
            .ok_or_else(|| malformed(SIGNATURE_INPUT, format!("{name} is a string"))),
    }
}

/// The request's signature, if it carries one: `Ok(None)` when it has neither header.
/// With several signatures, the one labelled `tally` is taken.
pub fn presented(headers: &HeaderMap) -> Result<Option<Presented>, SignatureError> {
    let input = header_text(headers, SIGNATURE_INPUT)?;
    let signature = header_text(headers, SIGNATURE)?;
    let (input, signature) = match (input, signature) {
        (None, None) => return Ok(None),
        (Some(i), Some(s)) => (i, s),
        _ => return Err(SignatureError::Incomplete),
    };
    let inputs = dictionary(SIGNATURE_INPUT, input)?;
    let signatures = dictionary(SIGNATURE, signature)?;
    let (label, entry) = match inputs.get(LABEL) {
        Some(entry) => (LABEL.to_string(), entry),
        None if inputs.len() == 1 => match inputs.first() {
            Some((label, entry)) => (label.as_str().to_string(), entry),
            None => return Err(malformed(SIGNATURE_INPUT, "empty")),
        },
        None if inputs.is_empty() => return Err(malformed(SIGNATURE_INPUT, "empty")),
        None => return Err(SignatureError::Ambiguous),
    };
    let ListEntry::InnerList(covered) = entry else {
        return Err(malformed(
            SIGNATURE_INPUT,
            "each signature is an inner list",
        ));
    };
    if covered.items.len() > COMPONENTS_MAX {
        return Err(malformed(
            SIGNATURE_INPUT,
            format!("at most {COMPONENTS_MAX} components"),
        ));
    }
    let bytes = match signatures.get(label.as_str()) {
        Some(ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(bytes),
            ..
        })) => bytes,
        Some(_) => return Err(malformed(SIGNATURE, "a signature is a byte sequence")),
        None => return Err(SignatureError::NoSignatureForLabel(label)),
    };
    let signature: [u8; 64] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| malformed(SIGNATURE, "an ed25519 signature is 64 bytes"))?;
    if let Some(alg) = string(covered, "alg")?
        && alg != ALGORITHM
    {
        return Err(SignatureError::Algorithm(alg.to_string()));
    }
    let keyid = string(covered, "keyid")?
        .ok_or(SignatureError::MissingParameter("keyid"))?
        .to_string();
    let created =
        integer(covered, "created")?.ok_or(SignatureError::MissingParameter("created"))?;
    Ok(Some(Presented {
        label,
        covered: covered.clone(),
        keyid,
        created,
        expires: integer(covered, "expires")?,
        signature: Signature(signature),
    }))
}

impl Presented {
    /// The covered component names, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.covered
            .items
            .iter()
            .filter_map(|i| match &i.bare_item {
                BareItem::String(s) => Some(s.as_str()),
                _ => None,
            })
    }

    pub fn covers(&self, name: &str) -> bool {
        self.components().any(|c| c == name)
    }

    /// Refuses a signature that does not bind the request's method and target (and its
    /// body, when `has_body`): covering less would let a captured signature be reused on
    /// another request within its lifetime.
    pub fn check_coverage(&self, has_body: bool) -> Result<(), SignatureError> {
        let mut seen = std::collections::BTreeSet::new();
        for name in self.components() {
            if !seen.insert(name) {
                return Err(malformed(
                    SIGNATURE_INPUT,
                    format!("{name} is covered twice"),
                ));
            }
        }
        if !self.covers("@method") {
            return Err(SignatureError::NotCovered("@method"));
        }
        if !self.covers("@target-uri") {
            for name in ["@authority", "@path", "@query"] {
                if !self.covers(name) {
                    return Err(SignatureError::NotCovered(name));
                }
            }
        }
        if has_body && !self.covers(CONTENT_DIGEST) {
            return Err(SignatureError::NotCovered("content-digest"));
        }
        Ok(())
    }

    /// Checks the signature over `message` with `key`.
    pub fn verify(&self, message: &Message<'_>, key: &PublicKey) -> Result<(), SignatureError> {
        let base = signature_base(message, &self.covered)?;
        tally_crypto::verify_message(key, base.as_bytes(), &self.signature)
            .map_err(|_| SignatureError::BadSignature(self.keyid.clone()))
    }
}

/// The `@signature-params` value: the inner list with its parameters, serialized.
fn serialize_params(covered: &InnerList) -> String {
    let mut list = sfv::ListSerializer::new();
    list.members([&ListEntry::InnerList(covered.clone())]);
    list.finish().unwrap_or_default()
}

/// The signature base of RFC 9421 section 2.5.
pub fn signature_base(
    message: &Message<'_>,
    covered: &InnerList,
) -> Result<String, SignatureError> {
    let mut base = String::new();
    for item in &covered.items {
        let value = message.component(item)?;
        if value.contains('\n') {
            return Err(component("?", "a value spans lines"));
        }
        let name = sfv::ItemSerializer::new()
            .bare_item(&item.bare_item)
            .parameters(&item.params)
            .finish();
        base.push_str(&name);
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&serialize_params(covered));
    Ok(base)
}

/// The covered components and parameters a Tally client signs with.
pub fn covered(
    components: &[&str],
    keyid: &str,
    created: i64,
) -> Result<InnerList, SignatureError> {
    let text = |s: &str| {
        sfv::StringRef::from_str(s)
            .map(|s| s.to_owned())
            .map_err(|e| malformed(SIGNATURE_INPUT, e))
    };
    let key = |k: &str| {
        sfv::KeyRef::from_str(k)
            .map(|k| k.to_owned())
            .map_err(|e| malformed(SIGNATURE_INPUT, e))
    };
    let mut list = InnerList::new(
        components
            .iter()
            .map(|c| Ok(Item::new(BareItem::String(text(c)?))))
            .collect::<Result<_, SignatureError>>()?,
    );
    list.params.insert(
        key("created")?,
        BareItem::Integer(
            created
                .try_into()
                .map_err(|e| malformed(SIGNATURE_INPUT, e))?,
        ),
    );
    list.params
        .insert(key("keyid")?, BareItem::String(text(keyid)?));
    list.params
        .insert(key("alg")?, BareItem::String(text(ALGORITHM)?));
    Ok(list)
}

/// The two header values that sign `message` as `keyid` with `key`: `Signature-Input`,
/// then `Signature`. The message must already carry every covered field (`content-digest`).
pub fn sign(
    message: &Message<'_>,
    covered: &InnerList,
    key: &tally_crypto::SigningKey,
) -> Result<(String, String), SignatureError> {
    use ed25519_dalek::Signer;
    let base = signature_base(message, covered)?;
    let mut seed = key.seed();
    let signer = ed25519_dalek::SigningKey::from_bytes(&seed);
    zeroize::Zeroize::zeroize(&mut seed);
    let signature = signer.sign(base.as_bytes()).to_bytes();
    let mut input = sfv::DictSerializer::new();
    input.members([(
        &sfv::KeyRef::constant(LABEL).to_owned(),
        &ListEntry::InnerList(covered.clone()),
    )]);
    let mut value = sfv::DictSerializer::new();
    let _ = value.bare_item(sfv::KeyRef::constant(LABEL), signature.as_slice());
    Ok((
        input.finish().unwrap_or_default(),
        value.finish().unwrap_or_default(),
    ))
}

/// `Content-Digest` of RFC 9530 for `body`: its sha-256.
pub fn content_digest(body: &[u8]) -> String {
    let digest = sha2::Sha256::digest(body);
    let mut value = sfv::DictSerializer::new();
    let _ = value.bare_item(sfv::KeyRef::constant("sha-256"), digest.as_slice());
    value.finish().unwrap_or_default()
}

/// Checks the request's `Content-Digest` against its body: every sha-256 and sha-512 digest
/// it lists must match, and it must list one of them.
pub fn check_digest(headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
    let text = header_text(headers, CONTENT_DIGEST)?
        .ok_or_else(|| malformed(CONTENT_DIGEST, "missing"))?;
    let digests = dictionary(CONTENT_DIGEST, text)?;
    let mut checked = false;
    for (algorithm, entry) in &digests {
        let ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(given),
            ..
        }) = entry
        else {
            return Err(malformed(CONTENT_DIGEST, "a digest is a byte sequence"));
        };
        let expected: Vec<u8> = match algorithm.as_str() {
            "sha-256" => sha2::Sha256::digest(body).to_vec(),
            "sha-512" => sha2::Sha512::digest(body).to_vec(),
            _ => continue,
        };
        if *given != expected {
            return Err(SignatureError::DigestMismatch);
        }
        checked = true;
    }
    if !checked {
        return Err(SignatureError::NoKnownDigest);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http::HeaderValue;
    use tally_crypto::SigningKey;

    /// RFC 9421 appendix B.1.4, `test-key-ed25519`: the seed inside its PKCS#8 private key
    /// and its public key.
    const RFC_SEED: &str = "9f8362f87a484a954e6e740c5b4c0e84229139a20aa8ab56ff66586f6a7d29c5";
    const RFC_PUBLIC: &str = "26b40b8f93fff3d897112f7ebc582b232dbd72517d082fe83cfb30ddce43d1bb";
    /// Appendix B.2.6's Signature-Input and Signature.
    const B26_INPUT: &str = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
    const B26_SIGNATURE: &str = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";
    const B26_BASE: &str = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
\"@method\": POST\n\
\"@path\": /foo\n\
\"@authority\": example.com\n\
\"content-type\": application/json\n\
\"content-length\": 18\n\
\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"";

    fn rfc_key() -> SigningKey {
        let seed: [u8; 32] = hex::decode(RFC_SEED).unwrap().try_into().unwrap();
        SigningKey::from_seed(seed)
    }

    /// The request of appendix B.2, with the B.2.6 signature headers.
    fn b26_request() -> (Method, Uri, HeaderMap) {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "example.com"),
            ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("content-type", "application/json"),
            (
                "content-digest",
                "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
            ),
            ("content-length", "18"),
            (SIGNATURE_INPUT, B26_INPUT),
            (SIGNATURE, B26_SIGNATURE),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        (
            Method::POST,
            Uri::from_static("/foo?param=Value&Pet=dog"),
            headers,
        )
    }

    #[test]
    fn the_rfc_test_key_is_the_one_its_public_key_names() {
        assert_eq!(rfc_key().public_key().to_hex(), RFC_PUBLIC);
    }

    #[test]
    fn the_rfc_ed25519_example_builds_the_same_base_and_verifies() {
        let (method, uri, headers) = b26_request();
        let message = Message {
            method: &method,
            scheme: "https",
            uri: &uri,
            headers: &headers,
        };
        let presented = presented(&headers).unwrap().unwrap();
        assert_eq!(presented.label, "sig-b26");
        assert_eq!(presented.keyid, "test-key-ed25519");
        assert_eq!(presented.created, 1_618_884_473);
        assert_eq!(
            signature_base(&message, &presented.covered).unwrap(),
            B26_BASE
        );
        let key = PublicKey::from_hex(RFC_PUBLIC).unwrap();
        presented.verify(&message, &key).unwrap();
        // The body the example's Content-Digest names.
        check_digest(&headers, br#"{"hello": "world"}"#).unwrap();
        assert_eq!(
            check_digest(&headers, br#"{"hello": "World"}"#),
            Err(SignatureError::DigestMismatch)
        );
    }

    #[test]
    fn signing_the_rfc_example_gives_the_rfc_signature() {
        // Ed25519 is deterministic: the same key and base give the RFC's exact bytes.
        let (method, uri, headers) = b26_request();
        let message = Message {
            method: &method,
            scheme: "https",
            uri: &uri,
            headers: &headers,
        };
        let presented = presented(&headers).unwrap().unwrap();
        let (_, signature) = sign(&message, &presented.covered, &rfc_key()).unwrap();
        let expected = B26_SIGNATURE.trim_start_matches("sig-b26=");
        assert_eq!(signature, format!("tally={expected}"));
    }

    fn signed_get(key: &SigningKey, keyid: &str, path: &'static str) -> (Uri, HeaderMap) {
        let uri = Uri::from_static(path);
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        let covered = covered(&COVERED, keyid, 1_767_225_600).unwrap();
        let (input, signature) = sign(
            &Message {
                method: &Method::GET,
                scheme: "https",
                uri: &uri,
                headers: &headers,
            },
            &covered,
            key,
        )
        .unwrap();
        headers.insert(SIGNATURE_INPUT, input.parse().unwrap());
        headers.insert(SIGNATURE, signature.parse().unwrap());
        (uri, headers)
    }

    #[test]
    fn a_tally_signature_verifies_and_binds_its_target() {
        let key = SigningKey::from_seed([3; 32]);
        let (uri, headers) = signed_get(&key, "account:7", "/v1/accounts/7");
        let text = headers.get(SIGNATURE_INPUT).unwrap().to_str().unwrap();
        assert_eq!(
            text,
            r#"tally=("@method" "@authority" "@path" "@query");created=1767225600;keyid="account:7";alg="ed25519""#
        );
        let presented = presented(&headers).unwrap().unwrap();
        presented.check_coverage(false).unwrap();
        assert_eq!(
            presented.check_coverage(true),
            Err(SignatureError::NotCovered("content-digest"))
        );
        let message = |method, uri| Message {
            method,
            scheme: "https",
            uri,
            headers: &headers,
        };
        presented
            .verify(&message(&Method::GET, &uri), &key.public_key())
            .unwrap();
        // Another key, path, query or method: refused.
        let other = SigningKey::from_seed([4; 32]).public_key();
        for (method, uri, key) in [
            (&Method::GET, &uri, &other),
            (
                &Method::GET,
                &Uri::from_static("/v1/accounts/8"),
                &key.public_key(),
            ),
            (
                &Method::GET,
                &Uri::from_static("/v1/accounts/7?x=1"),
                &key.public_key(),
            ),
            (&Method::POST, &uri, &key.public_key()),
        ] {
            assert_eq!(
                presented.verify(&message(method, uri), key),
                Err(SignatureError::BadSignature("account:7".into()))
            );
        }
    }

    #[test]
    fn bad_signature_headers_are_refused_with_a_reason() {
        let key = SigningKey::from_seed([3; 32]);
        let (_, good) = signed_get(&key, "account:7", "/v1/accounts/7");
        let input = good
            .get(SIGNATURE_INPUT)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let signature = good.get(SIGNATURE).unwrap().to_str().unwrap().to_string();
        let cases: Vec<(Option<String>, Option<String>)> = vec![
            (Some(input.clone()), None),
            (None, Some(signature.clone())),
            (Some("tally=(".into()), Some(signature.clone())),
            (
                Some(input.replace("tally=", "other=")),
                Some(signature.clone()),
            ),
            (
                Some(input.replace("ed25519", "rsa-pss-sha512")),
                Some(signature.clone()),
            ),
            (
                Some(input.replace(";keyid=\"account:7\"", "")),
                Some(signature.clone()),
            ),
            (
                Some(input.replace(";created=1767225600", "")),
                Some(signature.clone()),
            ),
            (
                Some(input.replace("created=1767225600", "created=\"now\"")),
                Some(signature.clone()),
            ),
            (Some(input.clone()), Some("tally=:AAAA:".into())),
            (Some(input.clone()), Some("tally=\"text\"".into())),
            (Some("tally=\"x\"".into()), Some(signature.clone())),
        ];
        for (i, s) in cases {
            let mut headers = HeaderMap::new();
            if let Some(i) = &i {
                headers.insert(SIGNATURE_INPUT, i.parse().unwrap());
            }
            if let Some(s) = &s {
                headers.insert(SIGNATURE, s.parse().unwrap());
            }
            assert!(presented(&headers).is_err(), "accepted {i:?} / {s:?}");
        }
        let mut none = HeaderMap::new();
        assert_eq!(presented(&none), Ok(None));
        none.insert("host", HeaderValue::from_static("x"));
        assert_eq!(presented(&none), Ok(None));
    }

    #[test]
    fn coverage_must_bind_method_target_and_body() {
        let key = SigningKey::from_seed([3; 32]);
        for (components, has_body, ok) in [
            (&["@method", "@target-uri"][..], false, true),
            (&["@method", "@authority", "@path"][..], false, false),
            (&["@authority", "@path", "@query"][..], false, false),
            (
                &["@method", "@target-uri", "content-digest"][..],
                true,
                true,
            ),
            (&["@method", "@target-uri", "@method"][..], false, false),
        ] {
            let list = covered(components, "institution:1", 1).unwrap();
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("h"));
            headers.insert("content-digest", content_digest(b"body").parse().unwrap());
            let uri = Uri::from_static("/v1/transactions?wait_ms=10");
            let (i, s) = sign(
                &Message {
                    method: &Method::POST,
                    scheme: "https",
                    uri: &uri,
                    headers: &headers,
                },
                &list,
                &key,
            )
            .unwrap();
            headers.insert(SIGNATURE_INPUT, i.parse().unwrap());
            headers.insert(SIGNATURE, s.parse().unwrap());
            let presented = presented(&headers).unwrap().unwrap();
            assert_eq!(
                presented.check_coverage(has_body).is_ok(),
                ok,
                "{components:?}"
            );
        }
    }

    #[test]
    fn content_digest_is_rfc_9530_sha_256() {
        // RFC 9530 appendix B.1 / section 2: {"hello": "world"}\n
        let digest = content_digest(b"{\"hello\": \"world\"}\n");
        assert_eq!(
            digest,
            "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
        );
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_DIGEST, digest.parse().unwrap());
        check_digest(&headers, b"{\"hello\": \"world\"}\n").unwrap();
        headers.insert(CONTENT_DIGEST, HeaderValue::from_static("md5=:AAAA:"));
        assert_eq!(
            check_digest(&headers, b""),
            Err(SignatureError::NoKnownDigest)
        );
    }
}
