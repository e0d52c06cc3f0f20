//! `cargo xtask runs` over finished, interrupted, locked, damaged and non-run folders, and
//! `cargo xtask sweep --set`: a bad name or value refused before any training, and a two-point
//! grid trained on generated data, listed by `runs` as finished.

use fashion_mixer_data::synthetic;
use fashion_mixer_data::testing::copy_shipped_run;
use fashion_mixer_run::RunDir;

use super::common::{assert_user_error, xtask};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The line of `listing` for run `name`.
fn row<'a>(listing: &'a str, name: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in:\n{listing}"))
}

#[test]
fn runs_lists_every_kind_of_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    copy_shipped_run(&root.join("finished"), None);
    copy_shipped_run(&root.join("interrupted"), Some(3));
    copy_shipped_run(&root.join("locked"), Some(5));
    copy_shipped_run(&root.join("sweep-x/point"), Some(2));
    std::fs::create_dir_all(root.join("damaged")).unwrap();
    std::fs::write(root.join("damaged/config.json"), "{broken").unwrap();
    std::fs::create_dir_all(root.join("notes")).unwrap();
    std::fs::write(root.join("notes/todo.txt"), "not a run").unwrap();
    // This test process writes `locked`, as a training run would.
    let _lock = RunDir::new(root.join("locked")).lock().unwrap();
    let out = xtask(&["runs", "--root", root.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(row(&listing, "finished").contains("finished"), "{listing}");
    assert!(row(&listing, "finished").contains("94.09%"), "{listing}");
    assert!(row(&listing, "finished").contains("93.98%"), "{listing}");
    assert!(row(&listing, "finished").ends_with("  best"), "{listing}");
    assert!(
        row(&listing, "interrupted").contains("interrupted at epoch 3 of 100"),
        "{listing}"
    );
    let pid = std::process::id().to_string();
    assert!(
        row(&listing, "locked").contains("training now (epoch 5 of 100 done)"),
        "{listing}"
    );
    assert!(
        row(&listing, "sweep-x/point").contains("2/100"),
        "{listing}"
    );
    assert!(row(&listing, "damaged").contains("damaged"), "{listing}");
    assert!(
        row(&listing, "damaged").contains("config.json"),
        "{listing}"
    );
    assert!(!listing.contains("notes"), "{listing}");
    let json = xtask(&["runs", "--root", root.to_str().unwrap(), "--json"]);
    let rows: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    let locked = rows.iter().find(|r| r["name"] == "locked").unwrap();
    assert_eq!(locked["status"]["state"], "training");
    assert_eq!(locked["status"]["pid"].to_string(), pid);
}

#[test]
fn sweep_set_refuses_a_bad_name_or_value_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("sweep");
    for (set, needles) in [
        (
            "lerning-rate=1e-3,3e-3",
            vec!["lerning-rate", "train --help"],
        ),
        ("lr=1e-3,fast", vec!["lr=fast", "invalid value"]),
        ("patch-size=7,5", vec!["patch-size=5"]),
        ("lr", vec!["FLAG=V1,V2"]),
    ] {
        let out = xtask(&[
            "sweep",
            "--set",
            set,
            "--artifacts",
            folder.to_str().unwrap(),
        ]);
        assert_user_error(set, &out, &needles);
        assert!(!folder.exists(), "{set}: the sweep started");
    }
}

