//! MPI as a [`Collective`]: the ranks `mpirun` or Slurm's
//! `srun` started, over whatever transport MPI chooses (shared memory on one machine, TCP or
//! InfiniBand between machines). Built with the `mpi` feature (rsmpi, over the system's MPI:
//! OpenMPI or MPICH).
//!
//! MPI's handles may not leave the thread that started MPI, so one thread of its own makes
//! every MPI call (MPI's "funneled" mode); a collective hands it each buffer and waits for the
//! result. MPI ends when the [`MpiCollective`] is dropped.

use std::convert::Infallible;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fashion_mixer_model::gpus::LocalRank;
use mpi::Threading;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::topology::{Communicator, SimpleCommunicator};

use crate::distributed::Collective;

/// What the MPI thread is asked to do; each answers on its channel.
enum Call {
    SumF32(Vec<f32>, Sender<Vec<f32>>),
    SumF64(Vec<f64>, Sender<Vec<f64>>),
    Barrier(Sender<()>),
    Broadcast(Vec<u8>, Sender<Vec<u8>>),
    Gather(Vec<u8>, Sender<Vec<Vec<u8>>>),
    Abort(i32),
}

/// The slices a collective call's wait for the other ranks is counted in.
const STALL_SLICE: Duration = Duration::from_millis(250);

/// What happens when a collective call has waited for the other ranks longer than its limit:
/// told of it, it ends the process (it cannot return: the MPI thread stays in its call).
pub type OnStall = Box<dyn Fn(&Stalled) -> Infallible + Send + Sync>;

/// A collective call that waited for the other ranks longer than its limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "rank {rank}: the other ranks have not joined a collective step for {} s (--stall-timeout): a rank is paused or stuck, or its machine or the network is down; ending the job (the run resumes from its newest checkpoint with --resume)",
    waited.as_secs()
)]
pub struct Stalled {
    /// The rank that waited.
    pub rank: usize,
    /// How long it waited.
    pub waited: Duration,
}

/// The ranks of this MPI job.
pub struct MpiCollective {
    calls: Mutex<Option<Sender<Call>>>,
    /// How long a call may wait for the other ranks, and what is then done.
    stall: Mutex<Option<(Duration, OnStall)>>,
    thread: Option<JoinHandle<()>>,
    /// Told when MPI has ended (`MPI_Finalize` returned).
    ended: Mutex<Receiver<()>>,
    /// How long dropping this waits for MPI to end; `None`: as long as it takes.
    patience: Mutex<Option<Duration>>,
    rank: usize,
    size: usize,
    /// This rank's place among the ranks of its machine.
    local: LocalRank,
}

/// MPI could not start (not run under `mpirun` or `srun`, or no MPI library).
#[derive(Debug, thiserror::Error)]
#[error(
    "MPI could not start: run the command under `mpirun -np N` or Slurm's `srun`, with OpenMPI or MPICH installed"
)]
pub struct MpiUnavailable;

impl MpiCollective {
    /// Joins the job's ranks (MPI starts on a thread of its own).
    pub fn start() -> Result<Self, MpiUnavailable> {
        let (calls, queue) = mpsc::channel::<Call>();
        let (started, place) = mpsc::channel::<Option<(usize, usize, LocalRank)>>();
        let (finalized, ended) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mpi".into())
            .spawn(move || {
                let Some((universe, _)) = mpi::initialize_with_threading(Threading::Funneled)
                else {
                    let _ = started.send(None);
                    return;
                };
                let world = universe.world();
                // The ranks that share this machine's memory: this machine's.
                let machine = world.split_shared(world.rank());
                let local = LocalRank {
                    rank: machine.rank() as usize,
                    size: machine.size() as usize,
                };
                drop(machine);
                let _ = started.send(Some((world.rank() as usize, world.size() as usize, local)));
                serve(&world, queue);
                drop(universe); // MPI_Finalize
                let _ = finalized.send(());
            })
            .map_err(|_| MpiUnavailable)?;
        match place.recv() {
            Ok(Some((rank, size, local))) => Ok(Self {
                calls: Mutex::new(Some(calls)),
                stall: Mutex::new(None),
                thread: Some(thread),
                ended: Mutex::new(ended),
                patience: Mutex::new(None),
                rank,
                size,
                local,
            }),
            _ => {
                let _ = thread.join();
                Err(MpiUnavailable)
            }
        }
    }

    /// This rank's place among the ranks of its machine (those that share its memory, in rank
    /// order).
    pub fn local(&self) -> LocalRank {
        self.local
    }

    /// Makes dropping this wait at most `limit` for MPI to end, once every rank has come to its
    /// end (a barrier), then let the process end without it. For a job being stopped: once Open
    /// MPI's `mpirun` is stopping the job (Ctrl-C), `MPI_Finalize` does not return, and the
    /// ranks would wait for the SIGKILL that follows. Every rank calls this alike.
    pub fn end_within(&self, limit: Duration) {
        *self.patience.lock().unwrap_or_else(|e| e.into_inner()) = Some(limit);
    }

