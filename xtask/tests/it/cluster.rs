//! The cluster files as a user submits them: `deploy/slurm/train.sbatch` (two ranks of one
//! training, which continues its run when Slurm requeues it) and `deploy/slurm/sweep.sbatch` (a job array, one sweep shard per task) run for
//! real on a one-node Slurm cluster this test starts in a temporary folder (munge, slurmctld and
//! slurmd from Debian, configured for this machine's CPUs, every daemon stopped by its process
//! id at the end); and `deploy/kubernetes/sweep.yaml`, an Indexed Job, parsed and its fields
//! checked. Slurm needs root, MPI and Slurm (`apt-get install -y slurm-wlm munge openmpi-bin
//! libopenmpi-dev libclang-dev`): SKIPPED without them, a failure under CI.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fashion_mixer_data::synthetic;
use fashion_mixer_data::testing::{skip, workspace_root};
use fashion_mixer_run::metrics::read_metrics;

use crate::distributed::mpi_xtask;

/// A one-node Slurm cluster in a temporary folder; its daemons stop when it is dropped.
struct Cluster {
    dir: tempfile::TempDir,
    /// munged (daemonised: its pid from its pid file), slurmctld and slurmd (run in the
    /// foreground as children).
    munged: Option<u32>,
    children: Vec<Child>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        for child in &mut self.children {
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some(pid) = self.munged {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            // munged writes its seed file as it ends: the folder is removed after that, or
            // the file would land in it while it is being removed and keep it.
            let start = Instant::now();
            while running(pid) && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Whether process `pid` still runs (exists and is not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// Whether this process runs as root (munged and slurmd here need it).
fn root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

/// Whether `program` runs (found on the path).
fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `check` to hold (at most `limit`); `what` names it in the failure.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Cluster {
    /// Starts munged, slurmctld and slurmd for this machine; `None` after [`skip`] when this
    /// machine cannot (not root, Slurm or munge missing).
    fn start() -> Option<Self> {
        let install = "apt-get install -y slurm-wlm munge (and run the tests as root)";
        if !root() {
            skip(&format!("a local Slurm cluster needs root: {install}"));
            return None;
        }
        for program in ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo"] {
            if !found(program) {
                skip(&format!("Slurm is not installed (no {program}): {install}"));
                return None;
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("slurm")
            .tempdir_in("/tmp")
            .unwrap();
        let t = dir.path();
        let key = t.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").unwrap(),
            &mut bytes,
        )
        .unwrap();
        std::fs::write(&key, &bytes).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o400))
            .unwrap();
        let mut cluster = Self {
            dir,
            munged: None,
            children: Vec::new(),
        };
        let t = cluster.dir.path().to_path_buf();
        let munged = Command::new("munged")
            .arg("--force")
            .arg(format!("--socket={}", t.join("munge.sock").display()))
            .arg(format!("--pid-file={}", t.join("munged.pid").display()))
            .arg(format!("--log-file={}", t.join("munged.log").display()))
            .arg(format!("--seed-file={}", t.join("munged.seed").display()))
            .arg(format!("--key-file={}", key.display()))
            .status()
            .unwrap();
        assert!(munged.success(), "munged did not start");
        let pid_file = t.join("munged.pid");
        wait_for("munged's pid file", Duration::from_secs(10), || {
            pid_file.is_file()
        });
        cluster.munged = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let host = String::from_utf8(Command::new("hostname").arg("-s").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let conf = format!(
            "ClusterName=local\nSlurmctldHost={host}(127.0.0.1)\nSlurmctldPort={}\n\
             SlurmdPort={}\nAuthType=auth/munge\nAuthInfo=socket={t}/munge.sock\n\
             CredType=cred/munge\nStateSaveLocation={t}/state\nSlurmdSpoolDir={t}/spool\n\
             SlurmctldPidFile={t}/slurmctld.pid\nSlurmdPidFile={t}/slurmd.pid\n\
             SlurmctldLogFile={t}/slurmctld.log\nSlurmdLogFile={t}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\nSlurmUser=root\nSlurmdUser=root\n\
             ReturnToService=2\nMpiDefault=none\nSwitchType=switch/none\n\
             AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            free_port(),
            free_port(),
            t = t.display()
        );
        std::fs::write(t.join("slurm.conf"), conf).unwrap();
        for daemon in ["slurmctld", "slurmd"] {
            let child = cluster
                .command(daemon)
                .arg("-D")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            cluster.children.push(child);
        }
        wait_for("the node idle", Duration::from_secs(60), || {
            let out = cluster.command("sinfo").args(["-h", "-o", "%t"]).output();
            out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        Some(cluster)
    }

    /// `program` with this cluster's configuration.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", self.dir.path().join("slurm.conf"));
        command
    }

    /// Submits `script` (relative to the project) with `options` before it and `args` after it
    /// from the project folder, the job's output files in this cluster's folder; the job's id.
    fn submit(
        &self,
        script: &str,
        options: &[&str],
        args: &[String],
        env: &[(&str, &Path)],
    ) -> String {
        let mut command = self.command("sbatch");
        command
            .arg("--parsable")
            .arg(format!("--chdir={}", workspace_root().display()))
            .args(options)
            .arg(workspace_root().join(script))
            .args(args)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("RAYON_NUM_THREADS", "1")
            .env_remove("FASHION_MNIST_DIR");
        for (name, value) in env {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "sbatch {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout).unwrap();
        id.trim().split(';').next().unwrap().to_string()
    }

    /// `scontrol` with `args`, which must succeed.
    fn control(&self, args: &[&str]) {
        let out = self.command("scontrol").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "scontrol {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The state of the job `id` (`PENDING`, `RUNNING`, `COMPLETING`...; empty once it left
    /// the queue).
    fn state(&self, id: &str) -> String {
        let out = self
            .command("squeue")
            .args(["-h", "-o", "%T", "-j", id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until no job of `ids` is queued or running (at most `limit`).
    fn wait(&self, ids: &[&str], limit: Duration) {
        wait_for("the jobs to end", limit, || {
            let out = self
                .command("squeue")
                .args(["-h", "-o", "%i", "-j", &ids.join(",")])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().is_empty()
        });
    }

    /// Every job output file in the cluster's folder, together.
    fn outputs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".out") {
                text += &format!(
                    "== {name}\n{}",
                    std::fs::read_to_string(entry.path()).unwrap()
                );
            }
        }
        text
    }
}

/// Both Slurm scripts, submitted as they are with small budgets: the training job trains one
/// run over two ranks; another, requeued by `scontrol requeue` in its second epoch, runs again
/// and continues its run to the end; the array's two tasks train the sweep's two points between
/// them; each folder holds what a run or a sweep writes. Then `srun` alone starts two ranks of
/// a training.
#[test]
fn the_slurm_scripts_run_on_a_local_cluster() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic::write_idx_dir(&data, 256, 64).unwrap();
    let path = |p: &Path| p.display().to_string();
    let small: Vec<String> = ["--epochs", "1", "--offline", "--data-dir"]
        .map(String::from)
        .into_iter()
        .chain([path(&data)])
        .collect();
    let run = tmp.path().join("run");
    let mut train_args = small.clone();
    train_args.extend(["--dim", "16", "--artifacts"].map(String::from));
    train_args.push(path(&run));
    let out = |name: &str| format!("--output={}", cluster.dir.path().join(name).display());
    let two_ranks = ["--nodes=1", "--ntasks=2", "--ntasks-per-node=2"];

    // A training requeued by Slurm in its second epoch (as after a node failure or a
    // preemption) runs again and continues its run: train.sbatch adds --resume.
    let long = tmp.path().join("long");
    let long_data = tmp.path().join("long-data");
    synthetic::write_idx_dir(&long_data, 16384, 64).unwrap();
    let long_args: Vec<String> = [
        "--epochs",
        "4",
        "--batch-size",
        "128",
        "--offline",
        "--data-dir",
        &path(&long_data),
        "--artifacts",
        &path(&long),
    ]
    .map(String::from)
    .to_vec();
    let requeued = cluster.submit(
        "deploy/slurm/train.sbatch",
        &[two_ranks.as_slice(), &[&out("long-%j.out")]].concat(),
        &long_args,
        &[("XTASK", &xtask_mpi)],
    );
    let first = long.join("checkpoint/model-1.bpk");
    wait_for("the first checkpoint", Duration::from_secs(120), || {
        first.is_file()
    });
    cluster.control(&["requeue", &requeued]);
    // Back in the queue, a requeued job waits two minutes before it may start again; this one
    // need not.
    wait_for("the job back in the queue", Duration::from_secs(60), || {
        cluster.state(&requeued) == "PENDING"
    });
    cluster.control(&["update", &format!("JobId={requeued}"), "StartTime=now"]);

    let train = cluster.submit(
        "deploy/slurm/train.sbatch",
        &[two_ranks.as_slice(), &[&out("train-%j.out")]].concat(),
        &train_args,
        &[("XTASK", &xtask_mpi)],
    );
    let sweep_root = tmp.path().join("sweep");
    let mut sweep_args: Vec<String> = ["--set", "lr=1e-3,3e-3"].map(String::from).to_vec();
    sweep_args.extend(small);
    sweep_args.extend(["--artifacts".to_string(), path(&sweep_root)]);
    let xtask = PathBuf::from(env!("CARGO_BIN_EXE_xtask"));
    let sweep = cluster.submit(
        "deploy/slurm/sweep.sbatch",
        &["--array=0-1", &out("sweep-%A-%a.out")],
        &sweep_args,
        &[("XTASK", &xtask)],
    );
    cluster.wait(&[&requeued, &train, &sweep], Duration::from_secs(300));
    let outputs = cluster.outputs();
    let long_out = std::fs::read_to_string(cluster.dir.path().join(format!("long-{requeued}.out")))
        .unwrap_or_default();
    // Both runs of the job append to its output file.
    assert!(long_out.contains("DUE TO JOB REQUEUE"), "{long_out}");
    assert!(
        long_out.contains("holds the run: continuing it (restart 1)"),
        "{long_out}"
    );
    assert!(long_out.contains("finished epoch 4/4"), "{long_out}");
    assert!(long.join("model.bpk").is_file(), "{long_out}");
    let epochs: Vec<usize> = read_metrics(&long.join("metrics.csv"))
        .unwrap()
        .iter()
        .map(|row| row.epoch)
        .collect();
    assert_eq!(epochs, [1, 2, 3, 4], "{long_out}");
    let outputs = outputs.replace(&long_out, "");
    assert!(!outputs.contains("error"), "{outputs}");
    assert!(run.join("model.bpk").is_file(), "{outputs}");
    assert_eq!(read_metrics(&run.join("metrics.csv")).unwrap().len(), 1);
    assert!(outputs.contains("2 ranks"), "{outputs}");
    for point in ["lr1e-3", "lr3e-3"] {
        assert!(
            sweep_root.join(point).join("model.bpk").is_file(),
            "{point}: {outputs}"
        );
    }
    let summary = std::fs::read_to_string(sweep_root.join("summary.md")).unwrap();
    assert!(
        summary.contains("| lr1e-3 |") && summary.contains("| lr3e-3 |"),
        "{summary}"
    );

    // The ranks started by Slurm's `srun` itself, without `mpirun` (over PMIx).
    let direct = tmp.path().join("direct");
    let mut direct_args = train_args.clone();
    *direct_args.last_mut().unwrap() = path(&direct);
    let out = cluster
        .command("srun")
        .args(["-n", "2", "--mpi=pmix", "--time=5"])
        .arg(&xtask_mpi)
        .args(["train", "--distributed", "--no-tui"])
        .args(&direct_args)
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("FASHION_MNIST_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 ranks"), "{stdout}");
    assert!(direct.join("model.bpk").is_file(), "{stdout}\n{stderr}");
}

/// The Kubernetes manifest as JSON, parsed by PyYAML (`python/requirements.txt`, in the venv
/// `$FASHION_MIXER_PYTHON` names); `None` after [`skip`] without it.
fn kubernetes_job() -> Option<serde_json::Value> {
    let manifest = workspace_root().join("deploy/kubernetes/sweep.yaml");
    let python = std::env::var_os("FASHION_MIXER_PYTHON").unwrap_or_else(|| "python3".into());
    let out = Command::new(&python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&manifest)
        .output();
    match out {
        Ok(out) if out.status.success() => Some(serde_json::from_slice(&out.stdout).unwrap()),
        _ => {
            skip(
                "PyYAML is not installed: the venv of python/requirements.txt, named by \
                 $FASHION_MIXER_PYTHON (.ci/run makes it)",
            );
            None
        }
    }
}

/// The Kubernetes Indexed Job parses, and its shards cover the grid: as many completions as
/// pods at once as shards named in `--shard K/N`, K from the pod's completion index, and the
/// sweep's folder on the shared volume.
#[test]
fn the_kubernetes_sweep_is_an_indexed_job_of_n_shards() {
    let Some(job) = kubernetes_job() else {
        return;
    };
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(completions));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let container = &pod["containers"][0];
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let script = command.last().unwrap();
    assert!(
        script.contains(&format!("--shard \"$JOB_COMPLETION_INDEX/{completions}\"")),
        "{script}"
    );
    let artifacts = script
        .split_whitespace()
        .skip_while(|w| *w != "--artifacts")
        .nth(1)
        .unwrap();
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mount = mounts
        .iter()
        .find(|m| artifacts.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the sweep's folder is on a mounted volume");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(
        volume["persistentVolumeClaim"]["claimName"].is_string(),
        "a volume every pod shares"
    );
}
