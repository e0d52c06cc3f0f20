//! `--distributed`: the ranks `mpirun` or Slurm's `srun` started, joined over MPI (the `mpi`
//! feature). Rank 0 writes the run folder and prints; the other ranks train into a temporary
//! folder of their own and print nothing unless they fail. A failure that only one rank meets
//! ends every rank at once (MPI's abort), with one line naming the rank.

/// How the ranks share each training batch (`--slices`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlicesArg {
    /// Each rank's slice sized by its speed over the last steps
    Speed,
    /// Equal slices: the weights are one process's to the bit
    Equal,
}

impl From<SlicesArg> for fashion_mixer_train::distributed::Slicing {
    fn from(slices: SlicesArg) -> Self {
        match slices {
            SlicesArg::Speed => Self::BySpeed,
            SlicesArg::Equal => Self::Equal,
        }
    }
}

/// How many seconds a collective step may wait for the other ranks by default
/// (`--stall-timeout`): ten minutes, far longer than any step here takes.
pub const STALL_TIMEOUT_SECS: u64 = 600;

/// What `--distributed` says in a build without the `mpi` feature.
#[cfg(not(feature = "mpi"))]
pub const NOT_BUILT: &str = "--distributed needs the MPI build: install MPI (`apt-get install -y \
    openmpi-bin libopenmpi-dev libclang-dev`), then start the ranks with `mpirun -np N cargo \
    xtask-mpi train --distributed ...` (`cargo xtask-mpi` builds it with the `mpi` feature; \
    docs/distributed.md)";

#[cfg(feature = "mpi")]
pub use with_mpi::*;

/// This process's place among the processes a launcher started together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launched {
    /// This process's number, from 0.
    pub rank: usize,
    /// How many processes were started.
    pub size: usize,
}

/// This process's place as the launcher set it in the environment (Open MPI's `mpirun`, MPICH's
/// Hydra, Slurm's `srun`), read without MPI (before it starts, and in a build without it);
/// `None` outside a launcher (a Slurm batch script itself is none: only `srun`'s steps are).
pub fn launched() -> Option<Launched> {
    let var = |name: &str| std::env::var(name).ok()?.trim().parse().ok();
    [
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
        ("PMI_RANK", "PMI_SIZE"),
        ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS"),
    ]
    .into_iter()
    .find_map(|(rank, size)| {
        Some(Launched {
            rank: var(rank)?,
            size: var(size)?,
        })
    })
}

#[cfg(feature = "mpi")]
mod with_mpi {
    use std::sync::Arc;
    use std::time::Duration;

    use anyhow::Result;
    use fashion_mixer_model::gpus;
    use fashion_mixer_run::scratch::ScratchRun;
    use fashion_mixer_run::{Progress, RunDir};
    use fashion_mixer_train::TrainError;
    use fashion_mixer_train::distributed::{Collective, Distributed};
    use fashion_mixer_train::mpi::{MpiCollective, Stalled};

    use crate::SaidElsewhere;

    /// How long a stopped rank waits for MPI to end before it ends without it.
    const END_WITHIN: Duration = Duration::from_millis(250);

    /// This process's place among the ranks, over MPI.
    pub struct Rank {
        /// The folder a rank other than 0 trains into; dropped first, before MPI ends (which,
        /// once `mpirun` is stopping the job, may wait until the process is killed).
        scratch: Option<ScratchRun>,
        collective: Arc<MpiCollective>,
    }

    impl Rank {
        /// Joins the ranks; a collective step that waits longer than
        /// [`STALL_TIMEOUT_SECS`](super::STALL_TIMEOUT_SECS) for the other ranks ends the job.
        /// On wgpu, the ranks of one machine take its GPUs in turn ([`gpus::share_gpus`]).
        pub fn join() -> Result<Self> {
            let rank = Self {
                scratch: None,
                collective: Arc::new(MpiCollective::start()?),
            };
            gpus::share_gpus(rank.collective.local());
            rank.stall_after(Duration::from_secs(super::STALL_TIMEOUT_SECS));
            Ok(rank)
        }

