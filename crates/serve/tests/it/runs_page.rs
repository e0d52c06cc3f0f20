//! The runs page (`/runs`) and its API: runs listed without server paths, another run's model
//! answering `?run=` (loaded off the server's threads: the rest of the server answers while it
//! loads), and in headless Chromium the newest runs selected when the page opens, two selected
//! runs drawn on shared axes, and a run that gains an epoch while the page is open shown with
//! it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fashion_mixer_data::testing::copy_shipped_run;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::inference::load_model;
use fashion_mixer_serve::{AppState, RunsPage, ServerConfig};
use serde_json::Value;

use super::metrics::scrape_at;
use super::{Running, agent, browser_dom, chromium, get, photos, post, root, screenshot};

/// The shipped model served with the runs under `runs`.
fn board(runs: &Path) -> Running {
    let run = RunDir::new(root().join("artifacts/pretrained"));
    let state =
        AppState::new(&run, load_model(&run, None).unwrap(), 64, 256).with_runs(runs.to_path_buf());
    Running::serve(state, ServerConfig::default())
}

/// While another run's model takes 3 s to load, `/healthz`, `/metrics` (which counts the images
/// queued for every loaded model) and the served model's predictions answer within 100 ms each,
/// on a server of one HTTP thread; the request for the other run gets its prediction once it
/// has loaded, and a second request for it waits for the same load.
#[test]
fn a_slow_model_load_blocks_no_other_request() {
    let tmp = tempfile::tempdir().unwrap();
    copy_shipped_run(&tmp.path().join("slow"), None);
    let run = RunDir::new(root().join("artifacts/pretrained"));
    let state = AppState::new(&run, load_model(&run, None).unwrap(), 64, 256);
    let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&loads);
    let page = RunsPage::new(
        tmp.path().to_path_buf(),
        state.limits(),
        Arc::clone(&state.metrics),
    )
    .with_loader(Arc::new(move |run: &RunDir| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(3));
        load_model(run, None)
    }));
    let one_thread = ServerConfig {
        threads: 1,
        ..ServerConfig::default()
    };
    let running = Running::serve(state.with_runs_page(page), one_thread);
    let (_, bytes, class) = photos().swap_remove(0);
    // The served model's first prediction starts its threads: not what is timed here.
    let (status, _) = post(
        &format!("{}/api/predict", running.base),
        "image/png",
        &bytes,
    );
    assert_eq!(status, 200);
    let slow = |base: String, bytes: Vec<u8>| {
        std::thread::spawn(move || {
            post(&format!("{base}/api/predict?run=slow"), "image/png", &bytes)
        })
    };
    let first = slow(running.base.clone(), bytes.clone());
    std::thread::sleep(Duration::from_millis(300)); // the load is under way
    let second = slow(running.base.clone(), bytes.clone());
    let client = agent();
    for _ in 0..5 {
        for path in ["/healthz", "/metrics"] {
            let start = Instant::now();
            let response = client.get(&format!("{}{path}", running.base)).call();
            let took = start.elapsed();
            assert_eq!(response.unwrap().status().as_u16(), 200, "{path}");
            assert!(took < Duration::from_millis(100), "{path} took {took:?}");
        }
        let start = Instant::now();
        let (status, answer) = post(
            &format!("{}/api/predict", running.base),
            "image/png",
            &bytes,
        );
        let took = start.elapsed();
        assert_eq!(status, 200, "{answer}");
        assert!(
            took < Duration::from_millis(100),
            "/api/predict took {took:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for waiting in [first, second] {
        let (status, answer) = waiting.join().unwrap();
        assert_eq!(
            (status, answer["class"].as_str()),
            (200, Some(class.as_str())),
            "{answer}"
        );
    }
    assert_eq!(
        loads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one load"
    );
}

/// The page opened without `?select=` selects the three runs started last that have an epoch,
/// and draws them.
#[test]
fn the_runs_page_opens_with_the_newest_runs_selected() {
    let Some(browser) = chromium("the runs page") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(86_400);
    for (i, name) in ["oldest", "older", "newer", "newest"]
        .into_iter()
        .enumerate()
    {
        copy_shipped_run(&tmp.path().join(name), Some(2 + i));
        let started = SystemTime::now() - day * (10 - i as u32);
        let config = std::fs::File::options()
            .write(true)
            .open(tmp.path().join(name).join("config.json"))
            .unwrap();
        config.set_modified(started).unwrap();
    }
    let board = board(tmp.path());
    let page = browser_dom(browser, &format!("{}/runs", board.base), 5_000);
    for (name, epochs) in [("older", 3), ("newer", 4), ("newest", 5)] {
        assert_eq!(epochs_drawn(&page, name), Some(epochs), "{name}: {page}");
    }
    assert_eq!(epochs_drawn(&page, "oldest"), None, "{page}");
    assert!(!page.contains("epoch 2<"), "{page}");
}

