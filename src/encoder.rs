//! The XLM-RoBERTa encoder, one small struct per Hugging Face module, names as in the checkpoint
//! (`embeddings.*`, `encoder.layer.{i}.attention.self.query`, ...). Post-LayerNorm, exact GELU.
//!
//! Shapes: B = batch, T = tokens per row (padded), N = B*T, H = hidden, nh = heads, d = H/nh.
//! Weights and activations live on the burn device. The word-embedding table (250002 x H: 1 GB
//! in f32 for the full model, more than one WebGPU buffer may hold) is kept in row blocks of at
//! most 64 MiB, read from the checkpoint block by block.

use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData, activation};

use crate::config::ModelConfig;
use crate::cpu_attention;
use crate::error::Result;
use crate::gpu::flush_uploads;
use crate::kernels::register_kernel_fits;
use crate::kernels::{LinearKernel, attention_kernel_fits, attention_register_4x4};
use crate::kernels::{PackedWeight, WordCode, linear_packed_register, linear_register_4x4, matmul_f16};
use crate::kernels::{layer_norm_kernel_fits, layer_norm_register, pack_f16_columns, pack_i8_columns, tile_words};
use crate::weights::{F16Matrix, HostTensor, Int8Rows, TensorSource, expect_shape, f16_to_f32};

/// Most bytes one feed-forward block may take: keeps the peak activation memory
/// of an 8192-token text far under 1 GiB and every buffer under WebGPU's default 128 MiB binding.
const BLOCK_BYTES: usize = 32 << 20;
/// Most bytes of one block of attention scores `[B, heads, rows, T]`: half of WebGPU's default
/// 128 MiB per storage binding (room for the allocator's rounding). Bigger blocks mean fewer,
/// larger matmuls (an 8192-token text on 16 heads takes 128 query rows per block); softmax keeps
/// a few such blocks alive at once.
const ATTENTION_BLOCK_BYTES: usize = 64 << 20;

fn load(src: &dyn TensorSource, name: &str, shape: &[usize]) -> Result<HostTensor> {
    // The shape is checked before anything is read: a crafted file cannot make the loader read
    // (and allocate) more than the config asks for.
    expect_shape(name, &src.shape(name)?, shape)?;
    src.tensor(name)
}

fn upload<const D: usize>(t: HostTensor, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data, shape), device)
}

/// Whether `device` is a wgpu device (else burn's CPU backend, flex).
pub fn is_wgpu(device: &Device) -> bool {
    *device != Device::flex()
}

/// A linear layer's weight, as it lives between forward passes.
#[allow(clippy::large_enum_variant)] // a few hundred of them per model
enum Weight {
    /// f32 on the device: [in, out].
    F32(Tensor<2>),
    /// int8 or f16 on a wgpu device, packed in 32-bit words; `matmul_4x4` reads them as
    /// they are: no f32 copy of the matrix exists.
    Gpu(PackedWeight),
    /// f16 on a wgpu device with `shader-f16` ([`LinearKernel::BurnF16`]): an f16 tensor
    /// [in, out], multiplied by burn's matmul in f16 with f32 accumulation.
    F16(Tensor<2>),
    /// int8 in host memory (the CPU backend): `q_t` [in, out] (transposed), `scale` [out].
    /// Dequantized for each forward pass, one matrix at a time.
    Int8Host { q_t: Vec<i8>, scale: Vec<f32>, device: Device },
    /// f16 in host memory (the CPU backend): `w_t` [in, out] (bits), widened for each forward pass.
    F16Host { w_t: Vec<u16>, device: Device },
}

/// `torch.nn.Linear`: y = x W^T + b. PyTorch stores W as [out, in]; kept here as [in, out].
pub struct Linear {
    weight: Weight,
    bias: Tensor<2>, // [1, out]
    kernel: LinearKernel,
    d_in: usize,
    d_out: usize,
}