#[test]
fn a_two_point_sweep_trains_both_and_runs_lists_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic::write_idx_dir(&data, 512, 128).unwrap();
    let folder = tmp.path().join("runs/sweep-lr");
    let args = [
        "sweep",
        "--set",
        "lr=1e-3,3e-3",
        "--epochs",
        "2",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifacts",
        folder.to_str().unwrap(),
    ];
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for run in ["lr1e-3", "lr3e-3"] {
        assert!(folder.join(run).join("model.bpk").is_file(), "{run}");
        // Each run's own metric logs; no experiment.log, whose process-wide logger would put
        // the second run's lines in the first one's file.
        let logs = folder.join(run).join("logs");
        assert!(logs.join("train/epoch-2/Loss.log").is_file(), "{run}");
        assert!(!logs.join("experiment.log").exists(), "{run}");
    }
    let summary = std::fs::read_to_string(folder.join("summary.md")).unwrap();
    assert!(summary.contains("| lr1e-3 | 1e-3 | 2/2 |"), "{summary}");
    assert!(summary.contains("| lr3e-3 | 3e-3 | 2/2 |"), "{summary}");
    assert!(
        std::fs::read(folder.join("summary.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
    let config =
        fashion_mixer_run::run_dir::load_config(&RunDir::new(folder.join("lr3e-3"))).unwrap();
    assert_eq!(config.lr, 3e-3);
    // Run again: both are skipped.
    let again = xtask(&args);
    assert_eq!(
        text(&again.stdout)
            .matches("finished before; skipped")
            .count(),
        2
    );
    // Again with another budget: the folders hold runs of other settings, which the sweep
    // neither skips nor continues as its own; one line names the first and what differs.
    let mut other = args;
    other[4] = "3";
    let refused = xtask(&other);
    assert_user_error(
        "a sweep over runs of other settings",
        &refused,
        &["sweep-lr/lr1e-3", "other settings", "epochs 2 (asked: 3)"],
    );
    assert_eq!(text(&refused.stdout), "", "nothing trained");
    let out = xtask(&["runs", "--root", tmp.path().join("runs").to_str().unwrap()]);
    let listing = text(&out.stdout);
    assert!(
        row(&listing, "sweep-lr/lr1e-3").contains("finished"),
        "{listing}"
    );
    assert!(
        row(&listing, "sweep-lr/lr3e-3").contains("lr=0.003"),
        "{listing}"
    );
}

/// Two shards of one sweep, started together on one folder, train each of the grid's four
/// points exactly once between them; the summary holds every point, and `runs` lists them all.
/// The first is given `--shard 0/2`; the second takes its shard from its place among the
/// processes a launcher started (here the second task of `srun -n 2`, its environment).
#[test]
fn two_shards_train_every_point_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic::write_idx_dir(&data, 256, 64).unwrap();
    let folder = tmp.path().join("runs/sweep");
    let shard = |k: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"));
        command.args([
            "sweep",
            "--set",
            "lr=1e-3,3e-3",
            "--seeds",
            "1,2",
            "--epochs",
            "1",
        ]);
        match k {
            Some(k) => command.args(["--shard", k]),
            None => command
                .env("SLURM_PROCID", "1")
                .env("SLURM_STEP_NUM_TASKS", "2"),
        };
        command
            .args(["--offline", "--data-dir"])
            .arg(&data)
            .arg("--artifacts")
            .arg(&folder)
            .env("RAYON_NUM_THREADS", "1")
            .env_remove("FASHION_MNIST_DIR")
            .output()
    };
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| shard(Some("0/2")).unwrap());
        let second = scope.spawn(|| shard(None).unwrap());
        (first.join().unwrap(), second.join().unwrap())
    });
    let mut trained = Vec::new();
    for out in [&first, &second] {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert_eq!(stdout.matches("== run ").count(), 2, "{stdout}");
        trained.extend(
            stdout
                .lines()
                .filter(|l| l.contains(" trained "))
                .map(|l| l.split_whitespace().next().unwrap().to_string()),
        );
    }
    trained.sort();
    let points = [
        "lr1e-3-seed1",
        "lr1e-3-seed2",
        "lr3e-3-seed1",
        "lr3e-3-seed2",
    ];
    assert_eq!(trained, points, "each point trained by one shard");
    for point in points {
        let rows =
            fashion_mixer_run::metrics::read_metrics(&folder.join(point).join("metrics.csv"));
        assert_eq!(rows.unwrap().len(), 1, "{point}: one epoch, trained once");
    }
    // Whichever shard ended last wrote the summary of the whole grid.
    let summary = std::fs::read_to_string(folder.join("summary.md")).unwrap();
    for point in points {
        assert!(summary.contains(&format!("| {point} |")), "{summary}");
    }
    let out = xtask(&["runs", "--root", tmp.path().join("runs").to_str().unwrap()]);
    let listing = text(&out.stdout);
    for point in points {
        assert!(
            row(&listing, &format!("sweep/{point}")).contains("finished"),
            "{listing}"
        );
    }
}
