//! The wasm-bindgen API: a thin async boundary over [`BgeM3`]. Every error becomes a rejected
//! promise with a JS `Error`; nothing panics across the boundary, and readbacks are async.
//!
//! ```js
//! const model = await M3.load({ config, tokenizer, encoder, colbert, sparse }, "auto");
//! const [r] = await model.encode(["hello"], { dense: true, sparse: true, colbert: false });
//! r.dense // Float32Array
//! ```

use burn::tensor::Device;
use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array, Uint32Array};
use wasm_bindgen::prelude::*;

use crate::error::{Error, Result};
use crate::gpu::{GpuLimits, init_wgpu};
use crate::kernels::LinearKernel;
use crate::model::{BgeM3, Embedding, EncodeOptions};
use crate::scoring::{ScoreWeights, compute_scores};
use crate::weights::{Checkpoint, ReadAt};

fn js_err(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

/// A model file handed over from JS: a `Uint8Array` (read slice by slice, never copied whole
/// into wasm memory) or a `Blob`/`File` (read with `FileReaderSync`, in a worker).
enum JsFile {
    Bytes(Uint8Array),
    Blob(web_sys::Blob),
}

impl ReadAt for JsFile {
    fn size(&self) -> u64 {
        match self {
            JsFile::Bytes(a) => a.length() as u64,
            JsFile::Blob(b) => b.size() as u64,
        }
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.size() {
            return Err(Error::Format(format!("read past the end of the file (byte {end} of {})", self.size())));
        }
        match self {
            JsFile::Bytes(a) => {
                a.subarray(offset as u32, end as u32).copy_to(buf);
                Ok(())
            }
            JsFile::Blob(b) => {
                let slice = b
                    .slice_with_f64_and_f64(offset as f64, end as f64)
                    .map_err(|e| Error::Io(format!("Blob.slice failed: {e:?}")))?;
                let reader = web_sys::FileReaderSync::new()
                    .map_err(|_| Error::Io("reading a Blob needs a Web Worker (FileReaderSync)".into()))?;
                let ab = reader
                    .read_as_array_buffer(&slice)
                    .map_err(|e| Error::Io(format!("reading the Blob failed: {e:?}")))?;
                Uint8Array::new(&ab).copy_to(buf);
                Ok(())
            }
        }
    }
}

fn get(obj: &JsValue, key: &str) -> Result<JsValue> {
    let v = Reflect::get(obj, &JsValue::from_str(key)).map_err(|_| Error::Input(format!("cannot read {key}")))?;
    if v.is_undefined() || v.is_null() {
        return Err(Error::Input(format!("files.{key} is missing")));
    }
    Ok(v)
}

fn file(obj: &JsValue, key: &str) -> Result<JsFile> {
    let v = get(obj, key)?;
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        Ok(JsFile::Bytes(a.clone()))
    } else if let Some(ab) = v.dyn_ref::<js_sys::ArrayBuffer>() {
        Ok(JsFile::Bytes(Uint8Array::new(ab)))
    } else if let Some(b) = v.dyn_ref::<web_sys::Blob>() {
        Ok(JsFile::Blob(b.clone()))
    } else {
        Err(Error::Input(format!("files.{key} must be a Uint8Array, ArrayBuffer or Blob")))
    }
}

fn small_file(obj: &JsValue, key: &str) -> Result<Vec<u8>> {
    let f = file(obj, key)?;
    let mut buf = vec![0u8; f.size() as usize];
    f.read_at(0, &mut buf)?;
    Ok(buf)
}

fn opt_bool(obj: &JsValue, key: &str, default: bool) -> Result<bool> {
    match Reflect::get(obj, &JsValue::from_str(key)) {
        Ok(v) if v.is_undefined() || v.is_null() => Ok(default),
        Ok(v) => v.as_bool().ok_or_else(|| Error::Input(format!("options.{key} must be a boolean"))),
        Err(_) => Ok(default),
    }
}