/// Row-major [rows, cols] -> [cols, rows].
fn transpose<T: Copy + Default>(m: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::default(); m.len()];
    for (r, row) in m.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

impl Linear {
    pub fn new(
        src: &dyn TensorSource,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        device: &Device,
        kernel: LinearKernel,
    ) -> Result<Self> {
        // The head files (`colbert_linear.pt`, `sparse_linear.pt`) hold bare `weight`/`bias`.
        let key = |name: &str| {
            if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
        };
        let w_key = key("weight");
        expect_shape(&w_key, &src.shape(&w_key)?, &[d_out, d_in])?;
        let b = load(src, &key("bias"), &[d_out])?;
        let bias = upload(b, [1, d_out], device);
        // Transposed on the host: a row-major [in, out] operand, not a strided view of [out, in]
        // (the matmul kernels load contiguous rows far faster).
        let weight = match src.int8(&w_key)? {
            Some(q) if is_wgpu(device) && register_kernel_fits(d_in, d_out) => {
                // [in / 4, out] words: rows of tiles, 4 rows x 4 columns a word each row.
                let words = tile_words(&pack_i8_columns(&transpose(&q.q, d_out, d_in)), d_in, 1);
                let factor = upload(HostTensor { shape: vec![1, d_out], data: q.scales }, [1, d_out], device);
                let words = Tensor::from_data(TensorData::new(words, [d_in / 4, d_out]), device);
                Weight::Gpu(PackedWeight { words, factor, code: WordCode::Int8 })
            }
            Some(q) => Weight::Int8Host { q_t: transpose(&q.q, d_out, d_in), scale: q.scales, device: device.clone() },
            None => match src.f16(&w_key)? {
                Some(m) if is_wgpu(device) && matches!(kernel, LinearKernel::BurnF16 | LinearKernel::TensorCores) => {
                    let w_t: Vec<half::f16> =
                        transpose(&m.bits, d_out, d_in).into_iter().map(half::f16::from_bits).collect();
                    Weight::F16(Tensor::from_data(TensorData::new(w_t, [d_in, d_out]), (device, DType::F16)))
                }
                Some(m) if is_wgpu(device) && register_kernel_fits(d_in, d_out) => {
                    let (words, code, factor) = pack_f16_columns(&transpose(&m.bits, d_out, d_in));
                    // [in / 4, 2 out] words: rows of tiles, 4 rows x 4 columns two words each row.
                    let words =
                        Tensor::from_data(TensorData::new(tile_words(&words, d_in, 2), [d_in / 4, 2 * d_out]), device);
                    let factor =
                        upload(HostTensor { shape: vec![1, d_out], data: vec![factor; d_out] }, [1, d_out], device);
                    Weight::Gpu(PackedWeight { words, factor, code })
                }
                Some(m) => Weight::F16Host { w_t: transpose(&m.bits, d_out, d_in), device: device.clone() },
                None => {
                    let w = src.tensor(&w_key)?;
                    let w_t = transpose(&w.data, d_out, d_in);
                    Weight::F32(upload(HostTensor { shape: vec![d_in, d_out], data: w_t }, [d_in, d_out], device))
                }
            },
        };
        let kernel = kernel.for_layer(matches!(weight, Weight::F16(_)));
        Ok(Linear {
            weight,
            bias,
            kernel: if register_kernel_fits(d_in, d_out) { kernel } else { LinearKernel::Burn },
            d_in,
            d_out,
        })
    }

