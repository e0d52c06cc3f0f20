//! Clients an attacker would send, on loopback: slow headers, slow bodies and idle connections
//! are closed at their deadlines and never block a normal client; connections over the bound
//! are answered 503 at once; a full model queue answers 503 and the next request is served;
//! no accepted request is lost or answered twice.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use fashion_mixer_serve::ServerConfig;
use fashion_mixer_serve::load::{Slow, SlowClients};

use super::metrics::scrape;
use super::{Running, agent, get, photos, post};

/// Settings with short deadlines, so the tests see them pass.
fn short_deadlines() -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    }
}

/// A connection to `running` that has sent `bytes`.
fn connect(running: &Running, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(running.addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes the connection, and how long that took.
fn until_closed(mut stream: TcpStream) -> (String, Duration) {
    let start = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

/// The four kinds of slow client, each closed at its deadline (with a 408 where a request had
/// begun), while a normal client is answered; the metrics count each.
#[test]
fn slow_and_idle_clients_are_closed_at_their_deadlines() {
    let running = Running::with(short_deadlines(), 256);
    let slow_head = connect(
        &running,
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Ty",
    );
    let slow_body = connect(
        &running,
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc",
    );
    let fresh = connect(&running, b"");
    let mut kept_alive = connect(&running, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut first = [0u8; 512];
    let n = kept_alive.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &first[..n]);
    // Meanwhile a normal client is served.
    let (status, _) = get(&format!("{}/healthz", running.base));
    assert_eq!(status, 200);
    let waits: Vec<_> = [slow_head, slow_body, fresh, kept_alive]
        .into_iter()
        .map(|s| std::thread::spawn(move || until_closed(s)))
        .collect();
    let [head, body, fresh, idle]: [(String, Duration); 4] = waits
        .into_iter()
        .map(|w| w.join().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    for (case, (answer, waited)) in [
        ("slow headers", &head),
        ("slow body", &body),
        ("fresh", &fresh),
        ("idle", &idle),
    ] {
        assert!(
            *waited < Duration::from_secs(8),
            "{case}: still open after {waited:?}"
        );
        let _ = answer;
    }
    assert!(head.0.starts_with("HTTP/1.1 408"), "{}", head.0);
    assert!(
        head.0.contains("headers did not arrive within 1 s"),
        "{}",
        head.0
    );
    assert!(body.0.starts_with("HTTP/1.1 408"), "{}", body.0);
    assert!(
        body.0.contains("body did not arrive within 1 s"),
        "{}",
        body.0
    );
    assert!(body.0.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(fresh.0, "", "nothing was asked, nothing is answered");
    assert_eq!(idle.0, "");
    let metrics = scrape(&running);
    let timed_out = |phase: &str| {
        metrics.value(
            "fashion_mixer_http_connections_timed_out_total",
            &[("phase", phase)],
        )
    };
    assert_eq!(
        timed_out("header"),
        2.0,
        "the slow headers and the fresh one"
    );
    assert_eq!(timed_out("body"), 1.0);
    assert_eq!(timed_out("idle"), 1.0);
}

/// The threads of this process named as the server's runtime names its own.
fn server_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| {
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "http")
            })
            .count()
    })
}

/// 500 hostile connections (slow headers, slow bodies, idle) held open, reopened when closed:
/// a normal client's `/healthz` and `/api/predict` are answered, and the server's threads
/// stay its two, not one a connection.
#[test]
fn five_hundred_hostile_connections_do_not_stop_a_normal_client() {
    let running = Running::with(
        ServerConfig {
            threads: 2,
            ..ServerConfig::default()
        },
        256,
    );
    let hostile =
        SlowClients::open(running.addr, 500, &[Slow::Headers, Slow::Body, Slow::Idle]).unwrap();
    let open = scrape(&running).value("fashion_mixer_http_connections_open", &[]);
    assert!(open >= 500.0, "{open} connections open");
    if cfg!(target_os = "linux") {
        // Other tests' servers may run beside this one: two threads each.
        let threads = server_threads();
        assert!(threads < 32, "{threads} server threads for 500 connections");
    }
    let photos = photos();
    for _ in 0..5 {
        let (status, _) = get(&format!("{}/healthz", running.base));
        assert_eq!(status, 200);
        let (file, bytes, class) = &photos[0];
        let (status, answer) = post(
            &format!("{}/api/predict", running.base),
            "application/octet-stream",
            bytes,
        );
        assert_eq!(
            (status, answer["class"].as_str()),
            (200, Some(class.as_str())),
            "{file}"
        );
    }
    drop(hostile);
}

