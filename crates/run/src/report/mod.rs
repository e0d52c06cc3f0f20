//! A run's pictures and report, made from its `metrics.csv` and (when the run has a record)
//! `eval.json`: `loss.png`, `accuracy.png`, `confusion.png` and `report.md`.

mod markdown;
pub mod plot;

use std::path::PathBuf;

use fashion_mixer_data::FashionMnistDataset;

pub use self::markdown::report_markdown;
use crate::config::TrainingConfig;
use crate::error::RunError;
use crate::evaluation::{Evaluation, current_evaluation, evaluate};
use crate::inference::{load_model, record_path};
use crate::metrics::{EpochMetrics, read_metrics};
use crate::report::plot::{PlotError, Series, confusion_chart, line_chart, y_range};
use crate::run_dir::{RunDir, load_config, write_atomic};

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.md`.
    pub report: PathBuf,
    /// The pictures written (`confusion.png` only when there was an evaluation).
    pub pictures: Vec<PathBuf>,
    /// Whether the report holds the record's evaluation (`eval.json`).
    pub scored: bool,
}

/// Writes the picture `png` (as drawn, or why it could not be) to `path`.
fn picture(path: PathBuf, png: Result<Vec<u8>, PlotError>) -> Result<PathBuf, RunError> {
    let png = png.map_err(|source| RunError::Plot {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, &png)?;
    Ok(path)
}

/// `n` with a comma between each group of three digits (143,786).
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fraction as a percentage with two decimals (93.36%).
pub fn pct(fraction: f64) -> String {
    format!("{:.2}%", 100.0 * fraction)
}

/// Writes `loss.png`, `accuracy.png`, `confusion.png` (when `eval` is given) and `report.md`
/// into `run`, each atomically.
pub fn write_report(
    run: &RunDir,
    config: &TrainingConfig,
    metrics: &[EpochMetrics],
    eval: Option<&Evaluation>,
) -> Result<ReportFiles, RunError> {
    let epochs = |f: fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        metrics.iter().map(|m| (m.epoch as f64, f(m))).collect()
    };
    let series = |train: fn(&EpochMetrics) -> f64, test: fn(&EpochMetrics) -> f64| {
        vec![
            Series {
                label: "train".into(),
                points: epochs(train),
            },
            Series {
                label: "test".into(),
                points: epochs(test),
            },
        ]
    };
    let loss = series(|m| m.train_loss, |m| m.test_loss);
    let accuracy = series(|m| 100.0 * m.train_accuracy, |m| 100.0 * m.test_accuracy);
    let mut pictures = vec![
        picture(
            run.root().join("loss.png"),
            line_chart(
                "Cross-entropy loss per epoch",
                "loss",
                &loss,
                y_range(&loss, 0.0..f64::INFINITY),
            ),
        )?,
        picture(
            run.root().join("accuracy.png"),
            line_chart(
                "Accuracy per epoch",
                "accuracy (%)",
                &accuracy,
                y_range(&accuracy, 0.0..100.0),
            ),
        )?,
    ];
    if let Some(eval) = eval {
        pictures.push(picture(
            run.root().join("confusion.png"),
            confusion_chart(&eval.test.confusion),
        )?);
    }

    let md = report_markdown(run.root(), config, metrics, eval);
    let report = run.root().join("report.md");
    write_atomic(&report, md.as_bytes())?;
    Ok(ReportFiles {
        report,
        pictures,
        scored: eval.is_some(),
    })
}

/// The train and test splits, when a report needs them and has them.
pub type Splits = Option<(FashionMnistDataset, FashionMnistDataset)>;

/// Reports on the run in `run` from its `config.json` and `metrics.csv`. The record (the final
/// one, or the newest checkpoint of an interrupted run) is scored, writing `eval.json`, unless
/// an up-to-date `eval.json` exists: only then is `splits` called for the data (`Ok(None)`:
/// no evaluation). Without a record there is no evaluation and no confusion matrix.
pub fn report_run<E: From<RunError>>(
    run: &RunDir,
    splits: impl FnOnce(&TrainingConfig) -> Result<Splits, E>,
) -> Result<ReportFiles, E> {
    let config = load_config(run)?;
    let metrics = read_metrics(&run.metrics())?;
    let eval = match current_evaluation(run) {
        Some(eval) => Some(eval),
        None if record_path(run).is_ok() => match splits(&config)? {
            Some((train, test)) => Some(evaluate(run, &load_model(run, None)?, &train, &test)?),
            None => None,
        },
        None => None,
    };
    Ok(write_report(run, &config, &metrics, eval.as_ref())?)
}
