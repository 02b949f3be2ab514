//! Batch verification that agrees with strict single verification.
//!
//! ed25519-dalek's own batch check differs from `verify_strict` on crafted inputs: its
//! equation skips the small-order and canonical-encoding checks, so a batch may accept a
//! signature that `verify_strict` rejects and the other way round. In consensus every node
//! must reach the same verdict on the same bytes, so this module builds its own batch:
//!
//! 1. Each item is checked for the cases where the batch equation and the strict check can
//!    part ways: S must be canonical; R must be a canonical encoding of a point not of small
//!    order; the key A must be canonical, not of small order and *torsion-free*. The key check
//!    costs a scalar multiplication, so parsed keys are kept in a [`KeyCache`]. An item that
//!    fails any of these goes to `verify_strict` on its own.
//! 2. The rest are checked at once with the cofactorless equation
//!    `sum z_i R_i + sum (z_i k_i) A_i - (sum z_i s_i) B == 0`, the same equation as the
//!    strict check. The weights z_i are derived by hashing the whole batch (no RNG: a batch
//!    has one verdict everywhere) and are all ≡ 1 mod 8, so a single item whose R carries a
//!    torsion component never passes by luck of an even weight.
//! 3. If the equation fails, every item is verified strictly to find the bad ones.
//!
//! What remains: with torsion-free keys, a strict-invalid item can pass only if its R has a
//! torsion component that cancels with another item's in the same batch. Making such an R
//! needs the signer's private key, so it forges nothing; and since the weights come from the
//! batch's bytes, the verdict on a given batch is the same on every node.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::Digest;
use std::collections::BTreeMap;

use crate::keys::{signing_message, verify_message};
use crate::{PublicKey, Signature};

/// A parsed public key: either safe to put in a batch, or to be verified strictly alone.
#[derive(Clone, Copy, Debug)]
enum ParsedKey {
    Batchable(EdwardsPoint),
    StrictOnly,
}

/// Parsed public keys, so a key's point is decompressed and checked once, not once per
/// signature. Bounded: when full it is cleared (keys are cheap to parse again; the bound is
/// what matters).
#[derive(Debug)]
pub struct KeyCache {
    keys: BTreeMap<[u8; 32], ParsedKey>,
    capacity: usize,
}

impl KeyCache {
    pub const DEFAULT_CAPACITY: usize = 100_000;

    pub fn new(capacity: usize) -> KeyCache {
        KeyCache {
            keys: BTreeMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn get(&mut self, key: &PublicKey) -> ParsedKey {
        if let Some(parsed) = self.keys.get(&key.0) {
            return *parsed;
        }
        if self.keys.len() >= self.capacity {
            self.keys.clear();
        }
        let parsed = parse_key(&key.0);
        self.keys.insert(key.0, parsed);
        parsed
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache::new(KeyCache::DEFAULT_CAPACITY)
    }
}

fn parse_key(bytes: &[u8; 32]) -> ParsedKey {
    let Some(point) = CompressedEdwardsY(*bytes).decompress() else {
        return ParsedKey::StrictOnly;
    };
    let canonical = point.compress().to_bytes() == *bytes;
    if canonical && !point.is_small_order() && point.is_torsion_free() {
        ParsedKey::Batchable(point)
    } else {
        ParsedKey::StrictOnly
    }
}

/// True if `bytes` is the canonical encoding of a y coordinate with its sign bit: y < p, and
/// no sign bit on the two points whose x is zero (y = 1 and y = p - 1).
fn is_canonical_point_encoding(bytes: &[u8; 32]) -> bool {
    let sign = bytes[31] >> 7;
    let mut y = *bytes;
    y[31] &= 0x7f;
    // p = 2^255 - 19: little-endian ed ff .. ff 7f. y >= p only if the top 31 bytes are
    // ff.. 7f and the low byte is at least ed.
    let top_all_ones = y[1..31].iter().all(|b| *b == 0xff) && y[31] == 0x7f;
    if top_all_ones && y[0] >= 0xed {
        return false;
    }
    let is_one = y[0] == 1 && y[1..].iter().all(|b| *b == 0);
    let is_minus_one = top_all_ones && y[0] == 0xec;
    !(sign == 1 && (is_one || is_minus_one))
}

struct Item {
    key: PublicKey,
    framed: Vec<u8>,
    signature: Signature,
}

struct Prepared {
    index: usize,
    r: EdwardsPoint,
    a: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Signatures to verify together. [`BatchVerifier::verify`] gives one verdict per item, equal
/// to what [`crate::verify`] gives for that item.
#[derive(Default)]
pub struct BatchVerifier {
    items: Vec<Item>,
}

impl std::fmt::Debug for BatchVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BatchVerifier({} items)", self.items.len())
    }
}

impl BatchVerifier {
    pub fn new() -> BatchVerifier {
        BatchVerifier::default()
    }

    pub fn with_capacity(n: usize) -> BatchVerifier {
        BatchVerifier {
            items: Vec::with_capacity(n),
        }
    }

    pub fn push(
        &mut self,
        key: PublicKey,
        domain: &str,
        chain_id: &str,
        message: &[u8],
        signature: Signature,
    ) {
        self.items.push(Item {
            key,
            framed: signing_message(domain, chain_id, message),
            signature,
        });
    }

