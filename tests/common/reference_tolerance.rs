//! How close an output must be to FlagEmbedding's reference value (native and wasm tests).

/// The reference files hold 7 significant digits, so a value is known to one unit of its 7th digit
/// (at most 1e-6 of it): `got` matches `want` when within `tol` plus that unit. For values under
/// 1 (dense, ColBERT, most sparse weights) this is `tol`; a lexical score of 521.6816 is known to
/// 1e-4 only, about an f32 ulp there, so an absolute 1e-4 alone would fail on rounding.
pub fn matches_reference(got: f32, want: f32, tol: f32) -> bool {
    (got - want).abs() <= tol + 1e-6 * want.abs()
}
