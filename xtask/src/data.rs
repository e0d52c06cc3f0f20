//! `cargo xtask data {info,fetch}`.

use std::path::PathBuf;

use anyhow::Result;
use burn::data::dataset::Dataset;
use clap::{Args, Subcommand};
use fashion_mixer_data::fetch::{FetchOutcome, FetchPlan};
use fashion_mixer_data::{CLASS_NAMES, DataError, FashionMnistDataset, Split, find_file, locate};

use crate::project_root;

/// Where to look for the IDX files.
#[derive(Args, Debug, Clone, Default)]
pub struct DataDirArg {
    /// Directory holding the four IDX files (default: $FASHION_MNIST_DIR, then
    /// datasets/fashion-mnist/, then /usr/share/datasets/fashion-mnist/).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download the data set where it is missing (also: FASHION_MNIST_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

impl DataDirArg {
    /// The directory holding the data. Where no place searched has it, and the user named no
    /// directory and did not ask for --offline, it is downloaded into datasets/fashion-mnist/.
    pub fn locate(&self) -> Result<PathBuf, DataError> {
        let root = project_root();
        let dirs = locate::search_dirs(self.data_dir.as_deref(), &root);
        let may_download = !self.offline
            && !locate::offline_from_env()
            && !locate::user_named_dir(self.data_dir.as_deref());
        let sources = if may_download {
            FetchPlan::sources_from_env()
        } else {
            Vec::new()
        };
        let dest = root.join(locate::PROJECT_DIR);
        locate::locate_or_fetch(&dirs, &dest, &sources, |dest| {
            eprintln!(
                "Fashion-MNIST not found on this machine: downloading it into {} \
                 (checksum-verified; --offline or FASHION_MNIST_OFFLINE=1 turns this off)",
                dest.display()
            )
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Where the data was found, items per split and per class.
    Info(DataDirArg),
    /// Download the four files (checksum-verified) into datasets/fashion-mnist/.
    Fetch {
        /// Destination directory.
        #[arg(long, value_name = "DIR")]
        dest: Option<PathBuf>,
        /// Base address to download from instead of the official one (same file names and
        /// checksums).
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
    },
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Info(dir) => info(&dir),
        DataCommand::Fetch { dest, mirror } => fetch(dest, mirror),
    }
}

fn info(dir: &DataDirArg) -> Result<()> {
    let dir = dir.locate()?;
    println!("Fashion-MNIST found in {}", dir.display());
    let mut counts = Vec::new();
    for split in Split::ALL {
        let dataset = FashionMnistDataset::load(&dir, split)?;
        let [images, labels] = split.file_stems().map(|stem| find_file(&dir, stem));
        println!(
            "{:>5}: {:>6} items  ({}, {})",
            split.name(),
            dataset.len(),
            images?.display(),
            labels?.display()
        );
        counts.push(dataset.class_counts());
    }
    println!();
    println!("{:>2}  {:<12} {:>6} {:>6}", "#", "class", "train", "test");
    for (label, name) in CLASS_NAMES.iter().enumerate() {
        println!(
            "{label:>2}  {name:<12} {:>6} {:>6}",
            counts[0][label], counts[1][label]
        );
    }
    Ok(())
}

fn fetch(dest: Option<PathBuf>, mirror: Option<String>) -> Result<()> {
    let dest = dest.unwrap_or_else(|| project_root().join(locate::PROJECT_DIR));
    let mut plan = FetchPlan::official();
    if let Some(mirror) = mirror {
        plan.base_url = mirror;
    }
    println!(
        "Fetching Fashion-MNIST from {} into {}",
        plan.base_url,
        dest.display()
    );
    for outcome in plan.run(&dest)? {
        match outcome {
            FetchOutcome::Present(path) => println!("present, checksum ok: {}", path.display()),
            FetchOutcome::Downloaded(path) => {
                println!("downloaded, checksum ok: {}", path.display())
            }
        }
    }
    Ok(())
}
