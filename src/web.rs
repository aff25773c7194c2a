//! The wasm-bindgen API: a thin async boundary over [`BgeM3`] (bindings and conversions only:
//! windows, batching and merging are [`crate::windows`]', the device policy [`crate::gpu`]'s).
//! Every error becomes a rejected promise with a JS error carrying `kind`; nothing panics across
//! the boundary, and readbacks are async.
//!
//! ```js
//! const model = await M3.load({ config, tokenizer, encoder, colbert, sparse }, "auto");
//! const [r] = await model.encode(["hello"], { colbert: false }, p => console.log(p.windowsDone));
//! r.dense // Float32Array
//! ```

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array, Uint32Array};
use wasm_bindgen::prelude::*;

use crate::error::{Error, Result};
use crate::gpu::{DeviceKind, GpuLimits, KernelChoice, pick_device};
use crate::model::{BgeM3, Document, Embedding, EncodeJob, EncodeOptions, Progress};
use crate::scoring::ScoreWeights;
use crate::tokenizer::OffsetMap;
use crate::weights::{Checkpoint, ReadAt};
use crate::windows::colbert_spans;

/// A Rust error as a JS error: `RangeError` for an option out of range, else `Error`;
/// `error.kind` names the [`Error`] variant (e.g. "format", "device"), so that JS decides on the
/// kind, not on the message.
fn js_err(e: Error) -> JsValue {
    let kind = e.kind();
    let message = e.to_string();
    let err: JsValue = match e {
        Error::OutOfRange(_) => js_sys::RangeError::new(&message).into(),
        _ => js_sys::Error::new(&message).into(),
    };
    let _ = Reflect::set(&err, &JsValue::from_str("kind"), &JsValue::from_str(kind));
    err
}

/// A wrong argument type: a JS `TypeError`.
fn type_err(message: &str) -> JsValue {
    let err: JsValue = js_sys::TypeError::new(message).into();
    let _ = Reflect::set(&err, &JsValue::from_str("kind"), &JsValue::from_str("input"));
    err
}

type JsResult<T> = std::result::Result<T, JsValue>;

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

fn opt_bool(obj: &JsValue, key: &str, default: bool) -> JsResult<bool> {
    match Reflect::get(obj, &JsValue::from_str(key)) {
        Ok(v) if v.is_undefined() || v.is_null() => Ok(default),
        Ok(v) => v.as_bool().ok_or_else(|| type_err(&format!("options.{key} must be a boolean"))),
        Err(_) => Ok(default),
    }
}