    /// Adds a signature over raw bytes, with no domain or chain framing (see
    /// [`crate::verify_message`]).
    pub fn push_message(&mut self, key: PublicKey, message: &[u8], signature: Signature) {
        self.items.push(Item {
            key,
            framed: message.to_vec(),
            signature,
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True if every item verifies.
    pub fn verify_all(self, cache: &mut KeyCache) -> bool {
        self.verify(cache).iter().all(|ok| *ok)
    }

    /// One verdict per item, in the order they were pushed.
    pub fn verify(self, cache: &mut KeyCache) -> Vec<bool> {
        let mut verdicts = vec![false; self.items.len()];
        let mut batch: Vec<Prepared> = Vec::with_capacity(self.items.len());
        let mut transcript = blake3::Hasher::new();
        transcript.update(b"tally-batch-weights-v1");
        for (index, item) in self.items.iter().enumerate() {
            match prepare(index, item, cache) {
                Some(prepared) => {
                    transcript.update(&item.signature.0);
                    transcript.update(&item.key.0);
                    transcript.update(prepared.k.as_bytes());
                    batch.push(prepared);
                }
                None => {
                    if let Some(verdict) = verdicts.get_mut(index) {
                        *verdict = verify_message(&item.key, &item.framed, &item.signature).is_ok();
                    }
                }
            }
        }
        if batch.is_empty() {
            return verdicts;
        }
        let all_hold = batch_equation_holds(&batch, transcript);
        for prepared in &batch {
            if let (Some(verdict), Some(item)) = (
                verdicts.get_mut(prepared.index),
                self.items.get(prepared.index),
            ) {
                *verdict =
                    all_hold || verify_message(&item.key, &item.framed, &item.signature).is_ok();
            }
        }
        verdicts
    }
}

fn prepare(index: usize, item: &Item, cache: &mut KeyCache) -> Option<Prepared> {
    let (r_bytes, s_bytes) = item.signature.0.split_at(32);
    let r_bytes: [u8; 32] = r_bytes.try_into().ok()?;
    let s_bytes: [u8; 32] = s_bytes.try_into().ok()?;
    let s: Scalar = Scalar::from_canonical_bytes(s_bytes).into_option()?;
    let ParsedKey::Batchable(a) = cache.get(&item.key) else {
        return None;
    };
    if !is_canonical_point_encoding(&r_bytes) {
        return None;
    }
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    if r.is_small_order() {
        return None;
    }
    let mut h = sha2::Sha512::new();
    h.update(r_bytes);
    h.update(item.key.0);
    h.update(&item.framed);
    let digest: [u8; 64] = h.finalize().into();
    let k = Scalar::from_bytes_mod_order_wide(&digest);
    Some(Prepared { index, r, a, s, k })
}

fn batch_equation_holds(batch: &[Prepared], transcript: blake3::Hasher) -> bool {
    let mut weights = transcript.finalize_xof();
    let mut scalars = Vec::with_capacity(2 * batch.len() + 1);
    let mut points = Vec::with_capacity(2 * batch.len() + 1);
    let mut s_sum = Scalar::ZERO;
    let mut a_terms = Vec::with_capacity(batch.len());
    for prepared in batch {
        let mut z_bytes = [0u8; 16];
        weights.fill(&mut z_bytes);
        // z ≡ 1 mod 8: a torsion component of a single item's residual is never cancelled
        // by its own weight.
        let z = Scalar::from((u128::from_le_bytes(z_bytes) & !7) | 1);
        s_sum += z * prepared.s;
        scalars.push(z);
        points.push(prepared.r);
        a_terms.push((z * prepared.k, prepared.a));
    }
    for (scalar, point) in a_terms {
        scalars.push(scalar);
        points.push(point);
    }
    scalars.push(-s_sum);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    #[test]
    fn canonical_encoding_check() {
        let mut p_bytes = [0xffu8; 32];
        p_bytes[0] = 0xed;
        p_bytes[31] = 0x7f;
        assert!(!is_canonical_point_encoding(&p_bytes), "y = p");
        let mut below = p_bytes;
        below[0] = 0xeb;
        assert!(is_canonical_point_encoding(&below), "y = p - 2");
        let mut one_signed = [0u8; 32];
        one_signed[0] = 1;
        one_signed[31] = 0x80;
        assert!(
            !is_canonical_point_encoding(&one_signed),
            "x = 0 with sign bit"
        );
        let basepoint = ED25519_BASEPOINT_POINT.compress().to_bytes();
        assert!(is_canonical_point_encoding(&basepoint));
    }

    #[test]
    fn batch_finds_each_bad_signature() {
        let keys: Vec<SigningKey> = (1..=8u8).map(|i| SigningKey::from_seed([i; 32])).collect();
        let mut cache = KeyCache::default();
        let mut batch = BatchVerifier::new();
        for (i, k) in keys.iter().enumerate() {
            let msg = [i as u8; 10];
            let mut sig = k.sign("d", "c", &msg);
            if i == 3 || i == 6 {
                sig.0[40] ^= 1;
            }
            batch.push(k.public_key(), "d", "c", &msg, sig);
        }
        let verdicts = batch.verify(&mut cache);
        let expected: Vec<bool> = (0..8).map(|i| i != 3 && i != 6).collect();
        assert_eq!(verdicts, expected);
        assert_eq!(cache.len(), 8);
    }

    #[test]
    fn empty_batch_verifies() {
        assert!(BatchVerifier::new().verify_all(&mut KeyCache::default()));
    }
}