    /// How the weight is stored: "f32", "f16" or "int8".
    pub fn dtype(&self) -> &'static str {
        match self.weight {
            Weight::F32(_) => "f32",
            Weight::Gpu(PackedWeight { code: WordCode::Int8, .. }) | Weight::Int8Host { .. } => "int8",
            Weight::Gpu(PackedWeight { code: WordCode::F16 | WordCode::F16Rebased, .. })
            | Weight::F16(_)
            | Weight::F16Host { .. } => "f16",
        }
    }

    /// The kernel [`Linear::forward`] runs for this weight, for reports: "burn" (burn's matmul,
    /// f32), "burn-f16" (burn's, f16 operands), "register" (ours, f32 rows), "register-packed"
    /// (ours, reading f16 or int8 words), "burn-widened" (burn's, on an f32 copy of a host-held
    /// f16 or int8 weight made for the pass).
    pub fn kernel_name(&self) -> &'static str {
        match (&self.weight, self.kernel) {
            // TensorCores is resolved when loaded (f32 weights: ours).
            (Weight::F32(_), LinearKernel::Register4x4 | LinearKernel::TensorCores) => "register",
            (Weight::F32(_), LinearKernel::Burn | LinearKernel::BurnF16) => "burn",
            (Weight::F16(_), _) => "burn-f16",
            (Weight::Gpu(_), _) => "register-packed",
            (Weight::Int8Host { .. } | Weight::F16Host { .. }, _) => "burn-widened",
        }
    }

    /// Whether the matmul runs on f16 operands ([`Weight::F16`]).
    pub fn computes_in_f16(&self) -> bool {
        matches!(self.weight, Weight::F16(_))
    }

    /// Bytes the weight and bias take on the device between forward passes.
    pub fn device_bytes(&self) -> usize {
        let w = match &self.weight {
            Weight::F32(_) => self.d_in * self.d_out * 4,
            // words, and the per-column factor (f32)
            Weight::Gpu(PackedWeight { code: WordCode::Int8, .. }) => self.d_in * self.d_out + self.d_out * 4,
            Weight::Gpu(PackedWeight { .. }) => self.d_in * self.d_out * 2 + self.d_out * 4,
            Weight::F16(_) => self.d_in * self.d_out * 2,
            Weight::Int8Host { .. } | Weight::F16Host { .. } => 0,
        };
        w + self.d_out * 4
    }

    /// Bytes the weight takes in host memory between forward passes.
    pub fn host_bytes(&self) -> usize {
        match &self.weight {
            Weight::Int8Host { q_t, scale, .. } => q_t.len() + scale.len() * 4,
            Weight::F16Host { w_t, .. } => w_t.len() * 2,
            _ => 0,
        }
    }

    /// x: [N, in] -> [N, out]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_then(x, false)
    }

    /// GELU(x W^T + b), in the matmul's own kernel where it is ours. x: [N, in] -> [N, out]
    pub fn forward_gelu(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_then(x, true)
    }

    /// x: [N, in] -> [N, out], then GELU when `gelu`.
    fn forward_then(&self, x: Tensor<2>, gelu: bool) -> Tensor<2> {
        let then = |y: Tensor<2>| if gelu { activation::gelu(y) } else { y };
        match (&self.weight, self.kernel) {
            (Weight::F32(w), LinearKernel::Burn | LinearKernel::BurnF16) => {
                then(x.matmul(w.clone()) + self.bias.clone())
            }
            (Weight::F32(w), LinearKernel::Register4x4 | LinearKernel::TensorCores) => {
                linear_register_4x4(x, w.clone(), self.bias.clone(), gelu)
            }
            (Weight::F16(w), _) => then(matmul_f16(x, w.clone()) + self.bias.clone()),
            (Weight::Gpu(packed), _) => linear_packed_register(x, packed, self.bias.clone(), gelu),
            (Weight::Int8Host { q_t, scale, device }, _) => {
                // [in, out] f32 for this pass only.
                let w = widen_rows(q_t, self.d_out, |w, q| {
                    for ((w, &q), &s) in w.iter_mut().zip(q).zip(scale) {
                        *w = q as f32 * s;
                    }
                });
                let w =
                    upload(HostTensor { shape: vec![self.d_in, self.d_out], data: w }, [self.d_in, self.d_out], device);
                then(x.matmul(w) + self.bias.clone())
            }
            (Weight::F16Host { w_t, device }, _) => {
                let w = widen_rows(w_t, self.d_out, |w, h| {
                    for (w, &h) in w.iter_mut().zip(h) {
                        *w = f16_to_f32(h);
                    }
                });
                let w =
                    upload(HostTensor { shape: vec![self.d_in, self.d_out], data: w }, [self.d_in, self.d_out], device);
                then(x.matmul(w) + self.bias.clone())
            }
        }
    }
}

