//! Which of its machine's GPUs a process takes when several processes of one machine train
//! together (the ranks an MPI launcher places on one machine): each its own, in turn, as
//! torchrun's `LOCAL_RANK` or Horovod's `local_rank()` places them. Left to itself, wgpu starts
//! every process on the same adapter, the one it prefers.

use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use burn::tensor::DeviceKind;
use burn::tensor::wgpu::{WgpuBackend, wgpu};

/// The environment variable in which a user names wgpu's adapter themselves (CubeCL's; for
/// example `DiscreteGpu(1)`): where it is set, it is followed as it is.
pub const ADAPTER_VARIABLE: &str = "CUBECL_WGPU_DEFAULT_DEVICE";

/// This process's place among the processes of its machine that train together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRank {
    /// Its number among them, from 0.
    pub rank: usize,
    /// How many there are on this machine.
    pub size: usize,
}

static LOCAL: OnceLock<LocalRank> = OnceLock::new();

/// How the processes of this machine share its GPUs, as this process started wgpu among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Each takes GPU `rank mod gpus` of the kind wgpu prefers.
    InTurn {
        /// How many processes of this machine train together.
        processes: usize,
        /// How many GPUs of that kind the machine has.
        gpus: usize,
    },
    /// All share wgpu's preferred adapter: the machine has one GPU of that kind, or none.
    One {
        /// How many processes of this machine train together.
        processes: usize,
    },
    /// The adapter [`ADAPTER_VARIABLE`] names.
    Named,
}

static SHARING: OnceLock<Sharing> = OnceLock::new();

/// How this machine's processes share its GPUs, once wgpu has started in a process that
/// [`share_gpus`] placed among others; `None` before, or alone on its machine.
pub fn sharing() -> Option<Sharing> {
    SHARING.get().copied()
}

/// Says where this process stands among its machine's processes, so that wgpu, once started
/// ([`Backend::device`](crate::Backend::device)), takes this process's share of the machine's
/// GPUs: with several GPUs of the kind wgpu prefers (discrete, else integrated, else virtual),
/// local rank `r` of them takes GPU `r mod count`; with one, every process shares it, as
/// without this call. Call it before wgpu starts; `false` where a place was already said (the
/// first stands).
pub fn share_gpus(local: LocalRank) -> bool {
    LOCAL.set(local).is_ok()
}

/// The adapter to ask wgpu for on `api`: this process's share of the machine's GPUs where
/// [`share_gpus`] said it has company and the user named no adapter ([`ADAPTER_VARIABLE`]);
/// otherwise wgpu's preferred adapter.
pub(crate) fn device_kind(api: WgpuBackend) -> DeviceKind {
    let Some(&local) = LOCAL.get().filter(|local| local.size > 1) else {
        return DeviceKind::DefaultDevice;
    };
    if std::env::var_os(ADAPTER_VARIABLE).is_some() {
        let _ = SHARING.set(Sharing::Named);
        return DeviceKind::DefaultDevice;
    }
    let Some(types) = adapter_types(api) else {
        return DeviceKind::DefaultDevice;
    };
    let (kind, gpus) = choose(&types, local.rank);
    let processes = local.size;
    let sharing = match gpus {
        0 | 1 => Sharing::One { processes },
        gpus => Sharing::InTurn { processes, gpus },
    };
    let _ = SHARING.set(sharing);
    kind
}

/// The adapter of a kind by its number among those of its kind.
type GpuNumber = fn(usize) -> DeviceKind;

