//! `m3`: BGE-M3 on the command line, the same numbers as the browser computes.
//!
//!   m3 encode --model DIR [options]   stdin: {"text": "..."} per line; stdout: one JSON line per text
//!   m3 score --model DIR [options]    stdin: {"query": "...", "passage": "..."} per line; stdout: five scores
//!   m3 convert --model DIR --out DIR --dtype f16|int8   a compact pack (src/pack.rs) + its error table
//!   m3 bench --model DIR --tokens N   one N-token text: load/encode times and memory as one JSON line
//!
//! Long texts are cut into windows by the rules the browser uses (`bge_m3_web::windows`);
//! input is read and output written a group of lines at a time, so memory does not grow with the
//! number of lines.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use bge_m3_web::native::{DeviceKind, KernelChoice, PickedDevice, WeightsFile, block_on, device, load_dir};
use bge_m3_web::pack::{PackDtype, Stored};
use bge_m3_web::tokenizer::OffsetMap;
use bge_m3_web::{BgeM3, Document, Embedding, EncodeOptions, Progress, ScoreWeights};
use serde_json::{Value, json};

use crate::portable::{self, Format};

const USAGE: &str = "usage:
  m3 encode --model DIR [options]
      reads {\"text\": ...} JSON lines on stdin; writes one line per text: {\"input_ids\", \"dense\", \"sparse\",
      \"colbert\", \"windows\": [{\"span\", \"tokens\"}], \"truncated\"} (spans in characters of the text)
  m3 score --model DIR [options] [--weights 0.4,0.2,0.4]
      reads {\"query\": ..., \"passage\": ...} JSON lines, writes dense, sparse, colbert, sparse+dense, colbert+sparse+dense
  m3 convert --model DIR --out DIR --dtype f16|int8
      writes a pack (half or a quarter of the f32 size; docs/packs.md) and prints each tensor's conversion error
  m3 bench --model DIR --tokens N [--runs 2] [options]
      encodes one N-token text --runs times, prints load/encode times and memory (RSS) as one JSON line
options:
  --device cpu|wgpu|auto     (default cpu; auto: wgpu on a hardware GPU, else cpu, which beats
                             software adapters such as lavapipe; --backend is the same)
  --kernel auto|burn|register|burn-f16
                             matmul kernels on wgpu (auto = register: ours, f32 arithmetic, compact
                             weights read packed; burn: burn's, f32; burn-f16: an f16 pack's matmuls
                             on f16 operands with f32 sums in burn's, needs shader-f16; a build with
                             --features vulkan makes auto burn-f16 for f16 packs on tensor cores)
  --encoder-file auto|bin|safetensors
  --max-length N             tokens per window, <s> and </s> included (default: the model's limit, 8192)
  --overlap N                tokens shared by neighbouring windows (default min(256, half a window))
  --truncate                 keep only the first window of a long text (FlagEmbedding's behaviour)
  --window-vectors           (encode) each window's own dense / sparse / colbert in \"windows\" too
  --format qdrant|milvus     (encode) instead: one line per window, a Qdrant point or a Milvus row, as the
                             package's portable export (docs/portable-export.md); input lines need an \"id\"
                             (string or integer) and may have a \"meta\" (any JSON)
  --no-colbert               (encode --format qdrant) leave the ColBERT multivector out
  --batch-size N             most windows per forward pass (default 16)
  --max-batch-tokens N       most tokens per forward pass (default 8192)";

/// Lines read (and texts encoded together) at a time.
const GROUP_LINES: usize = 256;

struct Args {
    command: String,
    model: PathBuf,
    device: DeviceKind,
    kernel: KernelChoice,
    encoder_file: WeightsFile,
    opts: EncodeOptions,
    weights: ScoreWeights,
    window_vectors: bool,
    format: Option<Format>,
    colbert: bool,
    tokens: usize,
    runs: usize,
    out: Option<PathBuf>,
    dtype: Option<PackDtype>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or("missing command (encode, score, convert or bench; --help)")?;
    if command == "--help" || command == "-h" {
        println!("{USAGE}");
        std::process::exit(0);
    }
    if !["encode", "score", "convert", "bench"].contains(&command.as_str()) {
        return Err(format!("unknown command {command:?} (use encode, score, convert or bench)"));
    }
    let mut model = None;
    let mut device = DeviceKind::Cpu;
    let mut kernel = KernelChoice::Auto;
    let mut encoder_file = WeightsFile::Auto;
    let mut opts = EncodeOptions::default();
    let mut weights = ScoreWeights::default();
    let mut window_vectors = false;
    let mut format = None;
    let mut colbert = true;
    let mut tokens = 512;
    let mut runs = 2;
    let mut out = None;
    let mut dtype = None;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String, min: usize| match v.parse::<usize>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(format!("{flag}: {v:?} is not an integer >= {min}")),
        };
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--dtype" => dtype = Some(value()?.parse().map_err(|e: bge_m3_web::Error| e.to_string())?),
            "--device" | "--backend" => device = value()?.parse().map_err(|e: bge_m3_web::Error| e.to_string())?,
            "--kernel" => kernel = value()?.parse().map_err(|e: bge_m3_web::Error| e.to_string())?,
            "--max-length" => opts.max_length = Some(number(value()?, 3)?),
            "--overlap" => opts.overlap = Some(number(value()?, 0)?),
            "--truncate" => opts.truncate = true,
            "--window-vectors" => window_vectors = true,
            "--format" => format = Some(value()?.parse::<Format>()?),
            "--no-colbert" => colbert = false,
            "--batch-size" => opts.batch_size = number(value()?, 1)?,
            "--max-batch-tokens" => opts.max_batch_tokens = number(value()?, 1)?,
            "--tokens" => tokens = number(value()?, 3)?,
            "--runs" => runs = number(value()?, 1)?,
            "--encoder-file" => {
                encoder_file = match value()?.as_str() {
                    "auto" => WeightsFile::Auto,
                    "bin" => WeightsFile::PytorchBin,
                    "safetensors" => WeightsFile::Safetensors,
                    other => return Err(format!("--encoder-file: unknown value {other:?} (auto, bin, safetensors)")),
                }
            }
            "--weights" => {
                let v = value()?;
                let bad = || format!("--weights: {v:?} is not three numbers >= 0");
                let w: Vec<f32> =
                    v.split(',').map(|x| x.trim().parse::<f32>()).collect::<Result<_, _>>().map_err(|_| bad())?;
                let [dense, sparse, colbert] = w[..] else { return Err(bad()) };
                if !w.iter().all(|x| x.is_finite() && *x >= 0.0) {
                    return Err(bad());
                }
                weights = ScoreWeights { dense, sparse, colbert };
            }
            other => return Err(format!("unknown option {other:?} (--help lists them)")),
        }
    }
    let model = model.ok_or("--model DIR is required")?;
    if !model.is_dir() {
        let what = if model.exists() { "is not a folder" } else { "does not exist" };
        return Err(format!(
            "--model {}: {what} (give the folder holding config.json, tokenizer.json, ...)",
            model.display()
        ));
    }
    if command == "convert" && (out.is_none() || dtype.is_none()) {
        return Err("convert needs --out DIR and --dtype f16|int8".into());
    }
    if format.is_some() && (command != "encode" || window_vectors) {
        return Err("--format goes with encode, without --window-vectors".into());
    }
    if format == Some(Format::Milvus) && colbert {
        colbert = false; // Milvus rows carry no multivector (docs/portable-export.md)
    }
    Ok(Args {
        command,
        model,
        device,
        kernel,
        encoder_file,
        opts,
        weights,
        window_vectors,
        format,
        colbert,
        tokens,
        runs,
        out,
        dtype,
    })
}

/// Reads stdin as JSON lines, `GROUP_LINES` at a time, taking the string fields `keys`.
struct LineReader {
    lines: std::io::Lines<std::io::StdinLock<'static>>,
    keys: &'static [&'static str],
    n: usize,
}