/// A host-held weight [in, out] as f32 for one pass: `row(out_row, src_row)` fills each row of
/// `cols` values. Natively the rows are shared among rayon's threads, as the matmul that follows
/// is (full-size f16 pack, 16 tokens, 2 cores: 0.64 s a pass widened on one thread, 0.49 s on
/// both; docs/benchmarks.md); wasm has one thread.
fn widen_rows<T: Sync>(src: &[T], cols: usize, row: impl Fn(&mut [f32], &[T]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    if cols == 0 {
        return out;
    }
    #[cfg(not(target_family = "wasm"))]
    {
        use rayon::prelude::*;
        // 64 rows a task: 256 KiB of f32 at the full model's widest (1024 columns -> 4096).
        let block = 64 * cols;
        out.par_chunks_mut(block).zip(src.par_chunks(block)).for_each(|(o, s)| {
            o.chunks_exact_mut(cols).zip(s.chunks_exact(cols)).for_each(|(o, s)| row(o, s));
        });
    }
    #[cfg(target_family = "wasm")]
    out.chunks_exact_mut(cols).zip(src.chunks_exact(cols)).for_each(|(o, s)| row(o, s));
    out
}

/// `torch.nn.LayerNorm` over the last dimension.
pub struct LayerNorm {
    weight: Tensor<2>, // [1, H]
    bias: Tensor<2>,   // [1, H]
    eps: f64,
    /// One kernel of ours ([`layer_norm_register`], the residual add included) instead of
    /// burn's ten, on every wgpu device (whichever kernel runs the matmuls).
    fused: bool,
}

impl LayerNorm {
    pub fn new(src: &dyn TensorSource, prefix: &str, cfg: &ModelConfig, device: &Device) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(LayerNorm {
            weight: upload(load(src, &format!("{prefix}.weight"), &[h])?, [1, h], device),
            bias: upload(load(src, &format!("{prefix}.bias"), &[h])?, [1, h], device),
            eps: cfg.layer_norm_eps,
            fused: is_wgpu(device) && layer_norm_kernel_fits(h),
        })
    }

    /// x: [N, H] -> [N, H]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward_residual(x, None)
    }

    /// LayerNorm(x + residual). x, residual: [N, H] -> [N, H]
    pub fn forward_residual(&self, x: Tensor<2>, residual: Option<Tensor<2>>) -> Tensor<2> {
        if self.fused {
            return layer_norm_register(x, residual, self.weight.clone(), self.bias.clone(), self.eps);
        }
        let x = match residual {
            Some(r) => x + r,
            None => x,
        };
        let centered = x.clone() - x.mean_dim(1);
        let var = centered.clone().powi_scalar(2).mean_dim(1);
        centered / (var + self.eps).sqrt() * self.weight.clone() + self.bias.clone()
    }
}

/// Most bytes of one block of the word-embedding table on the device.
const EMBEDDING_BLOCK_BYTES: usize = 64 << 20;

