//! One backbone block: an MLP across patches (token mixing), then one across features
//! (channel mixing).

use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, relu};

use crate::kernels::{Kernels, layer_norm};

/// The hidden layers' non-linearity g.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x), as the coursework specifies.
    #[default]
    Relu,
    /// The Gaussian error linear unit, x * Phi(x).
    Gelu,
}

impl std::str::FromStr for Activation {
    type Err = crate::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "relu" => Ok(Self::Relu),
            "gelu" => Ok(Self::Gelu),
            _ => Err(crate::UnknownName::new("activation", s, "relu or gelu")),
        }
    }
}

/// One block's shape and switches (the model's [`ModelConfig`](crate::ModelConfig) makes one
/// per block).
#[derive(Config, Debug, PartialEq)]
pub struct MixerBlockConfig {
    /// N_p: tokens (patches) per image.
    pub patches: usize,
    /// d: features per token.
    pub dim: usize,
    /// Hidden width of the token-mixing MLP.
    pub token_hidden: usize,
    /// Hidden width of the channel-mixing MLP.
    pub channel_hidden: usize,
    /// LayerNorm over the features before each half.
    #[config(default = false)]
    pub layer_norm: bool,
    /// Each half's input added to its output.
    #[config(default = false)]
    pub residual: bool,
    /// g.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Dropout probability on the hidden units while training (0: none).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl MixerBlockConfig {
    /// A block with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> MixerBlock {
        let (patches, dim) = (self.patches, self.dim);
        let norm = || {
            self.layer_norm
                .then(|| layer_norm::config(dim).init(device))
        };
        MixerBlock {
            w1: LinearConfig::new(patches, self.token_hidden).init(device),
            w2: LinearConfig::new(self.token_hidden, patches).init(device),
            w3: LinearConfig::new(dim, self.channel_hidden).init(device),
            w4: LinearConfig::new(self.channel_hidden, dim).init(device),
            norm1: norm(),
            norm2: norm(),
            dropout: (self.dropout > 0.0).then(|| DropoutConfig::new(self.dropout).init()),
            gelu: self.activation == Activation::Gelu,
            residual: self.residual,
            kernels: Kernels::for_device(device),
        }
    }
}

/// A Mixer block. With every switch off (the default) it is exactly the coursework's block
/// (g = ReLU, no residuals, no norms, no dropout). With X the block's input (N_p x d, per image):
///
/// ```text
/// O1 = g(X^T W1) W2      token mixing:   W1: N_p -> token_hidden, W2: token_hidden -> N_p
/// O1 <- O1^T             back to N_p x d
/// O2 = g(O1 W3) W4       channel mixing: W3: d -> channel_hidden, W4: channel_hidden -> d
/// ```
///
/// Each linear layer also has a bias, as `nn.Linear` does in the reference notebook. The
/// options: `layer_norm` normalises the input of each half (X and O1) over its features;
/// `residual` adds each half's input to its output (O1 = X + .., O2 = O1 + ..); `gelu` makes
/// g = GELU; `dropout` zeroes hidden units of both MLPs while training.
#[derive(Module, Debug)]
pub struct MixerBlock {
    /// W1: patches -> token_hidden (applied to X^T, i.e. across patches).
    pub w1: Linear,
    /// W2: token_hidden -> patches.
    pub w2: Linear,
    /// W3: dim -> channel_hidden (across features).
    pub w3: Linear,
    /// W4: channel_hidden -> dim.
    pub w4: Linear,
    /// LayerNorm before token mixing (option `layer_norm`).
    pub norm1: Option<LayerNorm>,
    /// LayerNorm before channel mixing (option `layer_norm`).
    pub norm2: Option<LayerNorm>,
    /// Dropout on the hidden units of both MLPs (option `dropout` > 0).
    pub dropout: Option<Dropout>,
    /// g = GELU instead of ReLU.
    pub gelu: bool,
    /// Residual connections around both halves.
    pub residual: bool,
    /// The code that runs the norms, products and bias + ReLU (chosen for the device it was
    /// built on).
    #[module(skip)]
    pub kernels: Kernels,
}

impl MixerBlock {
    /// g, then dropout (when on and training): the hidden layer of either MLP.
    fn hidden<const D: usize>(&self, h: Tensor<D>) -> Tensor<D> {
        let h = if self.gelu { gelu(h) } else { relu(h) };
        self.dropped(h)
    }

    /// `h` with dropout applied (when on and training).
    fn dropped<const D: usize>(&self, h: Tensor<D>) -> Tensor<D> {
        match &self.dropout {
            Some(dropout) => dropout.forward(h),
            None => h,
        }
    }

    /// The hidden layer of either MLP from its product without the bias: g(h + bias), then
    /// dropout. `bias` is `[rows, 1]` or `[1, columns]`; with g = ReLU, bias and g are one
    /// operation ([`Kernels::bias_relu`]).
    fn biased_hidden(&self, h: Tensor<2>, bias: Option<Tensor<2>>) -> Tensor<2> {
        match bias {
            Some(bias) if !self.gelu => self.dropped(self.kernels.bias_relu(h, bias)),
            Some(bias) => self.hidden(h + bias),
            None => self.hidden(h),
        }
    }

