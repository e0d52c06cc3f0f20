//! The same weights and input give the same logits on flex, ndarray and wgpu.
//!
//! wgpu needs a Vulkan (or Metal/DX12) device; on a machine without a GPU, Mesa's lavapipe
//! (`apt-get install mesa-vulkan-drivers`) provides one. Where none can start, the test says
//! `SKIPPED` and passes; under CI it fails.

use burn::prelude::*;
use fashion_mixer_model::{Backend, ModelConfig};

fn input(batch: usize) -> TensorData {
    let mut seed = 42u32;
    let values: Vec<f32> = (0..batch * 784)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    TensorData::new(values, [batch, 28, 28])
}

const BATCH: usize = 256;

fn logits(backend: Backend, record: burn::store::ModuleRecord) -> Vec<f32> {
    let device = backend.device().unwrap();
    let model = ModelConfig::new()
        .init(&device)
        .unwrap()
        .load_record(record);
    // A batch of the default size: on a fresh machine, the kernels wgpu compiles and tunes here
    // are the ones evaluation uses in the train and xtask crates' wgpu runs.
    let images = Tensor::<3>::from_data(input(BATCH), &device);
    model
        .forward(images)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn flex_ndarray_and_wgpu_agree() {
    let reference_device = Backend::Flex.device().unwrap();
    reference_device.seed(3);
    let record = ModelConfig::new()
        .init(&reference_device)
        .unwrap()
        .into_record();
    let flex = logits(Backend::Flex, record.clone());
    assert_eq!(flex.len(), BATCH * 10);
    let mut backends = vec![Backend::Ndarray];
    match Backend::Wgpu.device() {
        Ok(_) => backends.push(Backend::Wgpu),
        Err(err) => fashion_mixer_data::testing::skip(&format!("the wgpu part: {err}")),
    }
    for backend in backends {
        let other = logits(backend, record.clone());
        let worst = flex
            .iter()
            .zip(&other)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("{backend}: max |logit difference| vs flex = {worst:e}");
        assert!(worst < 1e-4, "{backend} differs from flex by {worst}");
    }
}

/// A wgpu start in a test prints nothing on a machine without a desktop session (a server, a
/// container, CI). Mesa's Vulkan device-selection layer would ask the absent Wayland session for
/// its GPU, and libwayland print `error: XDG_RUNTIME_DIR is invalid or not set in the
/// environment.` in passing tests; Cargo runs every test with the layer off
/// (`.cargo/config.toml`). The test starts wgpu in a copy of this test process, as run by Cargo
/// but with the session's variables removed, and reads what it prints.
#[test]
fn a_wgpu_start_prints_nothing_without_a_desktop_session() {
    const CHILD: &str = "FASHION_MIXER_WGPU_START_CHILD";
    if std::env::var_os(CHILD).is_some() {
        if let Err(err) = Backend::Wgpu.device() {
            eprintln!("no wgpu device: {err}");
        }
        return;
    }
    if let Err(err) = Backend::Wgpu.device() {
        return fashion_mixer_data::testing::skip(&format!("no wgpu device: {err}"));
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "backends::a_wgpu_start_prints_nothing_without_a_desktop_session",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1");
    for name in [
        "XDG_RUNTIME_DIR",
        "WAYLAND_DISPLAY",
        "WAYLAND_SOCKET",
        "DISPLAY",
    ] {
        child.env_remove(name);
    }
    let out = child.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("no wgpu device"), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    assert!(stderr.trim().is_empty(), "the wgpu start printed: {stderr}");
}
