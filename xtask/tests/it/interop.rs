//! `export` and `import`: the shipped model as safetensors in PyTorch's names and layouts, back
//! into a run that predicts the same, bad files refused without writing anything, and the
//! numpy forward pass written from the equations (`python/reference_forward.py`) agreeing with
//! `infer --json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use super::common::{assert_user_error, xtask};

fn root() -> PathBuf {
    fashion_mixer_data::testing::workspace_root()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exports the shipped model into a new folder in `dir` (`export` makes it); the file's path.
fn export_pretrained(dir: &Path) -> PathBuf {
    let out = dir.join("exports").join("shipped.safetensors");
    let run = xtask(&["export", "--out", out.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(text(&run.stdout).contains("wrote"), "{}", text(&run.stdout));
    out
}

/// `infer --json --index 0..n` with the run in `artifacts`: one JSON value per item.
fn infer(artifacts: &Path, data: &Path, n: usize) -> Vec<serde_json::Value> {
    let indices: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let indices = indices.join(",");
    let out = xtask(&[
        "infer",
        "--json",
        "--artifacts",
        artifacts.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--index",
        &indices,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every tensor of the shipped `best` model under its PyTorch name and layout, with the
/// metadata a user needs to feed it.
#[test]
fn export_writes_pytorch_names_layouts_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let file = export_pretrained(tmp.path());
    let bytes = std::fs::read(&file).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let shapes: HashMap<String, Vec<usize>> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect();
    // best: 4x4 patches (49 of 16 pixels), dim 128, token hidden 64, channel hidden 256,
    // 4 blocks with LayerNorm, a final LayerNorm; nn.Linear weights are [out, in].
    let expected: Vec<(&str, Vec<usize>)> = vec![
        ("stem.linear.weight", vec![128, 16]),
        ("stem.linear.bias", vec![128]),
        ("blocks.0.w1.weight", vec![64, 49]),
        ("blocks.0.w2.weight", vec![49, 64]),
        ("blocks.3.w3.weight", vec![256, 128]),
        ("blocks.3.w4.weight", vec![128, 256]),
        ("blocks.2.norm1.weight", vec![128]),
        ("blocks.2.norm2.bias", vec![128]),
        ("norm.weight", vec![128]),
        ("head.weight", vec![10, 128]),
        ("head.bias", vec![10]),
    ];
    for (name, shape) in &expected {
        assert_eq!(shapes.get(*name), Some(shape), "{name} in {shapes:?}");
    }
    // 2 stem + 4 blocks x (4 linears x 2 + 2 norms x 2) + 2 norm + 2 head.
    assert_eq!(shapes.len(), 2 + 4 * 12 + 2 + 2, "{shapes:?}");
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let config: serde_json::Value = serde_json::from_str(&meta["fashion_mixer.config"]).unwrap();
    assert_eq!(config["model"]["patch_size"], 4);
    assert!(meta["fashion_mixer.normalization"].contains("0.286"));
    assert!(meta["fashion_mixer.classes"].contains("Ankle boot"));
    assert!(meta["fashion_mixer.input"].contains("row-major"));
}

/// export -> import -> the new run predicts exactly what the shipped one does.
#[test]
fn import_of_an_export_predicts_the_same() {
    let Some(data) = fashion_mixer_data::testing::real_data_dir() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = export_pretrained(tmp.path());
    let run = tmp.path().join("imported");
    let out = xtask(&[
        "import",
        file.to_str().unwrap(),
        "--artifacts",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(run.join("config.json").is_file() && run.join("model.bpk").is_file());
    let shipped = infer(&root().join("artifacts/pretrained"), &data, 20);
    let imported = infer(&run, &data, 20);
    for (a, b) in shipped.iter().zip(&imported) {
        assert_eq!(a["logits"], b["logits"], "{a} vs {b}");
    }
    // A second import into the same folder is refused; the run stays.
    let again = xtask(&[
        "import",
        file.to_str().unwrap(),
        "--artifacts",
        run.to_str().unwrap(),
    ]);
    assert_user_error("import twice", &again, &["imported"]);
}

/// A tensor of a safetensors file: name, shape, f32 bytes.
type Entry = (String, Vec<usize>, Vec<u8>);

/// `$FASHION_MIXER_PYTHON`, a Python with numpy and safetensors; `None` after
/// [`skip`](fashion_mixer_data::testing::skip) when it is not set.
fn python() -> Option<std::ffi::OsString> {
    let python = std::env::var_os("FASHION_MIXER_PYTHON");
    if python.is_none() {
        fashion_mixer_data::testing::skip(
            "$FASHION_MIXER_PYTHON names no Python with numpy and safetensors \
             (python3 -m venv v && v/bin/pip install -r python/requirements.txt)",
        );
    }
    python
}

/// `python/SCRIPT FILE --data DATA --count COUNT --compare INFER.jsonl EXTRA...`, where the
/// lines are `infer --json`'s for the run in `run` (which `file` was exported from): it must
/// succeed and find the same class for all `count` items. Returns what it printed.
fn python_agrees(
    python: &std::ffi::OsStr,
    script: &str,
    run: &Path,
    file: &Path,
    extra: &[&std::ffi::OsStr],
    data: &Path,
    count: usize,
) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let lines = infer(run, data, count);
    let jsonl: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let infer_out = tmp.path().join("infer.jsonl");
    std::fs::write(&infer_out, jsonl).unwrap();
    let out = std::process::Command::new(python)
        .arg(root().join("python").join(script))
        .arg(file)
        .args([
            "--data",
            data.to_str().unwrap(),
            "--count",
            &count.to_string(),
        ])
        .arg("--compare")
        .arg(&infer_out)
        .args(extra)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("same class {count}/{count}")),
        "{stdout}"
    );
    stdout
}

/// `python/reference_forward.py` on `file` (exported from `run`) gives the logits of
/// `infer --json` on the first `count` test items of `data`, within 1e-4, and the same classes.
fn numpy_agrees(python: &std::ffi::OsStr, run: &Path, file: &Path, data: &Path, count: usize) {
    python_agrees(python, "reference_forward.py", run, file, &[], data, count);
}

/// Writes the tensors of `source` into `dest`, changed by `edit`.
fn rewrite(source: &Path, dest: &Path, edit: impl FnOnce(&mut Vec<Entry>)) {
    let bytes = std::fs::read(source).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut list: Vec<Entry> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec(), view.data().to_vec()))
        .collect();
    edit(&mut list);
    let views: Vec<(String, TensorView)> = list
        .iter()
        .map(|(name, shape, data)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let out = safetensors::serialize(views, meta.metadata().clone()).unwrap();
    std::fs::write(dest, out).unwrap();
}

/// A missing, an extra and a misshapen tensor, one holding NaN, a file that is not safetensors,
/// and a file without metadata or --config: each one line naming the problem, exit 2, no folder
/// written.
#[test]
fn import_refuses_bad_files_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = export_pretrained(tmp.path());
    let case = |name: &str, edit: &dyn Fn(&mut Vec<Entry>)| {
        let bad = tmp.path().join(format!("{name}.safetensors"));
        rewrite(&file, &bad, |list| edit(list));
        bad
    };
    let missing = case("missing", &|list| {
        list.retain(|(n, _, _)| n != "blocks.1.w3.bias");
    });
    // Named as in the file (PyTorch's `bias`), not as in Burn's LayerNorm (`beta`).
    let missing_norm = case("missing-norm", &|list| {
        list.retain(|(n, _, _)| n != "blocks.0.norm1.bias");
    });
    let not_finite = case("not-finite", &|list| {
        let head = list.iter_mut().find(|(n, _, _)| n == "head.bias").unwrap();
        head.2[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        head.2[8..12].copy_from_slice(&f32::INFINITY.to_le_bytes());
    });
    let extra = case("extra", &|list| {
        list.push(("blocks.9.w1.weight".into(), vec![2], vec![0; 8]));
    });
    let misshapen = case("misshapen", &|list| {
        let head = list
            .iter_mut()
            .find(|(n, _, _)| n == "head.weight")
            .unwrap();
        head.1 = vec![128, 10]; // Burn's [in, out], not PyTorch's [out, in]
    });
    let not_safetensors = tmp.path().join("notes.safetensors");
    std::fs::write(&not_safetensors, b"hello, not a model").unwrap();
    let mut truncated_bytes = std::fs::read(&file).unwrap();
    truncated_bytes.truncate(truncated_bytes.len() / 2);
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, truncated_bytes).unwrap();

    for (path, needles) in [
        (&missing, vec!["blocks.1.w3.bias", "missing"]),
        (&missing_norm, vec!["tensor blocks.0.norm1.bias is missing"]),
        (
            &not_finite,
            vec!["tensor head.bias holds 2 NaN or infinite values"],
        ),
        (&extra, vec!["blocks.9.w1.weight", "not part of the model"]),
        (&misshapen, vec!["head.weight"]),
        (
            &not_safetensors,
            vec!["notes.safetensors", "not a safetensors file"],
        ),
        (&truncated, vec!["truncated.safetensors"]),
    ] {
        let run = tmp.path().join("run");
        let out = xtask(&[
            "import",
            path.to_str().unwrap(),
            "--artifacts",
            run.to_str().unwrap(),
        ]);
        let mut needles = needles;
        needles.push(path.file_name().unwrap().to_str().unwrap());
        assert_user_error(&path.display().to_string(), &out, &needles);
        assert!(!run.exists(), "{}: wrote {}", path.display(), run.display());
    }
}

/// The numpy forward pass written from the spec's equations (independent of Burn and of
/// PyTorch) on the exported shipped model: the logits of `infer --json` on the first 200 test
/// images within 1e-4, and the same predicted classes. Needs `$FASHION_MIXER_PYTHON`, a
/// Python with numpy and safetensors (`.ci/run` makes one from python/requirements.txt).
#[test]
fn numpy_reference_gets_the_same_logits() {
    let Some(data) = fashion_mixer_data::testing::real_data_dir() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = export_pretrained(tmp.path());
    numpy_agrees(
        &python,
        &root().join("artifacts/pretrained"),
        &file,
        &data,
        200,
    );
}

/// `train --init-from FILE.safetensors` starts from those weights: with a learning rate too
/// small to move them, the new run predicts what the shipped model does; config.json records
/// where the weights came from.
#[test]
fn train_init_from_starts_at_the_given_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let file = export_pretrained(tmp.path());
    let data = tmp.path().join("data");
    fashion_mixer_data::synthetic::write_idx_dir(&data, 128, 16).unwrap();
    let run = tmp.path().join("run");
    let out = xtask(&[
        "train",
        "--preset",
        "best",
        "--init-from",
        file.to_str().unwrap(),
        "--lr",
        "1e-12",
        "--lr-schedule",
        "constant",
        "--warmup-epochs",
        "0",
        "--weight-decay",
        "0",
        "--epochs",
        "1",
        "--no-tui",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifacts",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["init_from"], file.to_str().unwrap());
    let shipped = infer(&root().join("artifacts/pretrained"), &data, 4);
    let trained = infer(&run, &data, 4);
    for (a, b) in shipped.iter().zip(&trained) {
        let (a, b) = (
            a["logits"].as_array().unwrap(),
            b["logits"].as_array().unwrap(),
        );
        for (x, y) in a.iter().zip(b) {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
        }
    }
}

/// Every model option (overlapping patches, LayerNorm, residuals, GELU) through export, the
/// numpy forward pass and `infer --json`: a small model trained one epoch on generated data.
#[test]
fn numpy_reference_follows_every_option() {
    let Some(python) = python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    fashion_mixer_data::synthetic::write_idx_dir(&data, 256, 64).unwrap();
    let run = tmp.path().join("run");
    let out = xtask(&[
        "train",
        "--no-tui",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--patch-size",
        "7",
        "--patch-stride",
        "3",
        "--dim",
        "16",
        "--token-hidden",
        "8",
        "--channel-hidden",
        "24",
        "--depth",
        "2",
        "--layer-norm",
        "--residual",
        "--activation",
        "gelu",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifacts",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = tmp.path().join("options.safetensors");
    let out = xtask(&[
        "export",
        "--artifacts",
        run.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    numpy_agrees(&python, &run, &file, &data, 64);
    let onnx = tmp.path().join("onnx/model.onnx");
    export_onnx(&run, &onnx);
    onnx_agrees(&python, &run, &onnx, &file, &data, 64);
}

/// `export --format onnx` of the run in `run` to `out`.
fn export_onnx(run: &Path, out: &Path) {
    let done = xtask(&[
        "export",
        "--format",
        "onnx",
        "--artifacts",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains("model card"),
        "{}",
        text(&done.stdout)
    );
}

/// `python/onnx_check.py`: the ONNX checker accepts `onnx`; ONNX Runtime, fed the first `count`
/// test images of `data` as pixels 0-255, gives `infer --json`'s logits within 1e-4 and the
/// same classes; every weight equals the safetensors export `weights` bit for bit.
fn onnx_agrees(
    python: &std::ffi::OsStr,
    run: &Path,
    onnx: &Path,
    weights: &Path,
    data: &Path,
    count: usize,
) {
    let extra = ["--weights".as_ref(), weights.as_os_str()];
    let stdout = python_agrees(python, "onnx_check.py", run, onnx, &extra, data, count);
    assert!(stdout.contains("onnx checker: ok"), "{stdout}");
    assert!(stdout.contains("bit for bit"), "{stdout}");
}

/// The shipped model as ONNX: checked by the ONNX checker, ONNX Runtime's logits on the first
/// 200 test images equal to `infer --json`'s within 1e-4 with the same classes, its weights the
/// record's bit for bit; and the model card beside it states the run's figures.
#[test]
fn onnx_runtime_gets_the_same_logits() {
    let Some(data) = fashion_mixer_data::testing::real_data_dir() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let weights = export_pretrained(tmp.path());
    let onnx = tmp.path().join("onnx/model.onnx");
    let shipped = root().join("artifacts/pretrained");
    export_onnx(&shipped, &onnx);
    onnx_agrees(&python, &shipped, &onnx, &weights, &data, 200);
    let card = std::fs::read_to_string(tmp.path().join("onnx/README.md")).unwrap();
    assert!(
        card.starts_with("---\nlibrary_name: fashion-mixer\n"),
        "{card}"
    );
    for needle in [
        "datasets:\n- zalando-datasets/fashion_mnist",
        "value: 94.09",
        "value: 93.98",
        "294,990 parameters",
        "| Ankle boot | 97.30% | 97.30% |",
        "ort.InferenceSession(\"model.onnx\")",
        "(p / 255 - 0.286) / 0.353",
    ] {
        assert!(card.contains(needle), "{needle}: {card}");
    }
}

/// The shipped model's exports are the same files, byte for byte, from one build to the next
/// (their MD5s): ONNX as every earlier release wrote it (attributes keep their name and type
/// before their value: `onnx_proto.rs`), safetensors with its header's keys sorted. A new
/// shipped model, or a new version number (ONNX's `producer_version`), changes them.
#[test]
fn the_shipped_model_exports_to_the_same_bytes() {
    use md5::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let onnx = tmp.path().join("onnx/model.onnx");
    export_onnx(&root().join("artifacts/pretrained"), &onnx);
    let safetensors = export_pretrained(tmp.path());
    for (file, expected) in [
        (&onnx, "714bbcee63ad9c6958da2520851dd931"),
        (&safetensors, "ec80fddee947748220952a50b98b1a7a"),
    ] {
        let digest = md5::Md5::digest(std::fs::read(file).unwrap());
        let digest: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, expected, "{}", file.display());
    }
}

/// Bad export requests: one line each, exit code 2, nothing written.
#[test]
fn a_bad_export_is_one_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let no_record = tmp.path().join("no-record");
    fashion_mixer_data::testing::copy_shipped_run(&no_record, Some(3));
    let out_dir = tmp.path().join("out");
    let blocked = tmp.path().join("a-file");
    std::fs::write(&blocked, "not a folder").unwrap();
    let in_the_way = tmp.path().join("theirs");
    std::fs::create_dir(&in_the_way).unwrap();
    std::fs::write(in_the_way.join("README.md"), "# My notes\n").unwrap();
    let no_record_out = out_dir.join("model.onnx");
    let blocked_out = blocked.join("model.onnx");
    let theirs_out = in_the_way.join("model.onnx");
    for (case, args, needles) in [
        (
            "a run without a record",
            vec![
                "--artifacts",
                no_record.to_str().unwrap(),
                "--out",
                no_record_out.to_str().unwrap(),
            ],
            vec!["model.bpk", "no checkpoint"],
        ),
        (
            "an --out that cannot be written",
            vec!["--out", blocked_out.to_str().unwrap()],
            vec!["a-file"],
        ),
        (
            "a README.md that is not a model card",
            vec!["--out", theirs_out.to_str().unwrap()],
            vec!["README.md", "not a model card"],
        ),
    ] {
        let mut full = vec!["export", "--format", "onnx"];
        full.extend(args);
        let out = xtask(&full);
        assert_user_error(case, &out, &needles);
    }
    // A flag's value that cannot be read gets clap's message (its first line says it), exit 2.
    let out = xtask(&["export", "--format", "tflite"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("tflite") && first.contains("expected safetensors or onnx"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out_dir.join("model.onnx").exists());
    assert_eq!(
        std::fs::read_to_string(in_the_way.join("README.md")).unwrap(),
        "# My notes\n"
    );
    assert!(!theirs_out.exists());
    let left: Vec<_> = std::fs::read_dir(&in_the_way).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}