fn int_tensor(values: Vec<i32>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// The word-embedding table.
enum WordTable {
    /// f32 on the device in row blocks: [rows_per_block, H] each (the last may be shorter).
    Blocks { blocks: Vec<Tensor<2>>, rows_per_block: usize },
    /// An int8 pack's table, in host memory as stored (a quarter of the f32 size, 256 MB at
    /// full size, none of it on the device): the rows a batch uses are dequantized on the host
    /// and uploaded as [N, H].
    Int8Host(Int8Rows),
    /// An f16 pack's table, in host memory as stored (512 MB at full size), used the same way.
    F16Host(F16Matrix),
}

/// `embeddings.*`: word + position + token-type embeddings, then LayerNorm.
pub struct Embeddings {
    word: WordTable,
    position: Tensor<2>,    // [max_positions, H]
    token_type0: Tensor<2>, // [1, H]: row 0 of token_type_embeddings (BGE-M3 has one type)
    layer_norm: LayerNorm,
    pad_id: u32,
}

impl Embeddings {
    pub fn new(src: &dyn TensorSource, cfg: &ModelConfig, device: &Device) -> Result<Self> {
        let h = cfg.hidden_size;
        let word = "embeddings.word_embeddings.weight";
        expect_shape(word, &src.shape(word)?, &[cfg.vocab_size, h])?;
        let word = match (src.int8(word)?, src.f16(word)?) {
            (Some(q), _) => WordTable::Int8Host(q),
            (None, Some(m)) => WordTable::F16Host(m),
            (None, None) => {
                let rows_per_block = (EMBEDDING_BLOCK_BYTES / (h * 4)).clamp(1, cfg.vocab_size);
                let mut blocks = Vec::new();
                for start in (0..cfg.vocab_size).step_by(rows_per_block) {
                    let rows = rows_per_block.min(cfg.vocab_size - start);
                    blocks.push(upload(src.rows(word, start, rows)?, [rows, h], device));
                    flush_uploads(device);
                }
                WordTable::Blocks { blocks, rows_per_block }
            }
        };
        let position = load(src, "embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?;
        let token_type = load(src, "embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?;
        let token_type0 = HostTensor { shape: vec![1, h], data: token_type.data[..h].to_vec() };
        Ok(Embeddings {
            word,
            position: upload(position, [cfg.max_position_embeddings, h], device),
            token_type0: upload(token_type0, [1, h], device),
            layer_norm: LayerNorm::new(src, "embeddings.LayerNorm", cfg, device)?,
            pad_id: cfg.pad_token_id as u32,
        })
    }

    /// ids: B rows of T ids each (padding = pad id; every id < vocab) -> [N, H].
    /// Position ids as HF: cumsum(ids != pad) * (ids != pad) + pad, so real tokens count from
    /// pad + 1 and every pad id (padding or a literal `<pad>` in the text) gets position pad.
    pub fn forward(&self, ids: &[Vec<u32>], device: &Device) -> Tensor<2> {
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let mut positions = Vec::with_capacity(flat.len());
        for seq in ids {
            let mut count = 0;
            for &id in seq {
                positions.push(if id == self.pad_id {
                    self.pad_id as i32
                } else {
                    count += 1;
                    count + self.pad_id as i32
                });
            }
        }
        let word = match &self.word {
            WordTable::Blocks { blocks, rows_per_block } => {
                // Gather word rows block by block, then put them back in token order.
                let mut parts = Vec::new();
                let mut order = vec![0i32; flat.len()]; // token j -> its row in the concatenation
                let mut next = 0;
                for (b, block) in blocks.iter().enumerate() {
                    let lo = (b * rows_per_block) as u32;
                    let hi = lo + *rows_per_block as u32;
                    let mut local = Vec::new();
                    for (j, &id) in flat.iter().enumerate() {
                        if (lo..hi).contains(&id) {
                            local.push((id - lo) as i32);
                            order[j] = next;
                            next += 1;
                        }
                    }
                    if !local.is_empty() {
                        parts.push(block.clone().select(0, int_tensor(local, device)));
                    }
                }
                let word = if parts.len() == 1 { parts.pop().unwrap() } else { Tensor::cat(parts, 0) };
                word.select(0, int_tensor(order, device))
            }
            WordTable::Int8Host(t) => {
                let h = t.shape[1];
                let mut rows = Vec::with_capacity(flat.len() * h);
                for &id in &flat {
                    let (id, scale) = (id as usize, t.scales[id as usize]);
                    rows.extend(t.q[id * h..(id + 1) * h].iter().map(|&q| q as f32 * scale));
                }
                upload(HostTensor { shape: vec![flat.len(), h], data: rows }, [flat.len(), h], device)
            }
            WordTable::F16Host(t) => {
                let h = t.shape[1];
                let mut rows = Vec::with_capacity(flat.len() * h);
                for &id in &flat {
                    let id = id as usize;
                    rows.extend(t.bits[id * h..(id + 1) * h].iter().map(|&b| f16_to_f32(b)));
                }
                upload(HostTensor { shape: vec![flat.len(), h], data: rows }, [flat.len(), h], device)
            }
        };
        let x = word + self.position.clone().select(0, int_tensor(positions, device)) + self.token_type0.clone();
        self.layer_norm.forward(x)
    }
}

/// `attention.self` + `attention.output`: multi-head self-attention with a padding mask.
pub struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    heads: usize,
    kernel: LinearKernel,
}

impl Attention {
    pub fn new(
        src: &dyn TensorSource,
        prefix: &str,
        cfg: &ModelConfig,
        device: &Device,
        kernel: LinearKernel,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        let linear = |name: &str| Linear::new(src, &format!("{prefix}.{name}"), h, h, device, kernel);
        let query = linear("self.query")?;
        // Attention's products take the kernel its layers take (TensorCores resolved).
        let kernel = kernel.for_layer(query.computes_in_f16());
        Ok(Attention {
            query,
            key: linear("self.key")?,
            value: linear("self.value")?,
            output: linear("output.dense")?,
            layer_norm: LayerNorm::new(src, &format!("{prefix}.output.LayerNorm"), cfg, device)?,
            heads: cfg.num_attention_heads,
            kernel,
        })
    }

    /// x: [N, H], padding of the B texts of T positions ([`Padding`]) -> [N, H]
    pub fn forward(&self, x: Tensor<2>, padding: &Padding, b: usize, t: usize) -> Tensor<2> {
        let [_, h] = x.dims();
        let (nh, d) = (self.heads, h / self.heads);
        // Query blocks: each block's scores [B, nh, rows, T] stay under ATTENTION_BLOCK_BYTES.
        // Each row still sees every key, so the softmax is exact (no online rescaling needed).
        let rows = (ATTENTION_BLOCK_BYTES / (b * nh * t * 4)).clamp(1, t);
        let (q, k, v) = (self.query.forward(x.clone()), self.key.forward(x.clone()), self.value.forward(x.clone()));
        let context = match padding {
            Padding::Lengths(lengths) => Self::context_cpu(q, k, v, lengths, t, nh),
            Padding::Bias(bias) if self.kernel == LinearKernel::Register4x4 && attention_kernel_fits(d, t) => {
                attention_register_4x4(q, k, v, bias.clone().reshape([b, t]), b, t, nh, rows)
            }
            Padding::Bias(bias) => Self::context(q, k, v, bias, b, t, nh, rows, self.query.computes_in_f16()),
        };
        self.layer_norm.forward_residual(self.output.forward(context), Some(x))
    }

    /// The CPU backend: [`cpu_attention::attention`] on the host copies of q, k and v (one
    /// read each; flex keeps tensors in host memory). q, k, v: [N, H] -> context [N, H].
    fn context_cpu(q: Tensor<2>, k: Tensor<2>, v: Tensor<2>, lengths: &[usize], t: usize, nh: usize) -> Tensor<2> {
        let [n, h] = q.dims();
        let device = q.device();
        // f32 on the CPU backend already (convert is then a no-op), so the Vec always comes.
        let host = |y: Tensor<2>| y.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        let context = cpu_attention::attention(&host(q), &host(k), &host(v), lengths, t, nh);
        Tensor::from_data(TensorData::new(context, [n, h]), &device)
    }

    /// softmax(q k^T / sqrt(d) + mask) v per text and head with burn's ops, `rows` queries at a
    /// time; with `f16`, both products on f16 operands ([`matmul_f16`]: f32 sums and results),
    /// the mask and softmax in f32. q, k, v: [N, H] -> context [N, H].
    #[allow(clippy::too_many_arguments)] // the shapes, spelled out
    fn context(
        q: Tensor<2>,
        k: Tensor<2>,
        v: Tensor<2>,
        mask_bias: &Tensor<4>,
        b: usize,
        t: usize,
        nh: usize,
        rows: usize,
        f16: bool,
    ) -> Tensor<2> {
        let [n, h] = q.dims();
        let d = h / nh;
        // [B, nh, T, d]; f16 operands are rounded once here, not per query block.
        let split = |y: Tensor<2>| {
            let y = y.reshape([b, t, nh, d]).swap_dims(1, 2);
            if f16 { y.cast(FloatDType::F16) } else { y }
        };
        let matmul = |a: Tensor<4>, c: Tensor<4>| if f16 { matmul_f16(a, c) } else { a.matmul(c) };
        let q = split(q * (1.0 / (d as f64).sqrt()));
        let k_t = split(k).swap_dims(2, 3); // [B, nh, d, T]
        let v = split(v);
        let mut context = Vec::with_capacity(t.div_ceil(rows));
        for start in (0..t).step_by(rows) {
            let len = rows.min(t - start);
            let scores = matmul(q.clone().narrow(2, start, len), k_t.clone()) + mask_bias.clone();
            context.push(matmul(activation::softmax(scores, 3), v.clone())); // [B, nh, len, d]
        }
        let context = if context.len() == 1 { context.pop().unwrap() } else { Tensor::cat(context, 2) };
        context.swap_dims(1, 2).reshape([n, h])
    }
}

/// `intermediate` + `output`: the GELU feed-forward with its residual and LayerNorm.
pub struct FeedForward {
    intermediate: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    inter: usize,
}

impl FeedForward {
    pub fn new(
        src: &dyn TensorSource,
        prefix: &str,
        cfg: &ModelConfig,
        device: &Device,
        kernel: LinearKernel,
    ) -> Result<Self> {
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(FeedForward {
            intermediate: Linear::new(src, &format!("{prefix}.intermediate.dense"), h, f, device, kernel)?,
            output: Linear::new(src, &format!("{prefix}.output.dense"), f, h, device, kernel)?,
            layer_norm: LayerNorm::new(src, &format!("{prefix}.output.LayerNorm"), cfg, device)?,
            inter: f,
        })
    }

    /// x: [N, H] -> [N, H], in row blocks so the [rows, FFN] activation stays small.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, _] = x.dims();
        let rows = (BLOCK_BYTES / (self.inter * 4)).clamp(1, n);
        let mut out = Vec::with_capacity(n.div_ceil(rows));
        for start in (0..n).step_by(rows) {
            let xb = x.clone().narrow(0, start, rows.min(n - start));
            let y = self.output.forward(self.intermediate.forward_gelu(xb.clone()));
            out.push(self.layer_norm.forward_residual(y, Some(xb)));
        }
        if out.len() == 1 { out.pop().unwrap() } else { Tensor::cat(out, 0) }
    }
}

/// `encoder.layer.{i}`
pub struct Layer {
    attention: Attention,
    feed_forward: FeedForward,
}

/// See [`Encoder::storage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightStorage {
    pub dtype: &'static str,
    /// The linear layers' and attention's matmul operands: "f16" ([`LinearKernel::BurnF16`] on
    /// an f16 pack) or "f32" (compact weights are widened to f32 inside the kernel).
    pub compute: &'static str,
    /// The kernel the linear layers run ([`Linear::kernel_name`]).
    pub kernel: &'static str,
    pub device_bytes: usize,
    pub host_bytes: usize,
}

