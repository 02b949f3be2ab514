//! Backup and restore of a validator's data directory: a backup taken over the admin socket
//! while the chain commits, restored into the validator's wiped directory beside the signer's
//! record it kept; and every way a restore must refuse a file (an operator's disk may hold a
//! damaged, cut or altered backup, or another chain's).

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use common::*;
use tally_node::admin;
use tally_node::storage::backup::{self, BackupError, BackupHeader};
use tally_node::storage::{DATABASE_FILE, SIGNER_FILE, Storage};

/// Wallets `first..first + count` opened with 1,000 each.
fn openings(first: u128, count: u128) -> Vec<tally_contracts::SignedTransaction> {
    (first..first + count)
        .flat_map(|id| open_wallet(id, 1_000))
        .collect()
}

/// Each wallet of `first..first + count` pays its neighbour `rounds` times (nonces from 3).
fn ring_payments(first: u128, count: u128, rounds: u64) -> Vec<tally_contracts::SignedTransaction> {
    (0..rounds)
        .flat_map(|round| {
            (0..count).map(move |k| {
                let payee = first + (k + 1) % count;
                transfer(first + k, payee, 3 + round, 1)
            })
        })
        .collect()
}

/// Asks node `i`'s admin socket for a backup, off the runtime's threads.
async fn backup_over_socket(data_dir: PathBuf, out: PathBuf) -> Result<BackupHeader> {
    tokio::task::spawn_blocking(move || -> Result<BackupHeader> {
        let file = std::fs::File::create_new(&out)?;
        let mut writer = std::io::BufWriter::new(file);
        let header = admin::request_backup(&data_dir, &mut writer, |_| {}, |_| {})?
            .context("no node answered on the admin socket")?;
        std::io::Write::flush(&mut writer)?;
        Ok(header)
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_backed_up_under_load_is_restored_and_rejoins_with_the_same_chain() -> Result<()>
{
    let mut cluster = Cluster::new(genesis(4))?;
    for i in 0..4 {
        cluster.start(i).await?;
    }
    cluster.wait_all(2).await?;
    let opened = cluster.submit_all(&openings(1, 20), |_| 0).await?;
    cluster.wait_committed_ok(0, &opened).await?;

    let socket = cluster.data_dir(3).join(admin::ADMIN_SOCKET);
    let mode = std::fs::metadata(&socket)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "the admin socket is mode {mode:o}, not 600");

    // The backup is taken while payments are submitted and committed.
    let backup_file = cluster.dir.path().join("node3.backup");
    let payments = ring_payments(1, 20, 10);
    // A wallet's payments go to one validator (its nonces in order there), the wallets to all.
    let (submitted, header) = tokio::join!(
        cluster.submit_all(&payments, |n| n % 20 % 4),
        backup_over_socket(cluster.data_dir(3), backup_file.clone()),
    );
    let (submitted, header) = (submitted?, header?);
    ensure!(header.head >= 2, "a backup of height {}", header.head);

    cluster.wait_committed_ok(0, &submitted).await?;
    // Validator 3 loses its chain; its signer's record survives on its own file.
    cluster.take(3)?.kill().await;
    let signed = Storage::open(&cluster.data_dir(3), &cluster.genesis.chain_id)?.signer_record()?;
    ensure!(signed.is_some(), "validator 3 never signed");
    std::fs::remove_file(cluster.data_dir(3).join(DATABASE_FILE))?;
    let more = ring_payments(1, 20, 13);
    let more = cluster
        .submit_all(more.get(200..).context("13 rounds")?, |n| n % 20 % 3)
        .await?;
    cluster.wait_committed_ok(0, &more).await?;

    let restored = backup::restore(
        &cluster.data_dir(3),
        &cluster.genesis.chain_id,
        std::fs::File::open(&backup_file)?,
        |_, _| {},
    )?;
    ensure!(restored.header == header, "restored {:?}", restored.header);
    ensure!(
        restored.signer_record_kept,
        "the signer's record was not kept"
    );
    ensure!(
        Storage::open(&cluster.data_dir(3), &cluster.genesis.chain_id)?.signer_record()? == signed,
        "the restore changed the signer's record"
    );
    // Restoring again over the chain now there is refused.
    match backup::restore(
        &cluster.data_dir(3),
        &cluster.genesis.chain_id,
        std::fs::File::open(&backup_file)?,
        |_, _| {},
    ) {
        Err(BackupError::DirectoryHoldsAChain(_)) => {}
        other => bail!("a restore over a chain was not refused: {other:?}"),
    }

    cluster.start(3).await?;
    let height = cluster.height(0)? + 2;
    cluster.wait_all(height).await?;
    cluster.wait_committed_ok(3, &more).await?;
    cluster.assert_same_chain(height)?;
    for node in cluster.running() {
        let evidence = node.context.storage.recorded_evidence(1..=height)?;
        ensure!(
            evidence.iter().flatten().all(|&n| n == 0),
            "{} recorded evidence: {evidence:?}",
            node.public_key
        );
    }
    refusals(&cluster.genesis.chain_id, &backup_file, cluster.dir.path())?;
    cluster.shutdown().await
}

/// Restores `bytes` into a fresh directory; what it answered, and whether it left a chain.
fn restore_bytes(chain_id: &str, bytes: &[u8], dir: &Path) -> (Result<(), BackupError>, bool) {
    let outcome = backup::restore(dir, chain_id, bytes, |_, _| {}).map(|_| ());
    (outcome, dir.join(DATABASE_FILE).exists())
}

fn refusals(chain_id: &str, backup_file: &Path, scratch: &Path) -> Result<()> {
    let mut good = Vec::new();
    std::fs::File::open(backup_file)?.read_to_end(&mut good)?;
    let dir = |name: &str| scratch.join(name);
    let (outcome, left) = restore_bytes(chain_id, &good, &dir("good"));
    ensure!(outcome.is_ok() && left, "the good backup: {outcome:?}");
    ensure!(
        !dir("good").join(SIGNER_FILE).exists()
            || Storage::open(&dir("good"), chain_id)?
                .signer_record()?
                .is_none(),
        "a restore wrote a signer's record"
    );

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    if let Some(byte) = flipped.get_mut(middle) {
        *byte ^= 0x01;
    }
    match restore_bytes(chain_id, &flipped, &dir("flipped")) {
        (Err(BackupError::DigestMismatch | BackupError::Damaged(_)), false) => {}
        other => bail!("a flipped byte: {other:?}"),
    }
    let cut = good.get(..good.len() - 40).context("a short backup")?;
    match restore_bytes(chain_id, cut, &dir("cut")) {
        (Err(BackupError::Truncated | BackupError::Damaged(_)), false) => {}
        other => bail!("a cut backup: {other:?}"),
    }
    // Someone who rewrites the file and its digest (it has no key) and raises a balance: the
    // tree's root is untouched, but the leaf no longer commits to the entry.
    let forged = forged_balance(&good)?;
    match restore_bytes(chain_id, &forged, &dir("forged")) {
        (Err(BackupError::Damaged(why)), false) if why.contains("ledger tree") => {}
        other => bail!("an altered balance under a fresh digest: {other:?}"),
    }
    match restore_bytes("another-chain", &good, &dir("other")) {
        (Err(BackupError::WrongChain { .. }), false) => {}
        other => bail!("another chain's backup: {other:?}"),
    }
    match restore_bytes(chain_id, b"not a backup at all", &dir("text")) {
        (Err(BackupError::NotABackup), false) => {}
        other => bail!("a text file: {other:?}"),
    }
    Ok(())
}

/// The backup with the last byte of its first account's state entry flipped and the digest
/// recomputed, as a forger would: the file is magic, a u32-prefixed header, then
/// `[table][u32 key length][key][u32 value length][value]` entries and an end mark, each of
/// those pieces length-framed into the digest, which follows.
fn forged_balance(backup: &[u8]) -> Result<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut rest = backup;
    let take = |rest: &mut &[u8], n: usize| -> Result<Vec<u8>> {
        let (piece, after) = rest.split_at_checked(n).context("a short backup")?;
        *rest = after;
        Ok(piece.to_vec())
    };
    let as_len =
        |piece: &[u8]| -> Result<usize> { Ok(u32::from_le_bytes(piece.try_into()?) as usize) };
    pieces.push(take(&mut rest, 8)?);
    let header_len = take(&mut rest, 4)?;
    let header = take(&mut rest, as_len(&header_len)?)?;
    pieces.extend([header_len, header]);
    let mut altered = false;
    loop {
        let tag = take(&mut rest, 1)?;
        let end = tag == [0xFF];
        pieces.push(tag);
        if end {
            break;
        }
        let key_len = take(&mut rest, 4)?;
        let key = take(&mut rest, as_len(&key_len)?)?;
        let value_len = take(&mut rest, 4)?;
        let mut value = take(&mut rest, as_len(&value_len)?)?;
        if !altered
            && key.starts_with(b"s/A")
            && let Some(last) = value.last_mut()
        {
            *last ^= 0x01;
            altered = true;
        }
        pieces.extend([key_len, key, value_len, value]);
    }
    ensure!(altered, "no account entry in the backup");
    let digest = pieces
        .iter()
        .fold(
            tally_crypto::HashBuilder::new("tally/backup"),
            |d, piece| d.update(piece),
        )
        .finish();
    let mut out = pieces.concat();
    out.extend_from_slice(&digest.0);
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_socket_answers_only_its_one_request() -> Result<()> {
    let mut cluster = Cluster::new(genesis(4))?;
    cluster.start(0).await?;
    let socket = cluster.data_dir(0).join(admin::ADMIN_SOCKET);
    let answer = tokio::task::spawn_blocking(move || -> Result<String> {
        use std::io::Write;
        let mut stream = std::os::unix::net::UnixStream::connect(&socket)?;
        stream.write_all(b"dump everything\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
    .await??;
    ensure!(
        answer.starts_with("ERROR unknown request"),
        "answered {answer:?}"
    );
    // Nothing is committed alone (one of four validators): there is nothing to back up.
    let out = cluster.dir.path().join("empty.backup");
    match backup_over_socket(cluster.data_dir(0), out).await {
        Err(e) => ensure!(
            format!("{e:#}").contains("the node refused: nothing to back up"),
            "{e:#}"
        ),
        Ok(header) => bail!("a backup of nothing: {header:?}"),
    }
    cluster.shutdown().await
}
