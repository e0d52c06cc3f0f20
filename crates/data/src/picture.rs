//! Pictures from outside the data set (PNG or JPEG, any size or colour) turned into
//! Fashion-MNIST-like inputs: 28x28 greyscale, garment bright on a dark background.

use crate::{IMAGE_PIXELS, IMAGE_SIDE};

/// Largest width or height accepted, in pixels (a product photo is far smaller; this keeps a
/// hostile file from claiming gigapixels).
pub const MAX_SIDE: u32 = 8_192;
/// Most memory the decoder may allocate, in bytes.
pub const MAX_ALLOC: u64 = 256 << 20;

/// How far (0..=255) a pixel must be from the background to count as part of the garment.
const OBJECT_CONTRAST: u8 = 24;

/// Why a picture's bytes give no input (the bytes have no file name: the caller names them).
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// The bytes could not be read as an image of a known format.
    #[error("{0}")]
    Format(std::io::Error),
    /// The decoder refused the bytes (damaged, unsupported, or over the size limits).
    #[error("{0}")]
    Decode(#[from] image::ImageError),
    /// The image has a width or height of zero.
    #[error("the image has no pixels")]
    NoPixels,
}

/// Decodes an image file's bytes (PNG or JPEG) and prepares it with [`prepare_image`]. The
/// error says what is wrong with the bytes.
pub fn decode_image(bytes: &[u8]) -> Result<[u8; IMAGE_PIXELS], PictureError> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(PictureError::Format)?;
    reader.limits(limits);
    let decoded = reader.decode()?;
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(PictureError::NoPixels);
    }
    Ok(prepare_image(&decoded))
}

/// Transparent parts over white, greyscale, cropped to the garment (what stands out from the
/// background), resized so its longer side is 28 and centred on a 28x28 square of the
/// background colour (the colour its border mostly shows), and inverted
/// when that background is light (Fashion-MNIST's is black).
///
/// The arithmetic is the image crate's (`to_rgba8`, then a triangle-filter `resize`), done on
/// one grey channel over plain slices: the same pixels, bit for bit (a test holds it to the
/// crate's functions), in a fraction of the time.
pub fn prepare_image(decoded: &image::DynamicImage) -> [u8; IMAGE_PIXELS] {
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    let grey = grey_over_white(decoded);
    let at = |x: usize, y: usize| grey[y * w + x];

    // The background is what the border mostly shows.
    let border_sum: u32 = (0..w)
        .map(|x| u32::from(at(x, 0)) + u32::from(at(x, h - 1)))
        .chain((0..h).map(|y| u32::from(at(0, y)) + u32::from(at(w - 1, y))))
        .sum();
    let background = (border_sum / (2 * (w + h)) as u32) as u8;

    // Crop to the garment: the pixels that differ clearly from the background (Fashion-MNIST's
    // garments fill the frame; a product photo usually has a margin).
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    let stands_out = |p: &u8| p.abs_diff(background) > OBJECT_CONTRAST;
    for (y, row) in grey.chunks_exact(w).enumerate() {
        if let (Some(first), Some(last)) = (
            row.iter().position(stands_out),
            row.iter().rposition(stands_out),
        ) {
            (x0, y0, x1, y1) = (x0.min(first), y0.min(y), x1.max(last + 1), y1.max(y + 1));
        }
    }
    let (x0, y0, cw, ch) = if x0 < x1 {
        (x0, y0, x1 - x0, y1 - y0)
    } else {
        (0, 0, w, h) // nothing stands out: keep the whole picture
    };
    let crop = Window {
        pixels: &grey,
        stride: w,
        x0,
        y0,
        width: cw,
        height: ch,
    };
    // Shrink so the longer side is 28 (keeping the aspect ratio), then centre it on a 28x28
    // canvas of the background colour: the same as padding to a square first, without ever
    // building a square as large as the longer side (a 16000x16 strip would need 256 Mpixels).
    let side = IMAGE_SIDE as u64;
    let fit = |v: usize| ((v as u64 * side).div_ceil(cw.max(ch) as u64)).clamp(1, side) as usize;
    let (sw, sh) = (fit(cw), fit(ch));
    let small = triangle_resize(&crop, sw, sh);
    let mut out = [background; IMAGE_PIXELS];
    let (left, top) = ((IMAGE_SIDE - sw) / 2, (IMAGE_SIDE - sh) / 2);
    for (y, row) in small.chunks_exact(sw).enumerate() {
        out[(top + y) * IMAGE_SIDE + left..][..sw].copy_from_slice(row);
    }
    if background > 127 {
        for p in &mut out {
            *p = 255 - *p;
        }
    }
    out
}

