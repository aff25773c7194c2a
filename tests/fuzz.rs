//! Mutation fuzzing, on stable Rust, of every reader of untrusted model files: the PyTorch zip +
//! pickle reader, the safetensors reader, `config.json` and `tokenizer.json` (our checks, then
//! `tokenizers` itself, then tokenizing texts). Inputs are the fixture's own files, mutated (bit
//! flips, interesting integers written over bytes, cuts, splices; for JSON also whole values
//! replaced); any panic fails the test, with the seed, the target and the input written out.
//!
//! It runs for `M3_FUZZ_SECONDS` in all (default 10; `scripts/test.sh` sets it for CI), split over
//! the targets. `M3_FUZZ_SEED` replays a run. Errors are the expected outcome of most inputs; the
//! test also checks that each target saw both accepted and refused inputs (a fuzzer whose every
//! input fails at the first byte tests nothing).
#![cfg(not(target_family = "wasm"))]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bge_m3_web::config::ModelConfig;
use bge_m3_web::tokenizer::Tokenizer;
use bge_m3_web::weights::{Checkpoint, TensorSource};
use serde_json::{Value, json};

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Integers that break readers: zero, one, all bits, sign bits, powers of two at type edges.
const INTERESTING: [u64; 14] =
    [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 32, 1 << 62, u64::MAX];

/// 1 to 4 byte-level mutations of `data[lo..hi]` (cuts and splices move what follows).
fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, lo: usize, hi: usize) {
    for _ in 0..1 + rng.below(4) {
        let hi = hi.min(data.len());
        if hi <= lo {
            return;
        }
        let at = lo + rng.below(hi - lo);
        match rng.below(7) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = rng.next() as u8,
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.below(4)];
                for (i, b) in v.to_le_bytes()[..width].iter().enumerate() {
                    if let Some(slot) = data.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            3 => data.truncate(at),
            4 => {
                let len = rng.below(64).min(data.len() - at);
                data.drain(at..at + len);
            }
            5 => {
                let from = lo + rng.below(hi - lo);
                let len = rng.below(64).min(data.len() - from);
                let chunk = data[from..from + len].to_vec();
                data.splice(at..at, chunk);
            }
            _ => {
                // A run of one byte (long lengths, repeated opcodes).
                let b = rng.next() as u8;
                data.splice(at..at, std::iter::repeat_n(b, 1 + rng.below(256)));
            }
        }
    }
}

/// A value that breaks JSON consumers: wrong types, edges of numbers, empty and odd strings.
fn odd_value(rng: &mut Rng, old: &Value) -> Value {
    match rng.below(14) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(1e300),
        5 => json!(-1e-300),
        6 => json!(u32::MAX),
        7 => json!(u64::MAX),
        8 => json!(""),
        9 => json!("<s>"),
        10 => json!([]),
        11 => json!({}),
        12 => json!([old.clone(), old.clone()]),
        _ => match old {
            Value::Number(n) => json!(n.as_f64().unwrap_or(0.0) * [2.0, -1.0, 0.5, 1e9][rng.below(4)]),
            Value::String(s) => json!(s.repeat(1 + rng.below(3)) + ["\u{0}", "é", "\u{ffff}", ""][rng.below(4)]),
            _ => json!(1u64 << 40),
        },
    }
}

/// Replaces one value of `v`, picked by a random walk from the root (each level: stop here, or go
/// into a random child).
fn mutate_json(rng: &mut Rng, v: &mut Value) {
    let mut node = v;
    loop {
        let children = match &*node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if children == 0 || rng.chance(4) {
            let new = odd_value(rng, node);
            *node = new;
            return;
        }
        let i = rng.below(children);
        node = match node {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).unwrap(),
            _ => unreachable!(),
        };
    }
}

/// Reads everything a loader would read from a checkpoint: every tensor whole, its shape, and
/// its first row.
fn read_all(bytes: Vec<u8>) -> bool {
    let Ok(ckpt) = Checkpoint::open(bytes) else { return false };
    let names: Vec<String> = ckpt.names().map(str::to_owned).collect();
    let mut ok = true;
    for name in &names {
        ok &= ckpt.shape(name).is_ok();
        ok &= ckpt.tensor(name).is_ok();
        ok &= ckpt.rows(name, 0, 1).is_ok();
    }
    ok
}

