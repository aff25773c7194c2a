//! BGE-M3: tokenizer + XLM-R encoder + the dense / sparse / ColBERT heads, with batching.

use burn::tensor::{Device, Tensor};

use crate::config::ModelConfig;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::heads::{ColbertHead, SparseHead, l2_normalize, lexical_weights};
use crate::kernels::LinearKernel;
use crate::tokenizer::{PAD_ID, Tokenizer};
use crate::weights::TensorSource;

/// Batches are padded to a multiple of this many tokens.
const PAD_MULTIPLE: usize = 32;

/// A text's length rounded up to a multiple of [`PAD_MULTIPLE`].
fn padded_len(len: usize) -> usize {
    len.next_multiple_of(PAD_MULTIPLE)
}

/// What to compute and how to batch.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeOptions {
    pub dense: bool,
    pub sparse: bool,
    pub colbert: bool,
    /// Texts longer than this many tokens (specials included) are truncated, `</s>` kept last.
    pub max_length: usize,
    /// Most texts in one forward pass.
    pub batch_size: usize,
    /// Most tokens (rows x padded length) in one forward pass.
    pub max_batch_tokens: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            dense: true,
            sparse: true,
            colbert: true,
            max_length: 8192,
            batch_size: 16,
            max_batch_tokens: 8192,
        }
    }
}

/// The outputs for one text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embedding {
    pub input_ids: Vec<u32>,
    /// [H], unit length.
    pub dense: Option<Vec<f32>>,
    /// (token id, weight > 0), one entry per distinct id, in order of first appearance.
    pub sparse: Option<Vec<(u32, f32)>>,
    /// [len-1, H] row-major: one unit vector per token after `<s>` (`</s>` included).
    pub colbert: Option<Vec<f32>>,
}

impl Embedding {
    pub fn colbert_rows(&self) -> usize {
        self.input_ids.len().saturating_sub(1)
    }
}

pub struct BgeM3 {
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    encoder: Encoder,
    sparse: SparseHead,
    colbert: ColbertHead,
    device: Device,
}

async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| Error::Device(format!("reading results back from the device failed: {e:?}")))?;
    data.try_into_vec::<f32>().map_err(|e| Error::Device(format!("unexpected result type: {e:?}")))
}

