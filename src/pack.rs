//! Packs: a model folder converted to f16 or int8 by `m3 convert`, at half or a quarter of the
//! size of BAAI's f32 files. A pack folder holds
//! - `config.json` (copied unchanged), `tokenizer.json` (the same JSON without the whitespace
//!   between its tokens, [`JsonMinifier`]: BAAI's 17.1 MB file becomes 9.1 MB),
//! - `model.safetensors`: the encoder, every tensor in the pack's storage type (below),
//! - `colbert_linear.safetensors`, `sparse_linear.safetensors`: the heads, f16,
//! - `m3-pack.json`: format version, storage type, the source files' SHA-256, and each pack
//!   file's size and SHA-256 (what a loader checks while it streams the files).
//!
//! Storage types ([`stored_as`] owns the rule):
//! - `f16`: every float matrix in f16 (a value beyond f16's range is an error, not infinity).
//! - `int8`: the encoder's linear weights (attention query/key/value/output, FFN in/out) symmetric
//!   int8 per output channel (row of PyTorch's `[out, in]`), the word-embedding table int8 per row;
//!   scale = max |row| / 127 in `<name>.scale` (f32, `[rows]`). Position embeddings and the
//!   ColBERT head's weight f16. The loader ([`crate::weights`]) dequantizes on read.
//! - Both: vectors (tensors with at most one dimension above 1: LayerNorm weights and biases,
//!   every bias, the token-type embedding `[1, H]`, the sparse head's `[1, H]`) stay f32. Each
//!   applies to every token alike, so its rounding error does not average out; they are 0.06% of
//!   the model (0.64 MB more than f16 at full size), and rounding them was most of an f16 pack's
//!   sparse error on an HF-like random model (docs/packs.md).
//!
//! `pooler.*` is not written: BGE-M3 does not use XLM-R's pooler.

use std::collections::BTreeMap;
#[cfg(not(target_family = "wasm"))]
use std::io::{Read, Write};
#[cfg(not(target_family = "wasm"))]
use std::path::{Path, PathBuf};

use serde_json::json;
#[cfg(not(target_family = "wasm"))]
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
#[cfg(not(target_family = "wasm"))]
use crate::native::{WeightsFile, encoder_path, head_path};
#[cfg(not(target_family = "wasm"))]
use crate::weights::{Checkpoint, TensorSource};
use crate::weights::{DType, SCALE_SUFFIX};

mod stream;
pub use stream::StreamConverter;

/// Version of the pack layout written in `m3-pack.json`.
pub const PACK_VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "m3-pack.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackDtype {
    F16,
    Int8,
}

impl std::str::FromStr for PackDtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f16" | "fp16" => Ok(PackDtype::F16),
            "int8" | "i8" => Ok(PackDtype::Int8),
            _ => Err(Error::Input(format!("dtype {s:?} is not f16 or int8"))),
        }
    }
}

impl PackDtype {
    pub fn name(self) -> &'static str {
        match self {
            PackDtype::F16 => "f16",
            PackDtype::Int8 => "int8",
        }
    }
}

/// How one tensor is stored in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Vectors (at most one dimension above 1): unchanged.
    F32,
    F16,
    /// int8 per row, plus `<name>.scale`.
    I8Rows,
}

/// How a tensor is stored: vectors (at most one dimension above 1) f32; the encoder's matrices
/// that int8 packs quantize (the six linear weights of every layer and the word-embedding table)
/// int8; the rest f16.
pub fn stored_as(name: &str, shape: &[usize], dtype: PackDtype) -> Stored {
    const LINEAR: [&str; 6] = [
        "attention.self.query.weight",
        "attention.self.key.weight",
        "attention.self.value.weight",
        "attention.output.dense.weight",
        "intermediate.dense.weight",
        "output.dense.weight",
    ];
    let name = name.strip_prefix("roberta.").unwrap_or(name);
    let linear = name.starts_with("encoder.layer.") && LINEAR.iter().any(|l| name.ends_with(l));
    if shape.iter().filter(|&&d| d > 1).count() < 2 {
        Stored::F32
    } else if dtype == PackDtype::Int8 && shape.len() == 2 && (linear || name == "embeddings.word_embeddings.weight") {
        Stored::I8Rows
    } else {
        Stored::F16
    }
}

