//! The text of `report.md`, section by section: the heading, the results and what they mean,
//! notes on how to read the figures, the curves, the per-class accuracy, the hyperparameters and
//! one row per epoch.

use std::fmt::Write as _;
use std::path::Path;

use burn::module::Module;
use burn::prelude::Device;
use fashion_mixer_data::CLASS_NAMES;

use super::{pct, thousands};
use crate::config::TrainingConfig;
use crate::evaluation::Evaluation;
use crate::metrics::{EpochMetrics, RunSummary};

/// The text of `report.md`.
pub fn report_markdown(
    root: &Path,
    config: &TrainingConfig,
    metrics: &[EpochMetrics],
    eval: Option<&Evaluation>,
) -> String {
    let mut md = String::new();
    heading(&mut md, root, config, metrics);
    results(&mut md, metrics, eval);
    notes(&mut md, config);
    let _ = writeln!(md, "![loss](loss.png)\n\n![accuracy](accuracy.png)\n");
    per_class(&mut md, eval);
    hyperparameters(&mut md, config);
    per_epoch(&mut md, metrics);
    md
}

/// The title and one line: backend, seed, parameters, epochs done and whether the run finished.
fn heading(md: &mut String, root: &Path, config: &TrainingConfig, metrics: &[EpochMetrics]) {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| root.display().to_string());
    let params = config
        .model
        .init(&Device::flex())
        .map(|m| thousands(m.num_params()))
        .unwrap_or_else(|e| format!("(invalid model: {e})"));
    let _ = writeln!(md, "# Training report: {name}\n");
    let done = metrics.last().map_or(0, |m| m.epoch);
    let status = if done >= config.epochs {
        "finished".to_string()
    } else {
        format!("interrupted after epoch {done}")
    };
    let _ = writeln!(
        md,
        "Backend **{}**, seed {}, {} parameters; {done} of {} epochs ({status}).\n",
        config.backend, config.seed, params, config.epochs
    );
}

/// The final and best accuracies, the saved record's, the time per epoch, and whether the model
/// overfits.
fn results(md: &mut String, metrics: &[EpochMetrics], eval: Option<&Evaluation>) {
    let done = metrics.last().map_or(0, |m| m.epoch);
    let _ = writeln!(md, "## Results\n");
    if let Some(summary) = RunSummary::of(metrics) {
        let (last, best, best_train) = (summary.last, summary.best_test, summary.best_train);
        let _ = writeln!(md, "| | train | test |\n|---|---|---|");
        let _ = writeln!(
            md,
            "| final accuracy (epoch {}) | {} | {} |",
            last.epoch,
            pct(last.train_accuracy),
            pct(last.test_accuracy)
        );
        let _ = writeln!(
            md,
            "| best accuracy | {} (epoch {}) | {} (epoch {}) |",
            pct(best_train.train_accuracy),
            best_train.epoch,
            pct(best.test_accuracy),
            best.epoch
        );
        let _ = writeln!(
            md,
            "| final loss | {:.4} | {:.4} |",
            last.train_loss, last.test_loss
        );
        if let Some(eval) = eval {
            let _ = writeln!(
                md,
                "| accuracy of the saved record (`eval.json`) | {} | {} |",
                pct(eval.train.accuracy),
                pct(eval.test.accuracy)
            );
            if let Some(mirrored) = &eval.test_mirrored {
                let _ = writeln!(
                    md,
                    "| the same on the test set mirrored left-right | | {} |",
                    pct(mirrored.accuracy)
                );
            }
        }
        let _ = writeln!(
            md,
            "\nWall time per epoch (training and testing): median {:.1} s, total {:.1} min.\n",
            summary.median_epoch_seconds,
            summary.total_seconds / 60.0
        );
        // Train accuracy here is measured during the epoch, while the weights change; the
        // record's own (eval.json) is the fairer comparison when there is one.
        let (train, test, source) = match eval {
            Some(e) => (e.train.accuracy, e.test.accuracy, "the saved record"),
            None => (last.train_accuracy, last.test_accuracy, "the last epoch"),
        };
        let gap = 100.0 * (train - test);
        let verdict = if gap > 2.0 {
            "the model overfits: it fits the training images noticeably better than unseen ones"
        } else if gap > 0.5 {
            "slight overfitting"
        } else {
            "no sign of overfitting"
        };
        let _ = writeln!(
            md,
            "**Overfitting:** train accuracy exceeds test accuracy by {gap:.2} points ({source}): \
             {verdict}. Best test accuracy was at epoch {} of {done}.\n",
            best.epoch
        );
    } else {
        let _ = writeln!(md, "No epoch has completed yet.\n");
    }
}