/// The whole encoder: embeddings, then `num_hidden_layers` layers.
pub struct Encoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Encoder {
    /// Loads tensor by tensor; `progress(done, total)` is called after each layer.
    pub fn new(
        src: &dyn TensorSource,
        cfg: &ModelConfig,
        device: &Device,
        kernel: LinearKernel,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let total = cfg.num_hidden_layers + 1;
        let embeddings = Embeddings::new(src, cfg, device)?;
        progress(1, total);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let prefix = format!("encoder.layer.{i}");
            layers.push(Layer {
                attention: Attention::new(src, &format!("{prefix}.attention"), cfg, device, kernel)?,
                feed_forward: FeedForward::new(src, &prefix, cfg, device, kernel)?,
            });
            flush_uploads(device);
            progress(i + 2, total);
        }
        Ok(Encoder { embeddings, layers })
    }

    /// How the encoder's weights are held: the linear layers' storage type ("f32", "f16" or
    /// "int8"), the type their matmuls compute in, and the bytes of weights on the device and in
    /// host memory (counted from shapes, between forward passes; LayerNorms and biases included,
    /// the heads not).
    pub fn storage(&self, cfg: &ModelConfig) -> WeightStorage {
        let h = cfg.hidden_size;
        let linears: Vec<&Linear> = self
            .layers
            .iter()
            .flat_map(|l| {
                let (a, f) = (&l.attention, &l.feed_forward);
                [&a.query, &a.key, &a.value, &a.output, &f.intermediate, &f.output]
            })
            .collect();
        let (mut device, mut host) = (0, 0);
        for l in &linears {
            device += l.device_bytes();
            host += l.host_bytes();
        }
        let layer_norms = (2 * self.layers.len() + 1) * 2 * h * 4;
        device += layer_norms + (cfg.max_position_embeddings + 1) * h * 4;
        match &self.embeddings.word {
            WordTable::Blocks { .. } => device += cfg.vocab_size * h * 4,
            WordTable::Int8Host(t) => host += t.q.len() + t.scales.len() * 4,
            WordTable::F16Host(t) => host += t.bits.len() * 2,
        }
        let dtype = linears.first().map(|l| l.dtype()).unwrap_or("f32");
        let compute = if linears.first().is_some_and(|l| l.computes_in_f16()) { "f16" } else { "f32" };
        let kernel = linears.first().map(|l| l.kernel_name()).unwrap_or("burn");
        WeightStorage { dtype, compute, kernel, device_bytes: device, host_bytes: host }
    }

    /// ids: B rows of T ids, `lengths[i]` real tokens in row i (the rest is padding).
    /// Returns the last hidden state [N, H].
    pub fn forward(&self, ids: &[Vec<u32>], lengths: &[usize], device: &Device) -> Tensor<2> {
        let (b, t) = (ids.len(), ids[0].len());
        let padding = Padding::new(lengths, t, device);
        let mut x = self.embeddings.forward(ids, device);
        for layer in &self.layers {
            x = layer.attention.forward(x, &padding, b, t);
            x = layer.feed_forward.forward(x);
        }
        x
    }
}

/// Which positions of a batch are padding, in the form its device's attention takes.
#[allow(clippy::large_enum_variant)] // one per forward pass
pub enum Padding {
    /// wgpu: [B, 1, 1, T], 0 for tokens and -1e30 for padding, added to the scores.
    Bias(Tensor<4>),
    /// The CPU backend: real tokens per text (its attention ends each text's keys there).
    Lengths(Vec<usize>),
}

impl Padding {
    /// `lengths[i]` real tokens in text i of `t` positions, in the form `device`'s attention reads.
    pub fn new(lengths: &[usize], t: usize, device: &Device) -> Self {
        if !is_wgpu(device) {
            return Padding::Lengths(lengths.to_vec());
        }
        let b = lengths.len();
        let mut bias = vec![0f32; b * t];
        for (row, &len) in lengths.iter().enumerate() {
            bias[row * t + len..(row + 1) * t].fill(-1e30);
        }
        Padding::Bias(Tensor::<4>::from_data(TensorData::new(bias, [b, 1, 1, t]), device))
    }
}
