//! The IDX file format (gzip'd or raw): a big-endian magic number, big-endian dimensions, then
//! one unsigned byte per element.

use std::io::Read;
use std::path::Path;

use crate::error::DataError;
use crate::{IMAGE_SIDE, NUM_CLASSES};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_SIGNATURE: [u8; 2] = [0x1f, 0x8b];

/// The most bytes a gzip'd file may decompress to (a "gzip bomb" stops here, not at the
/// memory's end).
pub const MAX_DECOMPRESSED: usize = 1 << 30;

/// An IDX file of either kind, as [`parse_file`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdxFile {
    /// An images file.
    Images(IdxImages),
    /// A labels file.
    Labels(Vec<u8>),
}

/// Checks the raw contents of a file named `path` as loading would: gunzipped when it is gzip
/// data (required when named `.gz`), then an images file if its magic says so, else a labels
/// file. The fuzz targets drive this with arbitrary bytes.
pub fn parse_file(path: &Path, raw: Vec<u8>) -> Result<IdxFile, DataError> {
    let bytes = decode_maybe_gzip(path, raw)?;
    if bytes.len() >= 4 && be_u32(&bytes[..4]) == IMAGES_MAGIC {
        parse_images(path, &bytes).map(IdxFile::Images)
    } else {
        parse_labels(path, &bytes).map(IdxFile::Labels)
    }
}

/// Images read from an IDX file: `count` images of `IMAGE_SIDE`x`IMAGE_SIDE` bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// All pixels, image after image.
    pub pixels: Vec<u8>,
}

/// Reads and checks an images file (`*-images-idx3-ubyte[.gz]`).
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let bytes = read_maybe_gzip(path)?;
    parse_images(path, &bytes)
}

/// Reads and checks a labels file (`*-labels-idx1-ubyte[.gz]`).
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gzip(path)?;
    parse_labels(path, &bytes)
}

/// Reads a file, gunzipping it when it is gzip data. A file named `.gz` must be gzip data.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_maybe_gzip(path, raw)
}

/// Gunzips `raw` when it is gzip data; `path` names the file in errors and decides whether gzip
/// is required (a `.gz` name).
pub fn decode_maybe_gzip(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if raw.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    let named_gz = path.extension().is_some_and(|ext| ext == "gz");
    let is_gzip = raw.starts_with(&GZIP_SIGNATURE);
    if named_gz && !is_gzip {
        let found = raw.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(DataError::NotGzip {
            path: path.into(),
            found,
        });
    }
    if !is_gzip {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(MAX_DECOMPRESSED));
    flate2::read::MultiGzDecoder::new(raw.as_slice())
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DataError::BadGzip {
            path: path.into(),
            message: e.to_string(),
        })?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(DataError::BadGzip {
            path: path.into(),
            message: format!(
                "decompresses to more than {} MiB (Fashion-MNIST's largest file is 45 MiB)",
                MAX_DECOMPRESSED >> 20
            ),
        });
    }
    if out.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    Ok(out)
}

/// Checks decompressed bytes as an images file.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<IdxImages, DataError> {
    let (dims, payload) = parse(path, bytes, IMAGES_MAGIC)?;
    let (rows, cols) = (dims[1], dims[2]);
    if rows as usize != IMAGE_SIDE || cols as usize != IMAGE_SIDE {
        return Err(DataError::BadImageSize {
            path: path.into(),
            rows,
            cols,
        });
    }
    Ok(IdxImages {
        count: dims[0] as usize,
        pixels: payload.to_vec(),
    })
}

/// Checks decompressed bytes as a labels file; every label must name one of the 10 classes.
pub fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let (_, payload) = parse(path, bytes, LABELS_MAGIC)?;
    if let Some(index) = payload.iter().position(|&l| l as usize >= NUM_CLASSES) {
        return Err(DataError::LabelOutOfRange {
            path: path.into(),
            index,
            label: payload[index],
        });
    }
    Ok(payload.to_vec())
}

