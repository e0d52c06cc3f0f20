//! A model card: the `README.md` that `export` writes beside the weights, in Hugging Face's
//! format (a YAML header of library, license, data set and metrics, then prose), made from the
//! run's own `config.json`, `eval.json` and `metrics.csv`.

use std::fmt::Write as _;

use fashion_mixer_data::{CLASS_NAMES, MEAN, STD};
use fashion_mixer_model::Activation;

use fashion_mixer_run::evaluation::Evaluation;
use fashion_mixer_run::metrics::{EpochMetrics, RunSummary};
use fashion_mixer_run::report::{pct as percent, thousands};
use fashion_mixer_run::{LrSchedule, OptimizerKind, TrainingConfig};

/// The first line a model card written here has after its `---`: how a later export knows it
/// may replace the file.
pub const CARD_MARK: &str = "library_name: fashion-mixer";

/// What a model card is made from.
#[derive(Debug, Clone, Copy)]
pub struct CardInputs<'a> {
    /// The run's name.
    pub name: &'a str,
    /// Its configuration.
    pub config: &'a TrainingConfig,
    /// Its parameter count.
    pub parameters: usize,
    /// Its `eval.json`, when it describes the record.
    pub evaluation: Option<&'a Evaluation>,
    /// Its `metrics.csv`.
    pub history: &'a [EpochMetrics],
    /// The weights' file name beside the card (`model.onnx`, `model.safetensors`).
    pub weights: &'a str,
}

/// The model card's text.
pub fn model_card(c: CardInputs) -> String {
    let mut out = String::new();
    header(&mut out, &c);
    architecture(&mut out, &c);
    training(&mut out, &c);
    results(&mut out, &c);
    input(&mut out);
    usage(&mut out, &c);
    out
}

/// Whether the card stands beside `model.onnx` (else `model.safetensors`).
fn onnx(c: &CardInputs) -> bool {
    c.weights.ends_with(".onnx")
}

/// The YAML header: library, license, data set, metrics, tags and the test accuracies.
fn header(out: &mut String, c: &CardInputs) {
    let _ = writeln!(out, "---\n{CARD_MARK}\nlicense: mit");
    let _ = writeln!(out, "datasets:\n- zalando-datasets/fashion_mnist");
    let _ = writeln!(
        out,
        "metrics:\n- accuracy\npipeline_tag: image-classification"
    );
    let format = if onnx(c) { "onnx" } else { "safetensors" };
    let _ = writeln!(
        out,
        "tags:\n- fashion-mnist\n- mlp-mixer\n- burn\n- {format}"
    );
    if let Some(e) = c.evaluation {
        let _ = writeln!(
            out,
            "model-index:\n- name: {}\n  results:\n  - task:\n      type: image-classification\n    \
             dataset:\n      name: Fashion-MNIST\n      type: zalando-datasets/fashion_mnist\n      \
             split: test\n    metrics:\n    - type: accuracy\n      name: test accuracy\n      \
             value: {:.2}",
            c.name,
            100.0 * e.test.accuracy
        );
        if let Some(mirrored) = &e.test_mirrored {
            let _ = writeln!(
                out,
                "    - type: accuracy\n      name: test accuracy, images mirrored left-right\n      \
                 value: {:.2}",
                100.0 * mirrored.accuracy
            );
        }
    }
    let _ = writeln!(out, "---\n");
}