/// What the per-epoch figures measure under this configuration's options, when that differs
/// from the plain reading.
fn notes(md: &mut String, config: &TrainingConfig) {
    let mut notes = Vec::new();
    if config.label_smoothing > 0.0 {
        notes.push(format!(
            "the train loss is the label-smoothed loss (smoothing {}), the test loss plain \
             cross-entropy, so the train loss stays above what plain cross-entropy would show",
            config.label_smoothing
        ));
    }
    if config.crop_padding > 0
        || config.horizontal_flip
        || config.random_erasing > 0.0
        || config.mixup > 0.0
        || config.cutmix > 0.0
        || config.model.dropout > 0.0
    {
        notes.push(
            "the train accuracy per epoch is measured on augmented images (and with dropout, when \
             on) while the weights change; the saved record's accuracy on the plain training \
             images (eval.json) is the fair comparison with the test accuracy"
                .to_string(),
        );
    }
    if config.mixup > 0.0 || config.cutmix > 0.0 {
        notes.push(
            "with mixup or cutmix each mixed training image is scored against its own label, \
             which is the smaller part of about half of them, so the train accuracy per epoch \
             sits far below the test accuracy (near 50% with mixup alpha 0.2)"
                .to_string(),
        );
    }
    if let Some(teacher) = &config.distill_from {
        notes.push(format!(
            "the train loss includes the divergence from the teacher's probabilities (`{}`, \
             share {}, temperature {})",
            teacher
                .file_name()
                .unwrap_or(teacher.as_os_str())
                .to_string_lossy(),
            config.distill_weight,
            config.distill_temperature
        ));
    }
    if config.ema_decay > 0.0 {
        notes.push(format!(
            "the test figures per epoch and the saved record are those of the moving average of \
             the weights (decay {}), the train figures per epoch those of the weights being \
             trained",
            config.ema_decay
        ));
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "Note: {}.\n", notes.join("; "));
    }
}

/// Per-class test accuracy (as given and mirrored) and the confusion matrix, from `eval.json`.
fn per_class(md: &mut String, eval: Option<&Evaluation>) {
    if let Some(eval) = eval {
        let _ = writeln!(
            md,
            "## Per-class test accuracy\n\n| class | accuracy | mirrored left-right |\n|---|---|---|"
        );
        for (c, (class, acc)) in CLASS_NAMES
            .iter()
            .zip(&eval.test.per_class_accuracy)
            .enumerate()
        {
            let mirrored = eval
                .test_mirrored
                .as_ref()
                .map_or("-".to_string(), |m| pct(m.per_class_accuracy[c]));
            let _ = writeln!(md, "| {class} | {} | {mirrored} |", pct(*acc));
        }
        let _ = writeln!(md, "\n![confusion matrix](confusion.png)\n");
    } else {
        let _ = writeln!(
            md,
            "No model record is evaluated (the run has none yet, or it was stopped over several \
             ranks: `cargo xtask report --artifacts <run>` scores it), so there is no per-class \
             accuracy or confusion matrix.\n"
        );
    }
}

/// Every field of `config.json`, nested ones by dotted name.
fn hyperparameters(md: &mut String, config: &TrainingConfig) {
    let _ = writeln!(
        md,
        "## Hyperparameters (config.json)\n\n| field | value |\n|---|---|"
    );
    let mut rows = Vec::new();
    flatten(
        "",
        &serde_json::to_value(config).expect("serialisable"),
        &mut rows,
    );
    for (field, value) in rows {
        let _ = writeln!(md, "| `{field}` | {value} |");
    }
}

/// One row per completed epoch.
fn per_epoch(md: &mut String, metrics: &[EpochMetrics]) {
    let _ = writeln!(
        md,
        "\n## Per epoch\n\n| epoch | train loss | train acc | test loss | test acc | lr | seconds |\n|---|---|---|---|---|---|---|"
    );
    for m in metrics {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {} | {:.4} | {} | {:.2e} | {:.1} |",
            m.epoch,
            m.train_loss,
            pct(m.train_accuracy),
            m.test_loss,
            pct(m.test_accuracy),
            m.learning_rate,
            m.epoch_seconds
        );
    }
}

/// Every field of a JSON object as `(dotted.name, value)` rows, nested objects flattened.
fn flatten(prefix: &str, value: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, value, rows);
            }
        }
        serde_json::Value::String(s) => rows.push((prefix.to_string(), s.clone())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}
