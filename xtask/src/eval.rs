//! `cargo xtask eval`: reload a run and score it on both splits.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fashion_mixer_data::CLASS_NAMES;
use fashion_mixer_model::Backend;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::evaluation::evaluate_with;
use fashion_mixer_run::inference::load_model;
use fashion_mixer_run::load_splits;

use crate::data::DataDirArg;

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// The run's folder (holds config.json and model.bpk) [default: artifacts/pretrained]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Backend to evaluate on [default: the run's]
    #[arg(long)]
    pub backend: Option<Backend>,
    /// Also score the test set with test-time augmentation: each image's and its left-right
    /// mirror's probabilities averaged (a separate figure; the plain one stays as it is)
    #[arg(long)]
    pub tta: bool,
    #[command(flatten)]
    pub data: DataDirArg,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let run = RunDir::new(
        args.artifacts
            .clone()
            .unwrap_or_else(crate::infer::pretrained),
    );
    let loaded = load_model(&run, args.backend)?;
    let (train, test) = load_splits(&args.data.locate()?, &loaded.config)?;
    let eval = evaluate_with(&run, &loaded, &train, &test, args.tta)?;
    println!(
        "record: {} (backend {})",
        run.root().join(&eval.record).display(),
        eval.backend
    );
    for (name, split) in [("train", &eval.train), ("test", &eval.test)] {
        println!(
            "{name:>5}: accuracy {:.2}%  loss {:.4}  ({} items)",
            100.0 * split.accuracy,
            split.loss,
            split.items
        );
    }
    let mirrored = eval
        .test_mirrored
        .as_ref()
        .expect("evaluate scores the mirrored test set");
    println!(
        " test, mirrored left-right: accuracy {:.2}%  loss {:.4}",
        100.0 * mirrored.accuracy,
        mirrored.loss
    );
    if let Some(tta) = &eval.test_flip_averaged {
        println!(
            " test, flip-averaged (TTA: each image and its mirror): accuracy {:.2}%  loss {:.4}",
            100.0 * tta.accuracy,
            tta.loss
        );
    }
    println!("per-class test accuracy (as given / mirrored):");
    for (c, name) in CLASS_NAMES.iter().enumerate() {
        println!(
            "  {name:<12} {:6.2}%  {:6.2}%",
            100.0 * eval.test.per_class_accuracy[c],
            100.0 * mirrored.per_class_accuracy[c]
        );
    }
    println!("wrote {}", run.eval().display());
    Ok(())
}