#[test]
fn the_runs_api_lists_runs_by_name_and_serves_their_models() {
    let tmp = tempfile::tempdir().unwrap();
    copy_shipped_run(&tmp.path().join("whole"), None);
    copy_shipped_run(&tmp.path().join("sweep/half"), Some(25));
    let board = board(tmp.path());
    let (status, list) = get(&format!("{}/api/runs", board.base));
    assert_eq!(status, 200);
    assert!(!list.contains(&tmp.path().display().to_string()), "{list}");
    let list: Vec<Value> = serde_json::from_str(&list).unwrap();
    let names: Vec<&str> = list.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"whole") && names.contains(&"sweep/half"));
    let (status, detail) = get(&format!("{}/api/run?name=sweep%2Fhalf", board.base));
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["metrics"].as_array().unwrap().len(), 25);
    assert_eq!(detail["run"]["status"]["state"], "interrupted");
    // Another finished run answers `?run=`; an unfinished one, or none, is named.
    let (_, bytes, class) = &photos()[0];
    let (status, answer) = post(
        &format!("{}/api/predict?run=whole", board.base),
        "image/png",
        bytes,
    );
    assert_eq!(
        (status, answer["class"].as_str()),
        (200, Some(class.as_str()))
    );
    let (status, info) = get(&format!("{}/api/model?run=whole", board.base));
    assert_eq!(status, 200);
    assert!(info.contains("\"run\":\"whole\""), "{info}");
    let (status, answer) = post(
        &format!("{}/api/predict?run=sweep/half", board.base),
        "image/png",
        bytes,
    );
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("interrupted"));
    let (status, answer) = post(
        &format!("{}/api/predict?run=..%2F..%2Fetc", board.base),
        "image/png",
        bytes,
    );
    assert_eq!(status, 404, "{answer}");
}

/// The `data-epochs` of run `name`'s first line in `dom`.
fn epochs_drawn(dom: &str, name: &str) -> Option<usize> {
    let at = dom.find(&format!("<polyline data-run=\"{name}\" data-epochs=\""))?;
    let rest = &dom[at..];
    let start = rest.find("data-epochs=\"")? + "data-epochs=\"".len();
    rest[start..].split('"').next()?.parse().ok()
}

#[test]
fn the_runs_page_draws_two_runs_and_a_new_epoch_in_a_real_browser() {
    let Some(browser) = chromium("the runs page") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    copy_shipped_run(&tmp.path().join("whole"), None);
    copy_shipped_run(&tmp.path().join("growing"), Some(3));
    let board = board(tmp.path());
    let url = format!("{}/runs?select=whole,growing", board.base);
    let page = browser_dom(browser, &url, 5_000);
    let epochs = fashion_mixer_run::TrainingConfig::best().epochs;
    assert_eq!(epochs_drawn(&page, "whole"), Some(epochs), "{page}");
    assert_eq!(epochs_drawn(&page, "growing"), Some(3), "{page}");
    // Test and train, accuracy and loss: four lines a run.
    assert_eq!(page.matches("<polyline data-run=\"whole\"").count(), 4);
    assert_eq!(page.matches("<polyline data-run=\"growing\"").count(), 4);
    assert!(
        page.contains(&format!("interrupted at 3 of {epochs}")),
        "{page}"
    );
    screenshot(browser, &url, "runs-page.png", "1150,1100", 5_000);

    // The page open, asking every 200 ms (of the browser's virtual time): once it has asked
    // for the growing run twice, the run gains its fourth epoch; the page must draw it
    // without being reloaded.
    let metrics_before = scrape_at(&board.base).value(
        "fashion_mixer_http_requests_total",
        &[("route", "/api/run"), ("status", "200")],
    );
    let browsing = {
        let (browser, url) = (browser.to_string(), format!("{url}&every=200"));
        std::thread::spawn(move || browser_dom(&browser, &url, 120_000))
    };
    let start = Instant::now();
    loop {
        let asked = scrape_at(&board.base).value(
            "fashion_mixer_http_requests_total",
            &[("route", "/api/run"), ("status", "200")],
        );
        if asked >= metrics_before + 4.0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the page never asked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let whole = std::fs::read_to_string(tmp.path().join("whole/metrics.csv")).unwrap();
    let fourth = whole.lines().nth(4).unwrap();
    let growing = tmp.path().join("growing/metrics.csv");
    let mut rows = std::fs::read_to_string(&growing).unwrap();
    rows.push_str(fourth);
    rows.push('\n');
    let tmp_file = growing.with_extension("tmp");
    std::fs::write(&tmp_file, rows).unwrap();
    std::fs::rename(&tmp_file, &growing).unwrap();
    let page = browsing.join().unwrap();
    assert_eq!(epochs_drawn(&page, "growing"), Some(4), "{page}");
    let updates: usize = page
        .split("data-updates=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(updates > 2, "{updates} updates");
}
