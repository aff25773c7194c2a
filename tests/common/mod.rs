//! Shared helpers of the native tests: the fixture, its reference outputs and comparisons.
#![allow(dead_code)]

use std::path::PathBuf;

use bge_m3_web::Embedding;
use bge_m3_web::native::{DeviceKind, KernelChoice, PickedDevice, device};
use serde_json::Value;

#[path = "reference_tolerance.rs"]
mod reference_tolerance;
pub use reference_tolerance::matches_reference;

/// `../shared/fixtures` beside the repository (CI lays it there).
pub fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    assert!(
        dir.join("tiny-m3/config.json").exists() && dir.join("tiny-m3-reference.json").exists(),
        "fixture missing: expected {} with tiny-m3/ and tiny-m3-reference.json (the read-only shared/ folder that \
         CI places beside the clone); these tests cannot run without it",
        dir.display()
    );
    dir
}

pub fn tiny_dir() -> PathBuf {
    fixtures().join("tiny-m3")
}

pub fn reference() -> Value {
    reference_of("tiny-m3")
}

/// `<name>-reference.json` of a fixture model (`tiny-m3`, `tiny-m3-h16`).
pub fn reference_of(name: &str) -> Value {
    let path = fixtures().join(format!("{name}-reference.json"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("fixture missing: {} ({e})", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length differs");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Checks one encoded text against a reference item (tolerance: max abs diff <= `tol`; for sparse
/// weights, which can exceed 1, [`matches_reference`]).
pub fn check_item(label: &str, got: &Embedding, want: &Value, dim: usize, tol: f32) {
    let ids: Vec<u32> = want["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    assert_eq!(got.input_ids, ids, "{label}: input ids differ");
    let d = max_diff(got.dense.as_ref().unwrap(), &floats(&want["dense"]));
    assert!(d <= tol, "{label}: dense differs by {d}");
    let sparse: std::collections::HashMap<u32, f32> = got.sparse.as_ref().unwrap().iter().copied().collect();
    let want_sparse = want["sparse"].as_object().unwrap();
    for (k, w) in want_sparse {
        let id: u32 = k.parse().unwrap();
        let w = w.as_f64().unwrap() as f32;
        let g = sparse.get(&id).copied().unwrap_or(0.0);
        assert!(matches_reference(g, w, tol), "{label}: sparse weight of token {id}: {g} vs {w}");
    }
    for (id, w) in &sparse {
        if !want_sparse.contains_key(&id.to_string()) {
            assert!(*w < tol, "{label}: token {id} has weight {w}, absent from the reference");
        }
    }
    let want_colbert: Vec<f32> = want["colbert"].as_array().unwrap().iter().flat_map(floats).collect();
    let got_colbert = got.colbert.as_ref().unwrap();
    assert_eq!(got_colbert.len(), want_colbert.len(), "{label}: colbert rows differ");
    assert_eq!(got_colbert.len(), got.colbert_rows() * dim);
    let d = max_diff(got_colbert, &want_colbert);
    assert!(d <= tol, "{label}: colbert differs by {d}");
}

/// The CPU backend.
pub fn cpu() -> PickedDevice {
    device(DeviceKind::Cpu, KernelChoice::Auto).unwrap()
}

/// The wgpu device, or `None` after saying why (a machine without any adapter, not even
/// lavapipe). `M3_REQUIRE_WGPU=1` (set by scripts/test.sh, which installs lavapipe) turns a
/// missing adapter into a failure, so that CI cannot pass these tests without running them.
pub fn wgpu(test: &str) -> Option<PickedDevice> {
    wgpu_with(test, KernelChoice::Auto)
}

/// The wgpu device with f16 matmuls ([`KernelChoice::BurnF16`], for f16 packs), as [`wgpu`]; an
/// adapter without `shader-f16` counts as missing (lavapipe, which CI installs, has it).
pub fn wgpu_f16(test: &str) -> Option<PickedDevice> {
    wgpu_with(test, KernelChoice::BurnF16)
}

fn wgpu_with(test: &str, kernel: KernelChoice) -> Option<PickedDevice> {
    match device(DeviceKind::Gpu, kernel) {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("M3_REQUIRE_WGPU").is_none() => {
            eprintln!("NOT RUN {test} (kernel {kernel:?}): no such wgpu device on this machine ({e})");
            None
        }
        Err(e) => panic!("{test}: M3_REQUIRE_WGPU is set but the wgpu device (kernel {kernel:?}) is missing: {e}"),
    }
}

/// The texts of the reference's `compute_score` pairs, flattened: query, passage, query, ...
pub fn pair_texts(reference: &Value) -> Vec<&str> {
    let pairs = reference["scores"]["pairs"].as_array().unwrap();
    pairs.iter().flat_map(|p| p.as_array().unwrap().iter().map(|t| t.as_str().unwrap())).collect()
}

/// The five scores by the names FlagEmbedding's `compute_score` gives them.
pub fn score_modes(s: &bge_m3_web::Scores) -> [(&'static str, f32); 5] {
    [
        ("dense", s.dense),
        ("sparse", s.sparse),
        ("colbert", s.colbert),
        ("sparse+dense", s.sparse_dense),
        ("colbert+sparse+dense", s.colbert_sparse_dense),
    ]
}
