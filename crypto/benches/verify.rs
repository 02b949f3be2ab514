//! Signature verification rates on this machine: strict single verification against the
//! batch path, for batches of several sizes, on one core.
//!
//! Run: `cargo bench -p tally-crypto --bench verify`

#![allow(clippy::indexing_slicing)] // bench data built here, not input from outside

use std::time::Instant;
use tally_crypto::{BatchVerifier, KeyCache, PublicKey, Signature, SigningKey, verify};

const SIGNATURES: usize = 8192;
const CHAIN: &str = "bench-chain";
const DOMAIN: &str = "bench-tx";

fn main() {
    let keys: Vec<SigningKey> = (0..256u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            SigningKey::from_seed(seed)
        })
        .collect();
    // A message the size of a simple signed transfer body.
    let signed: Vec<(PublicKey, Vec<u8>, Signature)> = (0..SIGNATURES)
        .map(|i| {
            let key = &keys[i % keys.len()];
            let message = [(i % 251) as u8; 120].to_vec();
            let signature = key.sign(DOMAIN, CHAIN, &message);
            (key.public_key(), message, signature)
        })
        .collect();

    let start = Instant::now();
    let mut ok = 0usize;
    for (key, message, signature) in &signed {
        ok += usize::from(verify(key, DOMAIN, CHAIN, message, signature).is_ok());
    }
    let single_per_s = SIGNATURES as f64 / start.elapsed().as_secs_f64();
    assert_eq!(ok, SIGNATURES);
    println!("single verify_strict: {single_per_s:>9.0} signatures/s");

    // Keys are parsed once per key and cached, as in the node.
    let mut cache = KeyCache::default();
    for batch_size in [16usize, 64, 256, 1024] {
        let start = Instant::now();
        for chunk in signed.chunks(batch_size) {
            let mut batch = BatchVerifier::with_capacity(chunk.len());
            for (key, message, signature) in chunk {
                batch.push(*key, DOMAIN, CHAIN, message, *signature);
            }
            assert!(batch.verify_all(&mut cache));
        }
        let per_s = SIGNATURES as f64 / start.elapsed().as_secs_f64();
        println!(
            "batch of {batch_size:>4}:       {per_s:>9.0} signatures/s ({:.2}x single)",
            per_s / single_per_s
        );
    }
}
