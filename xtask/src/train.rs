//! `cargo xtask train`: build the configuration from defaults, `--config` and flags; train.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fashion_mixer_model::Backend;
use fashion_mixer_run::Preset;
use fashion_mixer_run::{LrSchedule, OptimizerKind, Progress, RunDir, TrainingConfig};
use fashion_mixer_train::training::{Resume, TrainOptions, TrainReport, train};
use serde::Serialize;

use crate::data::DataDirArg;
use crate::distributed::SlicesArg;
use crate::flags::{finite, given, overlay};
use crate::model::ModelArgs;
use crate::project_root;

/// Where a configuration starts: a preset, then a JSON file over it.
#[derive(Args, Debug, Clone, Default)]
pub struct BaseConfigArgs {
    /// A named configuration to start from: coursework (the spec's model, the default), best
    /// (the most accurate found; it learns from artifacts/teacher) or teacher (best's teacher,
    /// from labels alone); see README. --config and the flags override it
    #[arg(long, value_name = "NAME")]
    pub preset: Option<Preset>,
    /// A JSON TrainingConfig to start from: a run's config.json, or only the fields to change,
    /// e.g. {"epochs": 5, "model": {"depth": 4}}; flags override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl BaseConfigArgs {
    /// The preset (coursework by default) with `--config`'s fields over it.
    pub fn load(&self) -> Result<TrainingConfig> {
        let base = self
            .preset
            .clone()
            .map_or_else(TrainingConfig::new, |p| p.0);
        match &self.config {
            Some(path) => read_config(&base, path),
            None => Ok(base),
        }
    }

    fn any(&self) -> bool {
        self.preset.is_some() || self.config.is_some()
    }
}

/// `base` with the fields of the JSON file at `path` over it.
pub fn read_config(base: &TrainingConfig, path: &std::path::Path) -> Result<TrainingConfig> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    base.merged_with_json(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a valid training configuration: {e}",
            path.display()
        )
    })
}

