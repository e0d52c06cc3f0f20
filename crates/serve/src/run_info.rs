//! What the server says of a run: its name (never a path), its configuration in one line,
//! `/api/model`'s facts, and what the page will lack for it.

use burn::module::Module;
use fashion_mixer_data::CLASS_NAMES;
use fashion_mixer_model::Activation;
use fashion_mixer_run::evaluation::current_evaluation;
use fashion_mixer_run::inference::LoadedModel;
use fashion_mixer_run::metrics::read_metrics;
use fashion_mixer_run::{LrSchedule, OptimizerKind, RunDir, TrainingConfig};
use serde_json::{Value, json};

/// The run's name: its folder's name, never the path to it (which a server must not show).
pub fn run_name(run: &RunDir) -> String {
    run.name()
}

/// The configuration in one line: the architecture, then the training recipe.
pub fn config_summary(config: &TrainingConfig) -> String {
    let m = &config.model;
    let mut parts = vec![match m.patch_stride {
        Some(stride) if stride != m.patch_size => {
            format!("{0}x{0} patches every {stride} px", m.patch_size)
        }
        _ => format!("{0}x{0} patches", m.patch_size),
    }];
    parts.push(format!(
        "{} features, {} blocks (token MLP {}, channel MLP {})",
        m.dim, m.depth, m.token_hidden, m.channel_hidden
    ));
    parts.extend(m.residual.then(|| "residual".to_string()));
    parts.extend(m.layer_norm.then(|| "LayerNorm".to_string()));
    parts.push(
        match m.activation {
            Activation::Relu => "ReLU",
            Activation::Gelu => "GELU",
        }
        .to_string(),
    );
    let optimizer = match config.optimizer {
        OptimizerKind::Sgd => "SGD",
        OptimizerKind::Adam => "Adam",
        OptimizerKind::AdamW => "AdamW",
    };
    let mut recipe = format!(
        "{optimizer} lr {} weight decay {}",
        config.lr, config.weight_decay
    );
    if config.lr_schedule == LrSchedule::Cosine {
        recipe.push_str(", cosine schedule");
    }
    for (value, name) in [
        (config.random_erasing, "random erasing"),
        (config.mixup, "mixup"),
        (config.cutmix, "cutmix"),
        (config.ema_decay, "weights averaged"),
    ] {
        if value > 0.0 {
            recipe.push_str(&format!(", {name} {value}"));
        }
    }
    // The teacher's folder by name only: the page names no path of the server's disk.
    if let Some(teacher) = config.distill_from.as_ref().and_then(|p| p.file_name()) {
        recipe.push_str(&format!(", distilled from {}", teacher.to_string_lossy()));
    }
    recipe.push_str(&format!(
        ", batch {}, {} epochs",
        config.batch_size, config.epochs
    ));
    format!("{}; {recipe}", parts.join(", "))
}

/// What `GET /api/model` says about the run in `run` whose model is `loaded`: its name (the
/// folder's, no path), a one-line summary and the configuration, parameter count, class names,
/// evaluation (`eval.json`, when it describes the record) and per-epoch metrics (for the
/// curves).
pub fn model_info(run: &RunDir, loaded: &LoadedModel) -> Value {
    let metrics: Vec<Value> = read_metrics(&run.metrics())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            json!({
                "epoch": m.epoch,
                "train_loss": m.train_loss,
                "train_accuracy": m.train_accuracy,
                "test_loss": m.test_loss,
                "test_accuracy": m.test_accuracy,
            })
        })
        .collect();
    let mut config = loaded.config.clone();
    // Where the weights started from: its name, not the server's path to it.
    config.init_from = config
        .init_from
        .as_deref()
        .and_then(|p| p.file_name())
        .map(Into::into);
    json!({
        "run": run_name(run),
        "record": run.relative(&loaded.record),
        "summary": config_summary(&config),
        "backend": loaded.backend.to_string(),
        "config": config,
        "parameters": loaded.model.num_params(),
        "classes": CLASS_NAMES,
        "evaluation": current_evaluation(run),
        "metrics": metrics,
    })
}

/// What the page will lack for the run in `run`, and why, in one line each: a `metrics.csv`
/// that does not read (no curves), an `eval.json` that is missing, unreadable or of another
/// record (no accuracy). A run without `metrics.csv` (an imported one) lacks nothing it had.
pub fn page_gaps(run: &RunDir) -> Vec<String> {
    let mut gaps = Vec::new();
    if run.metrics().exists()
        && let Err(e) = read_metrics(&run.metrics())
    {
        gaps.push(format!("{e}; the page shows no curves"));
    }
    if current_evaluation(run).is_none() {
        gaps.push(format!(
            "{}: missing, unreadable or not of this record; the page shows no accuracy \
             (`cargo xtask eval --artifacts {}` writes it)",
            run.eval().display(),
            run.root().display()
        ));
    }
    gaps
}