impl LineReader {
    fn new(keys: &'static [&'static str]) -> Self {
        LineReader { lines: std::io::stdin().lock().lines(), keys, n: 0 }
    }

    /// The next group of rows (empty at the end of the input): the `keys` strings, the whole line
    /// and its number.
    fn next_group(&mut self) -> Result<Vec<(Vec<String>, Value, usize)>, String> {
        let mut rows = Vec::new();
        while rows.len() < GROUP_LINES {
            let Some(line) = self.lines.next() else { break };
            self.n += 1;
            let n = self.n;
            let line = line.map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => format!("line {n}: not UTF-8 text"),
                _ => format!("reading stdin: {e}"),
            })?;
            let line = if n == 1 { line.strip_prefix('\u{feff}').unwrap_or(&line) } else { &line };
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| format!("line {n}: bad JSON: {e}"))?;
            let row = self
                .keys
                .iter()
                .map(|k| match v.get(k) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(format!("line {n}: \"{k}\" is not a string")),
                    None => Err(format!("line {n}: missing \"{k}\"")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push((row, v, n));
        }
        Ok(rows)
    }
}

/// Progress on stderr for inputs of 4096 tokens or more.
fn reporter() -> impl FnMut(Progress) {
    let start = std::time::Instant::now();
    move |p: Progress| {
        if p.tokens >= 4096 {
            eprintln!("m3: encoded {}/{} tokens ({:.1} s)", p.tokens_done, p.tokens, start.elapsed().as_secs_f32());
        }
    }
}

