//! `m3`: BGE-M3 on the command line, the same numbers as the browser computes.
//!
//!   m3 encode --model DIR [--backend cpu|wgpu] [--max-length N] [--batch-size N] [--encoder-file auto|bin|safetensors]
//!       stdin: {"text": "..."} per line; stdout: {"input_ids", "dense", "sparse", "colbert"} per line
//!   m3 score --model DIR [--backend cpu|wgpu] [--weights 0.4,0.2,0.4]
//!       stdin: {"query": "...", "passage": "..."} per line; stdout: the five scores per line

use std::io::{BufRead, Write};
use std::path::PathBuf;

use bge_m3_web::native::{Backend, WeightsFile, block_on, load_dir};
use bge_m3_web::{BgeM3, EncodeOptions, Embedding, ScoreWeights, compute_scores};
use serde_json::{Value, json};

const USAGE: &str = "usage:
  m3 encode --model DIR [--backend cpu|wgpu] [--max-length N] [--batch-size N] [--encoder-file auto|bin|safetensors]
      reads {\"text\": ...} JSON lines on stdin, writes {\"input_ids\", \"dense\", \"sparse\", \"colbert\"} lines
  m3 score --model DIR [--backend cpu|wgpu] [--weights 0.4,0.2,0.4] [--max-length N] [--encoder-file ...]
      reads {\"query\": ..., \"passage\": ...} JSON lines, writes dense, sparse, colbert, sparse+dense, colbert+sparse+dense
  m3 bench --model DIR [--backend cpu|wgpu] --tokens N [--runs 2] [--encoder-file ...]
      encodes one N-token text --runs times, prints load/encode times and memory (RSS) as one JSON line";

struct Args {
    command: String,
    model: PathBuf,
    backend: Backend,
    encoder_file: WeightsFile,
    opts: EncodeOptions,
    weights: ScoreWeights,
    tokens: usize,
    runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or("missing command (encode or score)")?;
    if command == "--help" || command == "-h" {
        println!("{USAGE}");
        std::process::exit(0);
    }
    if !["encode", "score", "bench"].contains(&command.as_str()) {
        return Err(format!("unknown command {command:?} (use encode, score or bench)"));
    }
    let mut model = None;
    let mut backend = Backend::Cpu;
    let mut encoder_file = WeightsFile::Auto;
    let mut opts = EncodeOptions::default();
    let mut weights = ScoreWeights::default();
    let mut tokens = 512;
    let mut runs = 2;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|_| format!("{flag}: {v:?} is not a positive integer"));
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--backend" => backend = value()?.parse().map_err(|e: bge_m3_web::Error| e.to_string())?,
            "--max-length" => opts.max_length = number(value()?)?,
            "--tokens" => tokens = number(value()?)?,
            "--runs" => runs = number(value()?)?.max(1),
            "--batch-size" => opts.batch_size = number(value()?)?.max(1),
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
                let w: Vec<f32> = v.split(',').map(|x| x.trim().parse::<f32>()).collect::<Result<_, _>>().map_err(|_| format!("--weights: {v:?} is not three numbers"))?;
                let [dense, sparse, colbert] = w[..] else { return Err(format!("--weights: {v:?} is not three numbers")) };
                weights = ScoreWeights { dense, sparse, colbert };
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let model = model.ok_or("--model DIR is required")?;
    Ok(Args { command, model, backend, encoder_file, opts, weights, tokens, runs })
}

/// Reads every stdin line as a JSON object and takes the string fields `keys`.
fn read_lines(keys: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("line {}: bad JSON: {e}", n + 1))?;
        let row = keys
            .iter()
            .map(|k| match v.get(k) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("line {}: \"{k}\" is not a string", n + 1)),
                None => Err(format!("line {}: missing \"{k}\"", n + 1)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(row);
    }
    Ok(rows)
}

fn encode_all(model: &BgeM3, texts: &[String], opts: &EncodeOptions) -> Result<Vec<Embedding>, String> {
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let start = std::time::Instant::now();
    let mut report = |done: usize, total: usize| {
        if total >= 4096 {
            eprintln!("m3: encoded {done}/{total} tokens ({:.1} s)", start.elapsed().as_secs_f32());
        }
    };
    block_on(model.encode(&refs, opts, &mut report)).map_err(|e| e.to_string())
}

