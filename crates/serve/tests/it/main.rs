//! The server on a free loopback port, driven over HTTP: predictions equal `infer`'s, every kind
//! of bad input is a 4xx JSON error after which the server still answers, and a bounded load;
//! hostile clients and overload (`hostile.rs`) and the metrics (`metrics.rs`).

mod hostile;
mod metrics;
mod runs_page;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use fashion_mixer_data::picture::decode_image;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::inference::load_model;
use fashion_mixer_serve::{
    AppState, MAX_BODY_BYTES, Predictor, Server, ServerConfig, Stopper, page_gaps,
};
use serde_json::Value;

/// The workspace.
pub fn root() -> PathBuf {
    fashion_mixer_data::testing::workspace_root()
}

/// The shipped model served on 127.0.0.1 (a free port).
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The model's queue, shared with the server.
    pub predictor: Predictor,
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// With `threads` HTTP threads and the other settings `serve` has by default.
    fn start(threads: usize) -> Self {
        Self::with(
            ServerConfig {
                threads,
                ..ServerConfig::default()
            },
            256,
        )
    }

    /// With `config`, at most `max_queue` images waiting for the model.
    pub fn with(config: ServerConfig, max_queue: usize) -> Self {
        let run = RunDir::new(root().join("artifacts/pretrained"));
        let loaded = load_model(&run, None).unwrap();
        Self::serve(AppState::new(&run, loaded, 64, max_queue), config)
    }

    /// `state` served with `config`.
    pub fn serve(state: AppState, config: ServerConfig) -> Self {
        let predictor = state.predictor.clone();
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), state, config).unwrap();
        let addr = server.local_addr();
        let stopper = server.stopper();
        let thread = Some(std::thread::spawn(move || server.run().unwrap()));
        Self {
            base: format!("http://{addr}"),
            addr,
            predictor,
            stopper,
            thread,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// A client that takes any status, and gives up on a server silent for 10 s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into()
}

/// Status and JSON body of a POST of `body` with `content_type` to `url`.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut response = agent()
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

