//! `train`: the Learner wiring (burn-train's `SupervisedTraining`), the run's folder, resume.

use std::path::{Path, PathBuf};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::prelude::Device;
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::{AccuracyMetric, CpuMemory, CpuUse, LearningRateMetric, LossMetric};
use burn::train::{
    ApplicationLoggerInstaller, FileApplicationLoggerInstaller, Interrupter, Learner,
    SupervisedTraining,
};
use fashion_mixer_data::FashionMnistBatcher;
use fashion_mixer_data::augment::Augmenter;
use fashion_mixer_data::mixing::Mixing;

use fashion_mixer_data::FashionMnistDataset;
use fashion_mixer_model::fpu;
use fashion_mixer_model::gpus::{self, Sharing};
use fashion_mixer_run::evaluation::evaluate_shared;
use fashion_mixer_run::inference::{load_model, load_teacher, record_path};
use fashion_mixer_run::metrics::{EpochMetrics, epochs_done, is_finished, read_metrics};
use fashion_mixer_run::report::{ReportFiles, report_run};
use fashion_mixer_run::run_dir::{
    RunLock, check_same_settings, load_config, save_config, write_atomic,
};
use fashion_mixer_run::{Progress, RunDir, RunError, TrainingConfig, load_splits};

use crate::checkpoint::AtomicFileCheckpointer;
use crate::distill::Distill;
use crate::distributed::{Distributed, Start};
use crate::epoch_logs::EpochLogs;
use crate::error::{DistributedError, TrainError};
use crate::ledger::{DivergenceSlot, EpochLedger};
use crate::metric_logger::CsvMetricLogger;
use crate::renderer::PlainRenderer;
use crate::signals::StopOnSignals;
use crate::training_model::TrainingModel;

/// The model `config` trains, on `device` (an autodiff one): freshly initialised, or from
/// `init_from` when `load_init`; with its moving average, started from those weights (on
/// resume the checkpoint replaces them), and its teacher, which the checkpoints do not hold.
pub fn training_model(
    config: &TrainingConfig,
    device: &Device,
    load_init: bool,
) -> Result<TrainingModel, TrainError> {
    let mut model = TrainingModel::init(config, device).map_err(RunError::from)?;
    if let (Some(source), true) = (&config.init_from, load_init) {
        model.model = fashion_mixer_export::safetensors::load_weights(model.model, source)?;
    }
    let distill = match &config.distill_from {
        Some(source) => Some(Distill {
            teacher: load_teacher(source, device)
                .map_err(|e| TrainError::Teacher(Box::new(e.into())))?,
            weight: config.distill_weight as f32,
            temperature: config.distill_temperature as f32,
        }),
        None => None,
    };
    Ok(model.with_ema(config.ema_decay).with_distill(distill))
}

/// A resumed run's teacher: `path` as given when it is absolute or found from the working
/// directory; otherwise under the nearest folder above the run that holds it (the `best`
/// preset's `artifacts/teacher`, resumed from another folder than it started in); otherwise
/// as given, for the error to name.
fn teacher_near(path: PathBuf, run: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path;
    }
    let run = std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf());
    run.ancestors()
        .skip(1)
        .map(|folder| folder.join(&path))
        .find(|candidate| candidate.exists())
        .unwrap_or(path)
}

/// Whether [`train`] starts a run or continues the one in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resume {
    /// A new run with the configuration given, in a folder that holds no run.
    #[default]
    No,
    /// Continue the run in the folder with its own `config.json`; the configuration given is
    /// not used.
    AsSaved,
    /// Continue the run in the folder, whose `config.json` must hold the configuration given
    /// (`train --resume` with training flags, a sweep's point): a run started with other
    /// settings is an error naming them ([`RunError::OtherSettings`]).
    Matching,
}

impl Resume {
    /// Whether the run in the folder is continued.
    pub fn continues(self) -> bool {
        self != Self::No
    }
}