/// The training flags, each named after the `TrainingConfig` field it sets; a flag left out
/// keeps the value from the preset or `--config`.
#[derive(Args, Serialize, Debug, Clone, Default)]
pub struct ConfigFlags {
    /// flex, ndarray or wgpu [default: flex]
    #[arg(long)]
    pub backend: Option<Backend>,
    /// Passes over the training set [default: 30]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Items per batch [default: 256]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// sgd, adam or adamw [default: adam]
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate [default: 0.001]
    #[arg(long, value_parser = finite, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum [default: 0]
    #[arg(long, value_parser = finite, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Weight decay: L2 for sgd/adam, decoupled for adamw [default: 0.0001]
    #[arg(long, value_parser = finite, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// After the warm-up: constant or cosine (down to --min-lr) [default: constant]
    #[arg(long)]
    pub lr_schedule: Option<LrSchedule>,
    /// Epochs of linear learning-rate warm-up [default: 0]
    #[arg(long, value_name = "N")]
    pub warmup_epochs: Option<usize>,
    /// Learning rate at the end of the cosine [default: 0]
    #[arg(long, value_parser = finite, allow_negative_numbers = true)]
    pub min_lr: Option<f64>,
    /// Label smoothing of the training loss [default: 0]
    #[arg(long, value_name = "ALPHA", value_parser = finite, allow_negative_numbers = true)]
    pub label_smoothing: Option<f64>,
    /// Augmentation: shift training images by up to N pixels each way [default: 0]
    #[arg(long, value_name = "N")]
    pub crop_padding: Option<usize>,
    /// Augmentation: mirror half the training images left-right (--horizontal-flip false: off)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub horizontal_flip: Option<bool>,
    /// Augmentation: the probability that a training image has a random rectangle erased to
    /// background [default: 0]
    #[arg(long, value_name = "P", value_parser = finite, allow_negative_numbers = true)]
    pub random_erasing: Option<f64>,
    /// Augmentation: mixup with this Beta alpha, e.g. 0.2 [default: 0, none]
    #[arg(long, value_name = "ALPHA", value_parser = finite, allow_negative_numbers = true)]
    pub mixup: Option<f64>,
    /// Augmentation: cutmix with this Beta alpha, e.g. 1 [default: 0, none]
    #[arg(long, value_name = "ALPHA", value_parser = finite, allow_negative_numbers = true)]
    pub cutmix: Option<f64>,
    /// Distil from this finished run's model (its folder; any architecture) as well as the
    /// labels [default: none]
    #[arg(long, value_name = "RUN")]
    pub distill_from: Option<PathBuf>,
    /// The teacher's share of the training loss, 0 to 1 [default: 0.5]
    #[arg(long, value_name = "A", value_parser = finite, allow_negative_numbers = true)]
    pub distill_weight: Option<f64>,
    /// The temperature of the teacher's soft targets [default: 2]
    #[arg(long, value_name = "T", value_parser = finite, allow_negative_numbers = true)]
    pub distill_temperature: Option<f64>,
    /// Keep a moving average of the weights with this decay per step (e.g. 0.999), scored and
    /// saved as the model [default: 0, none]
    #[arg(long, value_name = "D", value_parser = finite, allow_negative_numbers = true)]
    pub ema_decay: Option<f64>,
    /// Seed for the weights and the shuffling [default: 42]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Data-loading threads; 0 keeps runs reproducible [default: 0]
    #[arg(long)]
    pub workers: Option<usize>,
    /// Start from these weights instead of random ones: a run folder, a .bpk record or a
    /// .safetensors file (from `export`, or PyTorch's with the same names); same architecture
    #[arg(long, value_name = "PATH")]
    pub init_from: Option<PathBuf>,
    /// Use only the first N training items
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Use only the first N test items
    #[arg(long, value_name = "N")]
    pub limit_test: Option<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub base: BaseConfigArgs,
    #[command(flatten)]
    pub flags: ConfigFlags,
    #[command(flatten)]
    pub data: DataDirArg,
    /// The run's folder [default: artifacts/<UTC timestamp>]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Continue the run in --artifacts from its newest checkpoint, with its own config.json;
    /// training flags given with it must be the ones the run started with
    #[arg(long, requires = "artifacts")]
    pub resume: bool,
    /// One line per epoch instead of the terminal dashboard
    #[arg(long)]
    pub no_tui: bool,
    /// Train over the ranks `mpirun -np N` or `srun` started (the `mpi` build): each takes its
    /// share of every batch, the gradients are summed; rank 0 writes the run
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed, how the ranks share each batch: `speed`, each rank's slice sized by
    /// its speed over the last steps, so a slower rank takes fewer items; or `equal`, so the
    /// weights are one process's to the bit [default: speed on flex and ndarray, equal on wgpu,
    /// which compiles its kernels for each new slice size]
    #[arg(long, value_enum, requires = "distributed")]
    pub slices: Option<SlicesArg>,
    /// With --distributed, how many seconds a rank waits for the others at a step before it
    /// ends the job, saying so (a rank paused or stuck, a machine or the network down; MPI
    /// alone would wait for ever); 0: no limit
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = crate::distributed::STALL_TIMEOUT_SECS,
        requires = "distributed"
    )]
    pub stall_timeout: u64,
}

impl TrainArgs {
    /// The preset (coursework by default), then `--config`, then the flags.
    pub fn config(&self) -> Result<TrainingConfig> {
        let config = overlay(&self.base.load()?, &self.flags)?;
        config.validate()?;
        Ok(config)
    }

    fn overrides_config(&self) -> bool {
        self.base.any() || given(&self.flags).is_some()
    }
}