/// The title and the architecture in words, with its switches.
fn architecture(out: &mut String, c: &CardInputs) {
    let m = &c.config.model;
    let _ = writeln!(out, "# {}: an all-MLP Mixer for Fashion-MNIST\n", c.name);
    let _ = writeln!(
        out,
        "A patch classifier with no convolution and no attention, trained with fashion-mixer \
         (Rust, on [Burn](https://burn.dev) 0.22): {}x{} patches of the 28x28 image{} \
         are each mapped to {} features; {} blocks each mix across patches (token MLP, {} hidden \
         units) and across features (channel MLP, {} hidden units); the features are averaged \
         over patches and a linear layer gives the 10 logits. {} parameters.\n",
        m.patch_size,
        m.patch_size,
        match m.patch_stride {
            Some(s) if s != m.patch_size => format!(" every {s} pixels (overlapping)"),
            _ => String::new(),
        },
        m.dim,
        m.depth,
        m.token_hidden,
        m.channel_hidden,
        thousands(c.parameters)
    );
    let switches: Vec<&str> = [
        (
            m.residual,
            "residual connections around both halves of every block",
        ),
        (
            m.layer_norm,
            "LayerNorm before each half and before the pooling",
        ),
        (m.activation == Activation::Gelu, "GELU"),
    ]
    .into_iter()
    .filter_map(|(on, text)| on.then_some(text))
    .collect();
    if !switches.is_empty() {
        let _ = writeln!(out, "With {}.\n", switches.join(", "));
    }
}

