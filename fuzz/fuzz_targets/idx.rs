//! The IDX reader on arbitrary bytes, as a raw file and as a `.gz` one: it must return an
//! error or a checked file, never panic, hang or exhaust memory.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"] {
        let _ = fashion_mixer_data::idx::parse_file(Path::new(name), data.to_vec());
    }
});
