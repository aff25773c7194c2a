//! The XLM-RoBERTa encoder, one small struct per Hugging Face module, names as in the checkpoint
//! (`embeddings.*`, `encoder.layer.{i}.attention.self.query`, ...). Post-LayerNorm, exact GELU.
//!
//! Shapes: B = batch, T = tokens per row (padded), N = B*T, H = hidden, nh = heads, d = H/nh.
//! Weights and activations live on the burn device. The word-embedding table (250002 x H: 1 GB
//! in f32 for the full model, more than one WebGPU buffer may hold) is kept in row blocks of at
//! most 64 MiB, read from the checkpoint block by block.

use burn::tensor::{Device, Int, Tensor, TensorData, activation};

use crate::config::ModelConfig;
use crate::error::Result;
use crate::gpu::flush_uploads;
use crate::kernels::{LinearKernel, attention_kernel_fits, attention_register_4x4};
use crate::kernels::{linear_register_4x4, register_kernel_fits};
use crate::weights::{HostTensor, TensorSource, expect_shape};

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

/// `torch.nn.Linear`: y = x W^T + b. PyTorch stores W as [out, in]; kept here as [in, out].
pub struct Linear {
    weight: Tensor<2>, // [in, out]
    bias: Tensor<2>,   // [1, out]
    kernel: LinearKernel,
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
        let w = load(src, &key("weight"), &[d_out, d_in])?;
        let b = load(src, &key("bias"), &[d_out])?;
        // Transposed on the host: a row-major [in, out] operand, not a strided view of [out, in]
        // (the matmul kernels load contiguous rows far faster).
        let mut w_t = vec![0f32; w.data.len()];
        for (o, row) in w.data.chunks_exact(d_in).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                w_t[i * d_out + o] = v;
            }
        }
        Ok(Linear {
            weight: upload(HostTensor { shape: vec![d_in, d_out], data: w_t }, [d_in, d_out], device),
            bias: upload(b, [1, d_out], device),
            kernel: if register_kernel_fits(d_in, d_out) { kernel } else { LinearKernel::Burn },
        })
    }

    /// x: [N, in] -> [N, out]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self.kernel {
            LinearKernel::Burn => x.matmul(self.weight.clone()) + self.bias.clone(),
            LinearKernel::Register4x4 => linear_register_4x4(x, self.weight.clone(), self.bias.clone()),
        }
    }
}

/// `torch.nn.LayerNorm` over the last dimension.
pub struct LayerNorm {
    weight: Tensor<2>, // [1, H]
    bias: Tensor<2>,   // [1, H]
    eps: f64,
}

impl LayerNorm {
    pub fn new(src: &dyn TensorSource, prefix: &str, cfg: &ModelConfig, device: &Device) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(LayerNorm {
            weight: upload(load(src, &format!("{prefix}.weight"), &[h])?, [1, h], device),
            bias: upload(load(src, &format!("{prefix}.bias"), &[h])?, [1, h], device),
            eps: cfg.layer_norm_eps,
        })
    }

    /// x: [N, H] -> [N, H]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
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

