//! BGE-M3: tokenizer + XLM-R encoder + the dense / sparse / ColBERT heads; texts are cut into
//! windows and batched by the rules of [`crate::windows`].

use burn::tensor::{Device, Tensor};

use crate::config::ModelConfig;
use crate::encoder::{Encoder, WeightStorage};
use crate::error::{Error, Result};
use crate::heads::{ColbertHead, SparseHead, l2_normalize, lexical_weights};
use crate::kernels::LinearKernel;
use crate::scoring::{ScoreWeights, Scores, compute_scores};
use crate::tokenizer::{PAD_ID, Tokenizer, Tokens};
use crate::weights::TensorSource;
use crate::windows::{Window, WindowPolicy, document_colbert_tokens, merge, padded_len, plan_batches};

/// What to compute, how to cut long texts and how to batch.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeOptions {
    pub dense: bool,
    pub sparse: bool,
    pub colbert: bool,
    /// Most tokens of a window (specials included); `None`: the model's limit (8192 for
    /// BAAI/bge-m3).
    pub max_length: Option<usize>,
    /// Content tokens shared by neighbouring windows; `None`: min(256, half a window).
    pub overlap: Option<usize>,
    /// Keep only the first window of a long text, `</s>` last (FlagEmbedding's behaviour).
    pub truncate: bool,
    /// Most windows in one forward pass.
    pub batch_size: usize,
    /// Most tokens (rows x longest window) in one forward pass.
    pub max_batch_tokens: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            dense: true,
            sparse: true,
            colbert: true,
            max_length: None,
            overlap: None,
            truncate: false,
            batch_size: 16,
            max_batch_tokens: 8192,
        }
    }
}

/// The outputs for one window (or, merged, one text).
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

/// One encoded text: its tokens, its windows with their outputs, and the document-level outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The whole text's tokens (byte offsets into the text).
    pub tokens: Tokens,
    pub windows: Vec<Window>,
    /// `results[k]`: window k's outputs.
    pub results: Vec<Embedding>,
    /// Only the first window was kept (`truncate`) although the text is longer.
    pub truncated: bool,
    /// The merged outputs when there are several windows.
    merged: Option<Embedding>,
}

impl Document {
    /// The document-level outputs: the only window's, or the windows' merged (see
    /// [`crate::windows::merge`]).
    pub fn embedding(&self) -> &Embedding {
        self.merged.as_ref().unwrap_or(&self.results[0])
    }

    /// Consumes the document, keeping its document-level outputs.
    pub fn into_embedding(mut self) -> Embedding {
        self.merged.take().unwrap_or_else(|| self.results.swap_remove(0))
    }

    /// The content token of each document-level ColBERT row (`None`: `</s>`).
    pub fn colbert_tokens(&self) -> Vec<Option<usize>> {
        if self.merged.is_some() { document_colbert_tokens(&self.windows) } else { self.windows[0].colbert_tokens() }
    }
}

/// How far an encode has come, after each forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub windows_done: usize,
    pub windows: usize,
    pub tokens_done: usize,
    pub tokens: usize,
}

/// An encode in progress: texts tokenized (once) and cut into windows, forward passes planned.
/// [`BgeM3::step`] runs one forward pass, so that a caller can report progress and stop between
/// passes; [`EncodeJob::finish`] returns the documents.
pub struct EncodeJob {
    opts: EncodeOptions,
    docs: Vec<Planned>,
    /// Each window's document and ids, in document order.
    seqs: Vec<(usize, Vec<u32>)>,
    batches: Vec<Vec<usize>>,
    next: usize,
    results: Vec<Option<Embedding>>,
    progress: Progress,
}

/// A text as planned: its tokens and windows, and whether `truncate` cut it.
struct Planned {
    tokens: Tokens,
    windows: Vec<Window>,
    truncated: bool,
}

impl EncodeJob {
    pub fn progress(&self) -> Progress {
        self.progress
    }

    pub fn is_done(&self) -> bool {
        self.next == self.batches.len()
    }