/// With the bound at 4 connections, a fifth is answered 503 with Retry-After and closed at
/// once; when the four go, a request is served again.
#[test]
fn connections_over_the_bound_are_answered_503_at_once() {
    let running = Running::with(
        ServerConfig {
            max_connections: 4,
            ..ServerConfig::default()
        },
        256,
    );
    let held: Vec<TcpStream> = (0..4).map(|_| connect(&running, b"")).collect();
    let (answer, waited) = until_closed(connect(&running, b""));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("--max-connections"), "{answer}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    drop(held);
    let start = Instant::now();
    loop {
        let status = agent()
            .get(&format!("{}/healthz", running.base))
            .call()
            .map(|r| r.status().as_u16());
        if status.as_ref().is_ok_and(|s| *s == 200) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{status:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = scrape(&running);
    assert!(metrics.value("fashion_mixer_http_connections_refused_total", &[]) >= 1.0);
}

/// With the model busy and its queue at the bound, `/api/predict` answers 503 with
/// Retry-After at once; once the queue drains, the next request is served.
#[test]
fn a_full_queue_answers_503_and_the_next_request_is_served() {
    let running = Running::with(ServerConfig::default(), 4);
    let photos = photos();
    let (_, bytes, class) = &photos[0];
    let image = fashion_mixer_data::picture::decode_image(bytes).unwrap();
    // A long job keeps the model busy; a second one, taken because the queue is empty, waits
    // behind it and fills the queue.
    let long = running.predictor.submit(vec![image; 30_000]).unwrap();
    let start = Instant::now();
    while running.predictor.queued() > 0 {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(1));
    }
    let waiting = running.predictor.submit(vec![image; 8]).unwrap();
    assert_eq!(running.predictor.queued(), 8);
    let url = format!("{}/api/predict", running.base);
    let mut response = agent()
        .post(&url)
        .header("Content-Type", "image/png")
        .send(bytes.as_slice())
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.contains("the model is busy"), "{text}");
    assert_eq!(long.wait_blocking().unwrap().len(), 30_000);
    assert_eq!(waiting.wait_blocking().unwrap().len(), 8);
    let (status, answer) = post(&url, "image/png", bytes);
    assert_eq!(
        (status, answer["class"].as_str()),
        (200, Some(class.as_str()))
    );
}

/// 16 clients at once against a queue of 2 images: every request gets one answer, 200 (right)
/// or 503, and the server counts the same answers as the clients do.
#[test]
fn no_accepted_request_is_lost_or_answered_twice() {
    let running = Running::with(ServerConfig::default(), 2);
    let photos = photos();
    let url = format!("{}/api/predict", running.base);
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|client| {
                let (url, photos) = (&url, &photos);
                scope.spawn(move || {
                    (0..10)
                        .map(|i| {
                            let (file, bytes, class) = &photos[(client + i) % photos.len()];
                            let (status, answer) = post(url, "image/png", bytes);
                            match status {
                                200 => assert_eq!(answer["class"], class.as_str(), "{file}"),
                                503 => assert!(answer["error"].is_string(), "{answer}"),
                                _ => panic!("{file}: {status} {answer}"),
                            }
                            status
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(answers.len(), 160);
    let metrics = scrape(&running);
    let counted = |status: u16| {
        metrics.value(
            "fashion_mixer_http_requests_total",
            &[("route", "/api/predict"), ("status", &status.to_string())],
        )
    };
    let ok = answers.iter().filter(|s| **s == 200).count();
    assert!(ok > 0, "no request got through");
    assert_eq!(counted(200), ok as f64);
    assert_eq!(counted(503), (160 - ok) as f64);
}
