//! `eval`: accuracy and loss of a saved model on both splits, per-class test accuracy.

use std::ops::Range;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::nn::loss::CrossEntropyLossConfig;
use fashion_mixer_data::{FashionMnistBatcher, FashionMnistDataset, NUM_CLASSES};
use serde::{Deserialize, Serialize};

use fashion_mixer_model::fpu;

use crate::error::RunError;
use crate::inference::{LoadedModel, record_path};
use crate::run_dir::{RunDir, write_atomic};

/// How a model does on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitScore {
    /// Items evaluated.
    pub items: usize,
    /// Fraction classified correctly, in [0, 1].
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy of each class (items of that class classified correctly / items of that class).
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// What `eval` measures and writes to `eval.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The record evaluated, relative to the run's folder (`model.bpk`, or a checkpoint of an
    /// unfinished run), so the file stays the same wherever the folder is.
    pub record: String,
    /// The MD5 of the record's bytes, so `eval.json` is known to describe the record it sits
    /// beside wherever the folder is copied or checked out (file times are not kept by git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_md5: Option<String>,
    /// The backend that ran it.
    pub backend: String,
    /// On the training split.
    pub train: SplitScore,
    /// On the test split.
    pub test: SplitScore,
    /// On the test split mirrored left-right (labels unchanged): how the model does on garments
    /// facing the other way. Absent from `eval.json` files written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_mirrored: Option<SplitScore>,
    /// On the test split with each image's and its mirror's probabilities averaged (test-time
    /// augmentation, `eval --tta`): a separate figure, never in place of `test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_flip_averaged: Option<SplitScore>,
}

/// The MD5 of the file at `path`, in hex; `None` when it cannot be read.
pub fn file_md5(path: &std::path::Path) -> Option<String> {
    use md5::{Digest, Md5};
    let digest = Md5::digest(std::fs::read(path).ok()?);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// How an evaluation is shared by processes that hold the same model (the ranks of a
/// distributed training): each scores its part of every split, and their counts and losses are
/// summed.
pub trait Reduce {
    /// The part of `items` this process scores.
    fn part(&self, items: usize) -> Range<usize>;
    /// Sums `values` over the processes, in place, on every one.
    fn sum(&self, values: &mut [f64]);
}

/// Scores `model` on every item of `dataset`, `batch_size` items at a time, on threads that
/// flush subnormals ([`fpu::flushed`]).
pub fn score(loaded: &LoadedModel, dataset: &FashionMnistDataset, batch_size: usize) -> SplitScore {
    score_shared(loaded, dataset, batch_size, None)
}

/// [`score`], this process's part of `dataset` only when `reduce` shares the work, the
/// processes' counts summed.
pub fn score_shared(
    loaded: &LoadedModel,
    dataset: &FashionMnistDataset,
    batch_size: usize,
    reduce: Option<&(dyn Reduce + Sync)>,
) -> SplitScore {
    let items = reduce.map_or(0..dataset.len(), |r| r.part(dataset.len()));
    let (mut confusion, mut loss_sum) =
        fpu::flushed(|| score_here(loaded, dataset, items, batch_size));
    if let Some(reduce) = reduce {
        let mut values: Vec<f64> = confusion.iter().flatten().map(|&n| n as f64).collect();
        values.push(loss_sum);
        reduce.sum(&mut values);
        loss_sum = values.pop().expect("the loss");
        for (count, value) in confusion.iter_mut().flatten().zip(values) {
            *count = value.round() as usize;
        }
    }
    from_confusion(confusion, loss_sum)
}

/// The confusion matrix and summed loss of the `items` of `dataset`, on the calling thread.
fn score_here(
    loaded: &LoadedModel,
    dataset: &FashionMnistDataset,
    items: Range<usize>,
    batch_size: usize,
) -> (Vec<Vec<usize>>, f64) {
    let batcher = FashionMnistBatcher::default();
    let loss_fn = CrossEntropyLossConfig::new().init(&loaded.device);
    let mut confusion = vec![vec![0usize; NUM_CLASSES]; NUM_CLASSES];
    let mut loss_sum = 0.0f64;
    let indices: Vec<usize> = items.collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let items = dataset
            .get_many(chunk.to_vec())
            .expect("in-memory items are always there");
        let batch = batcher.batch(items, &loaded.device);
        let logits = loaded.model.forward(batch.images); // [n, classes]
        let loss = loss_fn.forward(logits.clone(), batch.targets.clone());
        loss_sum += f64::from(loss.into_scalar::<f32>()) * chunk.len() as f64;
        let predicted = logits.argmax(1).into_data().convert::<i64>();
        let predicted = predicted.try_to_vec::<i64>().expect("argmax is integral");
        for (&index, &p) in chunk.iter().zip(&predicted) {
            confusion[dataset.labels()[index] as usize][p as usize] += 1;
        }
    }
    (confusion, loss_sum)
}

