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

/// Decodes an image file's bytes (PNG or JPEG) and prepares it with [`prepare_image`]. The
/// error says what is wrong with the bytes.
pub fn decode_image(bytes: &[u8]) -> Result<[u8; IMAGE_PIXELS], String> {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| e.to_string())?;
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err("the image has no pixels".into());
    }
    Ok(prepare_image(&decoded))
}

/// Transparent parts over white, greyscale, cropped to the garment (what stands out from the
/// background), resized so its longer side is 28 and centred on a 28x28 square of the
/// background colour (the colour its border mostly shows), and inverted
/// when that background is light (Fashion-MNIST's is black).
pub fn prepare_image(decoded: &image::DynamicImage) -> [u8; IMAGE_PIXELS] {
    use image::{GrayImage, Luma, imageops};

    let rgba = decoded.to_rgba8();
    let (w, h) = rgba.dimensions();
    let grey = GrayImage::from_fn(w, h, |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let luma = 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
        let alpha = f32::from(a) / 255.0;
        Luma([(alpha * luma + (1.0 - alpha) * 255.0).round() as u8])
    });

    // The background is what the border mostly shows.
    let border: Vec<u8> = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]))
        .map(|(x, y)| grey.get_pixel(x, y).0[0])
        .collect();
    let background =
        (border.iter().map(|&v| u32::from(v)).sum::<u32>() / border.len() as u32) as u8;

    // Crop to the garment: the pixels that differ clearly from the background (Fashion-MNIST's
    // garments fill the frame; a product photo usually has a margin).
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in grey.enumerate_pixels() {
        if p.0[0].abs_diff(background) > OBJECT_CONTRAST {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
        }
    }
    let grey = if x0 < x1 {
        imageops::crop_imm(&grey, x0, y0, x1 - x0, y1 - y0).to_image()
    } else {
        grey // nothing stands out: keep the whole picture
    };
    let (w, h) = grey.dimensions();
    // Shrink so the longer side is 28 (keeping the aspect ratio), then centre it on a 28x28
    // canvas of the background colour: the same as padding to a square first, without ever
    // building a square as large as the longer side (a 16000x16 strip would need 256 Mpixels).
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
    let small = canvas;
    let invert = background > 127;
    let mut out = [0u8; IMAGE_PIXELS];
    for (o, p) in out.iter_mut().zip(small.pixels()) {
        *o = if invert { 255 - p.0[0] } else { p.0[0] };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Rgb, RgbImage};

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
        let err = decode_image(b"this is text").unwrap_err();
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