/// The training recipe, one row per setting, and the last epoch's accuracies.
fn training(out: &mut String, c: &CardInputs) {
    let m = &c.config.model;
    let _ = writeln!(out, "## Training\n\n| setting | value |\n|---|---|");
    let optimizer = match c.config.optimizer {
        OptimizerKind::Sgd => format!("SGD, momentum {}", c.config.momentum),
        OptimizerKind::Adam => "Adam (L2 weight decay)".into(),
        OptimizerKind::AdamW => "AdamW (decoupled weight decay)".into(),
    };
    let schedule = match c.config.lr_schedule {
        LrSchedule::Constant => "constant".to_string(),
        LrSchedule::Cosine => format!("cosine to {}", c.config.min_lr),
    };
    for (k, v) in [
        ("optimizer", optimizer),
        ("learning rate", c.config.lr.to_string()),
        ("weight decay", c.config.weight_decay.to_string()),
        ("schedule", schedule),
        ("warm-up epochs", c.config.warmup_epochs.to_string()),
        ("batch size", c.config.batch_size.to_string()),
        ("epochs", c.config.epochs.to_string()),
        ("label smoothing", c.config.label_smoothing.to_string()),
        (
            "distilled from",
            match &c.config.distill_from {
                Some(teacher) => format!(
                    "the run `{}` (share {}, temperature {})",
                    teacher
                        .file_name()
                        .unwrap_or(teacher.as_os_str())
                        .to_string_lossy(),
                    c.config.distill_weight,
                    c.config.distill_temperature
                ),
                None => "no".to_string(),
            },
        ),
        (
            "weights averaged (EMA decay)",
            if c.config.ema_decay > 0.0 {
                c.config.ema_decay.to_string()
            } else {
                "no".to_string()
            },
        ),
        (
            "augmentation",
            [
                (c.config.crop_padding > 0)
                    .then(|| format!("shifts of up to {} px", c.config.crop_padding)),
                c.config
                    .horizontal_flip
                    .then(|| "left-right flips".to_string()),
                (c.config.random_erasing > 0.0)
                    .then(|| format!("random erasing (p {})", c.config.random_erasing)),
                (c.config.mixup > 0.0).then(|| format!("mixup (alpha {})", c.config.mixup)),
                (c.config.cutmix > 0.0).then(|| format!("cutmix (alpha {})", c.config.cutmix)),
            ]
            .into_iter()
            .flatten()
            .reduce(|a, b| format!("{a}, {b}"))
            .unwrap_or_else(|| "none".to_string()),
        ),
        ("dropout", m.dropout.to_string()),
        ("seed", c.config.seed.to_string()),
    ] {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    if let Some(s) = RunSummary::of(c.history) {
        let _ = writeln!(
            out,
            "\nTrained on the 60,000 training images; after the last epoch ({}): train accuracy \
             {}, test accuracy {}; {:.0} s an epoch on the machine that trained it.",
            s.last.epoch,
            percent(s.last.train_accuracy),
            percent(s.last.test_accuracy),
            s.median_epoch_seconds
        );
    }
}

/// Test and train accuracy of the record, and per class.
fn results(out: &mut String, c: &CardInputs) {
    let _ = writeln!(out, "\n## Results\n");
    match c.evaluation {
        Some(e) => {
            let _ = writeln!(
                out,
                "On the 10,000 test images, one forward pass per image: **{}**{}. Train: {}.\n",
                percent(e.test.accuracy),
                e.test_mirrored.as_ref().map_or(String::new(), |m| format!(
                    "; on the same images mirrored left-right, **{}**",
                    percent(m.accuracy)
                )),
                percent(e.train.accuracy)
            );
            let _ = write!(out, "| class | test |");
            if e.test_mirrored.is_some() {
                let _ = write!(out, " mirrored |");
            }
            let _ = writeln!(
                out,
                "\n|---|---|{}",
                if e.test_mirrored.is_some() {
                    "---|"
                } else {
                    ""
                }
            );
            for (i, class) in CLASS_NAMES.iter().enumerate() {
                let _ = write!(
                    out,
                    "| {class} | {} |",
                    percent(e.test.per_class_accuracy[i])
                );
                if let Some(m) = &e.test_mirrored {
                    let _ = write!(out, " {} |", percent(m.per_class_accuracy[i]));
                }
                let _ = writeln!(out);
            }
        }
        None => {
            let _ = writeln!(
                out,
                "Not evaluated: the run has no `eval.json` for this record \
                 (`cargo xtask eval` writes it)."
            );
        }
    }
}

/// What the network takes and gives.
fn input(out: &mut String) {
    let _ = writeln!(
        out,
        "\n## Input\n\nA 28x28 greyscale image, the garment light on a dark background as in \
         Fashion-MNIST (invert a photo on white), pixels 0-255. The network sees \
         `(p / 255 - {MEAN}) / {STD}`; patches are taken row by row over the grid, pixels row by \
         row within a patch. The output is 10 logits in this order: {}; their softmax gives \
         the probabilities.",
        CLASS_NAMES.join(", ")
    );
}

/// How to load the weights elsewhere: ONNX Runtime, or PyTorch through safetensors.
fn usage(out: &mut String, c: &CardInputs) {
    let _ = writeln!(out, "\n## Use\n");
    if onnx(c) {
        let _ = writeln!(
            out,
            "`{}` takes the pixels as they come (`pixels`: float32 `[batch, 28, 28]`, 0-255; the \
             normalisation is in the graph) and gives `logits` (float32 `[batch, 10]`). With \
             ONNX Runtime:\n\n```python\nimport numpy as np, onnxruntime as ort\nsession = \
             ort.InferenceSession(\"{}\")\nimages = np.zeros((1, 28, 28), np.float32)  # your \
             pixels, 0-255\nlogits = session.run([\"logits\"], {{\"pixels\": images}})[0]\nprint(logits.argmax(1))\n```",
            c.weights, c.weights
        );
    } else {
        let _ = writeln!(
            out,
            "`{}` holds every parameter under the name a PyTorch module of the same design gives \
             it (`stem.linear.weight`, `blocks.0.w1.weight`, ...; `nn.Linear` weights `[out, \
             in]`), with the configuration in its metadata (`fashion_mixer.config`). With \
             fashion-mixer's reference module (`benches/reference/mixer.py`):\n\n```python\nimport \
             json\nfrom safetensors import safe_open\nfrom safetensors.torch import load_file\nfrom \
             mixer import Mixer\n\nwith safe_open(\"{}\", \"pt\") as f:\n    config = \
             json.loads(f.metadata()[\"fashion_mixer.config\"])\nnet = \
             Mixer(config[\"model\"])\nnet.load_state_dict(load_file(\"{}\"), strict=True)\n```\n\n\
             The input is normalised outside the module: `(p / 255 - {MEAN}) / {STD}`.",
            c.weights, c.weights, c.weights
        );
    }
}