/// Checks magic and length; returns the dimensions and the payload.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    expected_magic: u32,
) -> Result<(Vec<u32>, &'a [u8]), DataError> {
    let ndims = (expected_magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(DataError::TruncatedHeader {
            path: path.into(),
            expected: header_len,
            found: bytes.len(),
        });
    }
    let magic = be_u32(&bytes[..4]);
    if magic != expected_magic {
        return Err(DataError::BadMagic {
            path: path.into(),
            expected: expected_magic,
            found: magic,
        });
    }
    if bytes.len() < header_len {
        return Err(DataError::TruncatedHeader {
            path: path.into(),
            expected: header_len,
            found: bytes.len(),
        });
    }
    let dims: Vec<u32> = bytes[4..header_len]
        .as_chunks::<4>()
        .0
        .iter()
        .map(|b| be_u32(b))
        .collect();
    let payload = &bytes[header_len..];
    // u128: three u32 dimensions cannot overflow it (u64 could); no payload is that long.
    let expected = dims.iter().map(|&d| u128::from(d)).product::<u128>();
    let found = payload.len() as u128;
    if found < expected {
        return Err(DataError::TruncatedPayload {
            path: path.into(),
            dims,
            expected: usize::try_from(expected).unwrap_or(usize::MAX),
            found: payload.len(),
        });
    }
    if found > expected {
        let expected = expected as usize; // < found, so it fits
        return Err(DataError::TrailingBytes {
            path: path.into(),
            dims,
            expected,
            extra: payload.len() - expected,
        });
    }
    Ok((dims, payload))
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Encodes images as an IDX file (raw, not gzip'd); the inverse of [`parse_images`].
pub fn encode_images(count: usize, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + pixels.len());
    out.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    for d in [count as u32, rows, cols] {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Encodes labels as an IDX file (raw, not gzip'd); the inverse of [`parse_labels`].
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn images(count: usize) -> Vec<u8> {
        let pixels: Vec<u8> = (0..count * 784).map(|i| (i % 251) as u8).collect();
        encode_images(count, 28, 28, &pixels)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn reads_raw_and_gzip_alike() {
        let dir = tempfile::tempdir().unwrap();
        let raw = write(&dir, "a-images-idx3-ubyte", &images(3));
        let gz = write(&dir, "a-images-idx3-ubyte.gz", &gzip(&images(3)));
        let a = read_images(&raw).unwrap();
        assert_eq!(a.count, 3);
        assert_eq!(a.pixels.len(), 3 * 784);
        assert_eq!(a, read_images(&gz).unwrap());
        let labels = write(&dir, "l.gz", &gzip(&encode_labels(&[9, 0, 3])));
        assert_eq!(read_labels(&labels).unwrap(), vec![9, 0, 3]);
    }

    #[test]
    fn bad_magic_names_file_and_both_magics() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "train-images-idx3-ubyte", &encode_labels(&[1, 2]));
        let msg = read_images(&path).unwrap_err().to_string();
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
        assert!(
            msg.contains("expected magic 0x00000803, found 0x00000801"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_payload() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = images(2);
        bytes.truncate(bytes.len() - 10);
        let path = write(&dir, "cut-images", &bytes);
        let msg = read_images(&path).unwrap_err().to_string();
        assert!(msg.contains("cut-images"), "{msg}");
        assert!(
            msg.contains("truncated payload") && msg.contains("need 1568 bytes, found 1558"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "short-images", &images(1)[..10]);
        let msg = read_images(&path).unwrap_err().to_string();
        assert!(
            msg.contains("short-images") && msg.contains("truncated header"),
            "{msg}"
        );
    }

    #[test]
    fn trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode_labels(&[1, 2, 3]);
        bytes.extend_from_slice(&[0, 0]);
        let path = write(&dir, "long-labels", &bytes);
        let msg = read_labels(&path).unwrap_err().to_string();
        assert!(
            msg.contains("long-labels") && msg.contains("2 trailing bytes"),
            "{msg}"
        );
    }

    #[test]
    fn label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "bad-labels", &encode_labels(&[1, 2, 10, 4]));
        let msg = read_labels(&path).unwrap_err().to_string();
        assert!(
            msg.contains("bad-labels") && msg.contains("label 10 at index 2 is out of range"),
            "{msg}"
        );
    }

    #[test]
    fn image_not_28x28() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "small-images",
            &encode_images(2, 32, 32, &[0; 2 * 32 * 32]),
        );
        let msg = read_images(&path).unwrap_err().to_string();
        assert!(
            msg.contains("small-images") && msg.contains("images are 32x32, expected 28x28"),
            "{msg}"
        );
    }

    #[test]
    fn empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "empty-labels-idx1-ubyte.gz", &[]);
        let msg = read_labels(&path).unwrap_err().to_string();
        assert!(
            msg.contains("empty-labels-idx1-ubyte.gz") && msg.contains("the file is empty"),
            "{msg}"
        );
    }

    #[test]
    fn gz_name_without_gzip_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "plain-labels-idx1-ubyte.gz", &encode_labels(&[1]));
        let msg = read_labels(&path).unwrap_err().to_string();
        assert!(
            msg.contains("plain-labels-idx1-ubyte.gz") && msg.contains("not gzip"),
            "{msg}"
        );
    }

    #[test]
    fn damaged_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = gzip(&images(2));
        bytes.truncate(bytes.len() / 2);
        let path = write(&dir, "half-images.gz", &bytes);
        let msg = read_images(&path).unwrap_err().to_string();
        assert!(
            msg.contains("half-images.gz") && msg.contains("corrupt gzip"),
            "{msg}"
        );
    }

    #[test]
    fn missing_file_names_it() {
        let msg = read_labels(Path::new("/nonexistent/labels.gz"))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("/nonexistent/labels.gz: "), "{msg}");
    }

    #[test]
    fn huge_dimensions_do_not_overflow() {
        let mut bytes = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [u32::MAX, 28, 28] {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        let err = parse_images(Path::new("x"), &bytes).unwrap_err();
        assert!(matches!(err, DataError::TruncatedPayload { .. }), "{err}");
    }
}