/// The picture in grey, transparent parts over white: `round(a * luma + (1 - a) * 255)` with
/// `luma = 0.299 r + 0.587 g + 0.114 b` of its RGBA8 pixels (in `f32`), row by row.
fn grey_over_white(decoded: &image::DynamicImage) -> Vec<u8> {
    use image::DynamicImage as D;
    let grey = |r: u8, g: u8, b: u8, a: u8| {
        let luma = 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
        let alpha = f32::from(a) / 255.0;
        round_non_negative(alpha * luma + (1.0 - alpha) * 255.0)
    };
    match decoded {
        D::ImageLuma8(img) => img.as_raw().iter().map(|&l| grey(l, l, l, 255)).collect(),
        D::ImageLumaA8(img) => {
            let (pixels, _) = img.as_raw().as_chunks::<2>();
            pixels.iter().map(|&[l, a]| grey(l, l, l, a)).collect()
        }
        D::ImageRgb8(img) => {
            let (pixels, _) = img.as_raw().as_chunks::<3>();
            pixels.iter().map(|&[r, g, b]| grey(r, g, b, 255)).collect()
        }
        D::ImageRgba8(img) => {
            let (pixels, _) = img.as_raw().as_chunks::<4>();
            pixels
                .iter()
                .map(|&[r, g, b, a]| grey(r, g, b, a))
                .collect()
        }
        other => {
            let rgba = other.to_rgba8();
            let (pixels, _) = rgba.as_raw().as_chunks::<4>();
            pixels
                .iter()
                .map(|&[r, g, b, a]| grey(r, g, b, a))
                .collect()
        }
    }
}

/// `v.round() as u8` for `v` in `0.0..=255.5`, without a call into libm: the integer part
/// and the fraction are exact in `f32` at these magnitudes, so rounding half away from zero
/// is a comparison.
fn round_non_negative(v: f32) -> u8 {
    let whole = v as u32;
    let rounded = if v - whole as f32 >= 0.5 {
        whole + 1
    } else {
        whole
    };
    rounded.min(255) as u8
}

/// A rectangle of a grey picture.
struct Window<'a> {
    pixels: &'a [u8],
    stride: usize,
    x0: usize,
    y0: usize,
    width: usize,
    height: usize,
}

/// The triangle filter's taps for resampling `len` pixels to `new_len` (one list per output
/// pixel: the first input index and the weights), as the image crate computes them.
fn triangle_taps(len: usize, new_len: usize) -> Vec<(usize, Vec<f32>)> {
    let ratio = len as f32 / new_len as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let support = sratio; // the triangle's support is 1
    (0..new_len)
        .map(|out| {
            let input = (out as f32 + 0.5) * ratio;
            let left = ((input - support).floor() as i64).clamp(0, len as i64 - 1);
            let right = ((input + support).ceil() as i64).clamp(left + 1, len as i64);
            let input = input - 0.5;
            let mut weights: Vec<f32> = (left..right)
                .map(|i| {
                    let x = (i as f32 - input) / sratio;
                    if x.abs() < 1.0 { 1.0 - x.abs() } else { 0.0 }
                })
                .collect();
            let sum: f32 = weights.iter().fold(0.0, |s, w| s + w);
            for w in &mut weights {
                *w /= sum;
            }
            (left as usize, weights)
        })
        .collect()
}