const TEXTS: [&str; 5] = [
    "BGE-M3 is a multilingual embedding model.",
    "Ünïcödé, 中文, עברית, 😀👍🏽 and e\u{301} combining",
    "  spaces   and\ttabs\n",
    "",
    "ﬁ ① ㍿ Ⅻ ＡＢＣ",
];

fn tokenize_all(json: &[u8]) -> bool {
    let Ok(tok) = Tokenizer::from_bytes(json) else { return false };
    TEXTS.iter().all(|t| tok.encode(t).is_ok())
}

/// Makes one mutated input.
type Maker = Box<dyn Fn(&mut Rng) -> Vec<u8>>;

/// One fuzz target: a seed input and how to mutate and consume it.
struct Target {
    name: &'static str,
    make: Maker,
    run: fn(Vec<u8>) -> bool,
}

fn targets() -> Vec<Target> {
    let dir = common::tiny_dir();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("fixture {f}: {e}"));

    // PyTorch zip + pickle: the ColBERT head file whole, and its data.pkl alone (mutated in place,
    // so the zip still points at it).
    let colbert = read("colbert_linear.pt");
    let sparse = read("sparse_linear.pt");
    let name_at = colbert.windows(8).position(|w| w == b"data.pkl").expect("colbert_linear.pt has data.pkl");
    let pkl_start = name_at + colbert[name_at..].windows(2).position(|w| w == [0x80, 0x02]).expect("pickle start");
    let pkl_end = pkl_start + colbert[pkl_start..].windows(4).position(|w| w == b"PK\x03\x04").expect("next member");

    // safetensors: the fixture's file cut to the tensors of its first 64 KiB (its own header, those
    // entries kept), and a small file of three dtypes written here.
    let st = read("model.safetensors");
    let st_header_len = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, Value> = serde_json::from_slice(&st[8..8 + st_header_len]).unwrap();
    let end = |v: &Value| v["data_offsets"][1].as_u64().unwrap_or(0) as usize;
    header.retain(|k, v| k == "__metadata__" || end(v) <= 64 << 10);
    let data_len = header.values().map(end).max().unwrap_or(0);
    let header = serde_json::to_vec(&header).unwrap();
    let header_len = header.len();
    let mut st_head = (header_len as u64).to_le_bytes().to_vec();
    st_head.extend_from_slice(&header);
    st_head.extend_from_slice(&st[8 + st_header_len..8 + st_header_len + data_len]);
    let small_st = {
        // (d is an int8 pack matrix: its per-row scales are d.scale, two f32 of 0.5.)
        let header = br#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F16","shape":[4],"data_offsets":[24,32]},"c":{"dtype":"BF16","shape":[2,1],"data_offsets":[32,36]},"d":{"dtype":"I8","shape":[2,4],"data_offsets":[36,44]},"d.scale":{"dtype":"F32","shape":[2],"data_offsets":[44,52]},"__metadata__":{"format":"pt"}}"#;
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header);
        f.extend((0..44u8).map(|i| i.wrapping_mul(37)));
        f.extend([0.5f32, 0.5].iter().flat_map(|v| v.to_le_bytes()));
        f
    };

    let config = read("config.json");
    let config_json: Value = serde_json::from_slice(&config).unwrap();

    // tokenizer.json: the real one (charsmap, pre-tokenizer, post-processor) with the vocabulary cut
    // to its first 3,000 entries so that one parse takes milliseconds.
    let mut tok: Value = serde_json::from_slice(&read("tokenizer.json")).unwrap();
    tok["model"]["vocab"].as_array_mut().unwrap().truncate(3000);
    let charsmap_b64 = tok["normalizer"]["normalizers"][0]["precompiled_charsmap"].as_str().unwrap().to_owned();
    let charsmap = base64::engine::general_purpose::STANDARD.decode(&charsmap_b64).unwrap();

    let tok_values = tok.clone();
    let tok_charsmap = tok.clone();
    let tok_bytes = serde_json::to_vec(&tok).unwrap();
    let config_bytes = config.clone();
    vec![
        Target {
            name: "colbert_linear.pt (zip + pickle)",
            make: Box::new(move |rng| {
                let mut f = colbert.clone();
                let (lo, hi) = if rng.chance(2) { (pkl_start, pkl_end) } else { (0, f.len()) };
                mutate_bytes(rng, &mut f, lo, hi);
                f
            }),
            run: read_all,
        },
        Target {
            name: "sparse_linear.pt (zip + pickle)",
            make: Box::new(move |rng| {
                let mut f = sparse.clone();
                let len = f.len();
                mutate_bytes(rng, &mut f, 0, len);
                f
            }),
            run: read_all,
        },
        Target {
            name: "model.safetensors (first 64 KiB)",
            make: Box::new(move |rng| {
                let mut f = st_head.clone();
                mutate_bytes(rng, &mut f, 0, 8 + header_len);
                f
            }),
            run: read_all,
        },
        Target {
            name: "small safetensors (F32, F16, BF16, I8)",
            make: Box::new(move |rng| {
                let mut f = small_st.clone();
                let len = f.len();
                mutate_bytes(rng, &mut f, 0, len);
                f
            }),
            run: read_all,
        },
        Target {
            name: "config.json",
            make: Box::new(move |rng| {
                if rng.chance(2) {
                    let mut v = config_json.clone();
                    mutate_json(rng, &mut v);
                    serde_json::to_vec(&v).unwrap()
                } else {
                    let mut f = config_bytes.clone();
                    let len = f.len();
                    mutate_bytes(rng, &mut f, 0, len);
                    f
                }
            }),
            run: |bytes| ModelConfig::from_json(&bytes).map(|c| c.max_tokens() + c.head_dim()).is_ok(),
        },
        Target {
            name: "tokenizer.json (values)",
            make: Box::new(move |rng| {
                if rng.chance(8) {
                    let mut f = tok_bytes.clone();
                    let len = f.len();
                    mutate_bytes(rng, &mut f, 0, len);
                    return f;
                }
                let mut v = tok_values.clone();
                // Mostly outside the 3,000-entry vocabulary, where the structure is.
                if rng.chance(3) {
                    mutate_json(rng, &mut v);
                } else {
                    let key = ["normalizer", "pre_tokenizer", "post_processor", "added_tokens", "model"][rng.below(5)];
                    mutate_json(rng, &mut v[key]);
                }
                serde_json::to_vec(&v).unwrap()
            }),
            run: |bytes| tokenize_all(&bytes),
        },
        Target {
            name: "tokenizer.json (precompiled_charsmap bytes)",
            make: Box::new(move |rng| {
                let mut map = charsmap.clone();
                let len = map.len();
                // The header, the trie or the strings, equally often.
                let trie_end = 4 + (u32::from_le_bytes(map[..4].try_into().unwrap()) as usize).min(len - 4);
                let (lo, hi) = [(0, 4), (4, trie_end), (trie_end, len)][rng.below(3)];
                mutate_bytes(rng, &mut map, lo, hi);
                let mut v = tok_charsmap.clone();
                v["normalizer"]["normalizers"][0]["precompiled_charsmap"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&map));
                serde_json::to_vec(&v).unwrap()
            }),
            run: |bytes| tokenize_all(&bytes),
        },
    ]
}

