//! The public ed25519 vectors in `../shared/testdata/ed25519/` (Wycheproof, speccheck, CCTV):
//! single and batch verification must each give the strict verifier's verdict on every one.
//! Where the folder is missing (a user's own clone) the test says so and passes; under
//! `CI=true` a missing folder fails it.

#![allow(clippy::indexing_slicing)] // test code: a panic is a test failure

use serde_json::Value;
use std::path::{Path, PathBuf};
use tally_crypto::{BatchVerifier, KeyCache, PublicKey, Signature, verify_message};

struct Vector {
    name: String,
    key: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
    expect_valid: bool,
}

fn testdata_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("TALLY_SHARED_DIR") {
        Some(shared) => PathBuf::from(shared).join("testdata/ed25519"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/ed25519"),
    };
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the shared test vectors are missing at {}",
        dir.display()
    );
    eprintln!("skipping: no shared test vectors at {}", dir.display());
    None
}

fn load(dir: &Path, file: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"))
}

fn hex_field(v: &Value, field: &str) -> Vec<u8> {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing {field}"));
    hex::decode(s).unwrap_or_else(|e| panic!("{field} is not hex: {e}"))
}

fn wycheproof(dir: &Path) -> Vec<Vector> {
    let root = load(dir, "ed25519_test.json");
    let mut out = Vec::new();
    for group in root["testGroups"].as_array().into_iter().flatten() {
        let key = hex_field(&group["publicKey"], "pk");
        for test in group["tests"].as_array().into_iter().flatten() {
            let result = test["result"].as_str().unwrap_or("");
            assert!(
                result == "valid" || result == "invalid",
                "unexpected {result}"
            );
            out.push(Vector {
                name: format!("wycheproof tcId {}", test["tcId"]),
                key: key.clone(),
                msg: hex_field(test, "msg"),
                sig: hex_field(test, "sig"),
                expect_valid: result == "valid",
            });
        }
    }
    assert_eq!(out.len(), 151);
    out
}

fn speccheck(dir: &Path) -> Vec<Vector> {
    let root = load(dir, "cases.json");
    let cases = root.as_array().cloned().unwrap_or_default();
    assert_eq!(cases.len(), 12);
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| Vector {
            name: format!("speccheck case {i}"),
            key: hex_field(case, "pub_key"),
            msg: hex_field(case, "message"),
            sig: hex_field(case, "signature"),
            // "Dalek strict" row of the speccheck README: only case 3 is accepted.
            expect_valid: i == 3,
        })
        .collect()
}

fn cctv(dir: &Path) -> Vec<Vector> {
    let root = load(dir, "ed25519vectors.json");
    let out: Vec<Vector> = root
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let flags: Vec<&str> = v["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .collect();
            Vector {
                name: format!("cctv number {}", v["number"]),
                key: hex_field(v, "key"),
                msg: v["msg"].as_str().unwrap_or("").as_bytes().to_vec(),
                sig: hex_field(v, "sig"),
                expect_valid: flags
                    .iter()
                    .all(|f| *f == "low_order_component_A" || *f == "low_order_component_R"),
            }
        })
        .collect();
    assert_eq!(out.len(), 914);
    assert_eq!(out.iter().filter(|v| v.expect_valid).count(), 43);
    out
}

fn parse(v: &Vector) -> Option<(PublicKey, Signature)> {
    let key: [u8; 32] = v.key.clone().try_into().ok()?;
    let sig: [u8; 64] = v.sig.clone().try_into().ok()?;
    Some((PublicKey(key), Signature(sig)))
}

fn check_all(vectors: &[Vector]) {
    let mut failures = Vec::new();
    // Single verification.
    for v in vectors {
        let got = parse(v).is_some_and(|(k, s)| verify_message(&k, &v.msg, &s).is_ok());
        if got != v.expect_valid {
            failures.push(format!("single: {} got {got}", v.name));
        }
    }
    // Each vector as a batch of one, with a fresh key cache and a shared one.
    let mut shared_cache = KeyCache::default();
    for v in vectors {
        let Some((k, s)) = parse(v) else { continue };
        for cache in [&mut KeyCache::default(), &mut shared_cache] {
            let mut batch = BatchVerifier::new();
            batch.push_message(k, &v.msg, s);
            let got = batch.verify(cache) == vec![true];
            if got != v.expect_valid {
                failures.push(format!("batch of one: {} got {got}", v.name));
            }
        }
    }
    // All parseable vectors in one batch; and only the valid ones in one batch.
    let parsed: Vec<(&Vector, PublicKey, Signature)> = vectors
        .iter()
        .filter_map(|v| parse(v).map(|(k, s)| (v, k, s)))
        .collect();
    let mut batch = BatchVerifier::new();
    for (v, k, s) in &parsed {
        batch.push_message(*k, &v.msg, *s);
    }
    for ((v, _, _), got) in parsed.iter().zip(batch.verify(&mut KeyCache::default())) {
        if got != v.expect_valid {
            failures.push(format!("whole batch: {} got {got}", v.name));
        }
    }
    let mut valid_only = BatchVerifier::new();
    for (v, k, s) in parsed.iter().filter(|(v, _, _)| v.expect_valid) {
        valid_only.push_message(*k, &v.msg, *s);
    }
    assert!(
        valid_only.verify_all(&mut KeyCache::default()),
        "a batch of the valid vectors fails"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn wycheproof_single_and_batch_agree_with_strict() {
    if let Some(dir) = testdata_dir() {
        check_all(&wycheproof(&dir));
    }
}

#[test]
fn speccheck_single_and_batch_agree_with_strict() {
    if let Some(dir) = testdata_dir() {
        check_all(&speccheck(&dir));
    }
}

#[test]
fn cctv_single_and_batch_agree_with_strict() {
    if let Some(dir) = testdata_dir() {
        check_all(&cctv(&dir));
    }
}
