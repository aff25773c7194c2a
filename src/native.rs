//! Native conveniences: picking a burn device and loading a model folder from disk.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::gpu::{GpuLimits, init_wgpu};
use crate::kernels::LinearKernel;
use crate::model::BgeM3;
use crate::weights::Checkpoint;

/// Which burn device runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (flex).
    Cpu,
    /// burn-wgpu: Vulkan / Metal / DX12, whatever adapter wgpu finds (lavapipe works too).
    Wgpu,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "wgpu" => Ok(Backend::Wgpu),
            other => Err(Error::Input(format!("unknown backend {other:?} (use cpu or wgpu)"))),
        }
    }
}

impl Backend {
    /// Creates the device (and picks the linear-layer kernel for it); for wgpu, an error if no
    /// adapter can be found.
    pub fn device(self) -> Result<(Device, LinearKernel)> {
        match self {
            Backend::Cpu => Ok((Device::flex(), LinearKernel::Burn)),
            Backend::Wgpu => {
                use std::sync::OnceLock;
                // One wgpu device per process, created with WebGPU's default limits (so native
                // runs prove the browser's limits suffice).
                static WGPU: OnceLock<std::result::Result<(Device, LinearKernel), String>> = OnceLock::new();
                WGPU.get_or_init(|| {
                    // An adapter lookup that panics (broken driver, ...) must not take the
                    // process down: report it as an error.
                    std::panic::catch_unwind(|| {
                        block_on(init_wgpu(GpuLimits::WebGpuDefault))
                            .map(|d| (d.device, d.linear_kernel))
                            .map_err(|e| e.to_string())
                    })
                    .unwrap_or_else(|_| Err("wgpu panicked while looking for an adapter".into()))
                })
                .clone()
                .map_err(Error::Device)
            }
        }
    }
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
    Checkpoint::open(file).map_err(|e| Error::Format(format!("{}: {e}", path.display())))
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

/// Loads a folder laid out like the BAAI/bge-m3 repository.
pub fn load_dir(
    dir: &Path,
    backend: Backend,
    choice: WeightsFile,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BgeM3> {
    if !dir.is_dir() {
        return Err(Error::Io(format!("model folder {} does not exist", dir.display())));
    }
    let config = read(&dir.join("config.json"))?;
    let tokenizer = read(&dir.join("tokenizer.json"))?;
    let encoder = open(&encoder_path(dir, choice)?)?;
    let colbert = open(&dir.join("colbert_linear.pt"))?;
    let sparse = open(&dir.join("sparse_linear.pt"))?;
    let (device, linear) = backend.device()?;
    BgeM3::load(&config, &tokenizer, &encoder, &colbert, &sparse, device, linear, progress)
}

/// Runs a future to completion on this thread (the model's readbacks are async so that the
/// same code serves the browser).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