/// Quantization error of one tensor (against the f32 it was converted from).
#[derive(Debug, Clone)]
pub struct TensorReport {
    pub file: &'static str,
    pub name: String,
    pub shape: Vec<usize>,
    pub stored: Stored,
    /// max |w - w'|
    pub max_abs_err: f32,
    /// ||w - w'|| / ||w|| (0 for an all-zero tensor)
    pub rel_rms_err: f32,
}

#[derive(Debug, Clone)]
pub struct PackFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub files: Vec<PackFile>,
    pub tensors: Vec<TensorReport>,
}

#[cfg(not(target_family = "wasm"))]
fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file, streamed.
#[cfg(not(target_family = "wasm"))]
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// A file being written with its SHA-256 and size computed on the way.
#[cfg(not(target_family = "wasm"))]
struct HashedWriter {
    out: std::io::BufWriter<std::fs::File>,
    hash: Sha256,
    size: u64,
    path: PathBuf,
}

#[cfg(not(target_family = "wasm"))]
impl HashedWriter {
    fn create(path: PathBuf) -> Result<Self> {
        let f = std::fs::File::create(&path).map_err(|e| io_err(&path, e))?;
        Ok(HashedWriter { out: std::io::BufWriter::new(f), hash: Sha256::new(), size: 0, path })
    }
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        self.size += bytes.len() as u64;
        self.out.write_all(bytes).map_err(|e| io_err(&self.path, e))
    }
    fn finish(mut self) -> Result<PackFile> {
        self.out.flush().map_err(|e| io_err(&self.path, e))?;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(PackFile { name, size: self.size, sha256: hex(&self.hash.finalize()) })
    }
}

/// Removes the whitespace between JSON tokens, chunk by chunk (a pack's `tokenizer.json`:
/// Hugging Face writes it indented, and the indentation is 47% of BAAI's file). Strings are kept
/// byte for byte, so the minified file parses to the same value; nothing is parsed here (the
/// loader parses the result, and `m3 convert` checks it loads). Brackets are counted, so that a
/// text cut short is an error at `finish`.
#[derive(Debug, Default)]
pub struct JsonMinifier {
    in_string: bool,
    escaped: bool,
    /// Open `{` and `[` (outside strings) not closed yet.
    depth: u64,
    /// Bytes written so far.
    written: u64,
}

impl JsonMinifier {
    /// The next bytes of the JSON text in; the same bytes less whitespace outside strings out.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len());
        let before = out.len();
        for &b in chunk {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b' ' | b'\t' | b'\n' | b'\r' => continue,
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => self.depth = self.depth.saturating_sub(1),
                    _ => {}
                }
            }
            out.push(b);
        }
        self.written += (out.len() - before) as u64;
    }

    /// The end of the text: an error when it is empty or ends inside a string or a bracket (cut
    /// short). Other malformed JSON is the parser's to refuse.
    pub fn finish(&self, file: &str) -> Result<()> {
        if self.written == 0 {
            return Err(Error::Format(format!("{file} is empty: it is cut short")));
        }
        if self.in_string || self.depth > 0 {
            return Err(Error::Format(format!(
                "{file} ends after {} bytes of JSON, inside {}: it is cut short",
                self.written,
                if self.in_string { "a string" } else { "an object or array" }
            )));
        }
        Ok(())
    }
}