fn encode_group(model: &BgeM3, texts: &[String], opts: &EncodeOptions) -> Result<Vec<Document>, String> {
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    block_on(model.encode(&refs, opts, &mut reporter())).map_err(|e| e.to_string())
}

/// The vectors of one [`Embedding`] in `m3 encode`'s JSON (f32 written in their shortest form).
#[derive(serde::Serialize)]
struct Vectors<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    dense: Option<&'a [f32]>,
    /// Token id (as a string, like FlagEmbedding's JSON) -> weight, in order of first appearance.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "sparse_map")]
    sparse: Option<&'a [(u32, f32)]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    colbert: Option<Vec<&'a [f32]>>,
}

impl<'a> Vectors<'a> {
    fn of(e: &'a Embedding, dim: usize) -> Self {
        Vectors {
            dense: e.dense.as_deref(),
            sparse: e.sparse.as_deref(),
            colbert: e.colbert.as_ref().map(|c| c.chunks_exact(dim).collect()),
        }
    }
}

/// One window in `m3 encode`'s JSON.
#[derive(serde::Serialize)]
struct WindowLine<'a> {
    /// `[start, end)` in characters (Unicode scalar values) of the text.
    span: [u32; 2],
    /// Content tokens `[start, end)` (0: the first token after `<s>`).
    tokens: [usize; 2],
    #[serde(flatten)]
    vectors: Option<Vectors<'a>>,
}

/// One output line of `m3 encode`.
#[derive(serde::Serialize)]
struct EncodedLine<'a> {
    input_ids: &'a [u32],
    #[serde(flatten)]
    vectors: Vectors<'a>,
    windows: Vec<WindowLine<'a>>,
    truncated: bool,
}

fn document_line(text: &str, doc: &Document, dim: usize, window_vectors: bool) -> String {
    let chars = OffsetMap::chars(text);
    let windows = doc
        .windows
        .iter()
        .zip(&doc.results)
        .map(|(w, r)| WindowLine {
            span: [chars.map(w.span.0), chars.map(w.span.1)],
            tokens: [w.token_start, w.token_end],
            vectors: window_vectors.then(|| Vectors::of(r, dim)),
        })
        .collect();
    let e = doc.embedding();
    let line = EncodedLine { input_ids: &e.input_ids, vectors: Vectors::of(e, dim), windows, truncated: doc.truncated };
    serde_json::to_string(&line).expect("plain numbers and strings always serialise")
}

/// One output line of `m3 score`, with FlagEmbedding's key names.
#[derive(serde::Serialize)]
struct ScoreLine {
    dense: f32,
    sparse: f32,
    colbert: f32,
    #[serde(rename = "sparse+dense")]
    sparse_dense: f32,
    #[serde(rename = "colbert+sparse+dense")]
    colbert_sparse_dense: f32,
}

fn sparse_map<S: serde::Serializer>(v: &Option<&[(u32, f32)]>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let pairs = v.unwrap_or(&[]);
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (id, w) in pairs {
        m.serialize_entry(&id.to_string(), w)?;
    }
    m.end()
}

