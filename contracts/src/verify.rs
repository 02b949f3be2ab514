//! Signature verification, in batches, before execution. [`VerifiedTransaction`] is the
//! proof: its only constructor is [`verify_transactions`], and only verified transactions
//! reach the ledger. Verification checks that each listed key signed; whether a key is the
//! *right* one for the action is checked by the contracts against state.

use tally_crypto::{BatchVerifier, Hash, KeyCache, PublicKey};

use crate::encoding::{EncodedTransaction, check_limits};
use crate::transaction::{PAYMENT_CODE_DOMAIN, TX_SIGNATURE_DOMAIN};
use crate::{DecodeError, SignedTransaction, Transaction, TxKind};

/// A transaction whose every signature (and any payment code's signature) verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTransaction {
    encoded: EncodedTransaction,
    signers: Vec<PublicKey>,
}

impl VerifiedTransaction {
    pub fn tx(&self) -> &Transaction {
        self.encoded.tx()
    }

    /// The signed transaction, with its canonical bytes.
    pub fn encoded(&self) -> &EncodedTransaction {
        &self.encoded
    }

    pub fn signed(&self) -> &SignedTransaction {
        self.encoded.signed()
    }

    /// The transaction's id: its body and its signers (see [`SignedTransaction::hash`]).
    pub fn hash(&self) -> Hash {
        self.encoded.hash()
    }

    /// The keys that signed, sorted.
    pub fn signers(&self) -> &[PublicKey] {
        &self.signers
    }

    pub fn is_signed_by(&self, key: &PublicKey) -> bool {
        self.signers.binary_search(key).is_ok()
    }
}

/// Why a transaction failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("transaction is for chain {0:?}")]
    WrongChain(String),
    #[error("{0}")]
    Limits(#[from] DecodeError),
    #[error("a signature does not verify")]
    BadSignature,
    #[error("the payment code's signature does not verify")]
    BadPaymentCode,
}

/// A transaction's place in the batch: its first signature's index, how many signatures it
/// has, and whether a payment code's signature follows them.
type Plan = (usize, usize, bool);

/// Verifies many transactions at once; one verdict per transaction, in order. The node
/// passes [`EncodedTransaction`]s (decoded at its door); tools and tests may pass
/// [`SignedTransaction`]s, encoded here.
pub fn verify_transactions<T: Into<EncodedTransaction>>(
    chain_id: &str,
    signed: Vec<T>,
    cache: &mut KeyCache,
) -> Vec<Result<VerifiedTransaction, VerifyError>> {
    let signed: Vec<EncodedTransaction> = signed.into_iter().map(Into::into).collect();
    let mut batch = BatchVerifier::with_capacity(signed.len().saturating_mul(2));
    // Per transaction: its pre-check verdict, and which batch items are its signatures
    // and which is its payment code's.
    let mut plans: Vec<Result<Plan, VerifyError>> = Vec::with_capacity(signed.len());
    for item in &signed {
        let plan = (|| {
            let (tx, signatures) = (item.tx(), &item.signed().signatures);
            check_limits(item.signed())?;
            if tx.chain_id != chain_id {
                return Err(VerifyError::WrongChain(tx.chain_id.clone()));
            }
            let bytes = item.signing_bytes();
            let first = batch.len();
            for s in signatures {
                batch.push(s.key, TX_SIGNATURE_DOMAIN, chain_id, bytes, s.signature);
            }
            let has_code = if let TxKind::CollectByCode {
                code,
                code_signature,
                ..
            } = &tx.kind
            {
                batch.push(
                    code.payer_key,
                    PAYMENT_CODE_DOMAIN,
                    chain_id,
                    &code.signing_bytes(),
                    *code_signature,
                );
                true
            } else {
                false
            };
            Ok((first, signatures.len(), has_code))
        })();
        plans.push(plan);
    }
    let verdicts = batch.verify(cache);
    signed
        .into_iter()
        .zip(plans)
        .map(|(item, plan)| {
            let (first, count, has_code) = plan?;
            let ok = |i: usize| verdicts.get(i).copied().unwrap_or(false);
            if !(first..first + count).all(ok) {
                return Err(VerifyError::BadSignature);
            }
            if has_code && !ok(first + count) {
                return Err(VerifyError::BadPaymentCode);
            }
            let signers: Vec<PublicKey> = item.signed().signatures.iter().map(|s| s.key).collect();
            Ok(VerifiedTransaction {
                encoded: item,
                signers,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, Party, TransferId};
    use tally_crypto::SigningKey;

    fn transfer(nonce: u64) -> Transaction {
        Transaction {
            chain_id: "c".into(),
            sender: Party::Account(AccountId(1)),
            nonce,
            kind: TxKind::Transfer {
                id: TransferId(nonce.into()),
                to: AccountId(2),
                amount: 5,
                memo: crate::Memo::NONE,
            },
        }
    }

    #[test]
    fn per_item_verdicts() {
        let a = SigningKey::from_seed([1; 32]);
        let b = SigningKey::from_seed([2; 32]);
        let good = transfer(0).sign(&[&a, &b]);
        let mut forged = transfer(1).sign(&[&a]);
        forged.signatures[0].signature.0[3] ^= 1;
        let mut other_chain = transfer(2);
        other_chain.chain_id = "d".into();
        let other_chain = other_chain.sign(&[&a]);
        let out = verify_transactions(
            "c",
            vec![good.clone(), forged, other_chain],
            &mut KeyCache::default(),
        );
        let first = out[0].as_ref().unwrap();
        assert_eq!(first.hash(), good.hash());
        assert!(first.is_signed_by(&a.public_key()) && first.is_signed_by(&b.public_key()));
        assert_eq!(out[1], Err(VerifyError::BadSignature));
        assert!(matches!(out[2], Err(VerifyError::WrongChain(_))));
    }

    #[test]
    fn a_signature_for_one_body_does_not_cover_another() {
        let a = SigningKey::from_seed([1; 32]);
        let mut swapped = transfer(0).sign(&[&a]);
        swapped.tx.nonce = 1;
        let out = verify_transactions("c", vec![swapped], &mut KeyCache::default());
        assert_eq!(out[0], Err(VerifyError::BadSignature));
    }

    /// A copy stripped of a co-signature, or with another signer set, is another
    /// transaction: its id differs, while the order the keys signed in does not matter.
    #[test]
    fn the_id_covers_the_signer_set() {
        let payer = SigningKey::from_seed([1; 32]);
        let bank = SigningKey::from_seed([2; 32]);
        let other = SigningKey::from_seed([3; 32]);
        let both = transfer(0).sign(&[&payer, &bank]);
        let either_order = transfer(0).sign(&[&bank, &payer]);
        let mut stripped = both.clone();
        stripped.signatures.retain(|s| s.key == payer.public_key());
        let extra = transfer(0).sign(&[&payer, &bank, &other]);
        assert_eq!(both.hash(), either_order.hash());
        assert_ne!(both.hash(), stripped.hash());
        assert_ne!(both.hash(), extra.hash());
        assert_ne!(stripped.hash(), transfer(0).sign(&[&bank]).hash());
        let out = verify_transactions(
            "c",
            vec![both.clone(), stripped.clone(), extra.clone()],
            &mut KeyCache::default(),
        );
        let ids: Vec<Option<Hash>> = out
            .iter()
            .map(|v| v.as_ref().ok().map(|v| v.hash()))
            .collect();
        assert_eq!(
            ids,
            vec![Some(both.hash()), Some(stripped.hash()), Some(extra.hash())],
            "a verified transaction's id is its signed form's"
        );
    }
}