/// Symmetric int8 per row: (q, scales).
pub fn quantize_rows(data: &[f32], row: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(data.len() / row.max(1));
    for r in data.chunks(row.max(1)) {
        let max = r.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = max / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        q.extend(r.iter().map(|v| (v * inv).round().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    (q, scales)
}

/// A tensor's conversion error, accumulated over its chunks.
#[derive(Default)]
struct ErrorSum {
    max: f32,
    num: f64,
    den: f64,
}

impl ErrorSum {
    fn add(&mut self, orig: &[f32], back: impl Iterator<Item = f32>) {
        for (&a, b) in orig.iter().zip(back) {
            let d = a - b;
            self.max = self.max.max(d.abs());
            self.num += (d as f64) * (d as f64);
            self.den += (a as f64) * (a as f64);
        }
    }
    /// (max |w - w'|, ||w - w'|| / ||w||)
    fn result(&self) -> (f32, f32) {
        (self.max, if self.den > 0.0 { (self.num / self.den).sqrt() as f32 } else { 0.0 })
    }
}

/// One tensor as it will be written: its safetensors entries (the tensor, and its scales).
#[derive(Debug, Clone)]
struct Planned {
    name: String,
    shape: Vec<usize>,
    stored: Stored,
}

impl Planned {
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// (name, dtype, shape, bytes) of each safetensors entry.
    fn entries(&self) -> Vec<(String, &'static str, Vec<usize>, usize)> {
        match self.stored {
            Stored::F32 => vec![(self.name.clone(), "F32", self.shape.clone(), self.numel() * 4)],
            Stored::F16 => vec![(self.name.clone(), "F16", self.shape.clone(), self.numel() * 2)],
            Stored::I8Rows => {
                let rows = self.shape[0];
                vec![
                    (self.name.clone(), "I8", self.shape.clone(), self.numel()),
                    (format!("{}{SCALE_SUFFIX}", self.name), "F32", vec![rows], rows * 4),
                ]
            }
        }
    }
}

/// Whether a checkpoint tensor goes into a pack: float tensors, not the pooler (BGE-M3 does not use
/// it), not int64 buffers (position_ids), not an int8 tensor's scales (written with the tensor).
fn packed(name: &str, dtype: &DType) -> bool {
    !(name.starts_with("pooler.") || name.starts_with("roberta.pooler.") || name.ends_with(SCALE_SUFFIX))
        && matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::I8)
}

/// A safetensors header (length prefix included) for `plan`, entries in the order their data
/// follows.
fn safetensors_header(plan: &[Planned], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for p in plan {
        for (name, dt, shape, bytes) in p.entries() {
            header.insert(name, json!({"dtype": dt, "shape": shape, "data_offsets": [offset, offset + bytes]}));
            offset += bytes;
        }
    }
    header.insert("__metadata__".into(), json!(metadata));
    let mut header = serde_json::to_vec(&header).map_err(|e| Error::Io(e.to_string()))?;
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    Ok(out)
}

/// One tensor being converted: takes its values in order (any number of whole rows at a time)
/// and gives the bytes of its safetensors entries; the int8 scales come at the end.
struct TensorSink {
    p: Planned,
    /// Elements per row (int8 scales are per row).
    row: usize,
    scales: Vec<f32>,
    err: ErrorSum,
    done: usize,
}

impl TensorSink {
    fn new(p: Planned) -> Self {
        let row = p.numel() / p.shape.first().copied().unwrap_or(1).max(1);
        TensorSink { p, row: row.max(1), scales: Vec::new(), err: ErrorSum::default(), done: 0 }
    }
    /// Converts `data` (whole rows) and appends the bytes to `out`.
    fn push(&mut self, data: &[f32], out: &mut Vec<u8>) -> Result<()> {
        match self.p.stored {
            Stored::F32 => {
                out.extend_from_slice(bytemuck::cast_slice(data));
                self.err.add(data, data.iter().copied());
            }
            Stored::F16 => {
                let h: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
                if let Some(i) = h.iter().position(|v| !v.is_finite()) {
                    return Err(Error::Input(format!(
                        "tensor {} holds {} at element {}, beyond f16's range (65504): convert to int8 instead",
                        self.p.name,
                        data[i],
                        self.done + i
                    )));
                }
                out.extend_from_slice(bytemuck::cast_slice(&h));
                self.err.add(data, h.iter().map(|v| v.to_f32()));
            }
            Stored::I8Rows => {
                let (q, scales) = quantize_rows(data, self.row);
                out.extend_from_slice(bytemuck::cast_slice(&q));
                let row = self.row;
                self.err.add(data, q.iter().enumerate().map(|(i, &v)| v as f32 * scales[i / row]));
                self.scales.extend(scales);
            }
        }
        self.done += data.len();
        Ok(())
    }
    /// The scales (int8) and the tensor's report.
    fn finish(self, file: &'static str, out: &mut Vec<u8>) -> TensorReport {
        out.extend_from_slice(bytemuck::cast_slice(&self.scales));
        let (max_abs_err, rel_rms_err) = self.err.result();
        TensorReport { file, name: self.p.name, shape: self.p.shape, stored: self.p.stored, max_abs_err, rel_rms_err }
    }
}

/// Writes the float tensors of `src` to a safetensors file at `path`, each converted as
/// [`stored_as`] says, reading one tensor at a time.
#[cfg(not(target_family = "wasm"))]
fn write_safetensors<R: crate::weights::ReadAt>(
    src: &Checkpoint<R>,
    path: PathBuf,
    file: &'static str,
    dtype: PackDtype,
    metadata: &BTreeMap<String, String>,
    report: &mut Vec<TensorReport>,
    progress: &mut dyn FnMut(&str),
) -> Result<PackFile> {
    let plan: Vec<Planned> = src
        .names()
        .filter_map(|name| {
            let e = src.entry(name)?;
            packed(name, &e.dtype).then(|| Planned {
                name: name.to_string(),
                shape: e.shape.clone(),
                stored: stored_as(name, &e.shape, dtype),
            })
        })
        .collect();
    let mut out = HashedWriter::create(path)?;
    out.write(&safetensors_header(&plan, metadata)?)?;
    let mut bytes = Vec::new();
    for p in plan {
        progress(&p.name);
        let t = src.tensor(&p.name)?;
        let mut sink = TensorSink::new(p);
        sink.push(&t.data, &mut bytes)?;
        report.push(sink.finish(file, &mut bytes));
        out.write(&bytes)?;
        bytes.clear();
    }
    out.finish()
}

/// The safetensors metadata of a pack's encoder file (`head: false`) or head file.
pub fn metadata(dtype: PackDtype, head: bool) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".to_string(), "pt".to_string());
    m.insert("m3.pack_version".to_string(), PACK_VERSION.to_string());
    m.insert("m3.dtype".to_string(), dtype.name().to_string());
    m.insert("m3.quantization".to_string(), quantization(if head { PackDtype::F16 } else { dtype }));
    m
}

/// How a pack of `dtype` stores the encoder's tensors, in words (metadata and manifest).
fn quantization(dtype: PackDtype) -> String {
    match dtype {
        PackDtype::F16 => {
            "every float matrix f16 (round to nearest); vectors (LayerNorms, biases, [1, n]) f32".to_string()
        }
        PackDtype::Int8 => format!(
            "linear weights of every layer int8 per output channel, word embeddings int8 per row: symmetric, \
             scale = max|row|/127 in <name>{SCALE_SUFFIX} (f32), value = q * scale; vectors (LayerNorms, biases, [1, n]) f32; \
             other tensors f16"
        ),
    }
}

/// `m3-pack.json`: `sources` are the source files' (name, SHA-256), `files` the pack's.
pub fn manifest(dtype: PackDtype, sources: &[(String, String)], files: &[PackFile]) -> String {
    let manifest = json!({
        "format": "bge-m3-pack",
        "version": PACK_VERSION,
        "dtype": dtype.name(),
        "quantization": quantization(dtype),
        "source": sources.iter().map(|(n, h)| (n.clone(), json!(h))).collect::<serde_json::Map<_, _>>(),
        "files": files.iter().map(|f| (f.name.clone(), json!({"size": f.size, "sha256": f.sha256}))).collect::<serde_json::Map<_, _>>(),
    });
    serde_json::to_string_pretty(&manifest).expect("strings and numbers always serialise") + "\n"
}

/// Converts the model folder `src` (BAAI's layout, or another pack) into a pack at `out`.
/// `progress` gets each tensor's name as it is converted.
#[cfg(not(target_family = "wasm"))]
pub fn convert(src: &Path, out: &Path, dtype: PackDtype, progress: &mut dyn FnMut(&str)) -> Result<ConvertReport> {
    if !src.is_dir() {
        return Err(Error::Io(format!("model folder {} does not exist", src.display())));
    }
    if out.exists() && std::fs::read_dir(out).map_err(|e| io_err(out, e))?.next().is_some() {
        return Err(Error::Io(format!("{} exists and is not empty: refusing to write a pack into it", out.display())));
    }
    // Checked before anything is written.
    let config = std::fs::read(src.join("config.json")).map_err(|e| io_err(&src.join("config.json"), e))?;
    crate::config::ModelConfig::from_json(&config)?;
    let tokenizer = std::fs::read(src.join("tokenizer.json")).map_err(|e| io_err(&src.join("tokenizer.json"), e))?;
    crate::tokenizer::Tokenizer::from_bytes(&tokenizer)?;
    let mut minifier = JsonMinifier::default();
    let mut tokenizer_min = Vec::new();
    minifier.push(&tokenizer, &mut tokenizer_min);
    minifier.finish("tokenizer.json")?;
    crate::tokenizer::Tokenizer::from_bytes(&tokenizer_min)?;
    let open = |p: &Path| -> Result<Checkpoint<std::fs::File>> {
        let f = std::fs::File::open(p).map_err(|e| io_err(p, e))?;
        Checkpoint::open(f).map_err(|e| e.in_file(&p.display().to_string()))
    };
    let encoder_src = encoder_path(src, WeightsFile::Auto)?;
    let colbert_src = head_path(src, "colbert_linear")?;
    let sparse_src = head_path(src, "sparse_linear")?;
    let (encoder, colbert, sparse) = (open(&encoder_src)?, open(&colbert_src)?, open(&sparse_src)?);

    let mut sources = Vec::new();
    for p in [&src.join("config.json"), &src.join("tokenizer.json"), &encoder_src, &colbert_src, &sparse_src] {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        sources.push((name, sha256_file(p)?));
    }

    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let (encoder_meta, heads_meta) = (metadata(dtype, false), metadata(dtype, true));

    let mut files = Vec::new();
    let mut tensors = Vec::new();
    for (name, bytes) in [("config.json", &config), ("tokenizer.json", &tokenizer_min)] {
        let mut w = HashedWriter::create(out.join(name))?;
        w.write(bytes)?;
        files.push(w.finish()?);
    }
    let enc = write_safetensors(
        &encoder,
        out.join("model.safetensors"),
        "model.safetensors",
        dtype,
        &encoder_meta,
        &mut tensors,
        progress,
    )?;
    files.push(enc);
    for (ckpt, name) in [(&colbert, "colbert_linear.safetensors"), (&sparse, "sparse_linear.safetensors")] {
        files.push(write_safetensors(ckpt, out.join(name), name, PackDtype::F16, &heads_meta, &mut tensors, progress)?);
    }
    std::fs::write(out.join(MANIFEST), manifest(dtype, &sources, &files))
        .map_err(|e| io_err(&out.join(MANIFEST), e))?;
    Ok(ConvertReport { files, tensors })
}