/// (VmRSS, VmHWM) of this process in MiB, from /proc/self/status (Linux).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The model of `--model` on the device of `--device` and `--kernel`, with that device.
fn load(args: &Args) -> Result<(BgeM3, PickedDevice), String> {
    let d = device(args.device, args.kernel).map_err(|e| e.to_string())?;
    let model = load_dir(&args.model, &d, args.encoder_file, &mut |_, _| {}).map_err(|e| e.to_string())?;
    Ok((model, d))
}

/// The steady encode time of `times` (one per run, the first with kernel compilation): the
/// median of the runs after the first, or the one run there is.
fn steady_s(times: &[f64]) -> f64 {
    let mut warm = times.get(1..).filter(|w| !w.is_empty()).unwrap_or(times).to_vec();
    warm.sort_by(f64::total_cmp);
    let mid = warm.len() / 2;
    if warm.len() % 2 == 1 { warm[mid] } else { (warm[mid - 1] + warm[mid]) / 2.0 }
}

/// One text of exactly `tokens` tokens, encoded `runs` times (the first call includes kernel
/// compilation on wgpu); times and resident memory as one JSON line.
fn bench(args: &Args) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    let (model, picked) = load(args)?;
    let load_s = t0.elapsed().as_secs_f64();
    // Reset the peak (VmHWM) so that what follows measures encoding, not loading.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (rss_loaded, load_peak) = rss_mib();
    let sentence = "BGE-M3 reads long documents in many languages; 긴 문서를 읽고 검색한다. 模型阅读长文档。 ";
    let mut text = String::new();
    while model.tokenizer.encode(&text).map_err(|e| e.to_string())?.ids.len() < args.tokens {
        text.push_str(sentence);
    }
    let opts = EncodeOptions { max_length: Some(args.tokens), truncate: true, ..args.opts.clone() };
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let t = std::time::Instant::now();
        let docs = encode_group(&model, std::slice::from_ref(&text), &opts)?;
        if docs[0].embedding().input_ids.len() != args.tokens {
            return Err(format!(
                "the bench text has {} tokens, not {}",
                docs[0].embedding().input_ids.len(),
                args.tokens
            ));
        }
        times.push(t.elapsed().as_secs_f64());
    }
    let (_, peak) = rss_mib();
    println!(
        "{}",
        json!({"tokens": args.tokens, "device": format!("{:?}", args.device).to_lowercase(),
               "adapter": picked.adapter, "adapter_is_cpu": picked.adapter_is_cpu, "shader_f16": picked.shader_f16,
               "kernel": model.weight_storage().kernel, "kernel_choice": format!("{:?}", picked.linear_kernel),
               "layers": model.config.num_hidden_layers, "hidden": model.config.hidden_size,
               "weights": model.weight_storage().dtype, "compute": model.weight_storage().compute,
               "load_s": load_s, "encode_first_s": times[0], "encode_s": steady_s(&times), "encode_runs_s": times,
               "rss_after_load_mib": rss_loaded.round(), "peak_rss_mib": peak.round(), "hwm_after_reset_mib": load_peak.round(),
               "peak_minus_loaded_mib": (peak - rss_loaded).round()})
    );
    Ok(())
}

