//! Device policy, in one place: which device runs the model ([`pick_device`], for the browser
//! and natively), the limits it is asked for, which kernel runs the linear layers on it
//! ([`KernelChoice`]), and when queued uploads are flushed ([`flush_uploads`]).
//!
//! We acquire the wgpu device ourselves, so that its limits are ours to choose: with
//! [`GpuLimits::WebGpuDefault`] the model runs within WebGPU's default limits (128 MiB per
//! storage binding, 256 MiB per buffer), what many laptops and phones grant. (Natively, a build
//! with the `vulkan` feature takes the adapter's limits on Vulkan: [`wgpu_device`].)

use burn::backend::Wgpu;
use burn::tensor::wgpu::{WgpuSetup, wgpu};
use burn::tensor::{Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels::LinearKernel;

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// WebGPU / wgpu on a hardware adapter, else the CPU backend ([`choose_device`]).
    Auto,
    /// WebGPU in the browser, wgpu (Vulkan, Metal, DX12; lavapipe too) natively.
    Gpu,
    /// burn's pure-Rust CPU backend (flex; the wasm CPU backend in the browser).
    Cpu,
}

impl std::str::FromStr for DeviceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" | "" => Ok(DeviceKind::Auto),
            "webgpu" | "wgpu" | "gpu" => Ok(DeviceKind::Gpu),
            "cpu" => Ok(DeviceKind::Cpu),
            other => Err(Error::Input(format!("unknown device {other:?} (auto, webgpu/wgpu or cpu)"))),
        }
    }
}

/// Which kernel runs the linear layers and attention on a wgpu device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelChoice {
    /// Ours ([`LinearKernel::Register4x4`], f32 arithmetic, compact weights read as packed words)
    /// on every adapter: on software ones (SwiftShader, lavapipe) burn's tiled kernels run at
    /// ~0.1 GFLOP/s, and on the one real GPU measured (an NVIDIA H200 on Vulkan, full-size model,
    /// 512 tokens) ours ran f32 at 1.73x burn's, an f16 pack at 1.87x and int8 at 1.81x burn's
    /// f32, where burn's f16-operand matmuls ([`KernelChoice::BurnF16`]) gave 1.18x
    /// (docs/benchmarks.md). Layers whose shapes the kernel does not fit get burn's.
    /// On a device with cooperative matrices (natively, in a build with the `vulkan` feature, on
    /// an NVIDIA GPU) [`LinearKernel::TensorCores`]: an f16 pack's matmuls on the tensor cores
    /// (full size on an H200: 1.85x f32 at 512 tokens, 1.65x at 2048).
    #[default]
    Auto,
    Burn,
    Register,
    /// [`LinearKernel::BurnF16`]; an adapter without `shader-f16` is an error.
    BurnF16,
}

impl std::str::FromStr for KernelChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(KernelChoice::Auto),
            "burn" => Ok(KernelChoice::Burn),
            "register" => Ok(KernelChoice::Register),
            "burn-f16" => Ok(KernelChoice::BurnF16),
            other => Err(Error::Input(format!("unknown kernel {other:?} (auto, burn, register or burn-f16)"))),
        }
    }
}

impl KernelChoice {
    /// The kernel for a wgpu adapter (`shader_f16`: it has WebGPU's `shader-f16` feature;
    /// `tensor_cores`: its device's kernels may use cooperative matrices).
    pub fn for_adapter(self, shader_f16: bool, tensor_cores: bool) -> Result<LinearKernel> {
        Ok(match self {
            KernelChoice::Burn => LinearKernel::Burn,
            KernelChoice::Register => LinearKernel::Register4x4,
            KernelChoice::BurnF16 if shader_f16 => LinearKernel::BurnF16,
            KernelChoice::BurnF16 => {
                return Err(Error::Device(
                    "kernel burn-f16 needs an adapter with shader-f16; this one has none".into(),
                ));
            }
            KernelChoice::Auto if tensor_cores && shader_f16 => LinearKernel::TensorCores,
            KernelChoice::Auto => LinearKernel::Register4x4,
        })
    }
}

