//! A request as the routes see it: its method, path, query, content type and body, read in
//! full; and the values of its query.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// What a request is, as far as the routes care.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query (after `?`; empty when none).
    pub query: &'a str,
    /// The `Content-Type` header (empty when absent).
    pub content_type: &'a str,
    /// The body (at most [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES)).
    pub body: &'a [u8],
}

/// The value of `key` in a URL query (`a=1&run=x%2Fy`), `+` as a space and percent-decoded
/// (a byte sequence that is not UTF-8 is decoded lossily).
pub fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| {
            let spaced: Cow<str> = if v.contains('+') {
                Cow::Owned(v.replace('+', " "))
            } else {
                Cow::Borrowed(v)
            };
            percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        let query = "a=1&run=x%2Fy+z&name=caf%C3%A9&bad=%zz%4&empty";
        assert_eq!(param(query, "run").as_deref(), Some("x/y z"));
        assert_eq!(param(query, "name").as_deref(), Some("café"));
        assert_eq!(param(query, "bad").as_deref(), Some("%zz%4"));
        assert_eq!(param(query, "empty").as_deref(), Some(""));
        assert_eq!(param(query, "missing"), None);
    }
}
