//! How the ranks start together: rank 0 tells the others where training starts (a resumed run's
//! configuration and files included), and every rank checks alike that the ranks can train
//! together (the same configuration, data, starting weights and teacher) before the first step.

use std::path::PathBuf;

use burn::data::dataset::Dataset;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use fashion_mixer_data::FashionMnistDataset;
use fashion_mixer_model::Model;
use fashion_mixer_run::run_dir::{CHECKPOINT_KINDS, checkpoint_file, save_config, write_atomic};
use fashion_mixer_run::{RunDir, TrainingConfig};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::{Distributed, Slicing};
use crate::error::{DistributedError, TrainError};

/// Where a training starts, as rank 0 found it: its configuration, the checkpoint it resumes
/// from, whether it had finished, and the run's files the others need to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Start {
    /// The configuration (a resumed run's own).
    pub config: TrainingConfig,
    /// The epoch of the checkpoint training resumes from.
    pub checkpoint: Option<usize>,
    /// The run had finished: nothing to do.
    pub finished: bool,
    /// Files of the run, by their path in it, that a resumed training reads: `metrics.csv` and
    /// the checkpoint's records.
    #[serde(skip)]
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

impl Start {
    /// The start of a resumed run in `run` from `checkpoint`, with the files a rank needs.
    pub(crate) fn resumed(
        config: TrainingConfig,
        run: &RunDir,
        checkpoint: Option<usize>,
    ) -> Result<Self, TrainError> {
        let mut paths = vec![run.metrics()];
        if let Some(epoch) = checkpoint {
            for kind in CHECKPOINT_KINDS {
                paths.push(run.checkpoints().join(checkpoint_file(kind, epoch)));
            }
        }
        let mut files = Vec::new();
        for path in paths.into_iter().filter(|p| p.is_file()) {
            let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
            let name = path.strip_prefix(run.root()).unwrap_or(&path).to_path_buf();
            files.push((name, bytes));
        }
        Ok(Self {
            config,
            checkpoint,
            finished: false,
            files,
        })
    }
}

/// A [`Start`] (or rank 0's failure) as bytes: a JSON header, then each file's bytes.
fn encode(start: Option<&Start>) -> Vec<u8> {
    let names: Vec<(String, usize)> = start
        .map(|s| {
            s.files
                .iter()
                .map(|(name, bytes)| (name.to_string_lossy().into_owned(), bytes.len()))
                .collect()
        })
        .unwrap_or_default();
    let header = serde_json::json!({ "start": start, "files": names }).to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for (_, file) in start.map_or(&[][..], |s| &s.files[..]) {
        bytes.extend_from_slice(file);
    }
    bytes
}

/// [`encode`]'s bytes back.
fn decode(bytes: &[u8]) -> Option<Start> {
    let length = u64::from_le_bytes(*bytes.first_chunk::<8>()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8 + length)?).ok()?;
    let mut start: Start = serde_json::from_value(header["start"].clone()).ok()?;
    let names: Vec<(String, usize)> = serde_json::from_value(header["files"].clone()).ok()?;
    let mut at = 8 + length;
    for (name, size) in names {
        start
            .files
            .push((PathBuf::from(name), bytes.get(at..at + size)?.to_vec()));
        at += size;
    }
    Some(start)
}

impl Distributed {
    /// Rank 0: tells the other ranks where training starts, or that it does not.
    pub(crate) fn send_start(&self, start: Option<&Start>) {
        let mut bytes = encode(start);
        self.collective.broadcast(&mut bytes);
    }