    /// The input of a half: normalised over features when `norm` is on.
    fn normed(&self, norm: &Option<LayerNorm>, x: Tensor<3>) -> Tensor<3> {
        match norm {
            Some(norm) => self.kernels.layer_norm(norm, x),
            None => x,
        }
    }

    /// A half's output, with its input added back when `residual` is on.
    fn join(&self, input: Tensor<3>, output: Tensor<3>) -> Tensor<3> {
        if self.residual {
            input + output
        } else {
            output
        }
    }

    /// Patch-major [patches, batch, dim] -> [patches, batch, dim].
    ///
    /// The same maths as [`MixerBlock::forward_reference`], arranged for speed. With the
    /// activations stored patch-major, the N_p x d matrix X of every image is a column block of
    /// one `N_p x (batch*d)` matrix, and its rows are the rows of one `(N_p*batch) x d` matrix:
    ///
    /// - token mixing is a left product over all images at once,
    ///   `O1 = W2^T g(W1^T X + b1) + b2` (the transpose of `g(X^T W1 + b1) W2 + b2`), so no
    ///   transposed copy of the activations is ever made;
    /// - channel mixing, `g(O1 W3 + b3) W4 + b4`, is one 2-D product over all
    ///   `patches * batch` rows.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [patches, batch, dim] = x.dims();
        let [token_hidden, channel_hidden] = [self.w1.weight.dims()[1], self.w3.weight.dims()[1]];
        let y = self
            .normed(&self.norm1, x.clone())
            .reshape([patches, batch * dim]);
        let h = self.kernels.matmul(self.w1.weight.val().transpose(), y); // W1^T X: [token_hidden, batch*dim]
        let b1 = self
            .w1
            .bias
            .as_ref()
            .map(|b| b.val().reshape([token_hidden, 1]));
        let h = self.biased_hidden(h, b1);
        let mut o1 = self.kernels.matmul(self.w2.weight.val().transpose(), h); // [patches, batch*dim]
        if let Some(b2) = &self.w2.bias {
            o1 = o1 + b2.val().reshape([patches, 1]);
        }
        let o1 = self.join(x, o1.reshape([patches, batch, dim]));
        let rows = self
            .normed(&self.norm2, o1.clone())
            .reshape([patches * batch, dim]);
        let h = self.kernels.matmul(rows, self.w3.weight.val()); // O1 W3: [patches*batch, channel_hidden]
        let b3 = self
            .w3
            .bias
            .as_ref()
            .map(|b| b.val().reshape([1, channel_hidden]));
        let o2 = self.kernels.linear(self.biased_hidden(h, b3), &self.w4); // [patches*batch, dim]
        self.join(o1, o2.reshape([patches, batch, dim]))
    }

    /// The block's equations exactly as written (transposes included), batch-major:
    /// [batch, patches, dim] -> [batch, patches, dim]. [`MixerBlock::forward`] must agree with
    /// it, and the tests check that it does.
    pub fn forward_reference(&self, x: Tensor<3>) -> Tensor<3> {
        let xt = self.normed(&self.norm1, x.clone()).swap_dims(1, 2); // X^T: [batch, dim, patches]
        let o1 = self.w2.forward(self.hidden(self.w1.forward(xt))); // [batch, dim, patches]
        let o1 = self.join(x, o1.swap_dims(1, 2)); // O1 <- O1^T: [batch, patches, dim]
        let y = self.normed(&self.norm2, o1.clone());
        let o2 = self.w4.forward(self.hidden(self.w3.forward(y))); // O2: [batch, patches, dim]
        self.join(o1, o2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Distribution;

    /// A coursework block (all switches off) for `patches` tokens of `dim` features.
    fn plain(patches: usize, dim: usize, device: &Device) -> MixerBlock {
        MixerBlockConfig::new(patches, dim, 1, 1).init(device)
    }

    fn linear(weight: Vec<f32>, shape: [usize; 2], bias: Vec<f32>, device: &Device) -> Linear {
        Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(weight, shape), device)),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(bias, [shape[1]]),
                device,
            ))),
        }
    }

    /// A worked example, small enough to follow on paper.
    ///
    /// ```text
    /// X = [[1, 2], [3, -4]]          (2 patches x 2 features)
    /// X^T W1 = [[1, 3], [2, -4]] [[1], [-1]] = [[-2], [6]];  g(.) = [[0], [6]]
    /// g(.) W2 = [[0], [6]] [[1, 2]] = [[0, 0], [6, 12]];  O1 = transpose = [[0, 6], [0, 12]]
    /// O1 W3 = [[0, 6], [0, 12]] [[1], [1]] = [[6], [12]];  g(.) = [[6], [12]]
    /// g(.) W4 + b4 = [[6], [12]] [[1, -2]] + [1, 1] = [[7, -11], [13, -23]]
    /// ```
    #[test]
    fn block_matches_hand_computation() {
        let device = Device::flex();
        let block = MixerBlock {
            w1: linear(vec![1.0, -1.0], [2, 1], vec![0.0], &device),
            w2: linear(vec![1.0, 2.0], [1, 2], vec![0.0, 0.0], &device),
            w3: linear(vec![1.0, 1.0], [2, 1], vec![0.0], &device),
            w4: linear(vec![1.0, -2.0], [1, 2], vec![1.0, 1.0], &device),
            ..plain(2, 1, &device)
        };
        let x = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, -4.0], [1, 2, 2]),
            &device,
        );
        let out = block.forward_reference(x.clone()).into_data();
        assert_eq!(
            out.try_to_vec::<f32>().unwrap(),
            vec![7.0, -11.0, 13.0, -23.0]
        );
        // With one image, batch-major and patch-major hold the same numbers.
        let fast = block.forward(x.reshape([2, 1, 2])).into_data();
        let fast = fast.try_to_vec::<f32>().unwrap();
        assert_eq!(fast, vec![7.0, -11.0, 13.0, -23.0]);
    }

    /// The block against a direct loop implementation of the equations, with every weight
    /// and bias non-trivial and a batch of two.
    #[test]
    fn block_matches_loop_reference() {
        let (np, d, th, ch) = (4, 3, 5, 6);
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((seed >> 16) % 2001) as f32 / 1000.0 - 1.0
        };
        let mut values = |n: usize| -> Vec<f32> { (0..n).map(|_| next()).collect() };
        let (w1, b1) = (values(np * th), values(th));
        let (w2, b2) = (values(th * np), values(np));
        let (w3, b3) = (values(d * ch), values(ch));
        let (w4, b4) = (values(ch * d), values(d));
        let x = values(2 * np * d);

        let device = Device::flex();
        let block = MixerBlock {
            w1: linear(w1.clone(), [np, th], b1.clone(), &device),
            w2: linear(w2.clone(), [th, np], b2.clone(), &device),
            w3: linear(w3.clone(), [d, ch], b3.clone(), &device),
            w4: linear(w4.clone(), [ch, d], b4.clone(), &device),
            ..plain(np, d, &device)
        };
        let input = Tensor::<3>::from_data(TensorData::new(x.clone(), [2, np, d]), &device);
        let got = block
            .forward_reference(input)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();

        let g = |v: f32| v.max(0.0);
        for b in 0..2 {
            let xb = |p: usize, f: usize| x[b * np * d + p * d + f];
            // O1[p][f] = sum_h g(sum_q X^T[f][q] W1[q][h] + b1[h]) W2[h][p] + b2[p], transposed.
            let mut o1 = vec![vec![0.0f32; d]; np];
            for f in 0..d {
                let hidden: Vec<f32> = (0..th)
                    .map(|h| g((0..np).map(|q| xb(q, f) * w1[q * th + h]).sum::<f32>() + b1[h]))
                    .collect();
                for (p, row) in o1.iter_mut().enumerate() {
                    row[f] = (0..th).map(|h| hidden[h] * w2[h * np + p]).sum::<f32>() + b2[p];
                }
            }
            for (p, row) in o1.iter().enumerate() {
                let hidden: Vec<f32> = (0..ch)
                    .map(|c| g((0..d).map(|f| row[f] * w3[f * ch + c]).sum::<f32>() + b3[c]))
                    .collect();
                for f in 0..d {
                    let want = (0..ch).map(|c| hidden[c] * w4[c * d + f]).sum::<f32>() + b4[f];
                    let have = got[b * np * d + p * d + f];
                    assert!(
                        (want - have).abs() < 1e-5,
                        "b{b} p{p} f{f}: {want} vs {have}"
                    );
                }
            }
        }
    }

    /// The fast arrangement against the equations as written, at the coursework's sizes:
    /// outputs and every weight's gradient agree within 1e-4, on both CPU backends.
    #[test]
    fn fast_forward_matches_reference_with_gradients() {
        for device in [crate::Backend::Flex, crate::Backend::Ndarray].map(|b| b.device().unwrap()) {
            device.seed(3);
            let device = device.autodiff();
            let block = MixerBlockConfig::new(16, 128, 64, 256).init(&device);
            let x = Tensor::<3>::random([8, 16, 128], Distribution::Normal(0.0, 1.0), &device);
            let weights =
                Tensor::<3>::random([8, 16, 128], Distribution::Normal(0.0, 1.0), &device);
            let run = |out: Tensor<3>| {
                let grads = (out.clone() * weights.clone()).sum().backward();
                let mut values = vec![out.into_data()];
                for linear in [&block.w1, &block.w2, &block.w3, &block.w4] {
                    values.push(linear.weight.grad(&grads).unwrap().into_data());
                    let bias = linear.bias.as_ref().unwrap();
                    values.push(bias.grad(&grads).unwrap().into_data());
                }
                values
            };
            let fast = run(block.forward(x.clone().swap_dims(0, 1)).swap_dims(0, 1));
            let reference = run(block.forward_reference(x));
            for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
                crate::testing::assert_close(a, b, &format!("tensor {i}"));
            }
        }
    }
}