fn opt_usize(obj: &JsValue, key: &str) -> JsResult<Option<usize>> {
    match Reflect::get(obj, &JsValue::from_str(key)) {
        Ok(v) if v.is_undefined() || v.is_null() => Ok(None),
        Ok(v) => match v.as_f64() {
            Some(x) if (0.0..=u32::MAX as f64).contains(&x) && x.fract() == 0.0 => Ok(Some(x as usize)),
            _ => Err(js_err(Error::OutOfRange(format!("options.{key} must be a non-negative integer (got {v:?})")))),
        },
        Err(_) => Ok(None),
    }
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// `encode()`'s options: what to compute, windows, batching, and what to add to the results.
struct JsEncodeOptions {
    opts: EncodeOptions,
    /// Add `sparse.tokens` (vocabulary strings).
    token_strings: bool,
    /// Add `colbertSpans` (a UTF-16 span per ColBERT row).
    colbert_spans: bool,
}

fn encode_options(options: &JsValue) -> JsResult<JsEncodeOptions> {
    if !(options.is_undefined() || options.is_null() || options.is_object()) {
        return Err(type_err("options must be an object"));
    }
    let d = EncodeOptions::default();
    let opts = EncodeOptions {
        dense: opt_bool(options, "dense", d.dense)?,
        sparse: opt_bool(options, "sparse", d.sparse)?,
        colbert: opt_bool(options, "colbert", d.colbert)?,
        max_length: opt_usize(options, "maxLength")?,
        overlap: opt_usize(options, "overlap")?,
        truncate: opt_bool(options, "truncate", d.truncate)?,
        batch_size: opt_usize(options, "batchSize")?.unwrap_or(d.batch_size),
        max_batch_tokens: opt_usize(options, "maxBatchTokens")?.unwrap_or(d.max_batch_tokens),
    };
    Ok(JsEncodeOptions {
        opts,
        token_strings: opt_bool(options, "tokenStrings", false)?,
        colbert_spans: opt_bool(options, "colbertSpans", false)?,
    })
}

/// `[start0, end0, start1, end1, ...]` in UTF-16 units.
fn spans_js(spans: &[(usize, usize)], map: &OffsetMap) -> Uint32Array {
    let flat: Vec<u32> = spans.iter().flat_map(|&(a, b)| [map.map(a), map.map(b)]).collect();
    Uint32Array::from(flat.as_slice())
}

/// One [`Embedding`] as `{ inputIds, dense?, sparse?: { ids, weights, tokens? }, colbert?: {
/// data, rows, dim } }`.
fn embedding_js(model: &BgeM3, e: &Embedding, token_strings: bool) -> Object {
    let o = Object::new();
    set(&o, "inputIds", &Uint32Array::from(e.input_ids.as_slice()).into());
    if let Some(d) = &e.dense {
        set(&o, "dense", &Float32Array::from(d.as_slice()).into());
    }
    if let Some(s) = &e.sparse {
        let ids: Vec<u32> = s.iter().map(|p| p.0).collect();
        let ws: Vec<f32> = s.iter().map(|p| p.1).collect();
        let sparse = Object::new();
        set(&sparse, "ids", &Uint32Array::from(ids.as_slice()).into());
        set(&sparse, "weights", &Float32Array::from(ws.as_slice()).into());
        if token_strings {
            let tokens: Array =
                ids.iter().map(|&id| JsValue::from_str(&model.tokenizer.id_to_token(id).unwrap_or_default())).collect();
            set(&sparse, "tokens", &tokens);
        }
        set(&o, "sparse", &sparse);
    }
    if let Some(c) = &e.colbert {
        let colbert = Object::new();
        set(&colbert, "data", &Float32Array::from(c.as_slice()).into());
        set(&colbert, "rows", &JsValue::from(e.colbert_rows() as u32));
        set(&colbert, "dim", &JsValue::from(model.config.hidden_size as u32));
        set(&o, "colbert", &colbert);
    }
    o
}

/// One [`Document`] as the package's `Embedding`: document-level outputs, `windows` (each with
/// its UTF-16 span, token range and outputs) and `truncated`. A text of one window shares its
/// arrays with `windows[0]`.
fn document_js(model: &BgeM3, text: &str, doc: &Document, o: &JsEncodeOptions) -> Object {
    let map = OffsetMap::utf16(text);
    let windows = Array::new();
    for (w, r) in doc.windows.iter().zip(&doc.results) {
        let wo = embedding_js(model, r, o.token_strings);
        set(&wo, "start", &JsValue::from(map.map(w.span.0)));
        set(&wo, "end", &JsValue::from(map.map(w.span.1)));
        set(&wo, "tokenStart", &JsValue::from(w.token_start as u32));
        set(&wo, "tokenEnd", &JsValue::from(w.token_end as u32));
        if o.colbert_spans && o.opts.colbert {
            let spans = colbert_spans(&w.colbert_tokens(), &doc.tokens, w.span.0);
            set(&wo, "colbertSpans", &spans_js(&spans, &map).into());
        }
        windows.push(&wo);
    }
    let out = if doc.windows.len() == 1 {
        let only: Object = windows.get(0).unchecked_into();
        let out = Object::new();
        for key in ["inputIds", "dense", "sparse", "colbert", "colbertSpans"] {
            let v = Reflect::get(&only, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED);
            if !v.is_undefined() {
                set(&out, key, &v);
            }
        }
        out
    } else {
        let out = embedding_js(model, doc.embedding(), o.token_strings);
        if o.colbert_spans && o.opts.colbert {
            let spans = colbert_spans(&doc.colbert_tokens(), &doc.tokens, 0);
            set(&out, "colbertSpans", &spans_js(&spans, &map).into());
        }
        out
    };
    set(&out, "windows", &windows);
    set(&out, "truncated", &JsValue::from(doc.truncated));
    out
}

/// `{ windowsDone, windows, tokensDone, tokens }`
fn progress_js(p: Progress) -> Object {
    let o = Object::new();
    set(&o, "windowsDone", &JsValue::from(p.windows_done as u32));
    set(&o, "windows", &JsValue::from(p.windows as u32));
    set(&o, "tokensDone", &JsValue::from(p.tokens_done as u32));
    set(&o, "tokens", &JsValue::from(p.tokens as u32));
    o
}

/// Runs `job`'s forward passes; after each, `on_batch(progress)` is called and, if it returns a
/// promise, awaited: the caller reports progress there, lets its event loop run, and stops the
/// job by throwing or rejecting (the error, e.g. an `AbortError`, is what the call rejects with).
async fn run_job(
    model: &BgeM3,
    job: Result<EncodeJob>,
    on_batch: Option<&js_sys::Function>,
) -> JsResult<Vec<Document>> {
    let mut job = job.map_err(js_err)?;
    while model.step(&mut job).await.map_err(js_err)? {
        if let Some(f) = on_batch {
            let r = f.call1(&JsValue::NULL, &progress_js(job.progress()))?;
            if let Some(p) = r.dyn_ref::<js_sys::Promise>() {
                wasm_bindgen_futures::JsFuture::from(p.clone()).await?;
            }
        }
    }
    job.finish(model.config.hidden_size).map_err(js_err)
}

fn strings(v: &JsValue, what: &str) -> JsResult<Vec<String>> {
    let arr = v.dyn_ref::<Array>().ok_or_else(|| type_err(&format!("{what} must be an array of strings")))?;
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_string().ok_or_else(|| {
                let t = if v.is_null() { "null".to_string() } else { v.js_typeof().as_string().unwrap_or_default() };
                type_err(&format!("{what}[{i}] is not a string ({t})"))
            })
        })
        .collect()
}

