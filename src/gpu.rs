//! Acquiring a wgpu device ourselves, so that its limits are ours to choose: with
//! [`GpuLimits::WebGpuDefault`] the model runs within WebGPU's default limits (128 MiB per
//! storage binding, 256 MiB per buffer), what many laptops and phones grant.

use burn::tensor::Device;
use burn::tensor::wgpu::{WgpuSetup, wgpu};

use crate::error::{Error, Result};
use crate::kernels::LinearKernel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuLimits {
    /// `wgpu::Limits::default()`: the WebGPU specification's defaults.
    WebGpuDefault,
    /// Everything the adapter offers.
    Adapter,
}

/// A wgpu device, what it runs on, and the kernel that suits it for the linear layers.
#[derive(Clone)]
pub struct WgpuDevice {
    pub device: Device,
    /// Adapter name, backend, type and binding limit, for people.
    pub description: String,
    pub linear_kernel: LinearKernel,
}

/// A burn device on the first high-performance adapter.
pub async fn init_wgpu(limits: GpuLimits) -> Result<WgpuDevice> {
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
        .map_err(|e| Error::Device(format!("no WebGPU/wgpu adapter: {e}")))?;
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
    let binding_mib = required_limits.max_storage_buffer_binding_size >> 20;
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
    let setup = WgpuSetup { instance, adapter, device, queue, backend: info.backend };
    let device = Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|e| Error::Device(format!("burn could not use the device: {e}")))?;
    // Browsers may hide the adapter's name.
    let name = [info.name.as_str(), info.driver.as_str(), info.driver_info.as_str()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("unnamed adapter");
    let description =
        format!("{name} ({:?}, {:?}; {binding_mib} MiB per storage binding)", info.backend, info.device_type);
    let linear_kernel = LinearKernel::for_adapter(info.device_type == wgpu::DeviceType::Cpu);
    Ok(WgpuDevice { device, description, linear_kernel })
}
