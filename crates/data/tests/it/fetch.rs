//! `FetchPlan` against a tiny HTTP server on 127.0.0.1 that serves generated files.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use fashion_mixer_data::fetch::{FetchOutcome, FetchPlan, RemoteFile};
use fashion_mixer_data::{DataError, FashionMnistDataset, Split, idx, locate};

/// Serves `files` by name (404 otherwise) on a fresh loopback port; returns the base URL.
/// The thread answers at most `max_requests` requests, then stops.
fn serve(files: HashMap<String, Vec<u8>>, max_requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/data/", listener.local_addr().unwrap());
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            // Drain the headers.
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let name = path.trim_start_matches("/data/");
            let (status, body) = match files.get(name) {
                Some(body) => ("200 OK", body.as_slice()),
                None => ("404 Not Found", &b"no such file"[..]),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(body).unwrap();
        }
    });
    base
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, bytes).unwrap();
    fashion_mixer_data::fetch::md5_file(&path).unwrap()
}

/// The four files of a 3-item data set, gzip'd, by name.
fn small_dataset() -> HashMap<String, Vec<u8>> {
    let pixels: Vec<u8> = (0..3 * 784).map(|i| (i % 256) as u8).collect();
    let mut files = HashMap::new();
    for split in Split::ALL {
        let [images, labels] = split.file_stems();
        files.insert(
            format!("{images}.gz"),
            gzip(&idx::encode_images(3, 28, 28, &pixels)),
        );
        files.insert(
            format!("{labels}.gz"),
            gzip(&idx::encode_labels(&[9, 0, 5])),
        );
    }
    files
}

fn plan_for(base_url: String, files: &HashMap<String, Vec<u8>>) -> FetchPlan {
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    FetchPlan {
        base_url,
        files: names
            .into_iter()
            .map(|name| RemoteFile {
                name: name.clone(),
                md5: md5_hex(&files[name]),
            })
            .collect(),
        progress: false,
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.') || name.ends_with(".partial"))
        .collect()
}

#[test]
fn fetches_verifies_then_skips_present_files() {
    let files = small_dataset();
    let base = serve(files.clone(), 8);
    let plan = plan_for(base, &files);
    let dest = tempfile::tempdir().unwrap();

    let outcomes = plan.run(dest.path()).unwrap();
    assert_eq!(outcomes.len(), 4);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, FetchOutcome::Downloaded(_)))
    );
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(dest.path().join(name)).unwrap(), bytes);
    }
    assert!(leftovers(dest.path()).is_empty());
    // The fetched files are a readable data set.
    let test = FashionMnistDataset::load(dest.path(), Split::Test).unwrap();
    assert_eq!(test.labels(), &[9, 0, 5]);

    // Second run: nothing is downloaded (the server would not even answer: it is not asked).
    let again = plan.run(dest.path()).unwrap();
    assert!(again.iter().all(|o| matches!(o, FetchOutcome::Present(_))));
}

#[test]
fn replaces_a_corrupt_local_file() {
    let files = small_dataset();
    let base = serve(files.clone(), 8);
    let plan = plan_for(base, &files);
    let dest = tempfile::tempdir().unwrap();
    let name = &plan.files[0].name;
    std::fs::write(dest.path().join(name), b"garbage").unwrap();

    let outcomes = plan.run(dest.path()).unwrap();
    assert_eq!(
        outcomes[0],
        FetchOutcome::Downloaded(dest.path().join(name))
    );
    assert_eq!(std::fs::read(dest.path().join(name)).unwrap(), files[name]);
}

#[test]
fn checksum_mismatch_leaves_no_file() {
    let files = small_dataset();
    let base = serve(files.clone(), 8);
    let mut plan = plan_for(base, &files);
    plan.files.truncate(1);
    plan.files[0].md5 = "00000000000000000000000000000000".into();
    let dest = tempfile::tempdir().unwrap();

    let err = plan.run(dest.path()).unwrap_err();
    assert!(matches!(err, DataError::ChecksumMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&plan.files[0].name) && msg.contains("MD5 checksum mismatch"),
        "{msg}"
    );
    assert!(!dest.path().join(&plan.files[0].name).exists());
    assert!(
        leftovers(dest.path()).is_empty(),
        "{:?}",
        leftovers(dest.path())
    );
}

#[test]
fn http_error_names_the_url() {
    let base = serve(HashMap::new(), 1);
    let plan = FetchPlan {
        base_url: base.clone(),
        files: vec![RemoteFile {
            name: "missing.gz".into(),
            md5: "x".into(),
        }],
        progress: false,
    };
    let dest = tempfile::tempdir().unwrap();
    let msg = plan.run(dest.path()).unwrap_err().to_string();
    assert!(msg.contains(&format!("{base}missing.gz")), "{msg}");
    assert!(msg.contains("404"), "{msg}");
    assert!(leftovers(dest.path()).is_empty());
}

/// An address on which nothing listens: a connection there is refused at once.
fn dead_base() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/data/", listener.local_addr().unwrap());
    drop(listener);
    base
}

/// First use: nothing in the places searched, so the files come from the first address that
/// answers (a dead one is passed over), into the project's data folder; a second call finds
/// them and downloads nothing.
#[test]
fn missing_data_is_downloaded_on_first_use() {
    let files = small_dataset();
    let sources = [
        plan_for(dead_base(), &files),
        plan_for(serve(files.clone(), 4), &files),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("datasets/fashion-mnist");
    let dirs = vec![dest.clone(), tmp.path().join("elsewhere")];
    let mut told = Vec::new();
    let found = locate::locate_or_fetch(&dirs, &dest, &sources, |d| told.push(d.to_path_buf()));
    assert_eq!(found.unwrap(), dest);
    assert_eq!(told, vec![dest.clone()]);
    let test = FashionMnistDataset::load(&dest, Split::Test).unwrap();
    assert_eq!(test.labels(), &[9, 0, 5]);
    assert!(leftovers(&dest).is_empty());

    // The server has answered its 4 requests and stopped: nothing is asked of it again.
    let again = locate::locate_or_fetch(&dirs, &dest, &sources, |_| panic!("downloads again"));
    assert_eq!(again.unwrap(), dest);
}

/// No network: one message naming every address tried and the other ways to get the data.
#[test]
fn failed_download_names_the_addresses_and_the_alternatives() {
    let files = small_dataset();
    let (a, b) = (dead_base(), dead_base());
    let sources = [plan_for(a.clone(), &files), plan_for(b.clone(), &files)];
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("fm");
    let err =
        locate::locate_or_fetch(std::slice::from_ref(&dest), &dest, &sources, |_| {}).unwrap_err();
    assert!(matches!(err, DataError::DownloadFailed { .. }), "{err}");
    let msg = err.to_string();
    for needle in [
        a.as_str(),
        b.as_str(),
        "apt-get install dataset-fashion-mnist",
        "--data-dir",
    ] {
        assert!(msg.contains(needle), "missing {needle:?}: {msg}");
    }
    assert!(!msg.contains('\n'), "{msg}");
    assert!(leftovers(&dest).is_empty());
}

/// Without sources (offline, or a directory the user named) the error is the plain not-found.
#[test]
fn offline_gives_the_not_found_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = locate::locate_or_fetch(&[tmp.path().to_path_buf()], tmp.path(), &[], |_| {
        panic!("no download offline")
    })
    .unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err}");
}
