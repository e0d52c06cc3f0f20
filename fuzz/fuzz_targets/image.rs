//! The image loader (PNG/JPEG decoding, then greyscale, padding, resizing, inversion) on
//! arbitrary bytes: an error or a 28x28 input, never a panic, hang or memory blow-up.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fashion_mixer_data::picture::decode_image(data);
});