unsafe extern "C" {
    /// Synthesised by wasm-ld: runs the module's static constructors (burn/cubecl register their
    /// IR dialects and kernels with `inventory`, which uses constructors on wasm).
    fn __wasm_call_ctors();
}

/// Runs when the module is instantiated (and does nothing after its first call: a test harness
/// that does not run wasm-bindgen's start function calls it itself).
///
/// The explicit `__wasm_call_ctors` call matters for speed: a module that never calls it is
/// linked "command style", and wasm-ld then wraps *every* export in a call to all the
/// constructors. wasm-bindgen's glue calls exports hundreds of times per encode (one per WebGPU
/// object handed across), which cost ~0.8 s per call on a 16-token text (measured in Chromium;
/// natively the same encode takes 22 ms). Called here, once, the wrapping is gone.
#[wasm_bindgen(start)]
pub fn start() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    // SAFETY: run once (a second run would register every `inventory` node again), before any
    // other export runs (wasm-bindgen runs `start` at instantiation); the constructors only
    // register items in `inventory` lists.
    STARTED.call_once(|| unsafe { __wasm_call_ctors() });
    console_error_panic_hook::set_once();
}

/// BGE-M3 in the browser.
#[wasm_bindgen]
pub struct M3 {
    model: BgeM3,
    backend: String,
    adapter: String,
}

