//! The parts of a `multipart/form-data` body (RFC 7578): each part's name and bytes.

use crate::error::MultipartError;

/// The boundary named by a `multipart/form-data; boundary=...` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The parts of `body` separated by `boundary`: (the file name, or else the field name, and
/// the content). `Err` says what is malformed.
pub fn parts(body: &[u8], boundary: &str) -> Result<Vec<(String, Vec<u8>)>, MultipartError> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut at = find(body, delimiter, 0).ok_or(MultipartError::NoBoundary)?;
    let mut parts = Vec::new();
    loop {
        at += delimiter.len();
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(parts); // the closing delimiter
        }
        let headers_start = at + 2; // past CRLF
        let headers_end =
            find(body, b"\r\n\r\n", headers_start).ok_or(MultipartError::HeadersDoNotEnd)?;
        let headers = String::from_utf8_lossy(&body[headers_start..headers_end]);
        let content_start = headers_end + 4;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(delimiter);
        let content_end = find(body, &closing, content_start).ok_or(MultipartError::Truncated)?;
        parts.push((
            part_name(&headers).unwrap_or_else(|| format!("part {}", parts.len() + 1)),
            body[content_start..content_end].to_vec(),
        ));
        at = content_end + 2;
    }
}

/// `filename="..."` or else `name="..."` of a part's Content-Disposition.
fn part_name(headers: &str) -> Option<String> {
    let disposition = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
    let value = |key: &str| {
        disposition.split(';').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    value("filename").or_else(|| value("name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_form() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--x\r\n--XyZ\r\nContent-Disposition: form-data; name=\"second\"\r\n\r\nhello\r\n--XyZ--\r\n";
        let parts = parts(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, "a.png");
        assert_eq!(parts[0].1, b"\x89PNG\r\n--x");
        assert_eq!(parts[1], ("second".to_string(), b"hello".to_vec()));
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\"").as_deref(),
            Some("XyZ")
        );
        assert!(
            super::parts(
                b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nabc",
                "XyZ"
            )
            .is_err()
        );
        assert!(super::parts(b"garbage", "XyZ").is_err());
    }
}
