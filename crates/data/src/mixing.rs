//! Mixing pairs of training images, with the loss mixed in the same proportion: mixup (Zhang et
//! al. 2018: `lambda * a + (1 - lambda) * b`, pixel by pixel) and cutmix (Yun et al. 2019: a
//! rectangle of `b` pasted into `a`, `lambda` the share of `a` left). `lambda` is drawn per batch
//! from Beta(alpha, alpha); each image is paired with its mirror position in the batch (first
//! with last), whose order is already shuffled. With both on, each batch takes one of the two,
//! half the time each (as timm does). Reproducible: the draws come from the seed and the batch
//! count.

use crate::IMAGE_SIDE;
use crate::random::Stream;

/// Which mixing, and its Beta distribution's alpha (0 = off).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mixing {
    /// Mixup's alpha; 0 = no mixup.
    pub mixup: f64,
    /// Cutmix's alpha; 0 = no cutmix.
    pub cutmix: f64,
}

/// One batch's mixing: each image `i` of `n` with image `n - 1 - i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// The share of the image's own label in the loss (and, for mixup, of its own pixels).
    pub lambda: f32,
    /// Cutmix's rectangle `(top, left, height, width)`, pasted from the partner; `None` for
    /// mixup.
    pub cut: Option<(usize, usize, usize, usize)>,
}

impl Mixing {
    /// Whether it mixes anything.
    pub fn is_active(&self) -> bool {
        self.mixup > 0.0 || self.cutmix > 0.0
    }

    /// The mixing of one batch, drawn from `r` (a well-mixed 64-bit value); `None` when off.
    pub fn draw(&self, r: u64) -> Option<Mix> {
        let use_cutmix = match (self.mixup > 0.0, self.cutmix > 0.0) {
            (false, false) => return None,
            (true, true) => r >> 63 == 1,
            (_, cutmix) => cutmix,
        };
        let mut random = Stream::new(r);
        if !use_cutmix {
            let lambda = beta(self.mixup, &mut random) as f32;
            return Some(Mix { lambda, cut: None });
        }
        // A rectangle of about (1 - lambda) of the image, centred anywhere, cut by the edges;
        // lambda then is the exact share left.
        let lambda = beta(self.cutmix, &mut random);
        let side = IMAGE_SIDE as f64;
        let size = ((1.0 - lambda).sqrt() * side).round() as isize;
        let centre = |u: f64| (u * side) as isize;
        let (cy, cx) = (centre(random.unit()), centre(random.unit()));
        let span = |c: isize| {
            let start = (c - size / 2).clamp(0, IMAGE_SIDE as isize) as usize;
            let end = (c - size / 2 + size).clamp(0, IMAGE_SIDE as isize) as usize;
            (start, end - start)
        };
        let ((top, height), (left, width)) = (span(cy), span(cx));
        let lambda = 1.0 - (height * width) as f32 / (IMAGE_SIDE * IMAGE_SIDE) as f32;
        Some(Mix {
            lambda,
            cut: Some((top, left, height, width)),
        })
    }
}

impl Mix {
    /// Mixes `images` (`n` images of `IMAGE_SIDE` x `IMAGE_SIDE` values, one after another)
    /// in place: each with its mirror position in the batch.
    pub fn apply(&self, images: &mut [f32]) {
        let pixels = IMAGE_SIDE * IMAGE_SIDE;
        let n = images.len() / pixels;
        let original = images.to_vec();
        for (i, image) in images.chunks_exact_mut(pixels).enumerate() {
            let partner = &original[(n - 1 - i) * pixels..(n - i) * pixels];
            match self.cut {
                None => {
                    for (own, other) in image.iter_mut().zip(partner) {
                        *own = self.lambda * *own + (1.0 - self.lambda) * other;
                    }
                }
                Some((top, left, height, width)) => {
                    for y in top..top + height {
                        let row = y * IMAGE_SIDE + left..y * IMAGE_SIDE + left + width;
                        image[row.clone()].copy_from_slice(&partner[row]);
                    }
                }
            }
        }
    }
}

/// A Gamma(shape, 1) number: Marsaglia and Tsang's method, boosted for shape below 1.
fn gamma(shape: f64, random: &mut Stream) -> f64 {
    if shape < 1.0 {
        return gamma(shape + 1.0, random) * random.unit().powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = random.normal();
        let v = (1.0 + c * x).powi(3);
        if v > 0.0 && random.unit().ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Beta(alpha, alpha) number.
fn beta(alpha: f64, random: &mut Stream) -> f64 {
    let (a, b) = (gamma(alpha, random), gamma(alpha, random));
    if a + b > 0.0 { a / (a + b) } else { 0.5 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Beta(alpha, alpha) has mean 1/2 and variance 1 / (4 (2 alpha + 1)).
    #[test]
    fn lambda_follows_the_beta_distribution() {
        for alpha in [0.2, 1.0, 2.0] {
            let mut random = Stream::new(11);
            let draws: Vec<f64> = (0..20_000).map(|_| beta(alpha, &mut random)).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
            let want = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.01, "alpha {alpha}: mean {mean}");
            assert!(
                (var - want).abs() < 0.05 * want,
                "alpha {alpha}: var {var} against {want}"
            );
            assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }

    fn batch(n: usize) -> Vec<f32> {
        (0..n * IMAGE_SIDE * IMAGE_SIDE)
            .map(|i| (i / (IMAGE_SIDE * IMAGE_SIDE)) as f32)
            .collect()
    }

    #[test]
    fn mixup_blends_each_image_with_its_mirror_position() {
        let mix = Mix {
            lambda: 0.75,
            cut: None,
        };
        let mut images = batch(3);
        mix.apply(&mut images);
        let px = IMAGE_SIDE * IMAGE_SIDE;
        // Image 0 (all 0) with image 2 (all 2): 0.5; image 1 with itself: 1.
        assert!(images[..px].iter().all(|&v| v == 0.5));
        assert!(images[px..2 * px].iter().all(|&v| v == 1.0));
        assert!(images[2 * px..].iter().all(|&v| v == 1.5));
    }

    #[test]
    fn cutmix_pastes_a_rectangle_and_lambda_is_the_share_left() {
        let mixing = Mixing {
            mixup: 0.0,
            cutmix: 1.0,
        };
        let mut seen_cut = false;
        for r in 0..200u64 {
            let mix = mixing.draw(crate::random::splitmix64(r)).unwrap();
            let (top, left, height, width) = mix.cut.unwrap();
            assert!(top + height <= IMAGE_SIDE && left + width <= IMAGE_SIDE);
            let mut images = batch(2);
            mix.apply(&mut images);
            let own = images[..IMAGE_SIDE * IMAGE_SIDE]
                .iter()
                .filter(|&&v| v == 0.0)
                .count();
            assert!((own as f32 / 784.0 - mix.lambda).abs() < 1e-6);
            seen_cut |= height * width > 0;
        }
        assert!(seen_cut);
        // Both on: each kind about half the time; off: nothing.
        let both = Mixing {
            mixup: 0.2,
            cutmix: 1.0,
        };
        let cuts = (0..1000u64)
            .filter(|&r| {
                both.draw(crate::random::splitmix64(r))
                    .unwrap()
                    .cut
                    .is_some()
            })
            .count();
        assert!((400..600).contains(&cuts), "{cuts}");
        assert_eq!(Mixing::default().draw(5), None);
        assert!(!Mixing::default().is_active() && both.is_active());
    }
}