    /// The encoded documents (an error if passes are still to run).
    pub fn finish(self, dim: usize) -> Result<Vec<Document>> {
        if !self.is_done() {
            return Err(Error::Input("finish() before every forward pass ran".into()));
        }
        let mut per_doc: Vec<Vec<Embedding>> = self.docs.iter().map(|d| Vec::with_capacity(d.windows.len())).collect();
        for ((doc, _), r) in self.seqs.iter().zip(self.results) {
            per_doc[*doc].push(r.ok_or_else(|| Error::Input("a window was not encoded".into()))?);
        }
        Ok(self
            .docs
            .into_iter()
            .zip(per_doc)
            .map(|(Planned { tokens, windows, truncated }, results)| {
                let merged = (windows.len() > 1).then(|| merge(&windows, &results, tokens.ids.clone(), dim));
                Document { tokens, windows, results, truncated, merged }
            })
            .collect())
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
        let colbert =
            ColbertHead::new(colbert, &config, &device, linear).map_err(|e| e.in_file("colbert_linear.pt"))?;
        let sparse = SparseHead::new(sparse, &config, &device).map_err(|e| e.in_file("sparse_linear.pt"))?;
        Ok(BgeM3 { config, tokenizer, encoder, sparse, colbert, device })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How the encoder's weights are held (storage type, the type its matmuls compute in, bytes
    /// on the device and in host memory).
    pub fn weight_storage(&self) -> WeightStorage {
        self.encoder.storage(&self.config)
    }

    /// How texts are cut under `opts`, checked against the model's limit.
    pub fn window_policy(&self, opts: &EncodeOptions) -> Result<WindowPolicy> {
        WindowPolicy::new(opts.max_length, opts.overlap, opts.truncate, self.config.max_tokens())
    }

    /// Tokenizes `texts` (once each), cuts them into windows and plans the forward passes.
    pub fn plan(&self, texts: &[&str], opts: &EncodeOptions) -> Result<EncodeJob> {
        let policy = self.window_policy(opts)?;
        let mut docs = Vec::with_capacity(texts.len());
        let mut seqs = Vec::new();
        for (d, text) in texts.iter().enumerate() {
            let tokens = self.tokenizer.encode(text)?;
            let windows = policy.windows(&tokens, text.len());
            seqs.extend(windows.iter().map(|w| (d, w.ids(&tokens))));
            let truncated = policy.truncate && tokens.content_len() > policy.width();
            docs.push(Planned { tokens, windows, truncated });
        }
        self.job(docs, seqs, opts)
    }

    fn job(&self, docs: Vec<Planned>, seqs: Vec<(usize, Vec<u32>)>, opts: &EncodeOptions) -> Result<EncodeJob> {
        let lengths: Vec<usize> = seqs.iter().map(|s| s.1.len()).collect();
        let batches = plan_batches(&lengths, opts.batch_size, opts.max_batch_tokens)?;
        let progress = Progress { windows: seqs.len(), tokens: lengths.iter().sum(), ..Default::default() };
        let results = vec![None; seqs.len()];
        Ok(EncodeJob { opts: opts.clone(), docs, seqs, batches, next: 0, results, progress })
    }

    /// Runs the next forward pass of `job`; `Ok(false)` once every pass has run.
    pub async fn step(&self, job: &mut EncodeJob) -> Result<bool> {
        let Some(batch) = job.batches.get(job.next) else { return Ok(false) };
        let seqs: Vec<&Vec<u32>> = batch.iter().map(|&i| &job.seqs[i].1).collect();
        let out = self.forward_batch(&seqs, &job.opts).await?;
        for (&i, emb) in batch.iter().zip(out) {
            job.progress.tokens_done += emb.input_ids.len();
            job.results[i] = Some(emb);
        }
        job.progress.windows_done += batch.len();
        job.next += 1;
        Ok(true)
    }

    /// Tokenizes and encodes `texts`: long texts as windows (see [`crate::windows`]), each with
    /// its outputs, plus document-level outputs. `progress` is called after each forward pass.
    pub async fn encode(
        &self,
        texts: &[&str],
        opts: &EncodeOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Document>> {
        self.run(self.plan(texts, opts)?, progress).await
    }

    /// Runs every forward pass of `job`, calling `progress` after each, and returns the documents.
    pub async fn run(&self, mut job: EncodeJob, progress: &mut dyn FnMut(Progress)) -> Result<Vec<Document>> {
        while self.step(&mut job).await? {
            progress(job.progress());
        }
        job.finish(self.config.hidden_size)
    }

    /// Plans already tokenized windows (each `<s> ... </s>`, at most the model's limit), one
    /// document each (no text: spans are empty).
    pub fn plan_ids(&self, ids: Vec<Vec<u32>>, opts: &EncodeOptions) -> Result<EncodeJob> {
        let limit = self.config.max_tokens();
        let mut docs = Vec::with_capacity(ids.len());
        let mut seqs = Vec::with_capacity(ids.len());
        for (i, seq) in ids.into_iter().enumerate() {
            if seq.len() < 2 || seq.len() > limit {
                return Err(Error::Input(format!(
                    "text {i} has {} tokens; between 2 and {limit} are allowed",
                    seq.len()
                )));
            }
            if let Some(bad) = seq.iter().find(|&&id| id as usize >= self.config.vocab_size) {
                return Err(Error::Input(format!("text {i} has token id {bad}, outside the vocabulary")));
            }
            let window = Window { token_start: 0, token_end: seq.len() - 2, span: (0, 0) };
            let tokens = Tokens { offsets: vec![(0, 0); seq.len()], ids: seq.clone() };
            docs.push(Planned { tokens, windows: vec![window], truncated: false });
            seqs.push((i, seq));
        }
        self.job(docs, seqs, opts)
    }

    /// Encodes already tokenized windows (see [`BgeM3::plan_ids`]), one [`Embedding`] each.
    pub async fn encode_ids(
        &self,
        ids: Vec<Vec<u32>>,
        opts: &EncodeOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Embedding>> {
        let docs = self.run(self.plan_ids(ids, opts)?, progress).await?;
        Ok(docs.into_iter().map(Document::into_embedding).collect())
    }

    /// FlagEmbedding's `compute_score` of `query` against each of `passages`, on document-level
    /// outputs (so a passage longer than the window is scored by its windows merged, unless
    /// `opts.truncate`). `progress` is called after each forward pass.
    pub async fn score(
        &self,
        query: &str,
        passages: &[&str],
        opts: &EncodeOptions,
        weights: ScoreWeights,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Scores>> {
        let docs = self.run(self.plan_scores(query, passages, opts)?, progress).await?;
        self.scores(&docs, weights)
    }

    /// The encode behind [`BgeM3::score`]: `query` then `passages`, all three outputs.
    pub fn plan_scores(&self, query: &str, passages: &[&str], opts: &EncodeOptions) -> Result<EncodeJob> {
        let opts = EncodeOptions { dense: true, sparse: true, colbert: true, ..opts.clone() };
        let texts: Vec<&str> = std::iter::once(query).chain(passages.iter().copied()).collect();
        self.plan(&texts, &opts)
    }

    /// The scores of `docs[0]` (the query) against each of `docs[1..]`.
    pub fn scores(&self, docs: &[Document], weights: ScoreWeights) -> Result<Vec<Scores>> {
        let (q, passages) = docs.split_first().ok_or_else(|| Error::Input("no query to score".into()))?;
        passages
            .iter()
            .map(|p| {
                compute_scores(q.embedding(), p.embedding(), self.config.hidden_size, weights)
                    .ok_or_else(|| Error::Input("scores need dense, sparse and ColBERT outputs".into()))
            })
            .collect()
    }

    async fn forward_batch(&self, seqs: &[&Vec<u32>], opts: &EncodeOptions) -> Result<Vec<Embedding>> {
        let (b, h) = (seqs.len(), self.config.hidden_size);
        // Padded to a multiple of PAD_MULTIPLE (see there); padding is masked: the outputs do not
        // change.
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