/// Status and body of a GET of `url`.
pub fn get(url: &str) -> (u16, String) {
    let mut response = agent().get(url).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// A multipart form of `files` (name, bytes) and its content type.
fn form(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "fashion-mixer-test-boundary";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The product photos and their classes (crates/data/tests/images/labels.csv).
pub fn photos() -> Vec<(String, Vec<u8>, String)> {
    let dir = root().join("crates/data/tests/images");
    std::fs::read_to_string(dir.join("labels.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let (file, class) = line.split_once(',').unwrap();
            (
                file.to_string(),
                std::fs::read(dir.join(file)).unwrap(),
                class.to_string(),
            )
        })
        .collect()
}

/// Each product photo, alone and in one batch: the class and probabilities `infer` gives it
/// (both orientations averaged), and the 28x28 input it decodes to.
#[test]
fn predictions_equal_infers() {
    let server = Running::start(4);
    let run = RunDir::new(root().join("artifacts/pretrained"));
    let loaded = load_model(&run, None).unwrap();
    let photos = photos();
    let files: Vec<(&str, &[u8])> = photos
        .iter()
        .map(|(f, b, _)| (f.as_str(), b.as_slice()))
        .collect();
    let (content_type, body) = form(&files);
    let (status, batch) = post(
        &format!("{}/api/predict/batch", server.base),
        &content_type,
        &body,
    );
    assert_eq!(status, 200, "{batch}");
    for (i, (file, bytes, class)) in photos.iter().enumerate() {
        let input = decode_image(bytes).unwrap();
        let expected = &loaded.predict_either_way(&[input])[0];
        // The bytes as every client sends them: labelled, or with curl's default type
        // (`curl --data-binary @photo.jpg`).
        let labelled = if file.ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        let content_type = [
            "application/octet-stream",
            labelled,
            "application/x-www-form-urlencoded",
        ][i % 3];
        let (status, single) = post(&format!("{}/api/predict", server.base), content_type, bytes);
        assert_eq!(status, 200, "{file}: {single}");
        for answer in [&single, &batch["predictions"][i]] {
            assert_eq!(answer["class"], class.as_str(), "{file}: {answer}");
            let probabilities: Vec<f64> =
                serde_json::from_value(answer["probabilities"].clone()).unwrap();
            for (got, want) in probabilities.iter().zip(expected.probabilities) {
                assert!((got - f64::from(want)).abs() < 1e-5, "{file}: {answer}");
            }
            let pixels: Vec<u8> = serde_json::from_value(answer["input_28x28"].clone()).unwrap();
            assert_eq!(pixels, input.to_vec(), "{file}");
            assert_eq!(answer["top3"].as_array().unwrap().len(), 3);
        }
        assert_eq!(batch["predictions"][i]["name"], file.as_str());
    }
    let (status, page) = get(&format!("{}/", server.base));
    assert_eq!(status, 200);
    assert!(
        page.contains("/api/predict") && !page.contains("http://") && !page.contains("https://")
    );
    let (status, model) = get(&format!("{}/api/model", server.base));
    assert_eq!(status, 200);
    // The run by its folder's name: no path of the server's file system.
    let workspace = root().display().to_string();
    assert!(!model.contains(&workspace), "{model}");
    let model: Value = serde_json::from_str(&model).unwrap();
    assert_eq!(model["run"], "pretrained");
    assert_eq!(model["record"], "model.bpk");
    assert!(
        model["summary"]
            .as_str()
            .unwrap()
            .starts_with("4x4 patches, 128 features, 4 blocks"),
        "{model}"
    );
    let summary = model["summary"].as_str().unwrap();
    assert!(
        summary.contains(
            "cosine schedule, random erasing 0.25, mixup 0.2, distilled from teacher, batch 128"
        ),
        "{summary}"
    );
    assert_eq!(model["parameters"], 294_990);
    // One row per epoch of the shipped run (the `best` preset).
    assert_eq!(
        model["metrics"].as_array().unwrap().len(),
        fashion_mixer_run::TrainingConfig::best().epochs
    );
    assert!(model["evaluation"]["test_mirrored"]["accuracy"].is_number());
}

/// A JPEG whose header says 20000 x 20000 pixels (a real 8 x 8 JPEG with its size rewritten).
fn huge_jpeg() -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::new(8, 8)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    // SOF0: marker, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
    bytes
}

/// Every kind of bad request is a 4xx with a JSON error naming the problem, and the next
/// request is served.
#[test]
fn bad_input_is_a_4xx_and_the_server_goes_on() {
    let server = Running::start(4);
    let predict = format!("{}/api/predict", server.base);
    let png = std::fs::read(root().join("crates/data/tests/images/bag.png")).unwrap();
    let (multi_type, two_files) = form(&[("a.png", &png), ("b.png", &png)]);
    // (case, url, content type, body, status, a phrase of the error)
    type Case<'a> = (&'a str, String, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "not an image",
            predict.clone(),
            "image/png",
            b"hello".to_vec(),
            400,
            "not a readable image",
        ),
        (
            "truncated PNG",
            predict.clone(),
            "image/png",
            png[..png.len() / 3].to_vec(),
            400,
            "not a readable image",
        ),
        (
            "20000x20000 JPEG",
            predict.clone(),
            "image/jpeg",
            huge_jpeg(),
            400,
            "not a readable image",
        ),
        (
            "empty body",
            predict.clone(),
            "image/png",
            Vec::new(),
            400,
            "empty",
        ),
        (
            "wrong content type",
            predict.clone(),
            "text/plain",
            png.clone(),
            415,
            "not an image",
        ),
        (
            "curl's default content type on what is not a picture",
            predict.clone(),
            "application/x-www-form-urlencoded",
            b"class=bag".to_vec(),
            415,
            "not an image",
        ),
        (
            "two files to /api/predict",
            predict.clone(),
            &multi_type,
            two_files,
            400,
            "/api/predict/batch",
        ),
        (
            "multipart without a boundary",
            predict.clone(),
            "multipart/form-data",
            png.clone(),
            400,
            "boundary",
        ),
        (
            "body over the limit",
            predict.clone(),
            "image/png",
            vec![0; MAX_BODY_BYTES + 1],
            413,
            "limit",
        ),
        (
            "unknown path",
            format!("{}/api/nothing", server.base),
            "image/png",
            png.clone(),
            404,
            "no POST /api/nothing",
        ),
        (
            "wrong method",
            format!("{}/healthz", server.base),
            "image/png",
            png.clone(),
            405,
            "not allowed",
        ),
    ];
    for (case, url, content_type, body, status, needle) in cases {
        let (got, answer) = post(&url, content_type, &body);
        assert_eq!(got, status, "{case}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: {answer}"));
        assert!(error.contains(needle), "{case}: {error}");
        let (health, _) = get(&format!("{}/healthz", server.base));
        assert_eq!(health, 200, "{case}: the server stopped answering");
    }
    let (status, answer) = post(&predict, "image/png", &png);
    assert_eq!((status, answer["class"].as_str()), (200, Some("Bag")));
}

