use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use crate::CryptoError;

/// An ed25519 public key as its 32 encoded bytes. Parsing the point costs a few
/// microseconds, so it is kept encoded and parsed on use (see [`crate::KeyCache`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// An ed25519 signature: the encoded point R then the scalar S.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 64]);

/// A private signing key. Zeroized on drop; never printed.
pub struct SigningKey(ed25519_dalek::SigningKey);

/// The exact bytes an ed25519 signature covers: a version tag, the domain (what kind of
/// object this is: a transaction, a prevote, ...), the chain id, then the message. Lengths
/// are prefixed so no two (domain, chain, message) triples frame to the same bytes.
pub fn signing_message(domain: &str, chain_id: &str, message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(16 + domain.len() + chain_id.len() + message.len());
    framed.extend_from_slice(b"tally-sig-v1");
    framed.extend_from_slice(&(domain.len() as u32).to_le_bytes());
    framed.extend_from_slice(domain.as_bytes());
    framed.extend_from_slice(&(chain_id.len() as u32).to_le_bytes());
    framed.extend_from_slice(chain_id.as_bytes());
    framed.extend_from_slice(message);
    framed
}

/// Strict single verification: ed25519-dalek `verify_strict` over the framed message.
/// Rejects non-canonical S, small-order A or R, and non-canonical R.
pub fn verify(
    key: &PublicKey,
    domain: &str,
    chain_id: &str,
    message: &[u8],
    signature: &Signature,
) -> Result<(), CryptoError> {
    verify_message(key, &signing_message(domain, chain_id, message), signature)
}

/// Strict verification of a signature over raw bytes, with no domain or chain framing.
/// For external test vectors and other protocols' messages; Tally's own objects use
/// [`verify`].
pub fn verify_message(
    key: &PublicKey,
    framed: &[u8],
    signature: &Signature,
) -> Result<(), CryptoError> {
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&key.0).map_err(|_| CryptoError::BadPublicKey)?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(framed, &signature)
        .map_err(|_| CryptoError::BadSignature)
}

impl SigningKey {
    /// A key from its 32-byte seed (the ed25519 secret key).
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A fresh key from a caller-supplied random number generator (an OS RNG in the node,
    /// a seeded one in tests and simulations).
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> SigningKey {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let key = SigningKey::from_seed(seed);
        zeroize::Zeroize::zeroize(&mut seed);
        key
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    pub fn sign(&self, domain: &str, chain_id: &str, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        let framed = signing_message(domain, chain_id, message);
        Signature(self.0.sign(&framed).to_bytes())
    }
}

impl Clone for SigningKey {
    fn clone(&self) -> SigningKey {
        SigningKey(self.0.clone())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

fn from_hex_array<const N: usize>(s: &str) -> Result<[u8; N], CryptoError> {
    let bytes = hex::decode(s).map_err(|e| CryptoError::BadHex(e.to_string()))?;
    let got = bytes.len();
    bytes
        .try_into()
        .map_err(|_| CryptoError::BadLength { expected: N, got })
}

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<PublicKey, CryptoError> {
        from_hex_array(s).map(PublicKey)
    }

    /// True if the bytes decode to a curve point that is not of small order: a key that
    /// could ever verify a strict signature. Registries refuse other keys up front.
    pub fn is_valid(&self) -> bool {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).is_ok_and(|k| !k.is_weak())
    }
}

impl Signature {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Signature, CryptoError> {
        from_hex_array(s).map(Signature)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..8])
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", &self.to_hex()[..8])
    }
}

// Human-readable formats (JSON) see hex strings; binary formats see the raw bytes.
// A 64-byte array has no serde impl of its own, so both go through `serialize_bytes`-free
// fixed-size tuples: postcard writes exactly 32 or 64 bytes with no length prefix.
macro_rules! fixed_bytes_serde {
    ($ty:ident, $n:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    use serde::ser::SerializeTuple;
                    let mut t = s.serialize_tuple($n)?;
                    for b in &self.0 {
                        t.serialize_element(b)?;
                    }
                    t.end()
                }
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    $ty::from_hex(&s).map_err(serde::de::Error::custom)
                } else {
                    struct Bytes;
                    impl<'de> serde::de::Visitor<'de> for Bytes {
                        type Value = [u8; $n];
                        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                            write!(f, "{} bytes", $n)
                        }
                        fn visit_seq<A: serde::de::SeqAccess<'de>>(
                            self,
                            mut seq: A,
                        ) -> Result<[u8; $n], A::Error> {
                            let mut out = [0u8; $n];
                            for (i, slot) in out.iter_mut().enumerate() {
                                *slot = seq
                                    .next_element()?
                                    .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                            }
                            Ok(out)
                        }
                    }
                    d.deserialize_tuple($n, Bytes).map($ty)
                }
            }
        }
    };
}

fixed_bytes_serde!(PublicKey, 32);
fixed_bytes_serde!(Signature, 64);

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_seed([i; 32])
    }

    #[test]
    fn sign_then_verify() {
        let k = key(1);
        let sig = k.sign("tx", "chain-a", b"hello");
        assert_eq!(
            verify(&k.public_key(), "tx", "chain-a", b"hello", &sig),
            Ok(())
        );
    }

    #[test]
    fn signature_binds_domain_chain_message_and_key() {
        let k = key(1);
        let sig = k.sign("tx", "chain-a", b"hello");
        let pk = k.public_key();
        let bad = Err(CryptoError::BadSignature);
        assert_eq!(verify(&pk, "vote", "chain-a", b"hello", &sig), bad);
        assert_eq!(verify(&pk, "tx", "chain-b", b"hello", &sig), bad);
        assert_eq!(verify(&pk, "tx", "chain-a", b"hellO", &sig), bad);
        assert_eq!(
            verify(&key(2).public_key(), "tx", "chain-a", b"hello", &sig),
            bad
        );
        // Framing: moving bytes between the domain and the chain id changes the message.
        assert_ne!(
            signing_message("ab", "c", b""),
            signing_message("a", "bc", b"")
        );
    }

    #[test]
    fn weak_keys_are_invalid() {
        assert!(key(1).public_key().is_valid());
        assert!(!PublicKey([0u8; 32]).is_valid(), "identity-ish encoding");
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(
            !PublicKey(one).is_valid(),
            "the identity point is of small order"
        );
    }

    #[test]
    fn json_is_hex_and_binary_is_raw() {
        let k = key(7);
        let pk = k.public_key();
        let sig = k.sign("d", "c", b"m");
        let json = serde_json::to_string(&(pk, sig)).unwrap_or_default();
        assert!(json.contains(&pk.to_hex()));
        let back: (PublicKey, Signature) =
            serde_json::from_str(&json).unwrap_or((PublicKey([0; 32]), Signature([0; 64])));
        assert_eq!(back, (pk, sig));
    }
}