/// The adapter local rank `rank` takes among adapters of `types` (in the order wgpu lists
/// them), and how many GPUs of its kind there are: of the first kind present among discrete,
/// integrated and virtual GPUs, number `rank` modulo their count; wgpu's preferred one where
/// that kind has one adapter only, or the machine none of them (a CPU driver such as lavapipe:
/// a count of 0).
pub fn choose(types: &[wgpu::DeviceType], rank: usize) -> (DeviceKind, usize) {
    const KINDS: [(wgpu::DeviceType, GpuNumber); 3] = [
        (wgpu::DeviceType::DiscreteGpu, DeviceKind::DiscreteGpu),
        (wgpu::DeviceType::IntegratedGpu, DeviceKind::IntegratedGpu),
        (wgpu::DeviceType::VirtualGpu, DeviceKind::VirtualGpu),
    ];
    for (kind, device) in KINDS {
        match types.iter().filter(|&&t| t == kind).count() {
            0 => continue,
            1 => return (DeviceKind::DefaultDevice, 1),
            count => return (device(rank % count), count),
        }
    }
    (DeviceKind::DefaultDevice, 0)
}

/// The kinds of the adapters wgpu finds on `api`, in its order; `None` where `api` is not one
/// graphics API (wgpu's automatic choice, on Windows, which would list each GPU once per API).
fn adapter_types(api: WgpuBackend) -> Option<Vec<wgpu::DeviceType>> {
    let backends = match api {
        WgpuBackend::Vulkan => wgpu::Backends::VULKAN,
        WgpuBackend::Metal => wgpu::Backends::METAL,
        WgpuBackend::Dx12 => wgpu::Backends::DX12,
        _ => return None,
    };
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = block_on(instance.enumerate_adapters(backends));
    Some(adapters.iter().map(|a| a.get_info().device_type).collect())
}

/// `future`'s value; wgpu's native futures are ready when first polled.
fn block_on<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu, VirtualGpu};

    use super::*;

    #[test]
    fn ranks_take_the_gpus_of_the_preferred_kind_in_turn() {
        let two = [DiscreteGpu, IntegratedGpu, DiscreteGpu];
        let taken: Vec<_> = (0..4).map(|rank| choose(&two, rank)).collect();
        assert_eq!(
            taken,
            [0, 1, 0, 1]
                .map(|n| (DeviceKind::DiscreteGpu(n), 2))
                .to_vec(),
            "four ranks over two discrete GPUs"
        );
        let integrated = [Cpu, IntegratedGpu, IntegratedGpu, IntegratedGpu];
        assert_eq!(choose(&integrated, 4), (DeviceKind::IntegratedGpu(1), 3));
        assert_eq!(
            choose(&[VirtualGpu, VirtualGpu], 3),
            (DeviceKind::VirtualGpu(1), 2)
        );
    }

    #[test]
    fn one_gpu_or_none_is_shared_as_wgpu_prefers() {
        // One of the preferred kind: shared, whatever else there is.
        let one = [DiscreteGpu, IntegratedGpu, IntegratedGpu];
        assert_eq!(choose(&one, 1), (DeviceKind::DefaultDevice, 1));
        // No GPU: lavapipe, or nothing (wgpu then fails to start as it would alone).
        for types in [&[Cpu][..], &[Cpu, Cpu][..], &[][..]] {
            assert_eq!(
                choose(types, 1),
                (DeviceKind::DefaultDevice, 0),
                "{types:?}"
            );
        }
    }

    /// The adapters of this machine are listed on the API wgpu is pinned to (lavapipe, a CPU
    /// adapter, where there is no GPU). wgpu itself is not started here: it would fill the
    /// kernel cache another test of this binary empties.
    #[test]
    fn this_machines_adapters_are_listed() {
        let (api, _) = crate::device::backend::wgpu_api();
        match adapter_types(api) {
            None => assert_eq!(
                api,
                WgpuBackend::Auto,
                "only wgpu's own choice lists nothing"
            ),
            // Under CI (lavapipe installed) an empty list fails.
            Some(types) if types.is_empty() => fashion_mixer_data::testing::skip(
                "no Vulkan adapter listed: apt-get install mesa-vulkan-drivers (lavapipe)",
            ),
            Some(_) => {}
        }
    }
}