fn opt_usize(obj: &JsValue, key: &str, default: usize) -> Result<usize> {
    match Reflect::get(obj, &JsValue::from_str(key)) {
        Ok(v) if v.is_undefined() || v.is_null() => Ok(default),
        Ok(v) => match v.as_f64() {
            Some(x) if x >= 0.0 && x.fract() == 0.0 => Ok(x as usize),
            _ => Err(Error::Input(format!("options.{key} must be a non-negative integer"))),
        },
        Err(_) => Ok(default),
    }
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn encode_options(options: &JsValue) -> Result<EncodeOptions> {
    let d = EncodeOptions::default();
    Ok(EncodeOptions {
        dense: opt_bool(options, "dense", true)?,
        sparse: opt_bool(options, "sparse", true)?,
        colbert: opt_bool(options, "colbert", true)?,
        max_length: opt_usize(options, "maxLength", d.max_length)?,
        batch_size: opt_usize(options, "batchSize", d.batch_size)?,
        max_batch_tokens: opt_usize(options, "maxBatchTokens", d.max_batch_tokens)?,
    })
}

/// Results as JS objects of typed arrays.
fn to_js(embs: Vec<Embedding>) -> Array {
    let out = Array::new();
    for e in embs {
        let o = Object::new();
        set(&o, "inputIds", &Uint32Array::from(e.input_ids.as_slice()).into());
        if let Some(d) = &e.dense {
            set(&o, "dense", &Float32Array::from(d.as_slice()).into());
        }
        if let Some(s) = &e.sparse {
            let ids: Vec<u32> = s.iter().map(|p| p.0).collect();
            let ws: Vec<f32> = s.iter().map(|p| p.1).collect();
            set(&o, "sparseIds", &Uint32Array::from(ids.as_slice()).into());
            set(&o, "sparseWeights", &Float32Array::from(ws.as_slice()).into());
        }
        if let Some(c) = &e.colbert {
            set(&o, "colbert", &Float32Array::from(c.as_slice()).into());
            set(&o, "colbertRows", &JsValue::from(e.colbert_rows() as u32));
        }
        out.push(&o);
    }
    out
}

unsafe extern "C" {
    /// Synthesised by wasm-ld: runs the module's static constructors (burn/cubecl register their
    /// IR dialects and kernels with `inventory`, which uses constructors on wasm).
    fn __wasm_call_ctors();
}

/// Runs once, when the module is instantiated.
///
/// The explicit `__wasm_call_ctors` call matters for speed: a module that never calls it is
/// linked "command style", and wasm-ld then wraps *every* export in a call to all the
/// constructors. wasm-bindgen's glue calls exports hundreds of times per encode (one per WebGPU
/// object handed across), which cost ~0.8 s per call on a 16-token text (measured in Chromium;
/// natively the same encode takes 22 ms). Called here, once, the wrapping is gone.
#[wasm_bindgen(start)]
pub fn start() {
    // SAFETY: called once, before any other export runs (wasm-bindgen runs `start` at
    // instantiation); the constructors only register items in `inventory` lists.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}

/// BGE-M3 in the browser.
#[wasm_bindgen]
pub struct M3 {
    model: BgeM3,
    backend: String,
    adapter: String,
}

/// (device, linear-layer kernel, backend name, adapter description)
async fn pick_device(kind: &str, limits: GpuLimits) -> Result<(Device, LinearKernel, String, String)> {
    let cpu = |why: &str| (Device::flex(), LinearKernel::Burn, "cpu".to_string(), format!("wasm CPU (burn flex){why}"));
    let webgpu = || async {
        init_wgpu(limits)
            .await
            .map(|d| (d.device, d.linear_kernel, "webgpu".to_string(), d.description))
            .map_err(|e| Error::Device(format!("WebGPU is not available: {e}")))
    };
    match kind {
        "webgpu" => webgpu().await,
        "cpu" => Ok(cpu("")),
        "auto" | "" => match webgpu().await {
            Ok(d) => Ok(d),
            Err(_) => Ok(cpu(": no WebGPU adapter")),
        },
        other => Err(Error::Input(format!("unknown device {other:?} (auto, webgpu or cpu)"))),
    }
}

#[wasm_bindgen]
impl M3 {
    /// Loads the model. `files`: `{ config, tokenizer, encoder, colbert, sparse }`, each a
    /// `Uint8Array`, `ArrayBuffer` or `Blob` (`encoder` = `pytorch_model.bin` or
    /// `model.safetensors`). `device`: "auto" (WebGPU, else CPU), "webgpu" or "cpu".
    /// `limits`: "default" (WebGPU's default limits: 128 MiB per binding; the default) or
    /// "adapter" (all the adapter offers).
    /// `on_progress(done, total)`, if given, is called as encoder layers are built.
    pub async fn load(
        files: JsValue,
        device: Option<String>,
        limits: Option<String>,
        on_progress: Option<js_sys::Function>,
    ) -> std::result::Result<M3, JsError> {
        Self::load_inner(files, device.unwrap_or_default(), limits.unwrap_or_default(), on_progress)
            .await
            .map_err(js_err)
    }

    async fn load_inner(
        files: JsValue,
        device: String,
        limits: String,
        on_progress: Option<js_sys::Function>,
    ) -> Result<M3> {
        let limits = match limits.as_str() {
            "" | "default" => GpuLimits::WebGpuDefault,
            "adapter" => GpuLimits::Adapter,
            other => {
                return Err(Error::Input(format!("unknown limits {other:?} (default or adapter)")));
            }
        };
        if !files.is_object() {
            return Err(Error::Input("load() needs an object { config, tokenizer, encoder, colbert, sparse }".into()));
        }
        let config = small_file(&files, "config")?;
        let tokenizer = small_file(&files, "tokenizer")?;
        let encoder = Checkpoint::open(file(&files, "encoder")?)?;
        let colbert = Checkpoint::open(file(&files, "colbert")?)?;
        let sparse = Checkpoint::open(file(&files, "sparse")?)?;
        let (device, linear, backend, adapter) = pick_device(&device, limits).await?;
        let mut progress = |done: usize, total: usize| {
            if let Some(f) = &on_progress {
                let _ = f.call2(&JsValue::NULL, &JsValue::from(done as u32), &JsValue::from(total as u32));
            }
        };
        let model = BgeM3::load(&config, &tokenizer, &encoder, &colbert, &sparse, device, linear, &mut progress)?;
        Ok(M3 { model, backend, adapter })
    }

    /// "webgpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// The adapter in use, e.g. "SwiftShader Device (Subzero) (BrowserWebGpu)".
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Most tokens in one input (`<s>` and `</s>` included): 8192 for BAAI/bge-m3.
    #[wasm_bindgen(getter, js_name = maxTokens)]
    pub fn max_tokens(&self) -> usize {
        self.model.config.max_tokens()
    }

    #[wasm_bindgen(getter, js_name = hiddenSize)]
    pub fn hidden_size(&self) -> usize {
        self.model.config.hidden_size
    }

    /// Encodes an array of strings. Options: `dense`, `sparse`, `colbert` (booleans, default
    /// true), `maxLength` (default 8192), `batchSize` (default 16). Resolves to one object per
    /// text: `{ inputIds: Uint32Array, dense?: Float32Array, sparseIds?: Uint32Array,
    /// sparseWeights?: Float32Array, colbert?: Float32Array, colbertRows }`.
    pub async fn encode(&self, texts: JsValue, options: JsValue) -> std::result::Result<Array, JsError> {
        self.encode_inner(texts, options).await.map_err(js_err)
    }

    async fn encode_inner(&self, texts: JsValue, options: JsValue) -> Result<Array> {
        let arr = texts.dyn_ref::<Array>().ok_or_else(|| Error::Input("texts must be an array of strings".into()))?;
        let mut strings = Vec::with_capacity(arr.length() as usize);
        for (i, v) in arr.iter().enumerate() {
            strings.push(v.as_string().ok_or_else(|| Error::Input(format!("texts[{i}] is not a string")))?);
        }
        let opts = encode_options(&options)?;
        let refs: Vec<&str> = strings.iter().map(|s| s.as_str()).collect();
        let embs = self.model.encode(&refs, &opts, &mut |_, _| {}).await?;
        Ok(to_js(embs))
    }

    /// Encodes already tokenized windows: an array of `Uint32Array`s, each `<s> ... </s>`
    /// (ids from `tokenize`), at most the model's limit. Same options and results as `encode`
    /// (`maxLength` is not used: the caller cuts the windows).
    #[wasm_bindgen(js_name = encodeIds)]
    pub async fn encode_ids(&self, ids: JsValue, options: JsValue) -> std::result::Result<Array, JsError> {
        self.encode_ids_inner(ids, options).await.map_err(js_err)
    }

    async fn encode_ids_inner(&self, ids: JsValue, options: JsValue) -> Result<Array> {
        let arr = ids.dyn_ref::<Array>().ok_or_else(|| Error::Input("ids must be an array of Uint32Array".into()))?;
        let mut seqs = Vec::with_capacity(arr.length() as usize);
        for (i, v) in arr.iter().enumerate() {
            let a = v.dyn_ref::<Uint32Array>().ok_or_else(|| Error::Input(format!("ids[{i}] is not a Uint32Array")))?;
            seqs.push(a.to_vec());
        }
        let opts = encode_options(&options)?;
        let embs = self.model.encode_ids(seqs, &opts, &mut |_, _| {}).await?;
        Ok(to_js(embs))
    }

    /// FlagEmbedding's `compute_score` for `query` against each of `passages`: resolves to one
    /// `{ dense, sparse, colbert, "sparse+dense", "colbert+sparse+dense" }` per passage.
    /// `weights`: `[dense, sparse, colbert]` (default `[0.4, 0.2, 0.4]`).
    pub async fn score(
        &self,
        query: JsValue,
        passages: JsValue,
        weights: Option<Vec<f32>>,
        max_length: Option<usize>,
    ) -> std::result::Result<Array, JsError> {
        self.score_inner(query, passages, weights, max_length).await.map_err(js_err)
    }

    async fn score_inner(
        &self,
        query: JsValue,
        passages: JsValue,
        weights: Option<Vec<f32>>,
        max_length: Option<usize>,
    ) -> Result<Array> {
        let q = query.as_string().ok_or_else(|| Error::Input("query must be a string".into()))?;
        let arr =
            passages.dyn_ref::<Array>().ok_or_else(|| Error::Input("passages must be an array of strings".into()))?;
        let mut texts = vec![q];
        for (i, v) in arr.iter().enumerate() {
            texts.push(v.as_string().ok_or_else(|| Error::Input(format!("passages[{i}] is not a string")))?);
        }
        let w = match weights.as_deref() {
            None => ScoreWeights::default(),
            Some([d, s, c]) => ScoreWeights { dense: *d, sparse: *s, colbert: *c },
            Some(_) => {
                return Err(Error::Input("weights must be [dense, sparse, colbert]".into()));
            }
        };
        let opts = EncodeOptions {
            max_length: max_length.unwrap_or(EncodeOptions::default().max_length),
            ..Default::default()
        };
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let embs = self.model.encode(&refs, &opts, &mut |_, _| {}).await?;
        let out = Array::new();
        for p in &embs[1..] {
            let s = compute_scores(&embs[0], p, self.model.config.hidden_size, w)
                .ok_or_else(|| Error::Input("scores need dense, sparse and ColBERT outputs".into()))?;
            let o = Object::new();
            set(&o, "dense", &JsValue::from(s.dense));
            set(&o, "sparse", &JsValue::from(s.sparse));
            set(&o, "colbert", &JsValue::from(s.colbert));
            set(&o, "sparse+dense", &JsValue::from(s.sparse_dense));
            set(&o, "colbert+sparse+dense", &JsValue::from(s.colbert_sparse_dense));
            out.push(&o);
        }
        Ok(out)
    }

    /// Token ids and their UTF-16 character spans `[start, end)` of `text` (`<s>` ... `</s>`),
    /// without truncation: the JS layer cuts long texts into windows from this.
    pub fn tokenize(&self, text: String) -> std::result::Result<Object, JsError> {
        let tok = self.model.tokenizer.encode(&text, usize::MAX).map_err(js_err)?;
        // Byte offsets -> UTF-16 offsets, the unit of JS strings.
        let mut utf16_at = vec![0u32; text.len() + 1];
        let mut u = 0u32;
        for (b, ch) in text.char_indices() {
            utf16_at[b] = u;
            u += ch.len_utf16() as u32;
        }
        utf16_at[text.len()] = u;
        let mut fill = 0;
        for b in 0..=text.len() {
            if text.is_char_boundary(b) {
                fill = utf16_at[b];
            } else {
                utf16_at[b] = fill;
            }
        }
        let starts: Vec<u32> = tok.offsets.iter().map(|o| utf16_at[o.0.min(text.len())]).collect();
        let ends: Vec<u32> = tok.offsets.iter().map(|o| utf16_at[o.1.min(text.len())]).collect();
        let o = Object::new();
        set(&o, "ids", &Uint32Array::from(tok.ids.as_slice()).into());
        set(&o, "starts", &Uint32Array::from(starts.as_slice()).into());
        set(&o, "ends", &Uint32Array::from(ends.as_slice()).into());
        Ok(o)
    }

    /// The vocabulary entry of a token id (e.g. "▁search"), for showing lexical weights.
    #[wasm_bindgen(js_name = idToToken)]
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.model.tokenizer.id_to_token(id)
    }
}
