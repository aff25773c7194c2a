// Counts what the page asks of WebGPU: every createBuffer (size, usage) and destroy, so a test
// or benchmark can report live/peak GPU buffer bytes and the largest single buffer. Import it
// before the model creates its device.
export const meter = { live: 0, peak: 0, largest: 0, buffers: 0 };
if (globalThis.GPUDevice) {
  const sizes = new WeakMap();
  const create = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (desc) {
    const buf = create.call(this, desc);
    sizes.set(buf, desc.size);
    meter.live += desc.size;
    meter.buffers += 1;
    meter.peak = Math.max(meter.peak, meter.live);
    meter.largest = Math.max(meter.largest, desc.size);
    return buf;
  };
  const destroy = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function () {
    const size = sizes.get(this);
    if (size !== undefined) { meter.live -= size; sizes.delete(this); }
    return destroy.call(this);
  };
}
