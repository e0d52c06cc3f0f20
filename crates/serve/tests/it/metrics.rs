//! `GET /metrics`: Prometheus' text format, read by a strict parser; its counters move with the
//! requests sent.

use std::collections::BTreeMap;

use super::{Running, get, photos, post};

/// A series' labels, sorted.
type Labels = Vec<(String, String)>;

/// The samples of one scrape: (name, labels sorted) -> value.
pub struct Scrape {
    samples: BTreeMap<(String, Labels), f64>,
}

impl Scrape {
    /// The value of the sample `name` with exactly `labels`; 0 when absent (a counter not yet
    /// moved).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples
            .get(&(name.to_string(), labels))
            .copied()
            .unwrap_or(0.0)
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `k="v",...` (Prometheus' escapes: `\\`, `\"`, `\n`).
fn labels(text: &str, line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("a label without =\": {line}"));
        assert!(is_name(key), "label name {key:?}: {line}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("an unterminated label value: {line}"),
            }
        };
        out.push((key.to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out.sort();
    out
}

/// Parses the exposition `text`, checking every line: HELP and TYPE before a family's
/// samples, valid names and labels, numeric values, each series once, histograms cumulative
/// with `+Inf` equal to `_count`.
pub fn parse(text: &str) -> Scrape {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name, value) = (words.next(), words.next(), words.next());
            let name = name.unwrap_or_else(|| panic!("{line}"));
            assert!(is_name(name), "{line}");
            match kind {
                Some("HELP") => assert!(value.is_some_and(|v| !v.is_empty()), "{line}"),
                Some("TYPE") => {
                    let kind = value.unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "a second TYPE: {line}"
                    );
                }
                _ => panic!("an unknown comment: {line}"),
            }
            continue;
        }
        assert!(!line.trim().is_empty(), "an empty line");
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?}: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                labels(
                    rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}")),
                    line,
                ),
            ),
            None => (series, Vec::new()),
        };
        assert!(is_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE before {line}");
        assert!(
            samples.insert((name.to_string(), labels), value).is_none(),
            "a series twice: {line}"
        );
    }
    // Histograms: cumulative buckets, +Inf = _count.
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), value) in &samples {
            if *name != format!("{family}_bucket") {
                continue;
            }
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .expect("le")
                .1
                .clone();
            let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            series.entry(rest).or_default().push((le, *value));
        }
        assert!(!series.is_empty(), "{family}: no buckets");
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} {labels:?}: not cumulative"
            );
            let count = samples[&(format!("{family}_count"), labels.clone())];
            assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count), "{family}");
        }
    }
    Scrape { samples }
}

/// The server's metrics now.
pub fn scrape(running: &Running) -> Scrape {
    scrape_at(&running.base)
}

/// The metrics of the server at `base` (`http://HOST:PORT`) now.
pub fn scrape_at(base: &str) -> Scrape {
    let (status, text) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200, "{text}");
    parse(&text)
}

#[test]
fn metrics_parse_and_move_with_the_requests() {
    let running = Running::start(2);
    let before = scrape(&running);
    let photos = photos();
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/healthz", running.base)).0, 200);
    }
    for (_, bytes, _) in photos.iter().take(2) {
        let (status, _) = post(
            &format!("{}/api/predict", running.base),
            "application/octet-stream",
            bytes,
        );
        assert_eq!(status, 200);
    }
    assert_eq!(get(&format!("{}/no/such/page", running.base)).0, 404);
    let after = scrape(&running);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let requests = "fashion_mixer_http_requests_total";
    assert_eq!(
        moved(requests, &[("route", "/healthz"), ("status", "200")]),
        3.0
    );
    assert_eq!(
        moved(requests, &[("route", "/api/predict"), ("status", "200")]),
        2.0
    );
    assert_eq!(
        moved(requests, &[("route", "other"), ("status", "404")]),
        1.0
    );
    assert_eq!(
        moved(requests, &[("route", "/metrics"), ("status", "200")]),
        1.0,
        "the first scrape is counted by the second"
    );
    let latency = "fashion_mixer_http_request_duration_seconds_count";
    assert_eq!(moved(latency, &[("route", "/api/predict")]), 2.0);
    // Two pictures through the model, each in a forward pass of at least one image.
    let batches = moved("fashion_mixer_model_batch_size_count", &[]);
    assert!((1.0..=2.0).contains(&batches), "{batches}");
    assert_eq!(moved("fashion_mixer_model_batch_size_sum", &[]), 2.0);
    assert_eq!(after.value("fashion_mixer_model_queue_depth", &[]), 0.0);
    assert_eq!(
        after.value("fashion_mixer_model_queue_capacity", &[]),
        256.0
    );
    assert!(after.value("fashion_mixer_http_connections_open", &[]) >= 1.0);
    assert!(moved("fashion_mixer_http_connections_total", &[]) >= 7.0);
    let info = after
        .samples
        .keys()
        .find(|(name, _)| name == "fashion_mixer_model_info")
        .expect("the model's info");
    let label = |k: &str| {
        info.1
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(label("run"), Some("pretrained"));
    assert_eq!(label("parameters"), Some("294990"));
    assert_eq!(label("backend"), Some("flex"));
    assert!(
        label("test_accuracy").is_some_and(|a| a.parse::<f64>().is_ok_and(|a| a > 0.9)),
        "{info:?}"
    );
}
