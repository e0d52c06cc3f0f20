//! The backends a run can choose from the command line.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use burn::prelude::Device;
use burn::tensor::wgpu::WgpuBackend;
use cubecl_runtime::config::cache::CacheConfig;
use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

use crate::device::{gpus, tuning};

/// How long the GPU adapter may take to come up before [`Backend::device`] gives up.
pub const WGPU_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A backend's device could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeviceError {
    /// wgpu found no adapter on the graphics API it was pointed at, or the adapter refused.
    #[error("wgpu: no GPU device could be started on {api}: {message}; {hint}", hint = WGPU_HINT)]
    WgpuUnavailable {
        /// The graphics API tried.
        api: &'static str,
        /// What wgpu said.
        message: String,
    },
    /// The adapter did not answer in time.
    #[error("wgpu: no GPU device came up on {api} within {} s; {hint}", WGPU_START_TIMEOUT.as_secs(), hint = WGPU_HINT)]
    WgpuTimeout {
        /// The graphics API tried.
        api: &'static str,
    },
}

/// What to do when wgpu has no device.
const WGPU_HINT: &str = "on Linux without a GPU, install a CPU Vulkan driver with \
    `apt-get install mesa-vulkan-drivers` (lavapipe), or choose --backend flex";

/// The graphics API wgpu is pinned to. On Linux, Vulkan only: wgpu's automatic choice falls
/// back to OpenGL through EGL when no Vulkan driver is installed, and Mesa's EGL without a
/// display can block forever.
pub(crate) fn wgpu_api() -> (WgpuBackend, &'static str) {
    if cfg!(target_os = "macos") {
        (WgpuBackend::Metal, "Metal")
    } else if cfg!(target_os = "windows") {
        (WgpuBackend::Auto, "DX12/Vulkan")
    } else {
        (WgpuBackend::Vulkan, "Vulkan")
    }
}

/// Where CubeCL keeps wgpu's compiled kernels and tuning results when `target` is the build
/// directory (`CARGO_TARGET_DIR`): beside the build, in `<target>/environment/`. `None` where
/// that is not for this project to decide: no build directory given, a relative one (relative
/// to where cargo ran, which this process cannot know), or a CubeCL configuration file that
/// names its own place.
fn kernel_cache_dir(target: Option<&Path>, configured: &CacheConfig) -> Option<PathBuf> {
    let target = target.filter(|t| t.is_absolute())?;
    matches!(configured, CacheConfig::Target).then(|| target.join("environment"))
}

/// CubeCL's own default puts its cache in `target/environment/` under the outermost
/// `Cargo.toml` above the working directory, whatever `CARGO_TARGET_DIR` says: every fresh
/// clone sharing one build directory then compiles and tunes every kernel again (minutes on
/// lavapipe). With an absolute `CARGO_TARGET_DIR`, the cache goes beside the build instead.
/// Must run before CubeCL first reads its configuration; later, it changes nothing.
fn place_kernel_cache() {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if let Some(dir) = kernel_cache_dir(target.as_deref(), &config.environment.path) {
        config.environment.path = CacheConfig::Directory(dir);
        // `false`: CubeCL already chose; its choice stands.
        let _ = CubeClRuntimeConfig::try_set(config);
    }
}

/// The file CubeCL keeps the environment `name` in (its compiled kernels and tuning results),
/// where this project places it (see [`Backend::device`]).
pub fn kernel_cache_file(name: &str) -> PathBuf {
    place_kernel_cache();
    let config = CubeClRuntimeConfig::get();
    config
        .environment
        .path
        .root()
        .join(cubecl_environment::environment::file_name(name))
}

/// A started wgpu device and its adapter's [`tuning::fingerprint`].
type Wgpu = (Device, String);

/// Starts wgpu once per process, on a helper thread, so that a driver that never answers
/// costs [`WGPU_START_TIMEOUT`] and an error rather than a hang. The shipped kernel tuning for
/// its adapter, if any, is imported before anything runs on it.
fn wgpu() -> Result<Wgpu, DeviceError> {
    static DEVICE: OnceLock<Result<Wgpu, DeviceError>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            place_kernel_cache();
            let (api, name) = wgpu_api();
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("wgpu-start".into())
                .spawn(move || {
                    let started = Device::wgpu_options()
                        .device_kind(gpus::device_kind(api))
                        .graphics_api(api)
                        .init_with_setup()
                        .map(|(device, setup)| {
                            let info = setup.adapter.get_info();
                            let api = format!("{:?}", info.backend);
                            let adapter = tuning::fingerprint(
                                &info.name,
                                &info.driver,
                                &info.driver_info,
                                &api,
                            );
                            if tuning::import_enabled() {
                                tuning::import_for(&adapter);
                            }
                            (device, adapter)
                        });
                    // The receiver may have given up waiting; nothing to do then.
                    let _ = tx.send(started.map_err(|e| e.to_string()));
                })
                .map_err(|e| DeviceError::WgpuUnavailable {
                    api: name,
                    message: format!("cannot start a thread: {e}"),
                })?;
            match rx.recv_timeout(WGPU_START_TIMEOUT) {
                Ok(Ok(started)) => Ok(started),
                Ok(Err(mut message)) => {
                    if let Some(named) = std::env::var_os(gpus::ADAPTER_VARIABLE) {
                        message += &format!(
                            " ({} is set: {:?}; unset it to let wgpu choose)",
                            gpus::ADAPTER_VARIABLE,
                            named
                        );
                    }
                    Err(DeviceError::WgpuUnavailable { api: name, message })
                }
                Err(_) => Err(DeviceError::WgpuTimeout { api: name }),
            }
        })
        .clone()
}

/// The adapter wgpu runs on (starting it if need be), as [`tuning::fingerprint`] writes it.
pub fn wgpu_adapter() -> Result<String, DeviceError> {
    wgpu().map(|(_, adapter)| adapter)
}

/// A Burn backend, chosen at run time; the model code is the same for all of them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend.
    #[default]
    Flex,
    /// The ndarray CPU backend (deprecated in Burn 0.22, still supported here).
    Ndarray,
    /// The GPU through wgpu (Vulkan, Metal, DX12; lavapipe runs it on a CPU).
    Wgpu,
}

impl Backend {
    /// Every backend, in the order the command line lists them.
    pub const ALL: [Backend; 3] = [Backend::Flex, Backend::Ndarray, Backend::Wgpu];

    /// The name used on the command line and in `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
        }
    }

    /// The device (without autodiff) this backend runs on. Only this backend is started: the
    /// CPU backends never touch a GPU driver. wgpu is started on first use (see
    /// [`DeviceError`] for what happens where no GPU device can start).
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            #[allow(deprecated)] // ndarray is deprecated in Burn 0.22 but asked for by users
            Backend::Ndarray => Ok(Device::ndarray()),
            Backend::Wgpu => wgpu().map(|(device, _)| device),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = crate::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| crate::UnknownName::new("backend", s, "flex, ndarray or wgpu"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_cache_follows_an_absolute_build_directory() {
        let target = Path::new("/builds/fashion-mixer");
        assert_eq!(
            kernel_cache_dir(Some(target), &CacheConfig::Target),
            Some(target.join("environment"))
        );
        // Nothing to follow, or nowhere this process can resolve: CubeCL's default stands.
        assert_eq!(kernel_cache_dir(None, &CacheConfig::Target), None);
        assert_eq!(
            kernel_cache_dir(Some(Path::new("relative/target")), &CacheConfig::Target),
            None
        );
        // A place a CubeCL configuration file chose stands too.
        assert_eq!(kernel_cache_dir(Some(target), &CacheConfig::Global), None);
    }
}
