//! wgpu's kernel tuning, shipped: CubeCL's autotune results for the project's workloads on a
//! given adapter (a CubeCL "bundle"), written by `cargo xtask tune-wgpu`.
//!
//! On first use, wgpu compiles and times several candidate kernels for each matrix product and
//! reduction shape and keeps the fastest (CubeCL's autotune, cached in `target/environment/`).
//! On lavapipe that takes minutes. When the adapter is one a bundle in `crates/model/tuning/`
//! was tuned on (same name, driver and driver version), its results are copied into the cache
//! as wgpu starts, so only the chosen kernels are compiled. A result computed here is never
//! replaced; on any other adapter nothing is imported and wgpu tunes as before. Tuning only
//! chooses among kernels that compute the same thing: a bundle changes speed, never results.

use std::path::{Path, PathBuf};

use cubecl_environment::bundle::{
    self, BundleFormat, EmbeddedBundle, EnvironmentInfo, ExportOptions,
};
use cubecl_environment::bytes::Bytes;

/// The bundles shipped in `crates/model/tuning/`.
const SHIPPED: &[(&str, &[u8])] = &[(
    "llvmpipe.bundle",
    include_bytes!("../../tuning/llvmpipe.bundle"),
)];

/// Set to `off` (or `0`, `false`), wgpu starts without importing a shipped bundle.
pub const TUNING_BUNDLE_VAR: &str = "FASHION_MIXER_TUNING_BUNDLE";

/// The namespaces a bundle holds: autotune results only (not the compiled kernels, which the
/// driver makes, nor the timings of the machine's throughput).
const NAMESPACE: &str = "autotune";

/// What identifies an adapter in a bundle: its name, driver, driver version and graphics API,
/// e.g. `llvmpipe (LLVM 15.0.6, 256 bits) | llvmpipe | Mesa 22.3.6 (LLVM 15.0.6) | Vulkan`.
pub fn fingerprint(name: &str, driver: &str, driver_info: &str, api: &str) -> String {
    format!("{name} | {driver} | {driver_info} | {api}")
}

/// Whether the shipped bundles are imported (`$FASHION_MIXER_TUNING_BUNDLE` is not `off`).
pub(crate) fn import_enabled() -> bool {
    let value = std::env::var(TUNING_BUNDLE_VAR).unwrap_or_default();
    !matches!(value.to_ascii_lowercase().as_str(), "off" | "0" | "false")
}

/// The shipped bundles tuned on the adapter `fingerprint`. One that cannot be read is left out.
fn shipped_for(fingerprint: &str) -> Vec<EmbeddedBundle> {
    SHIPPED
        .iter()
        .filter_map(|(_, blob)| EmbeddedBundle::from_static(blob).ok())
        .filter(|b| tuned_on(b, fingerprint))
        .collect()
}

/// Whether `bundle` lists the adapter `fingerprint` among those it was tuned on.
fn tuned_on(bundle: &EmbeddedBundle, fingerprint: &str) -> bool {
    bundle.manifest().is_ok_and(|m| {
        m.environments
            .iter()
            .any(|e| e.devices.iter().any(|d| d == fingerprint))
    })
}

/// Copies the shipped tuning for the adapter `fingerprint` into CubeCL's active cache; the
/// number of entries it added (0 where no bundle fits or the cache already had them).
pub(crate) fn import_for(fingerprint: &str) -> usize {
    shipped_for(fingerprint)
        .iter()
        .map(|b| bundle::import(b).imported)
        .sum()
}

/// Writing a bundle failed.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// The CubeCL cache to export does not exist.
    #[error("{}: no CubeCL cache here (did the wgpu runs start?)", .0.display())]
    NoCache(PathBuf),
    /// The cache holds no autotune results.
    #[error("{}: the cache holds no autotune results", .0.display())]
    Empty(PathBuf),
    /// CubeCL could not write the bundle.
    #[error("{}: {message}", path.display())]
    Export {
        /// The bundle file.
        path: PathBuf,
        /// What CubeCL said.
        message: String,
    },
}