/// How to run a training, beyond its configuration.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run's folder (with other ranks: this rank's own; rank 0's is the run).
    pub run: RunDir,
    /// Where the IDX files are.
    pub data_dir: PathBuf,
    /// Start a run in `run`, or continue the one there from its newest checkpoint.
    pub resume: Resume,
    /// Burn's terminal dashboard, when this process is in its terminal's foreground; otherwise
    /// one line per epoch through `progress`.
    pub tui: bool,
    /// Where the run's messages go without the dashboard (where it starts, one line per
    /// epoch).
    pub progress: Progress,
    /// The other processes training with this one, when the training is spread over several
    /// (`None`: this process alone).
    pub distributed: Option<Distributed>,
    /// Burn's application logger: the Learner's log records go to the run's
    /// `logs/experiment.log`, and a panic hook names that file. Both are process-wide and stay
    /// set after the training, so this is for a process that trains one run (the CLI's
    /// `train`); a second training in the same process would log into the first one's file.
    /// Off, nothing process-wide is touched and no `experiment.log` is written.
    pub experiment_log: bool,
}

/// How a training call ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// The configuration that ran (on resume: the one read from `config.json`).
    pub config: TrainingConfig,
    /// The epoch training started at (1 for a fresh run).
    pub first_epoch: usize,
    /// Every completed epoch's metrics, from `metrics.csv`.
    pub history: Vec<EpochMetrics>,
    /// Nothing was left to do: the run had finished before.
    pub already_finished: bool,
    /// Training was stopped before its last epoch (Ctrl-C in the dashboard).
    pub interrupted: bool,
    /// The report written at the end (`report.md` and its pictures); `None` when nothing ran
    /// (and on the ranks other than 0).
    pub report: Option<ReportFiles>,
}

/// Trains `config` (or, with `options.resume`, continues the run in `options.run`), on threads
/// that flush subnormals ([`fpu::flushed`]; the caller's thread keeps its mode).
///
/// Writes `config.json` first, a checkpoint per epoch (the last 2 kept), a `metrics.csv` row per
/// completed epoch, and `model.bpk` when the last epoch is done.
///
/// With `options.distributed`, every rank calls this with the same configuration: rank 0 decides
/// where training starts (its folder is the run; on resume it sends the others the
/// checkpoint), every rank trains its slice of each batch, and rank 0 writes the report.
pub fn train(config: TrainingConfig, options: &TrainOptions) -> Result<TrainReport, TrainError> {
    fpu::flushed(|| train_here(config, options))
}

/// Where training starts in `options.run` for a lone process or rank 0: a fresh run checked,
/// or a resumed run's configuration and checkpoint (the run's lock is put in `lock`).
fn find_start(
    config: TrainingConfig,
    options: &TrainOptions,
    lock: &mut Option<RunLock>,
) -> Result<Start, TrainError> {
    let run = &options.run;
    if !options.resume.continues() {
        config.validate().map_err(RunError::from)?;
        run.check_fresh()?;
        return Ok(Start {
            config,
            checkpoint: None,
            finished: false,
            files: Vec::new(),
        });
    }
    if !run.config().is_file() {
        return Err(RunError::NothingToResume {
            path: run.root().to_path_buf(),
            reason: "no config.json".into(),
        }
        .into());
    }
    *lock = Some(run.lock()?);
    let saved = load_config(run)?;
    if options.resume == Resume::Matching {
        check_same_settings(run, &saved, &config)?;
    }
    let config = saved;
    run.remove_stale_temp_files();
    let checkpoint = run.last_checkpoint();
    let finished = is_finished(run, config.epochs);
    // Rows are written once their checkpoint is on disk, and the record once the last epoch
    // is: rows past the newest checkpoint, or a record without any checkpoint, mean that the
    // checkpoints are gone (an imported run, checkpoint/ removed). Training from the last
    // checkpoint, or from the start, would write over those epochs and that record.
    let done = epochs_done(run);
    let lost = if done > checkpoint.unwrap_or(0) {
        Some(format!(
            "metrics.csv holds epochs up to {done} but checkpoint/ {}",
            checkpoint.map_or("holds none".to_string(), |e| format!("only epoch {e}"))
        ))
    } else if checkpoint.is_none() && run.model().is_file() {
        Some("it holds a model record (model.bpk) but no checkpoint to go on from".to_string())
    } else {
        None
    };
    if let (false, Some(lost)) = (finished, lost) {
        return Err(RunError::NothingToResume {
            path: run.root().to_path_buf(),
            reason: format!(
                "{lost}; to train on from its weights, start a new run with --init-from {}",
                run.root().display()
            ),
        }
        .into());
    }
    let mut start = match &options.distributed {
        // The other ranks need the files to resume from.
        Some(_) if !finished => Start::resumed(config, run, checkpoint)?,
        _ => Start {
            config,
            checkpoint,
            finished: false,
            files: Vec::new(),
        },
    };
    start.finished = finished;
    Ok(start)
}

