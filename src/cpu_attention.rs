//! Attention on the CPU backend (burn flex), on host memory: per text, head and block of query
//! rows, the scores by one matmul (gemm, the crate flex's own matmuls use), a softmax whose `exp`
//! vectorizes ([`exp_nonpositive`]: SIMD128 in wasm, SSE/AVX natively, where `f32::exp` is one
//! call per score), and the context by a second matmul written straight into the output's
//! columns. Each text's keys end at its length, so padding needs no mask. Heads run on rayon's
//! threads natively, one after the other in wasm.
//!
//! Shape key: N = B x T positions (B texts padded to T), H = hidden size, nh heads of d = H / nh.

use gemm::{Parallelism, gemm};

/// Most bytes of one block of scores [rows, len]: it stays in L2 (32 rows at 8192 keys).
const SCORE_BLOCK_BYTES: usize = 1 << 20;

/// softmax(q k^T / sqrt(d)) v per text and head, text i's keys being its first `lengths[i]`
/// positions (its padding rows attend to those too, as in FlagEmbedding, where padding keys are
/// masked). q, k, v: [N, H] row-major -> context [N, H].
pub fn attention(q: &[f32], k: &[f32], v: &[f32], lengths: &[usize], t: usize, nh: usize) -> Vec<f32> {
    let n = lengths.len() * t;
    let h = q.len().checked_div(n).unwrap_or(0);
    // Our own shapes (checked when the model was loaded): a mismatch is a bug, not bad input.
    assert!(
        n * h == q.len() && q.len() == k.len() && k.len() == v.len() && nh > 0 && h.is_multiple_of(nh),
        "attention: q, k, v of {} / {} / {} values for {} positions and {nh} heads",
        q.len(),
        k.len(),
        v.len(),
        n
    );
    assert!(lengths.iter().all(|&len| len <= t), "attention: a length past the padded length {t}");
    let mut out = vec![0f32; n * h];
    let dst = OutPtr(out.as_mut_ptr());
    let jobs: Vec<(usize, usize)> = (0..lengths.len()).flat_map(|i| (0..nh).map(move |hd| (i, hd))).collect();
    let run = |&(i, hd): &(usize, usize)| {
        // SAFETY: q, k, v and out hold [N, H]; job (i, hd) reads and writes only rows
        // i*T..(i+1)*T, columns hd*d..(hd+1)*d, and no two jobs write the same place.
        unsafe { head(q, k, v, dst, i * t * h + hd * (h / nh), t, h, h / nh, lengths[i]) }
    };
    #[cfg(not(target_family = "wasm"))]
    {
        use rayon::prelude::*;
        jobs.par_iter().for_each(run);
    }
    #[cfg(target_family = "wasm")]
    jobs.iter().for_each(run);
    out
}

/// The output, written by every job at once (each in its own rows and columns).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the jobs of `attention` write disjoint elements.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// One text and head: `at` is the offset of its element (0, 0) in q, k, v and out, whose rows
/// are `h` apart; `t` query rows, `len` keys, `d` columns.
///
/// # Safety
/// q, k, v and `out` hold the rows at..at + t*h (d columns each); no other job writes there.
#[allow(clippy::too_many_arguments)] // the shapes, spelled out
unsafe fn head(q: &[f32], k: &[f32], v: &[f32], out: OutPtr, at: usize, t: usize, h: usize, d: usize, len: usize) {
    unsafe {
        if len == 0 || t == 0 {
            return; // no keys: nothing to attend to (a text always has <s> and </s>)
        }
        let rows = (SCORE_BLOCK_BYTES / (len * 4)).clamp(1, t);
        let mut scores = vec![0f32; rows * len];
        let mut sums = vec![0f32; rows];
        let scale = 1.0 / (d as f32).sqrt();
        let (q, k, v, out) = (q.as_ptr().add(at), k.as_ptr().add(at), v.as_ptr().add(at), out.0.add(at));
        let (h_, len_) = (h as isize, len as isize);
        for r0 in (0..t).step_by(rows) {
            let m = rows.min(t - r0);
            // scores [m, len] = scale * q[r0.., :] k[..len, :]^T (k read as [d, len]: rows 1 apart,
            // columns h apart).
            gemm(
                m,
                len,
                d,
                scores.as_mut_ptr(),
                1,
                len_,
                false,
                q.add(r0 * h),
                1,
                h_,
                k,
                h_,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                Parallelism::None,
            );
            for (row, sum) in scores.chunks_exact_mut(len).zip(&mut sums[..m]) {
                *sum = exp_shifted(row);
            }
            // out[r0.., :] = p [m, len] v[..len, :], then each row over its sum.
            gemm(
                m,
                d,
                len,
                out.add(r0 * h),
                1,
                h_,
                false,
                scores.as_ptr(),
                1,
                len_,
                v,
                1,
                h_,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
            for (r, sum) in sums[..m].iter().enumerate() {
                let row = std::slice::from_raw_parts_mut(out.add((r0 + r) * h), d);
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|x| *x *= inv);
            }
        }
    }
}