/// A device chosen by [`pick_device`].
#[derive(Clone)]
pub struct PickedDevice {
    pub device: Device,
    pub linear_kernel: LinearKernel,
    /// "webgpu" (wgpu natively) or "cpu".
    pub backend: &'static str,
    /// The adapter, for people, e.g. "SwiftShader Device (Subzero) (Vulkan, Cpu; 128 MiB per
    /// storage binding)" or "CPU (burn flex)".
    pub adapter: String,
    /// A CPU (software) adapter or the CPU backend.
    pub adapter_is_cpu: bool,
    /// The adapter has WebGPU's `shader-f16` feature (f16 arithmetic in kernels).
    pub shader_f16: bool,
    /// The device's kernels may use cooperative matrices (tensor cores): only where burn
    /// compiles SPIR-V (the `vulkan` feature, natively).
    pub tensor_cores: bool,
}

impl PickedDevice {
    /// The same device with the linear-layer kernel chosen by `choice` (wgpu devices only: the
    /// CPU backend has burn's kernels alone).
    pub fn with_kernel(self, choice: KernelChoice) -> Result<Self> {
        if self.backend == "cpu" {
            return Ok(self);
        }
        Ok(PickedDevice { linear_kernel: choice.for_adapter(self.shader_f16, self.tensor_cores)?, ..self })
    }

    /// The same device with f16 matmuls ([`LinearKernel::BurnF16`]) where the adapter has
    /// `shader-f16`; unchanged (f32 arithmetic) where it has not (the CPU backend has not).
    pub fn with_f16_matmuls_if_supported(self) -> Self {
        if self.shader_f16 { PickedDevice { linear_kernel: LinearKernel::BurnF16, ..self } } else { self }
    }
}

/// The CPU backend (the only choice for it: burn's kernels).
pub fn cpu_device() -> PickedDevice {
    let adapter = if cfg!(target_family = "wasm") { "wasm CPU (burn flex)" } else { "CPU (burn flex)" };
    PickedDevice {
        device: Device::flex(),
        linear_kernel: LinearKernel::Burn,
        backend: "cpu",
        adapter: adapter.into(),
        adapter_is_cpu: true,
        shader_f16: false,
        tensor_cores: false,
    }
}

/// The CPU backend standing in for a GPU that could not be had; the adapter field says why.
pub fn cpu_fallback(why: &dyn std::fmt::Display) -> PickedDevice {
    let cpu = cpu_device();
    PickedDevice { adapter: format!("{} (no WebGPU device: {why})", cpu.adapter), ..cpu }
}

/// What the wgpu side could offer [`choose_device`].
#[derive(Clone)]
pub enum Found {
    /// A device on an adapter (hardware or software), with the default kernel.
    Device(PickedDevice),
    /// A software adapter (SwiftShader, lavapipe) on which no device was opened, since only
    /// [`DeviceKind::Auto`] asked and it passes such adapters over: its description.
    Software(String),
}