/// 2,000 requests from 16 clients at once: every one answered, correctly.
#[test]
fn two_thousand_requests_from_sixteen_clients() {
    let server = Running::start(16);
    let photos = photos();
    let answered: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|client| {
                let (url, photos) = (format!("{}/api/predict", server.base), &photos);
                scope.spawn(move || {
                    let agent = agent();
                    let mut right = 0;
                    for i in 0..125 {
                        let (file, bytes, class) = &photos[(client + i) % photos.len()];
                        let mut response = agent
                            .post(&url)
                            .header("Content-Type", "application/octet-stream")
                            .send(bytes.as_slice())
                            .unwrap();
                        assert_eq!(response.status().as_u16(), 200, "{file}");
                        let answer: Value =
                            serde_json::from_str(&response.body_mut().read_to_string().unwrap())
                                .unwrap();
                        assert_eq!(answer["class"], class.as_str(), "{file}");
                        right += 1;
                    }
                    right
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(answered, 2000);
}

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Headless Chromium, when installed; else `None`, after the SKIPPED line (a failure under CI)
/// saying that it cannot open `page`.
pub fn chromium(page: &str) -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        fashion_mixer_data::testing::skip(&format!(
            "no Chromium to open {page} (apt-get install chromium)"
        ));
    }
    found
}

/// A real browser: headless Chromium opens the page with a product photo to classify (the
/// `?example=` path runs the same `classify()` as choosing or dropping a file), and the page
/// shows the right class. A screenshot of the page is written to
/// `target/tmp/serve-page.png`.
#[test]
fn the_page_in_a_real_browser() {
    let Some(browser) = chromium("the page") else {
        return;
    };
    let server = Running::start(4);
    let photo = std::fs::read(root().join("crates/data/tests/images/ankle-boot.png")).unwrap();
    let data_url = format!("data:image/png;base64,{}", base64(&photo))
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
        .replacen("data:image%2Fpng;base64,", "data:image/png;base64,", 1);
    let url = format!("{}/?example={data_url}", server.base);
    let dom = browser_dom(browser, &url, 15_000);
    assert!(
        dom.contains(r#"<div id="answer" data-index="9">Ankle boot</div>"#),
        "the page did not show the class: {dom}"
    );
    assert!(dom.contains("294,990 parameters"), "{dom}");
    // The shipped run mixes its training images: the page says what its train curve scores.
    assert!(dom.contains("each scored against its own label"), "{dom}");
    screenshot(browser, &url, "serve-page.png", "1000,1190", 15_000);
}

/// Headless Chromium's DOM of `url`, its timers run for `virtual_ms` of virtual time.
pub fn browser_dom(browser: &str, url: &str, virtual_ms: u32) -> String {
    let out = std::process::Command::new(browser)
        .args(HEADLESS)
        .arg(format!("--virtual-time-budget={virtual_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot of `url` (window `size`, "W,H"), after `virtual_ms` of virtual time, written to
/// `target/tmp/NAME`.
pub fn screenshot(browser: &str, url: &str, name: &str, size: &str, virtual_ms: u32) {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let out = std::process::Command::new(browser)
        .args(HEADLESS)
        .arg(format!("--virtual-time-budget={virtual_ms}"))
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&file).unwrap().starts_with(b"\x89PNG"));
    eprintln!("screenshot: {}", file.display());
}

/// How the tests start Chromium.
const HEADLESS: [&str; 4] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
];

/// What the page will lack is said before serving: nothing for the shipped run; for a copy
/// whose `metrics.csv` has a bad row and whose `eval.json` is not JSON, one line naming each.
#[test]
fn what_the_page_lacks_is_named() {
    let shipped = RunDir::new(root().join("artifacts/pretrained"));
    assert_eq!(page_gaps(&shipped), Vec::<String>::new());
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir::new(tmp.path().join("run"));
    std::fs::create_dir(run.root()).unwrap();
    for entry in std::fs::read_dir(shipped.root()).unwrap().flatten() {
        std::fs::copy(entry.path(), run.root().join(entry.file_name())).unwrap();
    }
    assert_eq!(page_gaps(&run), Vec::<String>::new());
    let mut metrics = std::fs::read_to_string(run.metrics()).unwrap();
    metrics.push_str("junk\n");
    std::fs::write(run.metrics(), metrics).unwrap();
    std::fs::write(run.eval(), "{broken").unwrap();
    let gaps = page_gaps(&run);
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert!(gaps[0].contains("metrics.csv: bad row"), "{gaps:?}");
    assert!(gaps[0].ends_with("the page shows no curves"), "{gaps:?}");
    assert!(
        gaps[1].contains("eval.json: missing, unreadable"),
        "{gaps:?}"
    );
    assert!(gaps[1].contains("cargo xtask eval --artifacts"), "{gaps:?}");
}