/// row := exp(row - max(row)), in place; returns the sum (>= 1). Eight lanes, so that the max,
/// the exp and the sum vectorize.
fn exp_shifted(row: &mut [f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (m, &x) in lanes.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    let max = chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    let mut sums = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (s, x) in sums.iter_mut().zip(c.iter_mut()) {
            *x = exp_nonpositive(*x - max);
            *s += *x;
        }
    }
    for x in chunks.into_remainder() {
        *x = exp_nonpositive(*x - max);
        sums[0] += *x;
    }
    sums.iter().sum()
}

/// e^x for x <= 0 (a score minus its row's maximum), without a branch or a call, so that loops
/// over it vectorize: Cephes' `expf` (x = n ln 2 + r, |r| <= ln 2 / 2, e^r by a degree-7
/// polynomial, 2^n put in the exponent bits), relative error within 2 ulp of f32. Below -87 it
/// gives e^-87 (1.6e-38, nothing next to the row's 1); NaN stays NaN.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // ln 2 = LN2_HI + LN2_LO, LN2_HI with few mantissa bits
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 x 2^23: adding it rounds to an integer, kept in the low bits
    let x = if x < -87.0 { -87.0 } else { x };
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND; // round(x / ln 2), in -126..=0
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * r * r + r + 1.0;
    // 2^n: n sits in the low mantissa bits of `shifted` (two's complement, since |n| < 2^22).
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    er * f32::from_bits(((n_int + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0f64;
        let mut x = 0f32;
        while x > -87.0 {
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            let ulp = (want as f32).abs() as f64 * f32::EPSILON as f64;
            worst = worst.max((got - want).abs() / ulp);
            x -= 0.000_37;
        }
        assert!(worst <= 2.0, "worst {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e30) > 0.0 && exp_nonpositive(-1e30) < 1e-37);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    /// The plain formula in f64, padding keys masked.
    fn reference(q: &[f32], k: &[f32], v: &[f32], lengths: &[usize], t: usize, nh: usize) -> Vec<f64> {
        let h = q.len() / (lengths.len() * t);
        let d = h / nh;
        let mut out = vec![0f64; q.len()];
        for (i, &len) in lengths.iter().enumerate() {
            for hd in 0..nh {
                for r in 0..t {
                    let at = |m: &[f32], row: usize, c: usize| m[(i * t + row) * h + hd * d + c] as f64;
                    let s: Vec<f64> = (0..len)
                        .map(|j| (0..d).map(|c| at(q, r, c) * at(k, j, c)).sum::<f64>() / (d as f64).sqrt())
                        .collect();
                    let max = s.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..d {
                        out[(i * t + r) * h + hd * d + c] = (0..len).map(|j| e[j] * at(v, j, c)).sum::<f64>() / sum;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_formula_with_padding_and_blocks() {
        // Deterministic values in [-2, 2]; a text long enough for several blocks of query rows.
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        };
        for (lengths, t, h, nh) in [(vec![5, 3], 5, 8, 2), (vec![1200, 700, 1200], 1200, 12, 3), (vec![9], 9, 4, 1)] {
            let n = lengths.len() * t;
            let (q, k, v): (Vec<f32>, Vec<f32>, Vec<f32>) = (
                (0..n * h).map(|_| next()).collect(),
                (0..n * h).map(|_| next()).collect(),
                (0..n * h).map(|_| next()).collect(),
            );
            let got = attention(&q, &k, &v, &lengths, t, nh);
            let want = reference(&q, &k, &v, &lengths, t, nh);
            let worst = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w).abs()).fold(0f64, f64::max);
            assert!(worst < 1e-5, "lengths {lengths:?}: worst difference {worst}");
        }
    }
}