/// One output line of `m3 encode` (f32 written in their shortest form).
#[derive(serde::Serialize)]
struct EncodedLine<'a> {
    input_ids: &'a [u32],
    #[serde(skip_serializing_if = "Option::is_none")]
    dense: Option<&'a [f32]>,
    /// Token id (as a string, like FlagEmbedding's JSON) -> weight, in order of first appearance.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "sparse_map")]
    sparse: Option<&'a [(u32, f32)]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    colbert: Option<Vec<&'a [f32]>>,
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

fn embedding_line(e: &Embedding, dim: usize) -> String {
    let line = EncodedLine {
        input_ids: &e.input_ids,
        dense: e.dense.as_deref(),
        sparse: e.sparse.as_deref(),
        colbert: e.colbert.as_ref().map(|c| c.chunks_exact(dim).collect()),
    };
    serde_json::to_string(&line).expect("plain numbers and strings always serialise")
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

/// One text of exactly `tokens` tokens, encoded twice (the first call includes kernel
/// compilation on wgpu); times and resident memory as one JSON line.
fn bench(args: &Args) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    let model = load_dir(&args.model, args.backend, args.encoder_file, &mut |_, _| {}).map_err(|e| e.to_string())?;
    let load_s = t0.elapsed().as_secs_f64();
    // Reset the peak (VmHWM) so that what follows measures encoding, not loading.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (rss_loaded, load_peak) = rss_mib();
    let sentence = "BGE-M3 reads long documents in many languages; 긴 문서를 읽고 검색한다. 模型阅读长文档。 ";
    let mut text = String::new();
    while model.tokenizer.encode(&text, usize::MAX).map_err(|e| e.to_string())?.ids.len() < args.tokens {
        text.push_str(sentence);
    }
    let opts = EncodeOptions { max_length: args.tokens, ..args.opts.clone() };
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let t = std::time::Instant::now();
        let e = encode_all(&model, std::slice::from_ref(&text), &opts)?;
        assert_eq!(e[0].input_ids.len(), args.tokens);
        times.push(t.elapsed().as_secs_f64());
    }
    let (_, peak) = rss_mib();
    println!(
        "{}",
        json!({"tokens": args.tokens, "backend": format!("{:?}", args.backend).to_lowercase(),
               "layers": model.config.num_hidden_layers, "hidden": model.config.hidden_size,
               "load_s": load_s, "encode_first_s": times[0], "encode_s": times[times.len() - 1],
               "rss_after_load_mib": rss_loaded.round(), "peak_rss_mib": peak.round(), "hwm_after_reset_mib": load_peak.round(),
               "peak_minus_loaded_mib": (peak - rss_loaded).round()})
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    if args.command == "bench" {
        return bench(&args);
    }
    let keys: &[&str] = if args.command == "encode" { &["text"] } else { &["query", "passage"] };
    let rows = read_lines(keys)?;
    let t0 = std::time::Instant::now();
    let model = load_dir(&args.model, args.backend, args.encoder_file, &mut |_, _| {}).map_err(|e| e.to_string())?;
    eprintln!("m3: loaded {} in {:.1} s", args.model.display(), t0.elapsed().as_secs_f32());
    let dim = model.config.hidden_size;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut emit = |v: String| writeln!(out, "{v}").map_err(|e| format!("writing stdout: {e}"));
    if args.command == "encode" {
        let texts: Vec<String> = rows.into_iter().map(|mut r| r.remove(0)).collect();
        for e in encode_all(&model, &texts, &args.opts)? {
            emit(embedding_line(&e, dim))?;
        }
    } else {
        let mut texts = Vec::with_capacity(rows.len() * 2);
        for r in rows {
            texts.extend(r);
        }
        let embs = encode_all(&model, &texts, &args.opts)?;
        for pair in embs.chunks_exact(2) {
            let s = compute_scores(&pair[0], &pair[1], dim, args.weights).ok_or("missing outputs")?;
            let line = ScoreLine {
                dense: s.dense,
                sparse: s.sparse,
                colbert: s.colbert,
                sparse_dense: s.sparse_dense,
                colbert_sparse_dense: s.colbert_sparse_dense,
            };
            emit(serde_json::to_string(&line).expect("numbers always serialise"))?;
        }
    }
    Ok(())
}

fn main() {
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
