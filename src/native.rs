//! Native conveniences: picking a burn device and loading a model folder from disk.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use crate::gpu::{DeviceKind, KernelChoice, PickedDevice};
use crate::gpu::{Found, GpuLimits, choose_device, cpu_device, wgpu_device};
use crate::model::BgeM3;
use crate::weights::Checkpoint;

/// The device for `kind` (the rule: [`crate::gpu::choose_device`]) with `kernel` for the linear layers.
/// One wgpu device per process, created with WebGPU's default limits (so native runs prove the
/// browser's limits suffice; a build with the `vulkan` feature gets the adapter's on Vulkan, see
/// `gpu::wgpu_device`); an adapter lookup that panics (a broken driver) is an error.
pub fn device(kind: DeviceKind, kernel: KernelChoice) -> Result<PickedDevice> {
    use std::sync::OnceLock;
    static WGPU: OnceLock<std::result::Result<Found, String>> = OnceLock::new();
    if kind == DeviceKind::Cpu {
        return Ok(cpu_device()); // no wgpu device asked for
    }
    let gpu = WGPU
        .get_or_init(|| {
            // Opened on a software adapter too: `--device wgpu` may follow in this process.
            std::panic::catch_unwind(|| {
                block_on(wgpu_device(GpuLimits::WebGpuDefault, true)).map_err(|e| e.to_string())
            })
            .unwrap_or_else(|_| Err("wgpu panicked while looking for an adapter".into()))
        })
        .clone();
    choose_device(kind, gpu, kernel)
}

/// Which encoder file of the model folder to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightsFile {
    /// `model.safetensors` when present, else `pytorch_model.bin`.
    #[default]
    Auto,
    PytorchBin,
    Safetensors,
}

fn open(path: &Path) -> Result<Checkpoint<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    Checkpoint::open(file).map_err(|e| e.in_file(&path.display().to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))
}

/// The encoder checkpoint the folder offers for `choice`.
pub fn encoder_path(dir: &Path, choice: WeightsFile) -> Result<PathBuf> {
    let bin = dir.join("pytorch_model.bin");
    let st = dir.join("model.safetensors");
    let path = match choice {
        WeightsFile::PytorchBin => bin,
        WeightsFile::Safetensors => st,
        WeightsFile::Auto if st.exists() => st,
        WeightsFile::Auto => bin,
    };
    if !path.exists() {
        return Err(Error::Io(format!("{} does not exist", path.display())));
    }
    Ok(path)
}

/// A head file of the folder: `<stem>.safetensors` (a pack, see [`crate::pack`]) when present,
/// else BAAI's `<stem>.pt`.
pub fn head_path(dir: &Path, stem: &str) -> Result<PathBuf> {
    let st = dir.join(format!("{stem}.safetensors"));
    let pt = dir.join(format!("{stem}.pt"));
    let path = if st.exists() { st } else { pt };
    if !path.exists() {
        return Err(Error::Io(format!("{} does not exist", path.display())));
    }
    Ok(path)
}

/// Loads a folder laid out like the BAAI/bge-m3 repository, or a pack made by `m3 convert`.
pub fn load_dir(
    dir: &Path,
    device: &PickedDevice,
    choice: WeightsFile,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BgeM3> {
    if !dir.is_dir() {
        return Err(Error::Io(format!("model folder {} does not exist", dir.display())));
    }
    let config = read(&dir.join("config.json"))?;
    let tokenizer = read(&dir.join("tokenizer.json"))?;
    let encoder = open(&encoder_path(dir, choice)?)?;
    let colbert = open(&head_path(dir, "colbert_linear")?)?;
    let sparse = open(&head_path(dir, "sparse_linear")?)?;
    let d = device.clone();
    BgeM3::load(&config, &tokenizer, &encoder, &colbert, &sparse, d.device, d.linear_kernel, progress)
}

/// Runs a future to completion on this thread (the model's readbacks are async so that the
/// same code serves the browser).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