#[wasm_bindgen]
impl M3 {
    /// Loads the model. `files`: `{ config, tokenizer, encoder, colbert, sparse }`, each a
    /// `Uint8Array`, `ArrayBuffer` or `Blob` (`encoder` = `pytorch_model.bin` or
    /// `model.safetensors`). `device`: "auto" (WebGPU on a hardware adapter, else CPU:
    /// [`crate::gpu::choose_device`]), "webgpu" or "cpu".
    /// `limits`: "default" (WebGPU's default limits: 128 MiB per binding; the default) or
    /// "adapter" (all the adapter offers).
    /// `on_progress(done, total)`, if given, is called as encoder layers are built.
    /// `compute`: "auto" (the default) or "f32": f32 arithmetic, compact weights widened in
    /// registers; "f16": an f16 pack's matmuls on f16 operands (burn's kernels) where the WebGPU
    /// adapter has `shader-f16`, f32 elsewhere. The `compute` getter says which ran.
    /// `kernel`: "auto" (the default: ours, the faster where measured, see
    /// [`KernelChoice::Auto`]), "register" (the same) or "burn" (burn's tiled kernels for f32
    /// weights and attention; compact weights keep our packed kernel unless `compute` is "f16").
    /// The `kernel` getter says which ran.
    pub async fn load(
        files: JsValue,
        device: Option<String>,
        limits: Option<String>,
        on_progress: Option<js_sys::Function>,
        compute: Option<String>,
        kernel: Option<String>,
    ) -> JsResult<M3> {
        let (device, limits, compute, kernel) = (
            device.unwrap_or_default(),
            limits.unwrap_or_default(),
            compute.unwrap_or_default(),
            kernel.unwrap_or_default(),
        );
        Self::load_inner(files, device, limits, compute, kernel, on_progress).await.map_err(js_err)
    }