impl BgeM3 {
    /// Builds the model from the BAAI/bge-m3 files: `config.json` and `tokenizer.json` bytes,
    /// the encoder checkpoint and the two head checkpoints. Tensors are read and uploaded one
    /// at a time; `progress(done, total)` reports the layers loaded. `linear`: the kernel for the
    /// linear layers ([`LinearKernel::Register4x4`] needs a wgpu device).
    #[allow(clippy::too_many_arguments)] // the five model files, the device and its kernel, progress
    pub fn load(
        config_json: &[u8],
        tokenizer_json: &[u8],
        encoder: &dyn TensorSource,
        colbert: &dyn TensorSource,
        sparse: &dyn TensorSource,
        device: Device,
        linear: LinearKernel,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let config = ModelConfig::from_json(config_json)?;
        let tokenizer = Tokenizer::from_bytes(tokenizer_json)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::Config(format!(
                "tokenizer has {} tokens but the model only {}",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        let encoder = Encoder::new(encoder, &config, &device, linear, progress)?;
        let colbert = ColbertHead::new(colbert, &config, &device, linear)
            .map_err(|e| Error::Weights(format!("colbert_linear.pt: {e}")))?;
        let sparse =
            SparseHead::new(sparse, &config, &device).map_err(|e| Error::Weights(format!("sparse_linear.pt: {e}")))?;
        Ok(BgeM3 { config, tokenizer, encoder, sparse, colbert, device })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn check_max_length(&self, max_length: usize) -> Result<()> {
        let limit = self.config.max_tokens();
        if max_length < 2 || max_length > limit {
            return Err(Error::Input(format!("max_length must be between 2 and {limit} (got {max_length})")));
        }
        Ok(())
    }

    /// Tokenizes and encodes `texts`.
    pub async fn encode(
        &self,
        texts: &[&str],
        opts: &EncodeOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Embedding>> {
        self.check_max_length(opts.max_length)?;
        let ids = texts
            .iter()
            .map(|t| self.tokenizer.encode(t, opts.max_length).map(|tok| tok.ids))
            .collect::<Result<Vec<_>>>()?;
        self.encode_ids(ids, opts, progress).await
    }

    /// Encodes already tokenized texts (each `<s> ... </s>`, at most the model's limit).
    /// Texts are sorted by length and batched by `batch_size`, `max_batch_tokens` and at most a
    /// quarter of padding per text, so a text's result does not depend on the others beyond float
    /// rounding.
    pub async fn encode_ids(
        &self,
        ids: Vec<Vec<u32>>,
        opts: &EncodeOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Embedding>> {
        let limit = self.config.max_tokens();
        for (i, seq) in ids.iter().enumerate() {
            if seq.len() < 2 || seq.len() > limit {
                return Err(Error::Input(format!(
                    "text {i} has {} tokens; between 2 and {limit} are allowed",
                    seq.len()
                )));
            }
            if let Some(bad) = seq.iter().find(|&&id| id as usize >= self.config.vocab_size) {
                return Err(Error::Input(format!("text {i} has token id {bad}, outside the vocabulary")));
            }
        }
        if opts.batch_size == 0 {
            return Err(Error::Input("batch_size must be at least 1".into()));
        }
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut results: Vec<Option<Embedding>> = vec![None; ids.len()];
        let total_tokens: usize = ids.iter().map(|s| s.len()).sum();
        let mut done_tokens = 0;
        let mut start = 0;
        while start < order.len() {
            // Longest first: the first text of a batch sets its padded length. A batch also ends
            // where a text would be more than a quarter padding, so that a mix of lengths does not
            // spend its work on padding (32 texts of 16-512 tokens: 5,760 positions, not 9,728).
            let t = ids[order[start]].len();
            let rows = (opts.max_batch_tokens / t).clamp(1, opts.batch_size);
            let t_padded = padded_len(t);
            let mut end = start + 1;
            while end < order.len() && end - start < rows && padded_len(ids[order[end]].len()) * 4 >= t_padded * 3 {
                end += 1;
            }
            let batch: Vec<usize> = order[start..end].to_vec();
            start = end;
            let seqs: Vec<&Vec<u32>> = batch.iter().map(|&i| &ids[i]).collect();
            for (k, emb) in self.forward_batch(&seqs, opts).await?.into_iter().enumerate() {
                results[batch[k]] = Some(emb);
            }
            done_tokens += seqs.iter().map(|s| s.len()).sum::<usize>();
            progress(done_tokens, total_tokens);
        }
        Ok(results.into_iter().map(|r| r.unwrap_or_default()).collect())
    }

    async fn forward_batch(&self, seqs: &[&Vec<u32>], opts: &EncodeOptions) -> Result<Vec<Embedding>> {
        let (b, h) = (seqs.len(), self.config.hidden_size);
        // Padded length rounded up to a multiple of PAD_MULTIPLE: GPU kernels are compiled per
        // shape, so fewer distinct shapes means far fewer shader compilations (seconds each on a
        // software adapter). Padding is masked: the outputs do not change.
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(2);
        let t = padded_len(longest).min(self.config.max_tokens()).max(longest);
        let lengths: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let padded: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| {
                let mut row = (*s).clone();
                row.resize(t, PAD_ID);
                row
            })
            .collect();
        let hidden = self.encoder.forward(&padded, &lengths, &self.device); // [B*T, H]
        let mut out: Vec<Embedding> =
            seqs.iter().map(|s| Embedding { input_ids: (*s).clone(), ..Default::default() }).collect();
        if opts.dense {
            let cls = hidden.clone().reshape([b, t, h]).narrow(1, 0, 1).reshape([b, h]);
            let dense = read_f32(l2_normalize(cls)).await?;
            for (i, e) in out.iter_mut().enumerate() {
                e.dense = Some(dense[i * h..(i + 1) * h].to_vec());
            }
        }
        if opts.sparse {
            let weights = read_f32(self.sparse.forward(hidden.clone())).await?; // [B*T]
            for (i, e) in out.iter_mut().enumerate() {
                e.sparse = Some(lexical_weights(&e.input_ids, &weights[i * t..i * t + lengths[i]]));
            }
        }
        if opts.colbert {
            let vecs = read_f32(self.colbert.forward(hidden.reshape([b, t, h]))).await?; // [B, T-1, H]
            for (i, e) in out.iter_mut().enumerate() {
                let base = i * (t - 1) * h;
                e.colbert = Some(vecs[base..base + (lengths[i] - 1) * h].to_vec());
            }
        }
        Ok(out)
    }
}