    /// Hands the call to `on_stall`, which ends the process, when a collective call waits
    /// longer than `limit` for the other ranks (a rank paused or stuck, a machine or the
    /// network down: MPI itself would wait for ever); `mpirun` then ends the other ranks, as
    /// for a rank that died. Rank `r` waits `r` seconds more (at most 5), so that the first
    /// rank left waiting speaks and the others are ended before they do.
    pub fn stall_after(&self, limit: Duration, on_stall: OnStall) {
        let limit = limit + Duration::from_secs(self.rank.min(5) as u64);
        *self.stall.lock().unwrap_or_else(|e| e.into_inner()) = Some((limit, on_stall));
    }

    /// Lets every collective call wait for the other ranks as long as it takes (MPI's own
    /// way), undoing [`Self::stall_after`].
    pub fn never_stall(&self) {
        *self.stall.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Hands `call` to the MPI thread and waits for its answer on `answer` (as long as
    /// [`Self::stall_after`] allows).
    fn call<T>(&self, call: impl FnOnce(Sender<T>) -> Call) -> T {
        let (reply, answer) = mpsc::channel();
        // Held until the answer comes: one call at a time, in the order the ranks make them.
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let calls = calls.as_ref().expect("MPI is running until dropped");
        calls.send(call(reply)).expect("the MPI thread runs");
        let stall = self.stall.lock().unwrap_or_else(|e| e.into_inner());
        let Some((limit, on_stall)) = stall.as_ref() else {
            return answer.recv().expect("the MPI thread answers");
        };
        // Waited in slices: one that lasts far longer than asked means this process was
        // paused (SIGSTOP, Ctrl-Z) or starved, not left waiting by the others, and the count
        // starts again.
        let mut waited = Duration::ZERO;
        loop {
            let before = Instant::now();
            match answer.recv_timeout(STALL_SLICE) {
                Ok(value) => return value,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let took = before.elapsed();
                    waited = if took > 4 * STALL_SLICE {
                        Duration::ZERO
                    } else {
                        waited + took
                    };
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the MPI thread answers"),
            }
            if waited >= *limit {
                let stalled = Stalled {
                    rank: self.rank,
                    waited,
                };
                on_stall(&stalled); // ends the process
            }
        }
    }
}

/// Makes each call asked for, until the last sender is gone.
fn serve(world: &SimpleCommunicator, queue: Receiver<Call>) {
    let root = world.process_at_rank(0);
    for call in queue {
        match call {
            Call::SumF32(send, reply) => {
                let mut sum = vec![0.0f32; send.len()];
                world.all_reduce_into(&send[..], &mut sum[..], SystemOperation::sum());
                let _ = reply.send(sum);
            }
            Call::SumF64(send, reply) => {
                let mut sum = vec![0.0f64; send.len()];
                world.all_reduce_into(&send[..], &mut sum[..], SystemOperation::sum());
                let _ = reply.send(sum);
            }
            Call::Barrier(reply) => {
                world.barrier();
                let _ = reply.send(());
            }
            Call::Broadcast(mut bytes, reply) => {
                let mut length = [bytes.len() as u64];
                root.broadcast_into(&mut length[..]);
                bytes.resize(length[0] as usize, 0);
                root.broadcast_into(&mut bytes[..]);
                let _ = reply.send(bytes);
            }
            Call::Gather(bytes, reply) => {
                let size = world.size() as usize;
                // Every rank's buffer is as long: empty on one, empty on all. MPI refuses to
                // gather nothing.
                if bytes.is_empty() {
                    let _ = reply.send(vec![Vec::new(); size]);
                    continue;
                }
                let mut all = vec![0u8; bytes.len() * size];
                world.all_gather_into(&bytes[..], &mut all[..]);
                let _ = reply.send(all.chunks_exact(bytes.len()).map(<[u8]>::to_vec).collect());
            }
            Call::Abort(code) => world.abort(code),
        }
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum_f32(&self, values: Vec<f32>) -> Vec<f32> {
        self.call(|reply| Call::SumF32(values, reply))
    }

    fn sum_f64(&self, values: Vec<f64>) -> Vec<f64> {
        self.call(|reply| Call::SumF64(values, reply))
    }

    fn barrier(&self) {
        self.call(Call::Barrier)
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) {
        *bytes = self.call(|reply| Call::Broadcast(std::mem::take(bytes), reply));
    }

    fn gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.call(|reply| Call::Gather(bytes.to_vec(), reply))
    }

    fn abort(&self, code: i32) -> ! {
        if let Some(calls) = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = calls.send(Call::Abort(code));
        }
        // MPI ends the process; should it not, end it here.
        std::thread::sleep(std::time::Duration::from_secs(5));
        std::process::exit(code)
    }
}

impl Drop for MpiCollective {
    /// Ends MPI (every rank does, after its last collective), waiting as long as
    /// [`MpiCollective::end_within`] says.
    fn drop(&mut self) {
        let patience = *self.patience.lock().unwrap_or_else(|e| e.into_inner());
        if patience.is_some() {
            self.barrier();
        }
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let ended = match patience {
            None => true,
            Some(limit) => {
                let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
                ended.recv_timeout(limit).is_ok()
            }
        };
        // Otherwise the MPI thread is left in MPI_Finalize, and the process ends without it.
        if ended {
            let _ = thread.join();
        }
    }
}