#[test]
fn mutated_model_files_never_panic() {
    let seconds: f64 = std::env::var("M3_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let seed: u64 = std::env::var("M3_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let targets = targets();
    let budget = Duration::from_secs_f64(seconds / targets.len() as f64);
    println!("fuzz: seed {seed} (M3_FUZZ_SEED={seed} replays), {seconds} s over {} targets", targets.len());
    for (t, target) in targets.iter().enumerate() {
        let mut rng = Rng(seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (mut runs, mut accepted) = (0usize, 0usize);
        let start = Instant::now();
        while start.elapsed() < budget || runs < 20 {
            let input = (target.make)(&mut rng);
            match catch_unwind(AssertUnwindSafe(|| (target.run)(input.clone()))) {
                Ok(ok) => accepted += ok as usize,
                Err(_) => {
                    let path = std::env::temp_dir().join(format!("m3-fuzz-failure-{t}.bin"));
                    std::fs::write(&path, &input).ok();
                    panic!(
                        "{}: input {runs} panicked (M3_FUZZ_SEED={seed}; the input is in {})",
                        target.name,
                        path.display()
                    );
                }
            }
            runs += 1;
        }
        println!("fuzz: {:<45} {runs:>7} inputs, {accepted:>6} read without error", target.name);
        assert!(
            accepted > 0 && accepted < runs,
            "{}: every input gave the same outcome: mutations too weak",
            target.name
        );
    }
}