/// Writes the autotune results of the CubeCL cache database `cache` (see
/// [`crate::device::kernel_cache_file`]) as a bundle for the adapter `fingerprint` at `out`, replacing
/// it atomically; the number of tuned shapes it holds.
pub fn export(cache: &Path, fingerprint: &str, out: &Path) -> Result<usize, TuningError> {
    if !cache.is_file() {
        return Err(TuningError::NoCache(cache.to_path_buf()));
    }
    let options = ExportOptions {
        name: fingerprint.to_string(),
        environments: vec![EnvironmentInfo {
            label: "fashion-mixer".into(),
            devices: vec![fingerprint.to_string()],
            ..EnvironmentInfo::default()
        }],
        namespaces: vec![NAMESPACE.into()],
        excluded_namespaces: Vec::new(),
        format: BundleFormat::Flat,
    };
    let failed = |message: String| TuningError::Export {
        path: out.to_path_buf(),
        message,
    };
    // Written beside `out`, then renamed onto it: whatever `out` held (an older bundle, or
    // anything else) stays until the new bundle is whole.
    let mut staged = out.as_os_str().to_owned();
    staged.push(".tmp");
    let staged = PathBuf::from(staged);
    let _ = std::fs::remove_file(&staged);
    let written = bundle::export(&[cache], &staged, &options)
        .map_err(|e| failed(e.to_string()))
        .and_then(|_| std::fs::read(&staged).map_err(|e| failed(e.to_string())))
        .and_then(|bytes| {
            EmbeddedBundle::open(Bytes::from_bytes_vec(bytes)).map_err(|e| failed(e.to_string()))
        });
    let written = match written {
        Ok(written) if !written.is_empty() => written,
        other => {
            let _ = std::fs::remove_file(&staged);
            return Err(other
                .err()
                .unwrap_or(TuningError::Empty(cache.to_path_buf())));
        }
    };
    std::fs::rename(&staged, out).map_err(|e| failed(e.to_string()))?;
    Ok(written.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cubecl_environment::bundle::Bundle;

    #[test]
    fn shipped_bundles_are_autotune_results_of_this_cubecl_for_named_adapters() {
        // CubeCL puts its version in every namespace: a bundle from another version is never
        // looked up, so after a Burn/CubeCL upgrade this fails until `cargo xtask tune-wgpu`
        // writes the bundles again.
        let prefix = cubecl_environment::persistence::Namespace::scoped(NAMESPACE, "")
            .as_str()
            .to_string();
        for (name, blob) in SHIPPED {
            let bundle = EmbeddedBundle::from_static(blob)
                .unwrap_or_else(|e| panic!("{name}: not a bundle: {e}"));
            assert!(!bundle.is_empty(), "{name}: empty");
            let namespaces = bundle.namespaces();
            assert!(!namespaces.is_empty(), "{name}");
            for ns in namespaces {
                assert!(
                    ns.starts_with(&prefix),
                    "{name}: {ns} is not under {prefix}: run `cargo xtask tune-wgpu` again"
                );
            }
            let manifest = bundle.manifest().unwrap();
            let devices: Vec<&String> = manifest
                .environments
                .iter()
                .flat_map(|e| &e.devices)
                .collect();
            assert!(!devices.is_empty(), "{name}: tuned on no named adapter");
            for device in devices {
                assert_eq!(shipped_for(device).len(), 1, "{name}: {device}");
            }
        }
    }

    #[test]
    fn a_bundle_fills_an_empty_cache_once_and_for_its_adapter_only() {
        let dir = tempfile::tempdir().unwrap();
        cubecl_environment::environment::set_root(dir.path());
        cubecl_environment::environment::activate("import-test");
        let (name, blob) = SHIPPED[0];
        let bundle = EmbeddedBundle::from_static(blob).unwrap();
        let manifest = bundle.manifest().unwrap();
        let adapter = &manifest.environments[0].devices[0];
        assert_eq!(import_for("another adapter"), 0);
        assert_eq!(import_for(adapter), bundle.len(), "{name}");
        // Insert-only: what the cache holds (imported or tuned here) stays.
        assert_eq!(import_for(adapter), 0, "{name}");
        assert!(dir.path().join("import-test.db").is_file());
    }

    #[test]
    fn another_adapter_gets_nothing() {
        let gpu = fingerprint("NVIDIA H100", "NVIDIA", "560.35", "Vulkan");
        assert!(shipped_for(&gpu).is_empty());
        assert!(shipped_for("").is_empty());
    }

    #[test]
    fn exporting_a_missing_cache_names_it() {
        let err = export(
            Path::new("/nonexistent/cache.db"),
            "x",
            Path::new("/nonexistent/out.bundle"),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/cache.db: "),
            "{err}"
        );
    }
}