/// `m3 convert`: writes the pack, then the per-tensor error table (stdout) and the files.
fn convert(args: &Args) -> Result<(), String> {
    let (Some(out), Some(dtype)) = (&args.out, args.dtype) else {
        return Err("convert needs --out and --dtype".into());
    };
    let t0 = std::time::Instant::now();
    let mut n = 0;
    let report = bge_m3_web::pack::convert(&args.model, out, dtype, &mut |_| {
        n += 1;
        if n % 16 == 0 {
            eprintln!("m3: converted {n} tensors ({:.1} s)", t0.elapsed().as_secs_f32());
        }
    })
    .map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    let mut line = |l: String| writeln!(stdout, "{l}").map_err(|e| format!("writing stdout: {e}"));
    line(format!(
        "{:<28} {:<58} {:<14} {:<6} {:>11} {:>11}",
        "file", "tensor", "shape", "stored", "max |err|", "rel rms err"
    ))?;
    for t in &report.tensors {
        let stored = match t.stored {
            Stored::F32 => "f32",
            Stored::F16 => "f16",
            Stored::I8Rows => "int8",
        };
        line(format!(
            "{:<28} {:<58} {:<14} {:<6} {:>11.3e} {:>11.3e}",
            t.file,
            t.name,
            format!("{:?}", t.shape),
            stored,
            t.max_abs_err,
            t.rel_rms_err
        ))?;
    }
    let worst = report.tensors.iter().max_by(|a, b| a.rel_rms_err.total_cmp(&b.rel_rms_err));
    if let Some(w) = worst {
        line(format!("worst relative error: {:.3e} ({})", w.rel_rms_err, w.name))?;
    }
    let total: u64 = report.files.iter().map(|f| f.size).sum();
    for f in &report.files {
        line(format!("{:<28} {:>14} bytes  sha256 {}", f.name, f.size, f.sha256))?;
    }
    line(format!("pack {} ({}): {total} bytes in {:.1} s", out.display(), dtype.name(), t0.elapsed().as_secs_f32()))?;
    Ok(())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    if args.command == "bench" {
        return bench(&args);
    }
    if args.command == "convert" {
        return convert(&args);
    }
    let keys: &'static [&'static str] = if args.command == "encode" { &["text"] } else { &["query", "passage"] };
    let mut reader = LineReader::new(keys);
    // The first group is read (and checked) before the model is loaded: bad input fails fast.
    let mut rows = reader.next_group()?;
    let t0 = std::time::Instant::now();
    let (model, _) = load(&args)?;
    model.window_policy(&args.opts).map_err(|e| e.to_string())?;
    eprintln!("m3: loaded {} in {:.1} s", args.model.display(), t0.elapsed().as_secs_f32());
    let dim = model.config.hidden_size;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut seen_ids = std::collections::HashSet::new();
    while !rows.is_empty() {
        let mut lines = Vec::with_capacity(rows.len());
        if args.command == "encode" {
            let ids = match args.format {
                Some(_) => rows
                    .iter()
                    .map(|(_, v, n)| {
                        let id = portable::doc_id(v.get("id"), *n)?;
                        // A repeated id would give points that overwrite each other.
                        if !seen_ids.insert(id.to_string()) {
                            return Err(format!("line {n}: document id {id} comes a second time"));
                        }
                        Ok(Some(id))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                None => vec![None; rows.len()],
            };
            let (texts, lines_in): (Vec<String>, Vec<Value>) =
                rows.into_iter().map(|(mut r, v, _)| (r.remove(0), v)).unzip();
            let docs = encode_group(&model, &texts, &args.opts)?;
            for (((text, doc), id), v) in texts.iter().zip(&docs).zip(&ids).zip(&lines_in) {
                lines.push(match (args.format, id) {
                    (Some(f), Some(id)) => portable::lines(f, args.colbert, id, text, v.get("meta"), doc, dim)?,
                    _ => document_line(text, doc, dim, args.window_vectors),
                });
            }
        } else {
            // All pairs of the group in one encode (query, passage, query, ...), scored pairwise.
            let texts: Vec<String> = rows.into_iter().flat_map(|(r, _, _)| r).collect();
            let docs = encode_group(&model, &texts, &args.opts)?;
            for pair in docs.chunks_exact(2) {
                let s = model.scores(pair, args.weights).map_err(|e| e.to_string())?[0];
                let line = ScoreLine {
                    dense: s.dense,
                    sparse: s.sparse,
                    colbert: s.colbert,
                    sparse_dense: s.sparse_dense,
                    colbert_sparse_dense: s.colbert_sparse_dense,
                };
                lines.push(serde_json::to_string(&line).expect("numbers always serialise"));
            }
        }
        for l in lines {
            writeln!(out, "{}", l.trim_end_matches('\n')).map_err(|e| format!("writing stdout: {e}"))?;
        }
        out.flush().map_err(|e| format!("writing stdout: {e}"))?;
        rows = reader.next_group()?;
    }
    Ok(())
}

pub fn main() {
    // A panic inside burn (a kernel the device cannot run, say) ends as a one-line error too.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        eprintln!("m3: internal error: {}", msg.lines().next().unwrap_or(msg));
        std::process::exit(101);
    }));
    if let Err(e) = run() {
        eprintln!("m3: {e}");
        std::process::exit(1);
    }
}