/// Which device runs the model (the one owner of that rule, natively and in the browser), given
/// what wgpu could offer (`gpu`) and the kernel asked for:
/// - [`DeviceKind::Cpu`]: the CPU backend;
/// - [`DeviceKind::Gpu`]: the wgpu device, software adapters included, else its error;
/// - [`DeviceKind::Auto`]: the wgpu device on a hardware adapter; the CPU backend where there is
///   no device ([`cpu_fallback`]) or where the adapter is a software one (SwiftShader,
///   lavapipe), on which the CPU backend runs 2-4x as fast (docs/benchmarks.md, "The wasm CPU
///   backend: SIMD128, and which device "auto" picks").
///
/// The kernel applies to a wgpu device only ([`PickedDevice::with_kernel`]): one the adapter
/// cannot run is an error, never a reason to fall back to the CPU.
pub fn choose_device<E: std::fmt::Display>(
    kind: DeviceKind,
    gpu: std::result::Result<Found, E>,
    kernel: KernelChoice,
) -> Result<PickedDevice> {
    let passed_over = |software: &str| {
        let cpu = cpu_device();
        let adapter = format!("{} (faster than the software GPU adapter {software})", cpu.adapter);
        PickedDevice { adapter, ..cpu }
    };
    match (kind, gpu) {
        (DeviceKind::Cpu, _) => Ok(cpu_device()),
        (DeviceKind::Auto, Ok(Found::Software(adapter))) => Ok(passed_over(&adapter)),
        (DeviceKind::Auto, Ok(Found::Device(d))) if d.adapter_is_cpu => Ok(passed_over(&d.adapter)),
        (_, Ok(Found::Device(d))) => d.with_kernel(kernel),
        (DeviceKind::Gpu, Ok(Found::Software(adapter))) => {
            Err(Error::Device(format!("no device was opened on the software adapter {adapter}")))
        }
        (DeviceKind::Auto, Err(e)) => Ok(cpu_fallback(&e)),
        (DeviceKind::Gpu, Err(e)) => Err(Error::Device(e.to_string())),
    }
}

/// The device for `kind` ([`choose_device`]). A wgpu device is only opened where `kind` may run
/// on it: not for [`DeviceKind::Cpu`], and not on a software adapter for [`DeviceKind::Auto`].
pub async fn pick_device(kind: DeviceKind, limits: GpuLimits, kernel: KernelChoice) -> Result<PickedDevice> {
    if kind == DeviceKind::Cpu {
        return Ok(cpu_device());
    }
    choose_device(kind, wgpu_device(limits, kind == DeviceKind::Gpu).await, kernel)
}