    async fn load_inner(
        files: JsValue,
        device: String,
        limits: String,
        compute: String,
        kernel: String,
        on_progress: Option<js_sys::Function>,
    ) -> Result<M3> {
        let limits = match limits.as_str() {
            "" | "default" => GpuLimits::WebGpuDefault,
            "adapter" => GpuLimits::Adapter,
            other => {
                return Err(Error::Input(format!("unknown limits {other:?} (default or adapter)")));
            }
        };
        let kind: DeviceKind = device.parse()?;
        let f16_matmuls = match compute.as_str() {
            "" | "auto" | "f32" => false,
            "f16" => true,
            other => return Err(Error::Input(format!("unknown compute {other:?} (auto, f32 or f16)"))),
        };
        // KernelChoice's names, but for "burn-f16": burn's f16 matmuls are `compute` "f16" here.
        let kernel = match kernel.as_str() {
            "" => KernelChoice::Auto,
            name => match name.parse::<KernelChoice>() {
                Ok(KernelChoice::BurnF16) | Err(_) => {
                    return Err(Error::Input(format!("unknown kernel {name:?} (auto, register or burn)")));
                }
                Ok(choice) => choice,
            },
        };
        if !files.is_object() {
            return Err(Error::Input("load() needs an object { config, tokenizer, encoder, colbert, sparse }".into()));
        }
        let config = small_file(&files, "config")?;
        let tokenizer = small_file(&files, "tokenizer")?;
        let encoder = Checkpoint::open(file(&files, "encoder")?)?;
        let colbert = Checkpoint::open(file(&files, "colbert")?)?;
        let sparse = Checkpoint::open(file(&files, "sparse")?)?;
        let mut d = pick_device(kind, limits, kernel).await?;
        if f16_matmuls {
            d = d.with_f16_matmuls_if_supported();
        }
        let mut progress = |done: usize, total: usize| {
            if let Some(f) = &on_progress {
                let _ = f.call2(&JsValue::NULL, &JsValue::from(done as u32), &JsValue::from(total as u32));
            }
        };
        let model =
            BgeM3::load(&config, &tokenizer, &encoder, &colbert, &sparse, d.device, d.linear_kernel, &mut progress)?;
        Ok(M3 { model, backend: d.backend.into(), adapter: d.adapter })
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

    /// What the linear layers' and attention's matmuls multiply: "f16" (an f16 pack on an adapter
    /// with `shader-f16`: f16 operands, f32 sums, LayerNorm and softmax) or "f32".
    #[wasm_bindgen(getter)]
    pub fn compute(&self) -> String {
        self.model.weight_storage().compute.into()
    }

    /// The kernel the linear layers run: "register" (ours, f32 weights), "register-packed" (ours,
    /// f16 or int8 words), "burn" (burn's), "burn-f16" (burn's on f16 operands) or
    /// "burn-widened" (the CPU backend's, on a compact matrix widened for the pass).
    #[wasm_bindgen(getter)]
    pub fn kernel(&self) -> String {
        self.model.weight_storage().kernel.into()
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

    /// FlagEmbedding's default weights of `compute_score`: `{ dense, sparse, colbert }`.
    #[wasm_bindgen(js_name = defaultWeights)]
    pub fn default_weights() -> Object {
        let w = ScoreWeights::default();
        let o = Object::new();
        set(&o, "dense", &JsValue::from(w.dense));
        set(&o, "sparse", &JsValue::from(w.sparse));
        set(&o, "colbert", &JsValue::from(w.colbert));
        o
    }

    /// Encodes an array of strings; texts longer than `maxLength` tokens become windows (see
    /// `src/windows.rs`). Options: `dense`, `sparse`, `colbert` (default true), `maxLength`
    /// (default: the model's limit), `overlap` (default min(256, half a window)), `truncate`,
    /// `batchSize` (16), `maxBatchTokens` (8192), `tokenStrings`, `colbertSpans`.
    /// `on_batch(progress)`, if given, runs after each forward pass with `{ windowsDone, windows,
    /// tokensDone, tokens }`; a promise it returns is awaited, and a throw or rejection stops the
    /// encode with that error. Resolves to one object per text (the package's `Embedding`, see
    /// `pkg/index.d.ts`).
    pub async fn encode(
        &self,
        texts: JsValue,
        options: JsValue,
        on_batch: Option<js_sys::Function>,
    ) -> JsResult<Array> {
        let texts = strings(&texts, "texts")?;
        let o = encode_options(&options)?;
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let docs = run_job(&self.model, self.model.plan(&refs, &o.opts), on_batch.as_ref()).await?;
        Ok(texts.iter().zip(&docs).map(|(t, d)| JsValue::from(document_js(&self.model, t, d, &o))).collect())
    }

    /// Encodes already tokenized windows: an array of `Uint32Array`s, each `<s> ... </s>` (ids
    /// from `tokenize`), at most the model's limit. Options as `encode` (`maxLength`, `overlap`,
    /// `truncate` unused); resolves to one `{ inputIds, dense?, sparse?, colbert? }` per window.
    #[wasm_bindgen(js_name = encodeIds)]
    pub async fn encode_ids(
        &self,
        ids: JsValue,
        options: JsValue,
        on_batch: Option<js_sys::Function>,
    ) -> JsResult<Array> {
        let arr = ids.dyn_ref::<Array>().ok_or_else(|| type_err("ids must be an array of Uint32Array"))?;
        let mut seqs = Vec::with_capacity(arr.length() as usize);
        for (i, v) in arr.iter().enumerate() {
            let a = v.dyn_ref::<Uint32Array>().ok_or_else(|| type_err(&format!("ids[{i}] is not a Uint32Array")))?;
            seqs.push(a.to_vec());
        }
        let o = encode_options(&options)?;
        let docs = run_job(&self.model, self.model.plan_ids(seqs, &o.opts), on_batch.as_ref()).await?;
        Ok(docs.iter().map(|d| JsValue::from(embedding_js(&self.model, d.embedding(), o.token_strings))).collect())
    }

    /// FlagEmbedding's `compute_score` for `query` against each of `passages`, on document-level
    /// outputs: resolves to one `{ dense, sparse, colbert, "sparse+dense", "colbert+sparse+dense" }`
    /// per passage. Options: `weights` (`{ dense, sparse, colbert }`, default
    /// `M3.defaultWeights()`), and the window and batch options of `encode`.
    pub async fn score(
        &self,
        query: JsValue,
        passages: JsValue,
        options: JsValue,
        on_batch: Option<js_sys::Function>,
    ) -> JsResult<Array> {
        let query = query.as_string().ok_or_else(|| type_err("query must be a string"))?;
        let passages = strings(&passages, "passages")?;
        let o = encode_options(&options)?;
        let w = if options.is_object() {
            Reflect::get(&options, &JsValue::from_str("weights")).unwrap_or(JsValue::UNDEFINED)
        } else {
            JsValue::UNDEFINED
        };
        let weights = match w {
            w if w.is_object() => {
                let d = ScoreWeights::default();
                let get = |k: &str, def: f32| -> JsResult<f32> {
                    let v = Reflect::get(&w, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
                    if v.is_undefined() {
                        return Ok(def);
                    }
                    v.as_f64().filter(|x| x.is_finite() && *x >= 0.0).map(|x| x as f32).ok_or_else(|| {
                        js_err(Error::OutOfRange(format!("options.weights.{k} must be a finite number >= 0")))
                    })
                };
                ScoreWeights {
                    dense: get("dense", d.dense)?,
                    sparse: get("sparse", d.sparse)?,
                    colbert: get("colbert", d.colbert)?,
                }
            }
            w if w.is_undefined() || w.is_null() => ScoreWeights::default(),
            _ => return Err(type_err("options.weights must be { dense, sparse, colbert }")),
        };
        let refs: Vec<&str> = passages.iter().map(|s| s.as_str()).collect();
        let docs = run_job(&self.model, self.model.plan_scores(&query, &refs, &o.opts), on_batch.as_ref()).await?;
        let out = Array::new();
        for s in self.model.scores(&docs, weights).map_err(js_err)? {
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

    /// Token ids and their UTF-16 spans `[start, end)` of `text` (`<s>` ... `</s>`), whole.
    pub fn tokenize(&self, text: String) -> JsResult<Object> {
        let tok = self.model.tokenizer.encode(&text).map_err(js_err)?;
        let map = OffsetMap::utf16(&text);
        let starts: Vec<u32> = tok.offsets.iter().map(|o| map.map(o.0)).collect();
        let ends: Vec<u32> = tok.offsets.iter().map(|o| map.map(o.1)).collect();
        let o = Object::new();
        set(&o, "ids", &Uint32Array::from(tok.ids.as_slice()).into());
        set(&o, "starts", &Uint32Array::from(starts.as_slice()).into());
        set(&o, "ends", &Uint32Array::from(ends.as_slice()).into());
        Ok(o)
    }

    /// Test hook, not API: panics inside wasm after an await, as a failure inside burn or a
    /// kernel would, so that the package's crash recovery can be tested
    /// (tests/browser/pkg.test.mjs). The instance is dead afterwards.
    #[wasm_bindgen(js_name = panicForTests)]
    pub async fn panic_for_tests(&self) -> JsResult<()> {
        wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&JsValue::NULL)).await?;
        panic!("deliberate panic (test hook)")
    }

    /// The vocabulary entry of a token id (e.g. "▁search"), for showing lexical weights.
    #[wasm_bindgen(js_name = idToToken)]
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.model.tokenizer.id_to_token(id)
    }
}

/// Converts one of BAAI's PyTorch checkpoint files into a pack file while it downloads (see
/// [`crate::pack::StreamConverter`]): `push` each chunk, write what it returns, then `finish`.
///
/// ```js
/// const conv = new PackConverter('model.safetensors', 'int8');
/// for await (const chunk of response.body) sink.write(conv.push(chunk));
/// const { size, sha256, sourceSha256, worstTensor } = conv.finish();
/// const manifest = PackConverter.manifest('int8', { 'pytorch_model.bin': sourceSha256, ... }, { 'model.safetensors': { size, sha256 }, ... });
/// ```
#[wasm_bindgen]
pub struct PackConverter {
    inner: Option<crate::pack::StreamConverter>,
}

#[wasm_bindgen]
impl PackConverter {
    /// `file`: "model.safetensors" (from pytorch_model.bin), "colbert_linear.safetensors" or
    /// "sparse_linear.safetensors" (from the heads' .pt, always f16), or "tokenizer.json" (from
    /// BAAI's, minified: [`crate::pack::JsonMinifier`]); `dtype`: "f16" or "int8".
    #[wasm_bindgen(constructor)]
    pub fn new(file: &str, dtype: &str) -> JsResult<PackConverter> {
        let dtype: crate::pack::PackDtype = dtype.parse().map_err(js_err)?;
        Ok(PackConverter { inner: Some(crate::pack::StreamConverter::new(file, dtype).map_err(js_err)?) })
    }

    /// The next bytes of the checkpoint in; the next bytes of the pack file out (often empty).
    /// After an error the converter is done: later calls are a `TypeError`, never a conversion
    /// resumed in the middle of a refused member.
    pub fn push(&mut self, chunk: &[u8]) -> JsResult<Vec<u8>> {
        let inner = self.inner.as_mut().ok_or_else(|| type_err("this PackConverter has finished"))?;
        inner.push(chunk).map_err(|e| {
            self.inner = None;
            js_err(e)
        })
    }

    /// The end of the checkpoint: `{ name, size, sha256, sourceSha256, tensors, worstTensor:
    /// { name, maxAbsErr, relRmsErr } }` (the worst by relative RMS error). An archive cut short
    /// is a `format` error.
    pub fn finish(&mut self) -> JsResult<Object> {
        let inner = self.inner.take().ok_or_else(|| type_err("this PackConverter has finished"))?;
        let (file, source, reports) = inner.finish().map_err(js_err)?;
        let o = Object::new();
        set(&o, "name", &JsValue::from_str(&file.name));
        set(&o, "size", &JsValue::from(file.size as f64));
        set(&o, "sha256", &JsValue::from_str(&file.sha256));
        set(&o, "sourceSha256", &JsValue::from_str(&source));
        set(&o, "tensors", &JsValue::from(reports.len() as u32));
        if let Some(w) = reports.iter().max_by(|a, b| a.rel_rms_err.total_cmp(&b.rel_rms_err)) {
            let t = Object::new();
            set(&t, "name", &JsValue::from_str(&w.name));
            set(&t, "maxAbsErr", &JsValue::from(w.max_abs_err));
            set(&t, "relRmsErr", &JsValue::from(w.rel_rms_err));
            set(&o, "worstTensor", &t);
        }
        Ok(o)
    }

    /// `m3-pack.json`'s text, as `m3 convert` writes it: `sources` maps each source file to its
    /// SHA-256, `files` each pack file to `{ size, sha256 }`.
    pub fn manifest(dtype: &str, sources: JsValue, files: JsValue) -> JsResult<String> {
        let dtype: crate::pack::PackDtype = dtype.parse().map_err(js_err)?;
        let entries = |v: &JsValue, what: &str| -> JsResult<Vec<(String, JsValue)>> {
            let o = v.dyn_ref::<Object>().ok_or_else(|| type_err(&format!("{what} must be an object")))?;
            Ok(Object::entries(o)
                .iter()
                .map(|e| {
                    let pair = Array::from(&e);
                    (pair.get(0).as_string().unwrap_or_default(), pair.get(1))
                })
                .collect())
        };
        let sources = entries(&sources, "sources")?
            .into_iter()
            .map(|(k, v)| {
                v.as_string().map(|h| (k.clone(), h)).ok_or_else(|| type_err(&format!("sources.{k} must be a string")))
            })
            .collect::<JsResult<Vec<_>>>()?;
        let files = entries(&files, "files")?
            .into_iter()
            .map(|(name, v)| {
                let size = Reflect::get(&v, &"size".into()).ok().and_then(|s| s.as_f64());
                let sha256 = Reflect::get(&v, &"sha256".into()).ok().and_then(|s| s.as_string());
                match (size, sha256) {
                    (Some(size), Some(sha256)) => Ok(crate::pack::PackFile { name, size: size as u64, sha256 }),
                    _ => Err(type_err(&format!("files.{name} must be {{ size, sha256 }}"))),
                }
            })
            .collect::<JsResult<Vec<_>>>()?;
        Ok(crate::pack::manifest(dtype, &sources, &files))
    }
}
