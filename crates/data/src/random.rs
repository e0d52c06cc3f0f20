//! Seeded random numbers for augmentation: SplitMix64, which turns any 64-bit value (a seed
//! mixed with a batch count) into a well-mixed one, and a stream of uniform and normal numbers
//! built on it.

/// One step of SplitMix64: a well-mixed 64-bit value from any 64-bit input.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform numbers from a SplitMix64 stream.
pub struct Stream(u64);

impl Stream {
    /// A stream starting from `state`.
    pub fn new(state: u64) -> Self {
        Self(state)
    }

    /// A number in (0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 = splitmix64(self.0);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal number (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}