    /// The other ranks: where rank 0 starts; a resumed run's files are written into `run`
    /// (this rank's own folder).
    pub(crate) fn receive_start(&self, run: &RunDir) -> Result<Start, TrainError> {
        let mut bytes = Vec::new();
        self.collective.broadcast(&mut bytes);
        let start = decode(&bytes).ok_or(DistributedError::StartFailedOnRankZero)?;
        for (name, file) in &start.files {
            let path = run.root().join(name);
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).map_err(|e| TrainError::io(folder, e))?;
            }
            write_atomic(&path, file)?;
        }
        if !start.files.is_empty() {
            save_config(run, &start.config)?;
        }
        Ok(start)
    }

    /// Checks, on every rank alike, that the ranks can train together: the same configuration
    /// (and slicing) and data as rank 0's, no data-loading threads, and an item of each batch for each rank.
    pub(crate) fn check_alike(
        &self,
        config: &TrainingConfig,
        train: &FashionMnistDataset,
        test: &FashionMnistDataset,
    ) -> Result<(), DistributedError> {
        let settings = (config, self.slicing_on(config.backend) == Slicing::Equal);
        let settings = Md5::digest(serde_json::to_vec(&settings).expect("a config serialises"));
        let mut data = Md5::new();
        for set in [train, test] {
            data.update(set.labels());
            for i in 0..set.len() {
                data.update(set.image(i));
            }
        }
        self.compare([
            (settings.into(), DistributedError::Configurations),
            (data.finalize().into(), DistributedError::Data),
        ])?;
        if config.workers > 0 {
            return Err(DistributedError::Workers);
        }
        if config.batch_size < self.size() {
            return Err(DistributedError::BatchTooSmall {
                batch: config.batch_size,
                ranks: self.size(),
            });
        }
        Ok(())
    }

    /// Seeds `device`'s random draws for this rank once the ranks hold the same weights (each
    /// built them from `seed`): rank 0 goes on with `seed`, each other rank with a seed of its
    /// own, so that each draws its own dropout masks, as one process's parts of a batch do.
    /// Seeded alike, every rank would drop the same units of its slice's first item, second
    /// item, and so on.
    pub(crate) fn seed_draws(&self, device: &Device, seed: u64) {
        device.seed(seed ^ (self.rank() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }

    /// Checks, on every rank alike, that the ranks start from rank 0's weights (the same seed
    /// and build, and the same `--init-from` file) and, when distilling, learn from the same
    /// teacher: a digest of each model's parameters, compared.
    pub(crate) fn check_weights(
        &self,
        model: &Model,
        teacher: Option<&Model>,
    ) -> Result<(), DistributedError> {
        let digest = |module: Option<&Model>| {
            let mut digest = WeightDigest(Md5::new());
            if let Some(module) = module {
                module.visit(&mut digest);
            }
            digest.0.finalize()
        };
        self.compare([
            (digest(Some(model)).into(), DistributedError::Weights),
            (digest(teacher).into(), DistributedError::Teachers),
        ])
    }

    /// Gathers every rank's `digests` and fails with the error of the first one that some
    /// rank's differs from rank 0's in, naming those ranks.
    fn compare<const N: usize>(&self, digests: [DigestCheck; N]) -> Result<(), DistributedError> {
        let mine: Vec<u8> = digests.iter().flat_map(|(digest, _)| *digest).collect();
        let all = self.collective.gather(&mine);
        for (i, (_, error)) in digests.into_iter().enumerate() {
            let range = 16 * i..16 * (i + 1);
            let ranks: Vec<usize> = (1..all.len())
                .filter(|&r| all[r][range.clone()] != all[0][range.clone()])
                .collect();
            if !ranks.is_empty() {
                return Err(error(ranks));
            }
        }
        Ok(())
    }
}

/// An MD5 digest the ranks compare, and the error that names the ranks whose differs.
type DigestCheck = ([u8; 16], fn(Vec<usize>) -> DistributedError);

/// A digest of a module's parameters' values, in the module's order.
struct WeightDigest(Md5);

impl ModuleVisitor for WeightDigest {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data().convert::<f32>();
        for value in data.as_slice::<f32>().expect("f32 weights") {
            self.0.update(value.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::distributed::tests::PretendPair;

    fn start() -> Start {
        Start {
            config: TrainingConfig::new().with_epochs(7),
            checkpoint: Some(3),
            finished: false,
            files: vec![
                (
                    PathBuf::from("metrics.csv"),
                    b"epoch,loss\n1,0.5\n".to_vec(),
                ),
                (PathBuf::from("checkpoint/model-3.bpk"), vec![0, 255, 7, 0]),
                (PathBuf::from("empty"), Vec::new()),
            ],
        }
    }

    #[test]
    fn a_start_passes_as_bytes_with_its_files() {
        let start = start();
        assert_eq!(decode(&encode(Some(&start))), Some(start));
    }

    #[test]
    fn rank_zeros_failure_and_cut_bytes_decode_to_nothing() {
        assert_eq!(decode(&encode(None)), None);
        let bytes = encode(Some(&start()));
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn a_digest_that_differs_names_the_ranks_it_differs_on() {
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let ranks = |others: Vec<Vec<u8>>| {
            let ranks = PretendPair {
                gathered: others,
                ..PretendPair::default()
            };
            Distributed::new(Arc::new(ranks)).compare([
                (a, DistributedError::Configurations),
                (b, DistributedError::Data),
            ])
        };
        let alike = [a, b].concat();
        assert!(ranks(vec![alike.clone(), alike.clone()]).is_ok());
        let other_data = [a, [9; 16]].concat();
        assert!(matches!(
            ranks(vec![other_data.clone(), alike.clone(), other_data]),
            Err(DistributedError::Data(r)) if r == [1, 3]
        ));
        // The first check that differs is the one said.
        let both = [[0; 16], [0; 16]].concat();
        assert!(matches!(
            ranks(vec![alike, both]),
            Err(DistributedError::Configurations(r)) if r == [2]
        ));
    }
}
