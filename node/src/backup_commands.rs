//! `tally node backup` and `tally node restore`: the data directory to a file and back; and
//! the opening of a stopped node's store they share with `tally node disk-usage`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use tally_node::admin;
use tally_node::config::Config;
use tally_node::genesis::GenesisFile;
use tally_node::storage::backup::{self, BackupHeader};
use tally_node::storage::{DATABASE_FILE, Storage};

fn entries_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} entries")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub fn load(config_path: &Path) -> Result<(Config, GenesisFile)> {
    let config = Config::load(config_path)
        .with_context(|| format!("configuration {} refused", config_path.display()))?;
    let genesis = GenesisFile::load(&config.genesis_file)?;
    Ok((config, genesis))
}

pub fn backup(config_path: &Path, out_path: &Path) -> Result<()> {
    let (config, genesis) = load(config_path)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out_path)
        .with_context(|| {
            format!(
                "cannot create {} (it is never overwritten)",
                out_path.display()
            )
        })?;
    let written = write_backup(&config, &genesis, &file).and_then(|(header, how)| {
        file.sync_all()
            .with_context(|| format!("writing {}", out_path.display()))?;
        Ok((header, how))
    });
    match written {
        Ok((header, how)) => {
            println!(
                "backup of {} at height {} ({} entries, {how}) written to {}",
                header.chain_id,
                header.head,
                header.entries,
                out_path.display()
            );
            Ok(())
        }
        Err(e) => {
            // Half a backup must not be mistaken for one.
            let _ = std::fs::remove_file(out_path);
            Err(e)
        }
    }
}

fn write_backup(
    config: &Config,
    genesis: &GenesisFile,
    file: &std::fs::File,
) -> Result<(BackupHeader, &'static str)> {
    let bar = entries_bar();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let from_node = admin::request_backup(
        &config.data_dir,
        &mut out,
        |n| bar.set_position(n),
        |header| bar.set_length(header.entries),
    )
    .context("backup from the running node failed")?;
    let (header, how) = match from_node {
        Some(header) => (header, "from the running node"),
        None => {
            let storage = open_stopped_store(
                config,
                genesis,
                &format!(
                    "and no node answering on {}",
                    config.data_dir.join(admin::ADMIN_SOCKET).display()
                ),
                "a node holds it but its admin socket does not answer",
            )?;
            let header = backup::write(&storage, &mut out, |header, n| {
                bar.set_length(header.entries);
                bar.set_position(n);
            })?;
            (header, "the node was stopped")
        }
    };
    out.flush().context("writing the backup")?;
    bar.finish_and_clear();
    Ok((header, how))
}

/// A stopped node's store, refused (not created) when there is none: a mistyped `data_dir` is
/// an error. `missing` and `held` finish the two refusals' sentences.
pub fn open_stopped_store(
    config: &Config,
    genesis: &GenesisFile,
    missing: &str,
    held: &str,
) -> Result<Storage> {
    let store = config.data_dir.join(DATABASE_FILE);
    anyhow::ensure!(
        store.is_file(),
        "no store at {} {missing}: is data_dir in the configuration right?",
        store.display()
    );
    Storage::open_with_cache(
        &config.data_dir,
        &genesis.chain_id,
        config.limits.storage_cache_bytes,
    )
    .with_context(|| format!("cannot open {}: {held}", config.data_dir.display()))
}

pub fn restore(config_path: &Path, from: &Path) -> Result<()> {
    let (config, genesis) = load(config_path)?;
    let source = std::fs::File::open(from)
        .with_context(|| format!("cannot open the backup {}", from.display()))?;
    let bar = entries_bar();
    let restored = backup::restore(&config.data_dir, &genesis.chain_id, source, |header, n| {
        bar.set_length(header.entries);
        bar.set_position(n);
    })
    .with_context(|| format!("restore of {} refused", from.display()))?;
    bar.finish_and_clear();
    println!(
        "restored {} at height {} ({} entries) into {}; the node syncs the blocks since from \
         its peers when it starts",
        restored.header.chain_id,
        restored.header.head,
        restored.header.entries,
        config.data_dir.display()
    );
    if restored.signer_record_kept {
        println!(
            "the signer's record in {} was kept as it was",
            config.data_dir.display()
        );
    } else {
        // Said on every restore without one: the one case where a validator could sign twice.
        println!(
            "no signer's record was in {}: if this validator's key signed votes on another \
             disk since the backup, copy that disk's signer.redb here before starting it",
            config.data_dir.display()
        );
    }
    Ok(())
}
