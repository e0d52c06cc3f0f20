//! The train crate's errors; each names the file or setting at fault.

use std::path::{Path, PathBuf};

use fashion_mixer_export::ExportError;
use fashion_mixer_run::RunError;

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The run's folder, its files, its data or its configuration.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The weights to start from (`init_from`) do not load.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The ranks of a distributed training cannot train together; every rank meets it alike.
    #[error(transparent)]
    Distributed(#[from] DistributedError),
    /// Training stopped because a file of the run could not be written (a full disk, say).
    #[error("{}", write_failed_message(path, cause, *kept, run))]
    WriteFailed {
        /// The file that could not be written (its final name).
        path: PathBuf,
        /// Why, in words.
        cause: String,
        /// The last epoch whose checkpoint and `metrics.csv` row are complete on disk.
        kept: Option<usize>,
        /// The run folder.
        run: PathBuf,
    },
    /// The run to distill from (`distill_from`) cannot be loaded.
    #[error(
        "the teacher (distill_from): {0}; a teacher is a finished run's folder (`cargo xtask train --preset teacher --artifacts artifacts/teacher` trains the one the `best` preset learns from)"
    )]
    Teacher(Box<TrainError>),
    /// The loss became NaN or infinite; training stopped.
    #[error("{}", diverged_message(at, checkpoint.as_deref()))]
    Diverged {
        /// Where.
        at: Divergence,
        /// The newest checkpoint (from the last completed epoch), if any.
        checkpoint: Option<PathBuf>,
    },
    /// Ctrl-C (SIGINT, SIGTERM) could not be caught, so an interruption could not be clean.
    #[error("cannot install the Ctrl-C handler: {0}")]
    Signals(std::io::Error),
    /// Training stopped on an error inside the Learner (burn-train reports it as text).
    #[error("training failed: {0}")]
    Training(String),
}

/// Where the loss stopped being a finite number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Divergence {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step (batch) within the epoch's pass.
    pub step: usize,
    /// In the training pass (else the test pass).
    pub train: bool,
    /// The loss value (NaN or infinite).
    pub loss: f64,
}

impl TrainError {
    /// Whether every rank of a distributed training meets this error alike (so rank 0 alone
    /// says it, and no rank needs to end the others): the ranks could not start together, or
    /// the loss diverged (every rank sees the same loss).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Distributed(_) | Self::Diverged { .. })
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Run(RunError::io(path, source))
    }
}

fn write_failed_message(path: &Path, cause: &str, kept: Option<usize>, run: &Path) -> String {
    let next = match kept {
        Some(epoch) => format!(
            "kept: epochs 1 to {epoch} (checkpoint and metrics.csv row); once it can be \
             written (free space, say), continue with `cargo xtask train --artifacts {} --resume`",
            run.display()
        ),
        None => "no epoch was complete, so nothing is kept; once it can be written (free space, \
                 say), start again"
            .into(),
    };
    format!("{}: cannot write: {cause}; {next}", path.display())
}

fn diverged_message(at: &Divergence, checkpoint: Option<&Path>) -> String {
    let pass = if at.train { "training" } else { "test" };
    let next = match checkpoint {
        Some(path) => format!(
            "the last good checkpoint, {}, is kept and loads (lower `lr` in config.json, then \
             --resume continues from it)",
            path.display()
        ),
        None => "no epoch had completed, so there is no checkpoint; lower the learning rate".into(),
    };
    format!(
        "training diverged: the loss became {} at epoch {}, {pass} step {}; {next}",
        at.loss, at.epoch, at.step
    )
}

/// Why the ranks do not train: each rank meets it alike (rank 0 says it).
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// Rank 0 could not start (its own error, which rank 0 reports).
    #[error(transparent)]
    Start(Box<TrainError>),
    /// Rank 0 could not start; it says why.
    #[error("rank 0 could not start")]
    StartFailedOnRankZero,
    /// Ranks were given other settings than rank 0's.
    #[error(
        "the ranks were started with different configurations: {} from rank 0's; start every rank with the same flags and --config",
        differ(.0)
    )]
    Configurations(Vec<usize>),
    /// Ranks read other data than rank 0's.
    #[error(
        "the ranks read different data: the IDX files of {} from rank 0's; give every rank the same four files (--data-dir)",
        differ(.0)
    )]
    Data(Vec<usize>),
    /// Ranks start from other weights than rank 0's.
    #[error(
        "the ranks start from different weights: {} from rank 0's; give every rank the same --init-from file and the same build of xtask-mpi",
        differ(.0)
    )]
    Weights(Vec<usize>),
    /// Ranks distil from another teacher than rank 0's.
    #[error(
        "the ranks learn from different teachers: the teacher (distill_from) of {} from rank 0's; give every rank the same teacher run",
        differ(.0)
    )]
    Teachers(Vec<usize>),
    /// Fewer items in a global batch than ranks.
    #[error(
        "a global batch of {batch} is smaller than the {ranks} ranks: every rank needs at least one item of each batch; raise --batch-size or start fewer ranks"
    )]
    BatchTooSmall {
        /// The batch size.
        batch: usize,
        /// The ranks.
        ranks: usize,
    },
    /// Data-loading threads, which would hand each rank its batches in another order.
    #[error(
        "workers must be 0 with --distributed: with data-loading threads the batches arrive in another order on each rank"
    )]
    Workers,
}

/// "rank 1 differs", "ranks 1, 3 differ".
fn differ(ranks: &[usize]) -> String {
    let list: Vec<String> = ranks.iter().map(usize::to_string).collect();
    match ranks.len() {
        1 => format!("rank {} differs", list[0]),
        _ => format!("ranks {} differ", list.join(", ")),
    }
}
