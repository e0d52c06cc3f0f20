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