/// `embeddings.*`: word + position + token-type embeddings, then LayerNorm.
pub struct Embeddings {
    word_blocks: Vec<Tensor<2>>, // [rows_per_block, H] each (the last may be shorter)
    rows_per_block: usize,
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
        let rows_per_block = (EMBEDDING_BLOCK_BYTES / (h * 4)).clamp(1, cfg.vocab_size);
        let mut word_blocks = Vec::new();
        for start in (0..cfg.vocab_size).step_by(rows_per_block) {
            let rows = rows_per_block.min(cfg.vocab_size - start);
            word_blocks.push(upload(src.rows(word, start, rows)?, [rows, h], device));
            flush_uploads(device);
        }
        let position = load(src, "embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, h])?;
        let token_type = load(src, "embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, h])?;
        let token_type0 = HostTensor { shape: vec![1, h], data: token_type.data[..h].to_vec() };
        Ok(Embeddings {
            word_blocks,
            rows_per_block,
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
        // Gather word rows block by block, then put them back in token order.
        let mut parts = Vec::new();
        let mut order = vec![0i32; flat.len()]; // token j -> its row in the concatenation
        let mut next = 0;
        for (b, block) in self.word_blocks.iter().enumerate() {
            let lo = (b * self.rows_per_block) as u32;
            let hi = lo + self.rows_per_block as u32;
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
        let word = word.select(0, int_tensor(order, device));
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
        Ok(Attention {
            query: linear("self.query")?,
            key: linear("self.key")?,
            value: linear("self.value")?,
            output: linear("output.dense")?,
            layer_norm: LayerNorm::new(src, &format!("{prefix}.output.LayerNorm"), cfg, device)?,
            heads: cfg.num_attention_heads,
            kernel,
        })
    }

    /// x: [N, H], mask_bias: [B, 1, 1, T] (0 for tokens, a large negative for padding) -> [N, H]
    pub fn forward(&self, x: Tensor<2>, mask_bias: &Tensor<4>, b: usize, t: usize) -> Tensor<2> {
        let [_, h] = x.dims();
        let (nh, d) = (self.heads, h / self.heads);
        // Query blocks: each block's scores [B, nh, rows, T] stay under ATTENTION_BLOCK_BYTES.
        // Each row still sees every key, so the softmax is exact (no online rescaling needed).
        let rows = (ATTENTION_BLOCK_BYTES / (b * nh * t * 4)).clamp(1, t);
        let (q, k, v) = (self.query.forward(x.clone()), self.key.forward(x.clone()), self.value.forward(x.clone()));
        let context = if self.kernel == LinearKernel::Register4x4 && attention_kernel_fits(d, t) {
            attention_register_4x4(q, k, v, mask_bias.clone().reshape([b, t]), b, t, nh, rows)
        } else {
            Self::context(q, k, v, mask_bias, b, t, nh, rows)
        };
        self.layer_norm.forward(self.output.forward(context) + x)
    }

    /// softmax(q k^T / sqrt(d) + mask) v per text and head with burn's ops, `rows` queries at a
    /// time. q, k, v: [N, H] -> context [N, H].
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
    ) -> Tensor<2> {
        let [n, h] = q.dims();
        let d = h / nh;
        let split = |y: Tensor<2>| y.reshape([b, t, nh, d]).swap_dims(1, 2); // [B, nh, T, d]
        let q = split(q) * (1.0 / (d as f64).sqrt());
        let k_t = split(k).swap_dims(2, 3); // [B, nh, d, T]
        let v = split(v);
        let mut context = Vec::with_capacity(t.div_ceil(rows));
        for start in (0..t).step_by(rows) {
            let len = rows.min(t - start);
            let scores = q.clone().narrow(2, start, len).matmul(k_t.clone()) + mask_bias.clone();
            context.push(activation::softmax(scores, 3).matmul(v.clone())); // [B, nh, len, d]
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
            let y = self.output.forward(activation::gelu(self.intermediate.forward(xb.clone())));
            out.push(self.layer_norm.forward(y + xb));
        }
        if out.len() == 1 { out.pop().unwrap() } else { Tensor::cat(out, 0) }
    }
}

/// `encoder.layer.{i}`
pub struct Layer {
    attention: Attention,
    feed_forward: FeedForward,
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

    /// ids: B rows of T ids, `lengths[i]` real tokens in row i (the rest is padding).
    /// Returns the last hidden state [N, H].
    pub fn forward(&self, ids: &[Vec<u32>], lengths: &[usize], device: &Device) -> Tensor<2> {
        let (b, t) = (ids.len(), ids[0].len());
        let mut bias = vec![0f32; b * t];
        for (row, &len) in lengths.iter().enumerate() {
            bias[row * t + len..(row + 1) * t].fill(-1e30);
        }
        let mask_bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, 1, t]), device);
        let mut x = self.embeddings.forward(ids, device);
        for layer in &self.layers {
            x = layer.attention.forward(x, &mask_bias, b, t);
            x = layer.feed_forward.forward(x);
        }
        x
    }
}