pub fn run(args: &TrainArgs) -> Result<()> {
    if args.distributed {
        return run_distributed(args);
    }
    let (config, options) = prepare(args)?;
    let report = train(config, &options)?;
    say_how_it_ended(&options.run, &report, "cargo xtask train");
    Ok(())
}

/// The configuration and where the run goes, from the flags.
fn prepare(args: &TrainArgs) -> Result<(TrainingConfig, TrainOptions)> {
    // `--resume` alone continues the run as it was started; with training flags (the command
    // that started it, run again: a requeued Slurm job, say), only if they ask for the same.
    let (config, resume) = match (args.resume, args.overrides_config()) {
        (false, _) => (args.config()?, Resume::No),
        (true, false) => (TrainingConfig::new(), Resume::AsSaved), // the run's config.json's
        (true, true) => (args.config()?, Resume::Matching),
    };
    let run = RunDir::new(args.artifacts.clone().unwrap_or_else(|| {
        project_root()
            .join("artifacts")
            .join(fashion_mixer_run::run_dir::utc_timestamp())
    }));
    let options = TrainOptions {
        run,
        data_dir: args.data.locate()?,
        resume,
        tui: !args.no_tui && std::io::stdout().is_terminal(),
        progress: Progress::new(|line| println!("{line}")),
        distributed: None,
        // This process trains one run: Burn's log of it goes to its logs/experiment.log.
        experiment_log: true,
    };
    Ok((config, options))
}

/// `train --distributed` in a build without MPI.
#[cfg(not(feature = "mpi"))]
fn run_distributed(_: &TrainArgs) -> Result<()> {
    anyhow::bail!(crate::distributed::NOT_BUILT)
}

/// `train --distributed`: this rank's part of the training (each batch shared as `--slices`
/// says); rank 0 says how it ended, and what was wrong if any rank's flags or files were.
#[cfg(feature = "mpi")]
fn run_distributed(args: &TrainArgs) -> Result<()> {
    let mut rank = crate::distributed::Rank::join()?;
    rank.stall_after(std::time::Duration::from_secs(args.stall_timeout));
    let (config, mut options) = rank.agree(prepare(args))?;
    let slices = args.slices;
    let run = options.run.clone();
    options.run = rank.folder(&run)?;
    options.progress = rank.progress();
    options.tui &= rank.leads();
    options.distributed = Some(rank.distributed(slices));
    let result = train(config, &options);
    drop(options);
    let report = result.map_err(|e| rank.fail(e))?;
    if rank.leads() {
        let again = format!(
            "mpirun -np {} cargo xtask-mpi train --distributed",
            rank.size()
        );
        say_how_it_ended(&run, &report, &again);
    }
    if report.interrupted {
        rank.stopped();
    }
    Ok(())
}

/// The lines that close `train`: how far the run got, its report, how to resume it (with the
/// command `again`).
fn say_how_it_ended(run: &RunDir, report: &TrainReport, again: &str) {
    let total = report.config.epochs;
    if report.already_finished {
        println!(
            "{}: already finished ({total}/{total} epochs); nothing to do",
            run.root().display()
        );
        return;
    }
    match report.history.last() {
        Some(last) => println!(
            "{} epoch {}/{total}: train accuracy {:.2}%, test accuracy {:.2}%",
            if report.interrupted {
                "stopped after"
            } else {
                "finished"
            },
            last.epoch,
            100.0 * last.train_accuracy,
            100.0 * last.test_accuracy
        ),
        None => println!("stopped before the first epoch ended"),
    }
    if let Some(files) = &report.report {
        println!("report: {}", files.report.display());
        if !files.scored && !report.history.is_empty() {
            println!(
                "the record is not scored yet (a run stopped over several ranks): cargo xtask report --artifacts {}",
                run.root().display()
            );
        }
    }
    if report.interrupted {
        println!(
            "interrupted: every completed epoch is saved; continue with: {again} --artifacts {} --resume",
            run.root().display()
        );
    }
    println!("artifacts: {}", run.root().display());
}
