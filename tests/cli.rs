//! `m3 bench`'s report, and `m3 encode --format qdrant|milvus` (the portable export, natively): one
//! line per window with the package's point ids, and its input checks. Its values against the
//! package's `toJsonl` are held by tests/engines/portable.test.mjs.
#![cfg(not(target_family = "wasm"))]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// Runs `m3 args` on `input`: (exit code, stdout, stderr).
fn m3(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_m3"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("m3 runs");
    // Fed from a thread (a large output cannot block the feed), and m3 may refuse its arguments
    // before it reads stdin at all: a broken pipe is then not a failure of the test (the exit code
    // and stderr say what m3 did); any other write error is.
    let mut stdin = child.stdin.take().unwrap();
    let input = input.as_bytes().to_vec();
    let feed = std::thread::spawn(move || match stdin.write_all(&input) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("feeding m3's stdin: {e}"),
        _ => {}
    });
    let out = child.wait_with_output().unwrap();
    feed.join().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn encode_format_writes_one_point_per_window() {
    let model = tiny_dir();
    let model = model.to_str().unwrap();
    let text = "Bees make honey in the garden. ".repeat(12);
    let input = format!(
        "{}\n{}\n",
        serde_json::json!({"id": "notes/a.txt", "text": text, "meta": {"lang": "en"}}),
        r#"{"id": 17, "text": "tea"}"#
    );
    let (code, out, err) = m3(&["encode", "--model", model, "--format", "qdrant", "--max-length", "32"], &input);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let windows_a = lines.iter().filter(|l| l["payload"]["doc_id"] == "notes/a.txt").count();
    assert!(windows_a >= 3, "{windows_a} windows");
    assert_eq!(lines.len(), windows_a + 1);
    // Ids from portable.js's pointId (docs/portable-export.md's test vectors).
    assert_eq!(lines[0]["id"], "5eaef2e4-9d1b-873a-bcf7-3f0a3a958aa2");
    assert_eq!(lines[0]["payload"]["meta"]["lang"], "en");
    assert_eq!(lines[0]["payload"]["start"], 0);
    assert_eq!(lines[windows_a - 1]["payload"]["end"], text.chars().count());
    let v = &lines[0]["vector"];
    assert_eq!(v["dense"].as_array().unwrap().len(), 32);
    assert_eq!(v["sparse"]["indices"].as_array().unwrap().len(), v["sparse"]["values"].as_array().unwrap().len());
    assert!(v["colbert"].as_array().unwrap().iter().all(|r| r.as_array().unwrap().len() == 32));
    assert_eq!(lines.last().unwrap()["payload"]["doc_id"], 17);

    // Milvus rows: no multivector, the sparse vector as a map, doc_id a string.
    let (code, out, err) = m3(&["encode", "--model", model, "--format", "milvus"], "{\"id\": 17, \"text\": \"tea\"}\n");
    assert_eq!(code, 0, "{err}");
    let row: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["doc_id"], "17");
    assert!(row["sparse"].as_object().unwrap().values().all(|w| w.as_f64().unwrap() > 0.0));
    assert!(row.get("colbert").is_none() && row.get("vector").is_none());
}

#[test]
fn encode_format_refuses_what_an_engine_could_not_take() {
    let model = tiny_dir();
    let model = model.to_str().unwrap();
    for (args, input, want) in [
        (&["--format", "qdrant"][..], "{\"text\": \"no id\"}\n", "missing \"id\""),
        (&["--format", "qdrant"][..], "{\"id\": \"\", \"text\": \"x\"}\n", "empty string"),
        (&["--format", "qdrant"][..], "{\"id\": 1.5, \"text\": \"x\"}\n", "\"id\" must be"),
        (
            &["--format", "milvus"][..],
            "{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"a\", \"text\": \"y\"}\n",
            "comes a second time",
        ),
        (&["--format", "solr"][..], "{\"id\": \"a\", \"text\": \"x\"}\n", "unknown value"),
        (
            &["--format", "qdrant", "--window-vectors"][..],
            "{\"id\": \"a\", \"text\": \"x\"}\n",
            "without --window-vectors",
        ),
    ] {
        let mut all = vec!["encode", "--model", model];
        all.extend_from_slice(args);
        let (code, out, err) = m3(&all, input);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: wrote {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn bench_names_the_adapter_and_kernel_it_ran_on() {
    let model = tiny_dir();
    let (code, out, err) =
        m3(&["bench", "--model", model.to_str().unwrap(), "--tokens", "40", "--runs", "2", "--device", "cpu"], "");
    assert_eq!(code, 0, "{err}");
    let b: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(b["tokens"], 40);
    assert_eq!((b["weights"].as_str(), b["compute"].as_str()), (Some("f32"), Some("f32")));
    // Figures are reported with the adapter they ran on (scripts/bench-gpu-dtypes.sh's table).
    assert_eq!(b["adapter"], "CPU (burn flex)");
    assert_eq!((b["adapter_is_cpu"].as_bool(), b["shader_f16"].as_bool()), (Some(true), Some(false)));
    // The kernel the linear layers ran (the CPU backend has burn's alone), not only the choice.
    assert_eq!(b["kernel"], "burn");
    // encode_s: the median of the runs after the first (kernel compilation); every run is listed.
    let runs: Vec<f64> = b["encode_runs_s"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(b["encode_s"].as_f64(), Some(runs[1]));
    assert!(b["encode_s"].as_f64().unwrap() > 0.0 && b["load_s"].as_f64().unwrap() > 0.0);
}