/// [`train`], on the calling thread.
fn train_here(config: TrainingConfig, options: &TrainOptions) -> Result<TrainReport, TrainError> {
    let run = &options.run;
    let distributed = options.distributed.as_ref();
    let leader = distributed.is_none_or(|d| d.rank() == 0);
    // One writer per run folder: held until this function returns.
    let mut lock = None;
    let own_config = config.clone();
    let start = match distributed {
        Some(d) if d.rank() != 0 => d.receive_start(run)?,
        _ => {
            let start = find_start(config, options, &mut lock);
            if let Some(d) = distributed {
                d.send_start(start.as_ref().ok());
                // What stops rank 0 here stops every rank; rank 0 says why.
                start.map_err(|e| DistributedError::Start(Box::new(e)))?
            } else {
                start?
            }
        }
    };
    let Start {
        config,
        checkpoint,
        finished,
        ..
    } = start;
    if finished {
        return Ok(TrainReport {
            history: if leader {
                read_metrics(&run.metrics())?
            } else {
                Vec::new()
            },
            first_epoch: config.epochs + 1,
            config,
            already_finished: true,
            interrupted: false,
            report: None,
        });
    }
    let resumed = checkpoint.is_some() || (options.resume.continues() && leader);
    let first_epoch = checkpoint.unwrap_or(0) + 1;

    // The data, the device and the starting weights first: a run that cannot start leaves no
    // folder behind to block the next try.
    let (train_set, test_set) = load_splits(&options.data_dir, &config)?;
    if let Some(d) = distributed {
        // A fresh run's ranks each hold their own configuration; a resumed one's, rank 0's.
        let compared = if options.resume.continues() {
            &config
        } else {
            &own_config
        };
        d.check_alike(compared, &train_set, &test_set)?;
    }
    let device = config.backend.device().map_err(RunError::from)?;
    device.seed(config.seed);
    let mut build = config.clone();
    if options.resume.continues() {
        build.distill_from = build.distill_from.map(|p| teacher_near(p, run.root()));
    }
    let model = training_model(&build, &device.clone().autodiff(), checkpoint.is_none())?;
    if let Some(d) = distributed {
        let teacher = model.distill.as_ref().map(|distill| &distill.teacher);
        d.check_weights(&model.model, teacher)?;
        d.seed_draws(&device, config.seed);
    }
    let model = model
        .with_distributed((options.distributed.clone()).map(|d| d.for_backend(config.backend)));
    if !resumed || !leader {
        run.create()?;
        lock = Some(run.lock()?);
        // Another process may have started a run here since the check above.
        if !resumed {
            run.check_fresh()?;
        }
        save_config(run, &config)?;
    }
    let _lock = lock;

    // Training batches are shuffled and (when asked) augmented; test batches are neither.
    let loader = |batcher: FashionMnistBatcher| {
        DataLoaderBuilder::new(batcher)
            .batch_size(config.batch_size)
            .num_workers(config.workers)
    };
    let train_items = train_set.len();
    let batches_done = (first_epoch - 1) * train_items.div_ceil(config.batch_size);
    let augmenter = Augmenter::new(config.crop_padding, config.horizontal_flip, config.seed)
        .with_erasing(config.random_erasing)
        .with_mixing(Mixing {
            mixup: config.mixup,
            cutmix: config.cutmix,
        })
        .skipping(batches_done as u64);
    let splits = (train_set.clone(), test_set.clone());
    let loader_train = loader(FashionMnistBatcher::augmented(augmenter))
        .shuffle(config.seed)
        .build(train_set);
    let loader_test = loader(FashionMnistBatcher::default()).build(test_set);
    let scheduler = crate::schedule::scheduler(&config, train_items);

    let checkpoints = run.checkpoints();
    // Alone, stop requests stop the Learner; with other ranks, they travel with the next
    // step's reduction, which stops the Learner on every rank after the same step.
    let (learner_stop, stop_requests) = match distributed {
        Some(d) => (d.learner().clone(), d.requests().clone()),
        None => {
            let interrupter = Interrupter::new();
            (interrupter.clone(), interrupter)
        }
    };
    let divergence = DivergenceSlot::default();
    let ledger = EpochLedger::new(run.clone(), stop_requests.clone());
    // The dashboard shows progress itself; otherwise it goes to the caller's sink. The ranks
    // other than 0 say nothing. Only a process in the terminal's foreground may draw it.
    let tui = options.tui && leader && crate::terminal::in_foreground();
    let plain = if tui || !leader {
        Progress::silent()
    } else {
        options.progress.clone()
    };
    if options.tui && leader && !tui {
        plain.emit(
            "no dashboard: this process is not in its terminal's foreground (as under mpirun, \
             or started with &); one line per epoch instead",
        );
    }
    let mut training = SupervisedTraining::new(run.logs(), loader_train, loader_test)
        .with_application_logger(options.experiment_log.then(|| {
            Box::new(FileApplicationLoggerInstaller::new(run.experiment_log()))
                as Box<dyn ApplicationLoggerInstaller>
        }))
        .with_interrupter(learner_stop.clone())
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(CpuUse::new())
        .metric_train_numeric(CpuMemory::new())
        .with_metric_logger(EpochLogs::new(run.logs(), ledger.clone()))
        .with_metric_logger(
            CsvMetricLogger::new(ledger.clone(), config.epochs, plain.clone())
                .with_interrupter(learner_stop.clone(), divergence.clone())
                .with_stop_requests(stop_requests.clone()),
        )
        .with_custom_checkpointers(
            AtomicFileCheckpointer::new(&checkpoints, "model", ledger.clone())?,
            AtomicFileCheckpointer::new(&checkpoints, "optim", ledger.clone())?,
            AtomicFileCheckpointer::new(&checkpoints, "scheduler", ledger.clone())?,
        )
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(2))
        .num_epochs(config.epochs);
    if leader {
        training = training.summary();
    }
    if !tui {
        training = training.renderer(Box::new(PlainRenderer::new(plain.clone())));
        let ranks = distributed.map_or(String::new(), |d| match d.size() {
            1 => " (1 rank)".to_string(),
            n => format!(" ({n} ranks, each its share of a batch{})", gpus_line()),
        });
        plain.emit(&format!(
            "run {}: {} on {}{ranks}, {} training items, batch {}",
            run.root().display(),
            config.optimizer.name(),
            config.backend,
            train_items,
            config.batch_size
        ));
    }
    if let Some(epoch) = checkpoint {
        training = training.checkpoint(epoch);
    }

    let signals = StopOnSignals::install(stop_requests, tui).map_err(TrainError::Signals)?;
    let optimizer = crate::optimizer::optimizer(&config);
    let result = training.launch(Learner::new(model, optimizer, scheduler));
    drop(signals);
    ledger.flush();
    if let Some(failure) = ledger.failure() {
        // A full disk, say: the folder holds every epoch up to the last complete one.
        return Err(TrainError::WriteFailed {
            path: failure.path,
            cause: failure.cause,
            kept: read_metrics(&run.metrics())
                .ok()
                .and_then(|rows| rows.last().map(|r| r.epoch)),
            run: run.root().to_path_buf(),
        });
    }
    if let Some(error) = result.error {
        return Err(TrainError::Training(error.to_string()));
    }
    let diverged = *divergence.lock().expect("not poisoned");
    if let Some(at) = diverged {
        // The record of the last good epoch stays; report on it, then say what happened.
        report(run, splits, distributed, false)?;
        return Err(TrainError::Diverged {
            at,
            checkpoint: run
                .last_checkpoint()
                .map(|epoch| run.checkpoint_model(epoch)),
        });
    }
    // Interrupted: the Learner says so, or (the dashboard resets its stop flag when it closes)
    // fewer epochs than configured have a row. Only a complete run gets `model.bpk`.
    let history = read_metrics(&run.metrics())?;
    let completed = history.last().map_or(0, |m| m.epoch);
    let interrupted = result.interrupted.is_some() || completed < config.epochs;
    if !interrupted {
        // The moving average of the weights, when one was kept.
        let bytes = result
            .model
            .into_scored()
            .into_record()
            .into_bytes()
            .map_err(|e| RunError::BadRecord {
                path: run.model(),
                message: e.to_string(),
            })?;
        write_atomic(&run.model(), &bytes)?;
    }
    // Pictures and report.md, for finished and interrupted runs alike.
    let report = report(run, splits, distributed, interrupted)?;
    Ok(TrainReport {
        history,
        config,
        first_epoch,
        already_finished: false,
        interrupted,
        report,
    })
}

