//! The crafted-file corpus: `scripts/crafted_models.py` writes ~60 model folders, each the tiny
//! fixture with one file replaced by a hostile or broken one (zip, pickle, safetensors,
//! config.json, tokenizer.json, heads). `m3 encode` runs on each in a child process under an 8 GiB
//! address-space cap (`prlimit --as`) and a 60 s limit, and must print one line to stderr and exit
//! with status 1: no panic (status 101), no abort, no hang, no output. The untouched fixture, run
//! the same way, must succeed (the harness can tell the two apart).
#![cfg(not(target_family = "wasm"))]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CAP_BYTES: u64 = 8 << 30;
const LIMIT: Duration = Duration::from_secs(60);
const INPUT: &str = "{\"text\": \"BGE-M3 h\u{e9}llo w\u{f6}rld \u{fb01} \u{4e2d}\u{6587} \u{1f600} e\u{301}\"}\n";

struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `m3 encode --model dir --device cpu` with INPUT on stdin, capped and timed.
fn run_m3(dir: &Path) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new("prlimit")
        .arg(format!("--as={CAP_BYTES}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_m3"))
        .args(["encode", "--device", "cpu", "--model"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) must be installed: it caps the child's address space");
    // m3 may fail before it reads stdin: a broken pipe here is fine.
    let _ = child.stdin.take().unwrap().write_all(INPUT.as_bytes());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    Outcome {
        status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

fn corpus() -> PathBuf {
    let out = std::env::temp_dir().join(format!("m3-crafted-{}", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/crafted_models.py");
    let status = Command::new("python3")
        .arg(script)
        .arg(&out)
        .arg("--fixture")
        .arg(common::tiny_dir())
        .status()
        .expect("python3 must be installed: it writes the crafted corpus");
    assert!(status.success(), "{script} failed");
    out
}

#[test]
fn every_crafted_model_is_a_one_line_error() {
    let dir = corpus();
    let cases: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 50, "the corpus shrank to {} cases", cases.len());

    // The control: the fixture itself, through the same harness, succeeds.
    let ok = run_m3(&common::tiny_dir());
    assert_eq!(ok.status, Some(0), "the unmodified fixture failed: {}", ok.stderr);
    assert_eq!(ok.stdout.lines().count(), 1, "one output line for one input line");

    // Two at a time (the machine has two cores).
    let names: Vec<&String> = cases.keys().collect();
    let failures = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(name) = names.get(i) else { break };
                    let o = run_m3(&dir.join(name));
                    let lines: Vec<&str> = o.stderr.lines().collect();
                    let verdict = match (o.status, lines.as_slice()) {
                        (None, _) => Some(format!("no exit within {} s (or killed by a signal)", LIMIT.as_secs())),
                        (Some(1), [line]) if line.starts_with("m3: ") && o.stdout.is_empty() => None,
                        (Some(1), _) if !o.stdout.is_empty() => Some("wrote output".into()),
                        (Some(code), _) => Some(format!("exit {code}, {} stderr lines", lines.len())),
                    };
                    let what = cases[name.as_str()]["what"].as_str().unwrap_or("");
                    println!(
                        "{:<32} {:>5.1} s  {}",
                        name,
                        o.took.as_secs_f64(),
                        lines.first().unwrap_or(&"(no stderr)")
                    );
                    if let Some(v) = verdict {
                        failures.lock().unwrap().push(format!("{name} ({what}): {v}\n{}", o.stderr.trim_end()));
                    }
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} crafted models did not give a one-line error:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
