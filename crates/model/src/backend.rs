//! The backends a run can choose from the command line.

use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use burn::prelude::Device;
use burn::tensor::DeviceKind;
use burn::tensor::wgpu::WgpuBackend;

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
fn wgpu_api() -> (WgpuBackend, &'static str) {
    if cfg!(target_os = "macos") {
        (WgpuBackend::Metal, "Metal")
    } else if cfg!(target_os = "windows") {
        (WgpuBackend::Auto, "DX12/Vulkan")
    } else {
        (WgpuBackend::Vulkan, "Vulkan")
    }
}

/// Starts wgpu once per process, on a helper thread, so that a driver that never answers
/// costs [`WGPU_START_TIMEOUT`] and an error rather than a hang.
fn wgpu_device() -> Result<Device, DeviceError> {
    static DEVICE: OnceLock<Result<Device, DeviceError>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let (api, name) = wgpu_api();
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("wgpu-start".into())
                .spawn(move || {
                    let device = Device::wgpu_options()
                        .device_kind(DeviceKind::DefaultDevice)
                        .graphics_api(api)
                        .init();
                    // The receiver may have given up waiting; nothing to do then.
                    let _ = tx.send(device.map_err(|e| e.to_string()));
                })
                .map_err(|e| DeviceError::WgpuUnavailable {
                    api: name,
                    message: format!("cannot start a thread: {e}"),
                })?;
            match rx.recv_timeout(WGPU_START_TIMEOUT) {
                Ok(Ok(device)) => Ok(device),
                Ok(Err(message)) => Err(DeviceError::WgpuUnavailable { api: name, message }),
                Err(_) => Err(DeviceError::WgpuTimeout { api: name }),
            }
        })
        .clone()
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
            Backend::Wgpu => wgpu_device(),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown backend '{s}' (expected flex, ndarray or wgpu)"))
    }
}