/// How the ranks of rank 0's machine share its GPUs, where wgpu started among several of them:
/// `; ...` to close the line that starts a distributed run, or nothing.
fn gpus_line() -> String {
    match gpus::sharing() {
        None => String::new(),
        Some(Sharing::InTurn { processes, gpus }) => {
            format!("; this machine's {processes} ranks take its {gpus} GPUs in turn")
        }
        Some(Sharing::One { processes }) => {
            format!("; this machine's {processes} ranks share its one wgpu adapter")
        }
        Some(Sharing::Named) => format!(
            "; each rank on the adapter {} names",
            gpus::ADAPTER_VARIABLE
        ),
    }
}

/// `eval.json`, `report.md` and the pictures of the run in `run`, its record scored on
/// `splits`; with other ranks, each scores its share of every split (from its own folder's
/// record, the same weights as rank 0's), and rank 0 alone writes the report.
///
/// Ranks that were `interrupted` score nothing: Open MPI's `mpirun` passes Ctrl-C on as SIGTERM
/// a second later and kills the ranks a second after that (`odls_base_sigkill_timeout`), too
/// soon to score 70,000 images, so rank 0 writes the curves and the table at once and
/// `cargo xtask report` scores the record.
fn report(
    run: &RunDir,
    splits: (FashionMnistDataset, FashionMnistDataset),
    distributed: Option<&Distributed>,
    interrupted: bool,
) -> Result<Option<ReportFiles>, TrainError> {
    let Some(d) = distributed else {
        return Ok(Some(report_run::<TrainError>(run, |_| Ok(Some(splits)))?));
    };
    // Every rank has a record or none alike: the same checkpoints, the same end.
    if !interrupted && record_path(run).is_ok() {
        let loaded = load_model(run, None)?;
        evaluate_shared(run, &loaded, &splits.0, &splits.1, d)?;
    }
    if d.rank() != 0 {
        return Ok(None);
    }
    Ok(Some(report_run::<TrainError>(run, |_| Ok(None))?))
}

#[cfg(test)]
mod tests {
    use super::teacher_near;

    #[test]
    fn a_resumed_runs_relative_teacher_is_found_above_the_run() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        let run = project.join("artifacts").join("student");
        std::fs::create_dir_all(project.join("artifacts/teacher")).unwrap();
        std::fs::create_dir_all(&run).unwrap();
        let relative = std::path::PathBuf::from("artifacts/teacher");
        assert!(
            !relative.exists(),
            "the test's working directory holds no such folder"
        );
        assert_eq!(
            teacher_near(relative.clone(), &run),
            project.join("artifacts/teacher")
        );
        // Not found anywhere: as given, for the error to name; absolute paths as they are.
        let missing = std::path::PathBuf::from("artifacts/no-such-run");
        assert_eq!(teacher_near(missing.clone(), &run), missing);
        let absolute = tmp.path().join("elsewhere");
        assert_eq!(teacher_near(absolute.clone(), &run), absolute);
    }
}