/// Hands the device's queued work (uploads included) to the GPU now, on wgpu; nothing elsewhere.
/// Uploads are held on the host until the queue is flushed: flushing after each large upload
/// keeps the host copy of one block alive, not of all of them (full-size model in a tab: wasm
/// heap 1293 MiB without, 376 MiB with a flush per word-embedding block).
pub fn flush_uploads(device: &Device) {
    if let Ok(p) = Tensor::<2>::zeros([1, 1], device).try_into_primitive::<Wgpu>() {
        let _ = p.client.flush();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuLimits {
    /// `wgpu::Limits::default()`: the WebGPU specification's defaults.
    WebGpuDefault,
    /// Everything the adapter offers.
    Adapter,
}

/// A burn device on the first high-performance adapter, with the default kernel; on a software
/// adapter only if `open_software` (else [`Found::Software`]).
pub async fn wgpu_device(limits: GpuLimits, open_software: bool) -> Result<Found> {
    let backends = if cfg!(target_family = "wasm") { wgpu::Backends::BROWSER_WEBGPU } else { wgpu::Backends::PRIMARY };
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::Device(format!("WebGPU is not available: no adapter ({e})")))?;
    let info = adapter.get_info();
    let required_limits = match limits {
        // WebGPU's defaults, except workgroup memory: burn 0.22's matmul picks kernels that
        // ask for more than the default 16 KiB (e.g. 18 KiB on an H100) without checking, so the
        // adapter's value is used there. Buffer and binding sizes stay at the defaults.
        GpuLimits::WebGpuDefault => wgpu::Limits {
            max_compute_workgroup_storage_size: adapter.limits().max_compute_workgroup_storage_size,
            ..wgpu::Limits::default()
        },
        GpuLimits::Adapter => adapter.limits(),
    };
    let shader_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
    // Browsers may hide the adapter's name.
    let name = [info.name.as_str(), info.driver.as_str(), info.driver_info.as_str()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("unnamed adapter");
    let f16 = if shader_f16 { "; shader-f16" } else { "" };
    let describe = |limits: &wgpu::Limits, extra: &str| {
        let binding_mib = limits.max_storage_buffer_binding_size >> 20;
        format!(
            "{name} ({:?}, {:?}; {binding_mib} MiB per storage binding{f16}{extra})",
            info.backend, info.device_type
        )
    };
    let adapter_is_cpu = info.device_type == wgpu::DeviceType::Cpu;
    // A build with the `vulkan` feature compiles SPIR-V on every Vulkan adapter (cubecl decides
    // by adapter), and lavapipe (Mesa 22.3) crashes compiling it: no device on such adapters.
    let spirv_only =
        cfg!(all(feature = "vulkan", not(target_family = "wasm"))) && info.backend == wgpu::Backend::Vulkan;
    if adapter_is_cpu && (!open_software || spirv_only) {
        let why = if spirv_only { "; not opened by a build with the vulkan feature" } else { "" };
        return Ok(Found::Software(describe(&required_limits, why)));
    }
    let (device, queue, spirv) = match native_vulkan_device(&adapter).await? {
        Some((device, queue)) => (device, queue, true),
        None => {
            let (device, queue) = adapter
                .request_device(&wgpu::DeviceDescriptor {
                    label: Some("bge-m3"),
                    required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
                    required_limits,
                    memory_hints: wgpu::MemoryHints::MemoryUsage,
                    trace: wgpu::Trace::Off,
                    // SAFETY: as burn's own device request (cubecl-wgpu) does.
                    experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
                })
                .await
                .map_err(|e| Error::Device(format!("the adapter refused a device: {e}")))?;
            (device, queue, false)
        }
    };
    let device_limits = device.limits();
    let setup = WgpuSetup { instance, adapter, device, queue, backend: info.backend };
    let device = Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| Error::Device(format!("burn could not use the device: {e}")))?;
    let tensor_cores = spirv && has_tensor_cores(&device);
    let extra = match (spirv, tensor_cores) {
        (false, _) => "",
        (true, true) => "; SPIR-V, cooperative matrices",
        (true, false) => "; SPIR-V",
    };
    let description = describe(&device_limits, extra);
    Ok(Found::Device(PickedDevice {
        device,
        linear_kernel: KernelChoice::Auto.for_adapter(shader_f16, tensor_cores)?,
        backend: "webgpu",
        adapter: description,
        adapter_is_cpu,
        shader_f16,
        tensor_cores,
    }))
}

/// With the `vulkan` feature (native builds only), a device on a Vulkan adapter is requested the
/// way cubecl's SPIR-V compiler needs it (its Vulkan extensions, cooperative matrices where the
/// driver has them: an NVIDIA GPU's tensor cores for burn's f16 matmuls), with the adapter's
/// limits: cubecl offers no other. `None` without the feature, on other backends, or where the
/// driver lacks what cubecl's SPIR-V needs (then burn compiles WGSL, as without the feature).
#[cfg(all(feature = "vulkan", not(target_family = "wasm")))]
async fn native_vulkan_device(adapter: &wgpu::Adapter) -> Result<Option<(wgpu::Device, wgpu::Queue)>> {
    if adapter.get_info().backend != wgpu::Backend::Vulkan {
        return Ok(None);
    }
    cubecl::wgpu::vulkan::try_request_vulkan_device(adapter)
        .await
        .map_err(|e| Error::Device(format!("the Vulkan adapter refused a device: {e}")))
}

#[cfg(not(all(feature = "vulkan", not(target_family = "wasm"))))]
async fn native_vulkan_device(_adapter: &wgpu::Adapter) -> Result<Option<(wgpu::Device, wgpu::Queue)>> {
    Ok(None)
}

/// The device's kernels may use cooperative matrices (tensor cores); only cubecl's SPIR-V
/// compiler reports them.
fn has_tensor_cores(device: &Device) -> bool {
    Tensor::<2>::zeros([1, 1], device)
        .try_into_primitive::<Wgpu>()
        .is_ok_and(|p| !p.client.properties().features.matmul.cmma.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wgpu device as `wgpu_device` describes it (the burn device itself plays no part here).
    fn wgpu_like(adapter: &str, adapter_is_cpu: bool) -> std::result::Result<Found, &'static str> {
        Ok(Found::Device(PickedDevice {
            linear_kernel: LinearKernel::Register4x4,
            backend: "webgpu",
            adapter: adapter.into(),
            adapter_is_cpu,
            ..cpu_device()
        }))
    }

    #[test]
    fn auto_takes_hardware_gpus_and_passes_over_software_ones() {
        let auto = |gpu| choose_device(DeviceKind::Auto, gpu, KernelChoice::Auto).unwrap();
        let gpu = auto(wgpu_like("NVIDIA H200 (Vulkan, DiscreteGpu)", false));
        assert_eq!((gpu.backend, gpu.linear_kernel), ("webgpu", LinearKernel::Register4x4));
        // A software adapter, opened (natively: one device per process) or not (the browser).
        for soft in [wgpu_like("llvmpipe (Vulkan, Cpu)", true), Ok(Found::Software("llvmpipe (Vulkan, Cpu)".into()))] {
            let soft = auto(soft);
            assert_eq!((soft.backend, soft.linear_kernel, soft.adapter_is_cpu), ("cpu", LinearKernel::Burn, true));
            assert!(
                soft.adapter.ends_with("(faster than the software GPU adapter llvmpipe (Vulkan, Cpu))"),
                "{}",
                soft.adapter
            );
        }
        // Cooperative matrices (a SPIR-V build on an NVIDIA GPU): f16 packs on the tensor cores.
        let tensor_cores = PickedDevice { tensor_cores: true, shader_f16: true, ..gpu.clone() };
        let picked =
            choose_device(DeviceKind::Auto, Ok::<_, &str>(Found::Device(tensor_cores.clone())), KernelChoice::Auto);
        assert_eq!(picked.unwrap().linear_kernel, LinearKernel::TensorCores);
        let register =
            choose_device(DeviceKind::Gpu, Ok::<_, &str>(Found::Device(tensor_cores)), KernelChoice::Register);
        assert_eq!(register.unwrap().linear_kernel, LinearKernel::Register4x4);
        let none = auto(Err("no adapter"));
        assert_eq!(none.backend, "cpu");
        assert!(none.adapter.ends_with("(no WebGPU device: no adapter)"), "{}", none.adapter);
    }

    #[test]
    fn a_kernel_the_adapter_cannot_run_is_an_error_not_a_cpu_fallback() {
        for kind in [DeviceKind::Auto, DeviceKind::Gpu] {
            let e = choose_device(kind, wgpu_like("NVIDIA H200 (Vulkan, DiscreteGpu)", false), KernelChoice::BurnF16)
                .err()
                .expect("burn-f16 without shader-f16");
            assert_eq!(e.kind(), "device");
            assert!(e.to_string().contains("needs an adapter with shader-f16"), "{e}");
        }
        // The CPU backend has burn's kernels alone: a kernel choice does not apply there.
        let soft = choose_device(DeviceKind::Auto, wgpu_like("SwiftShader (Vulkan, Cpu)", true), KernelChoice::BurnF16);
        assert_eq!(soft.unwrap().backend, "cpu");
        let gpu = choose_device(DeviceKind::Gpu, wgpu_like("lavapipe (Vulkan, Cpu)", true), KernelChoice::Burn);
        assert_eq!(gpu.unwrap().linear_kernel, LinearKernel::Burn);
        assert_eq!(
            choose_device(DeviceKind::Gpu, Err("no adapter"), KernelChoice::Auto).err().unwrap().kind(),
            "device"
        );
    }
}