        /// Ends this rank (exit code 2), with a line saying why, when a collective step waits
        /// longer than `limit` for the other ranks (a zero `limit`: it waits for ever). The
        /// rank's MPI thread is then still in its call: the process ends without MPI.
        pub fn stall_after(&self, limit: Duration) {
            if limit.is_zero() {
                self.collective.never_stall();
                return;
            }
            let on_stall = |stalled: &Stalled| {
                eprintln!("error: {stalled}");
                std::process::exit(2)
            };
            self.collective.stall_after(limit, Box::new(on_stall));
        }

        /// This rank, 0 first.
        pub fn rank(&self) -> usize {
            self.collective.rank()
        }

        /// Lets this rank end without waiting long on MPI, when its training was stopped:
        /// `mpirun`, stopping the job, lets no rank end MPI and kills them a second later.
        pub fn stopped(&self) {
            self.collective.end_within(END_WITHIN);
        }

        /// How many ranks there are.
        pub fn size(&self) -> usize {
            self.collective.size()
        }

        /// Whether this rank speaks and writes the run (rank 0).
        pub fn leads(&self) -> bool {
            self.rank() == 0
        }

        /// What training holds of the ranks, sharing each batch as `slices` says (by default,
        /// as is the default on the backend).
        pub fn distributed(&self, slices: Option<super::SlicesArg>) -> Distributed {
            let collective: Arc<dyn Collective> = Arc::clone(&self.collective) as _;
            let distributed = Distributed::new(collective);
            match slices {
                Some(slices) => distributed.with_slicing(slices.into()),
                None => distributed,
            }
        }

        /// The folder this rank writes: the run's for rank 0, a temporary one for the others
        /// (made after removing those that killed ranks of its number left).
        pub fn folder(&mut self, run: &RunDir) -> Result<RunDir> {
            if self.leads() {
                return Ok(run.clone());
            }
            let prefix = format!("fashion-mixer-rank{}-", self.rank());
            let scratch = ScratchRun::new(&std::env::temp_dir(), &prefix)?;
            let folder = scratch.run();
            self.scratch = Some(scratch);
            Ok(folder)
        }

        /// Where this rank's messages go: rank 0's to stdout, the others' nowhere.
        pub fn progress(&self) -> Progress {
            if self.leads() {
                Progress::new(|line| crate::print_line(format_args!("{line}")))
            } else {
                Progress::silent()
            }
        }

        /// What every rank made of its flags and files before the training starts, agreed:
        /// `mine` where every rank's is `Ok`; otherwise rank 0 ends with its own error, or with
        /// the first failing rank's, named, and the others end quietly ([`SaidElsewhere`]), so
        /// that an error every rank meets is one line, not one per rank.
        pub fn agree<T>(&self, mine: Result<T>) -> Result<T> {
            let said = match &mine {
                Ok(_) => Vec::new(),
                Err(error) => format!("!{error}").into_bytes(),
            };
            let all = gather_texts(&*self.collective, &said);
            let Some((failed, message)) = all.iter().enumerate().find(|(_, m)| !m.is_empty())
            else {
                return mine;
            };
            if !self.leads() {
                return Err(SaidElsewhere.into());
            }
            match failed {
                0 => mine,
                rank => Err(anyhow::anyhow!("rank {rank}: {}", &message[1..])),
            }
        }

        /// What becomes of a training's error: one every rank meets alike is rank 0's to say
        /// and end with (the others end quietly); any other is said with this rank's number,
        /// and ends every rank now.
        pub fn fail(&self, error: TrainError) -> anyhow::Error {
            if error.is_shared() {
                if self.leads() {
                    return error.into();
                }
                return SaidElsewhere.into();
            }
            eprintln!("error: rank {}: {error}", self.rank());
            self.collective.abort(2)
        }
    }

    /// Every rank's `bytes` (of any length), as text, in rank order.
    fn gather_texts(collective: &dyn Collective, bytes: &[u8]) -> Vec<String> {
        let lengths: Vec<usize> = collective
            .gather(&(bytes.len() as u64).to_le_bytes())
            .iter()
            .map(|b| u64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as usize)
            .collect();
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let mut padded = bytes.to_vec();
        padded.resize(longest, 0);
        collective
            .gather(&padded)
            .iter()
            .zip(&lengths)
            .map(|(text, &length)| String::from_utf8_lossy(&text[..length.min(text.len())]).into())
            .collect()
    }
}