/// The score of a split from its confusion matrix and summed loss.
fn from_confusion(confusion: Vec<Vec<usize>>, loss_sum: f64) -> SplitScore {
    let items: usize = confusion.iter().flatten().sum();
    let correct: usize = (0..NUM_CLASSES).map(|c| confusion[c][c]).sum();
    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: usize = row.iter().sum();
            if n == 0 {
                0.0
            } else {
                row[c] as f64 / n as f64
            }
        })
        .collect();
    SplitScore {
        items,
        accuracy: correct as f64 / items.max(1) as f64,
        loss: loss_sum / items.max(1) as f64,
        per_class_accuracy,
        confusion,
    }
}

/// Scores `loaded` on `dataset` with test-time augmentation: each image and its left-right
/// mirror go through the model, and the mean of their two softmaxes decides; the loss is the
/// cross-entropy of that mean.
pub fn score_flip_averaged(loaded: &LoadedModel, dataset: &FashionMnistDataset) -> SplitScore {
    let mut confusion = vec![vec![0usize; NUM_CLASSES]; NUM_CLASSES];
    let mut loss_sum = 0.0f64;
    let indices: Vec<usize> = (0..dataset.len()).collect();
    for chunk in indices.chunks(crate::inference::PREDICT_BATCH / 2) {
        let items = dataset
            .get_many(chunk.to_vec())
            .expect("in-memory items are always there");
        let images: Vec<_> = items.iter().map(|item| item.image).collect();
        for (item, prediction) in items.iter().zip(loaded.predict_either_way(&images)) {
            let p = &prediction.probabilities;
            let predicted = (0..NUM_CLASSES)
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .expect("ten classes");
            confusion[item.label as usize][predicted] += 1;
            loss_sum -= f64::from(p[item.label as usize])
                .max(f64::MIN_POSITIVE)
                .ln();
        }
    }
    from_confusion(confusion, loss_sum)
}

/// Scores the loaded model on both splits and on the mirrored test split, and writes
/// `eval.json` into the run.
pub fn evaluate(
    run: &RunDir,
    loaded: &LoadedModel,
    train: &FashionMnistDataset,
    test: &FashionMnistDataset,
) -> Result<Evaluation, RunError> {
    evaluate_with(run, loaded, train, test, false)
}

/// [`evaluate`], and with `flip_averaged` the test split scored with test-time augmentation
/// too ([`score_flip_averaged`]), as a figure of its own.
pub fn evaluate_with(
    run: &RunDir,
    loaded: &LoadedModel,
    train: &FashionMnistDataset,
    test: &FashionMnistDataset,
    flip_averaged: bool,
) -> Result<Evaluation, RunError> {
    evaluate_scored(run, loaded, train, test, flip_averaged, None)
}

/// [`evaluate`], the work shared by the processes of `reduce` (each writes `eval.json` into its
/// own `run`).
pub fn evaluate_shared(
    run: &RunDir,
    loaded: &LoadedModel,
    train: &FashionMnistDataset,
    test: &FashionMnistDataset,
    reduce: &(dyn Reduce + Sync),
) -> Result<Evaluation, RunError> {
    evaluate_scored(run, loaded, train, test, false, Some(reduce))
}

/// Scores both splits and the mirrored test split (and, asked, the flip-averaged one), each
/// shared by `reduce` when given; writes `eval.json`.
fn evaluate_scored(
    run: &RunDir,
    loaded: &LoadedModel,
    train: &FashionMnistDataset,
    test: &FashionMnistDataset,
    flip_averaged: bool,
    reduce: Option<&(dyn Reduce + Sync)>,
) -> Result<Evaluation, RunError> {
    let batch_size = loaded.config.batch_size;
    let score = |dataset: &FashionMnistDataset| score_shared(loaded, dataset, batch_size, reduce);
    let evaluation = Evaluation {
        record: run.relative(&loaded.record),
        record_md5: file_md5(&loaded.record),
        backend: loaded.backend.to_string(),
        train: score(train),
        test: score(test),
        test_mirrored: Some(score(&test.mirrored())),
        test_flip_averaged: flip_averaged.then(|| score_flip_averaged(loaded, test)),
    };
    let json = serde_json::to_string_pretty(&evaluation).expect("serialisable");
    write_atomic(&run.eval(), json.as_bytes())?;
    Ok(evaluation)
}
/// `eval.json` when it still describes the run's record: the same record, by its MD5 (or, for
/// files written before the MD5 was kept, written after the record).
pub fn current_evaluation(run: &RunDir) -> Option<Evaluation> {
    let record = record_path(run).ok()?;
    let eval: Evaluation = serde_json::from_slice(&std::fs::read(run.eval()).ok()?).ok()?;
    if eval.record != run.relative(&record) {
        return None;
    }
    match &eval.record_md5 {
        Some(md5) => (file_md5(&record).as_ref() == Some(md5)).then_some(eval),
        None => {
            let modified =
                |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            (modified(&run.eval())? >= modified(&record)?).then_some(eval)
        }
    }
}