/// `image::imageops::resize(.., FilterType::Triangle)` of a grey window to `new_w` x `new_h`:
/// the columns first (into `f32`), then the rows, each output pixel summing its taps in the
/// crate's order, so the result is the crate's to the bit.
fn triangle_resize(window: &Window, new_w: usize, new_h: usize) -> Vec<u8> {
    let (w, h) = (window.width, window.height);
    let row = |y: usize| {
        let start = (window.y0 + y) * window.stride + window.x0;
        &window.pixels[start..start + w]
    };
    if (new_w, new_h) == (w, h) {
        return (0..h).flat_map(row).copied().collect();
    }
    // Columns: [new_h][w] in f32.
    let mut tall = vec![0f32; new_h * w];
    for (out_row, (left, weights)) in tall.chunks_exact_mut(w).zip(triangle_taps(h, new_h)) {
        for (i, &weight) in weights.iter().enumerate() {
            for (acc, &p) in out_row.iter_mut().zip(row(left + i)) {
                *acc += f32::from(p) * weight;
            }
        }
    }
    // Rows: [new_h][new_w], clamped and rounded.
    let taps = triangle_taps(w, new_w);
    let mut out = Vec::with_capacity(new_w * new_h);
    for source in tall.chunks_exact(w) {
        for (left, weights) in &taps {
            let sum = weights
                .iter()
                .zip(&source[*left..])
                .fold(0f32, |t, (w, v)| t + v * w);
            out.push(round_non_negative(sum.clamp(0.0, 255.0)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Rgb, RgbImage};

    /// [`prepare_image`] as the image crate's own functions write it (`to_rgba8`, `crop_imm`,
    /// `resize` with the triangle filter, `overlay`): what the fast version must equal.
    fn prepare_with_the_crate(decoded: &DynamicImage) -> [u8; IMAGE_PIXELS] {
        use image::{GrayImage, Luma, imageops};
        let rgba = decoded.to_rgba8();
        let (w, h) = rgba.dimensions();
        let grey = GrayImage::from_fn(w, h, |x, y| {
            let [r, g, b, a] = rgba.get_pixel(x, y).0;
            let luma = 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
            let alpha = f32::from(a) / 255.0;
            Luma([(alpha * luma + (1.0 - alpha) * 255.0).round() as u8])
        });
        let border: Vec<u8> = (0..w)
            .flat_map(|x| [(x, 0), (x, h - 1)])
            .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]))
            .map(|(x, y)| grey.get_pixel(x, y).0[0])
            .collect();
        let background =
            (border.iter().map(|&v| u32::from(v)).sum::<u32>() / border.len() as u32) as u8;
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        for (x, y, p) in grey.enumerate_pixels() {
            if p.0[0].abs_diff(background) > OBJECT_CONTRAST {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            }
        }
        let grey = if x0 < x1 {
            imageops::crop_imm(&grey, x0, y0, x1 - x0, y1 - y0).to_image()
        } else {
            grey
        };
        let (w, h) = grey.dimensions();
        let side = IMAGE_SIDE as u32;
        let fit = |v: u32| {
            ((u64::from(v) * u64::from(side)).div_ceil(u64::from(w.max(h))) as u32).clamp(1, side)
        };
        let (sw, sh) = (fit(w), fit(h));
        let small = imageops::resize(&grey, sw, sh, imageops::FilterType::Triangle);
        let mut canvas = GrayImage::from_pixel(side, side, Luma([background]));
        imageops::overlay(
            &mut canvas,
            &small,
            i64::from((side - sw) / 2),
            i64::from((side - sh) / 2),
        );
        let invert = background > 127;
        let mut out = [0u8; IMAGE_PIXELS];
        for (o, p) in out.iter_mut().zip(canvas.pixels()) {
            *o = if invert { 255 - p.0[0] } else { p.0[0] };
        }
        out
    }

    /// Pictures of every colour type, size and shape a client may send: a background, a
    /// garment-like rectangle and noise, from a fixed-seed generator.
    fn pictures() -> Vec<DynamicImage> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % u64::from(n.max(1))) as u32
        };
        let mut out = Vec::new();
        for i in 0..120 {
            let (w, h) = match i % 6 {
                0 => (1 + next(4), 1 + next(4)),
                1 => (28, 28),
                2 => (1 + next(700), 1 + next(30)),
                _ => (1 + next(640), 1 + next(640)),
            };
            let light = next(2) == 0;
            let (rx0, ry0) = (next(w), next(h));
            let (rx1, ry1) = (rx0 + 1 + next(w - rx0), ry0 + 1 + next(h - ry0));
            let ink = [next(256) as u8, next(256) as u8, next(256) as u8];
            let mut noise = u64::from(next(16));
            let rgba = image::RgbaImage::from_fn(w, h, |x, y| {
                noise = (noise.wrapping_mul(1_103_515_245) + 12_345) % 65_536;
                let jitter = (noise % 9) as u8;
                let inside = (rx0..rx1).contains(&x) && (ry0..ry1).contains(&y);
                let [r, g, b] = match (inside, light) {
                    (true, _) => ink,
                    (false, true) => [250 - jitter, 248 - jitter, 245],
                    (false, false) => [jitter, 2 * jitter, jitter],
                };
                image::Rgba([r, g, b, if i % 5 == 0 { (noise % 256) as u8 } else { 255 }])
            });
            let rgba = DynamicImage::ImageRgba8(rgba);
            out.push(match i % 5 {
                0 => rgba,
                1 => DynamicImage::ImageRgb8(rgba.to_rgb8()),
                2 => DynamicImage::ImageLuma8(rgba.to_luma8()),
                3 => DynamicImage::ImageLumaA8(rgba.to_luma_alpha8()),
                _ => DynamicImage::ImageRgb16(rgba.to_rgb16()),
            });
        }
        let photos = crate::testing::workspace_root().join("crates/data/tests/images");
        for entry in std::fs::read_dir(photos).unwrap().flatten() {
            if let Ok(img) = image::open(entry.path()) {
                out.push(img);
            }
        }
        out
    }

    #[test]
    fn the_fast_preparation_equals_the_crates_to_the_bit() {
        for (i, picture) in pictures().iter().enumerate() {
            assert_eq!(
                prepare_image(picture),
                prepare_with_the_crate(picture),
                "picture {i}: {}x{} {:?}",
                picture.width(),
                picture.height(),
                picture.color()
            );
        }
    }

    #[test]
    fn rounding_matches_f32_round() {
        for i in 0..=(255 * 64 + 32) {
            let v = i as f32 / 64.0;
            assert_eq!(round_non_negative(v), v.round() as u8, "{v}");
            let v = f32::from_bits(v.to_bits() + 1);
            assert_eq!(round_non_negative(v), v.round() as u8, "{v}");
        }
    }

    #[test]
    fn light_photo_becomes_dark_background_bright_object() {
        // A 90x60 white picture with a dark grey 30x15 rectangle in the middle.
        let img = RgbImage::from_fn(90, 60, |x, y| {
            if (30..60).contains(&x) && (22..37).contains(&y) {
                Rgb([40, 40, 40])
            } else {
                Rgb([250, 250, 250])
            }
        });
        let out = prepare_image(&DynamicImage::ImageRgb8(img));
        assert!(out[0] < 10, "corner {}", out[0]); // background now near black
        let centre = out[14 * IMAGE_SIDE + 14];
        assert!(centre > 200, "centre {centre}"); // object now bright
    }

    /// A small garment in a corner of a large photo fills the frame, centred, as in the data.
    #[test]
    fn the_garment_is_cropped_out_of_its_margin() {
        let img = RgbImage::from_fn(800, 600, |x, y| {
            if (20..60).contains(&x) && (30..110).contains(&y) {
                Rgb([60, 60, 200])
            } else {
                Rgb([245, 245, 245])
            }
        });
        let out = prepare_image(&DynamicImage::ImageRgb8(img));
        // 40x80 becomes 14x28: rows 0..28 and columns 7..21 bright, the rest dark.
        let at = |x: usize, y: usize| out[y * IMAGE_SIDE + x];
        assert!(
            at(14, 0) > 100 && at(14, 27) > 100,
            "{} {}",
            at(14, 0),
            at(14, 27)
        );
        assert!(at(8, 14) > 100 && at(19, 14) > 100);
        assert!(
            at(3, 14) < 20 && at(24, 14) < 20,
            "{:?}",
            &out[14 * 28..15 * 28]
        );
    }

    #[test]
    fn dark_background_is_kept() {
        let img = RgbImage::from_fn(28, 28, |x, _| Rgb([if x < 14 { 0 } else { 200 }; 3]));
        let out = prepare_image(&DynamicImage::ImageRgb8(img));
        assert!(out[0] < 5 && out[27] > 150, "{} {}", out[0], out[27]);
    }

    #[test]
    fn a_long_strip_keeps_its_aspect_ratio_and_is_fast() {
        // 16000 x 16 (the shape fuzzing found: padding it to a square first built 256 Mpixels),
        // white with a dark bar in the middle half.
        let img = image::GrayImage::from_fn(16_000, 16, |x, y| {
            image::Luma([if (4000..12_000).contains(&x) && (4..12).contains(&y) {
                30
            } else {
                250
            }])
        });
        let start = std::time::Instant::now();
        let out = prepare_image(&DynamicImage::ImageLuma8(img));
        assert!(start.elapsed().as_secs_f64() < 5.0);
        // One row tall after shrinking, centred; every other row is the (inverted) background.
        let row = |r: usize| &out[r * IMAGE_SIDE..(r + 1) * IMAGE_SIDE];
        let middle = IMAGE_SIDE / 2 - 1;
        for r in (0..IMAGE_SIDE).filter(|&r| r != middle) {
            assert!(row(r).iter().all(|&p| p < 10), "row {r}: {:?}", row(r));
        }
        assert!(
            row(middle)[10..18].iter().all(|&p| p > 60),
            "{:?}",
            row(middle)
        );
    }

    #[test]
    fn bytes_that_are_not_an_image_are_an_error() {
        let err = decode_image(b"this is text").unwrap_err().to_string();
        assert!(err.contains("format"), "{err}");
    }

    #[test]
    fn a_claimed_giant_is_refused_before_decoding() {
        // A PNG header claiming 100000 x 100000 pixels, and nothing after it.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend(100_000u32.to_be_bytes());
        png.extend(100_000u32.to_be_bytes());
        png.extend([8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(decode_image(&png).is_err());
    }
}
