;; The index's SIMD128 kernels (assembled by scripts/build-index-kernels.mjs into kernels-wasm.js;
;; the JS side is kernels-simd.js, the reference kernels-js.js).
;;
;; Layout rules, set by the JS side:
;; - dimP = dim rounded up to 16; every int8 row and every i16 query row has stride dimP, with
;;   zeros past dim (so no kernel has a tail loop);
;; - a query row is quantized to i16 with its own scale: q[k] ≈ qi[k] * qscale, |qi| <= qmax;
;; - i32 accumulators: each i32x4 lane sums dimP/4 products |qi * code| <= qmax * 128, so the JS
;;   side picks qmax <= (2^31 - 1) / (dimP * 32) (32767 up to dimP = 2048); lanes are summed
;;   exactly in i64.
;; A dot product is therefore exact in integers: the only error is the query's i16 rounding.
(module
  (memory (export "memory") 1)

  ;; Exact sum of the four i32 lanes, as f64.
  (func $hsum (param $v v128) (result f64)
    (f64.convert_i64_s
      (i64.add
        (i64.add (i64.extend_i32_s (i32x4.extract_lane 0 (local.get $v)))
                 (i64.extend_i32_s (i32x4.extract_lane 1 (local.get $v))))
        (i64.add (i64.extend_i32_s (i32x4.extract_lane 2 (local.get $v)))
                 (i64.extend_i32_s (i32x4.extract_lane 3 (local.get $v)))))))

  ;; src: f32 [rows, dim] -> dst: i16 [rows, dimP] (zeros past dim), scales: f32 [rows] with
  ;; src[r][k] ≈ dst[r][k] * scales[r]; scale = max|row| / qmax, 0 for a zero row.
  (func (export "quant_rows_i16")
    (param $src i32) (param $dst i32) (param $scales i32)
    (param $rows i32) (param $dim i32) (param $dimP i32) (param $qmax f32)
    (local $r i32) (local $k i32) (local $m f32) (local $inv f32)
    (block $rows_done
      (loop $row
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
        ;; m = max |src[r][k]|
        (local.set $m (f32.const 0))
        (local.set $k (i32.const 0))
        (block $max_done
          (loop $max
            (br_if $max_done (i32.ge_u (local.get $k) (local.get $dim)))
            (local.set $m (f32.max (local.get $m)
              (f32.abs (f32.load (i32.add (local.get $src) (i32.shl (local.get $k) (i32.const 2)))))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $max)))
        (f32.store (local.get $scales) (f32.div (local.get $m) (local.get $qmax)))
        (local.set $inv (select (f32.div (local.get $qmax) (local.get $m)) (f32.const 0)
          (f32.gt (local.get $m) (f32.const 0))))
        ;; dst[r][k] = round(src[r][k] * inv) for k < dim, 0 for dim <= k < dimP
        (local.set $k (i32.const 0))
        (block $q_done
          (loop $q
            (br_if $q_done (i32.ge_u (local.get $k) (local.get $dimP)))
            (i32.store16 (i32.add (local.get $dst) (i32.shl (local.get $k) (i32.const 1)))
              (select
                (i32.trunc_sat_f32_s (f32.nearest (f32.mul (local.get $inv)
                  (f32.load (i32.add (local.get $src) (i32.shl (local.get $k) (i32.const 2)))))))
                (i32.const 0)
                (i32.lt_u (local.get $k) (local.get $dim))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $q)))
        (local.set $src (i32.add (local.get $src) (i32.shl (local.get $dim) (i32.const 2))))
        (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $dimP) (i32.const 1))))
        (local.set $scales (i32.add (local.get $scales) (i32.const 4)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; The dense lane scan, four slots at a time: out[s] = qscale * (qi · codes[s]) * scales[s]
  ;; for s < count4 (a multiple of 4). qi: i16 [dimP]; codes: i8 [count4, dimP]; scales, out:
  ;; f32 [count4].
  (func (export "dense_scores")
    (param $qi i32) (param $qscale f32) (param $codes i32) (param $scales i32) (param $out i32)
    (param $count4 i32) (param $dimP i32)
    (local $s i32) (local $k i32) (local $r0 i32) (local $qk i32) (local $qs f64)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $lo v128) (local $hi v128) (local $c v128)
    (local.set $qs (f64.promote_f32 (local.get $qscale)))
    (local.set $r0 (local.get $codes))
    (block $slots_done
      (loop $slots
        (br_if $slots_done (i32.ge_u (local.get $s) (local.get $count4)))
        (local.set $a0 (v128.const i32x4 0 0 0 0))
        (local.set $a1 (v128.const i32x4 0 0 0 0))
        (local.set $a2 (v128.const i32x4 0 0 0 0))
        (local.set $a3 (v128.const i32x4 0 0 0 0))
        (local.set $k (i32.const 0))
        (loop $dot
          ;; 16 query values (two i16x8 halves) against 16 codes of each of the four slots
          (local.set $qk (i32.add (local.get $qi) (i32.shl (local.get $k) (i32.const 1))))
          (local.set $lo (v128.load (local.get $qk)))
          (local.set $hi (v128.load offset=16 (local.get $qk)))
          (local.set $qk (i32.add (local.get $r0) (local.get $k)))
          (local.set $c (v128.load (local.get $qk)))
          (local.set $a0 (i32x4.add (local.get $a0) (i32x4.add
            (i32x4.dot_i16x8_s (local.get $lo) (i16x8.extend_low_i8x16_s (local.get $c)))
            (i32x4.dot_i16x8_s (local.get $hi) (i16x8.extend_high_i8x16_s (local.get $c))))))
          (local.set $qk (i32.add (local.get $qk) (local.get $dimP)))
          (local.set $c (v128.load (local.get $qk)))
          (local.set $a1 (i32x4.add (local.get $a1) (i32x4.add
            (i32x4.dot_i16x8_s (local.get $lo) (i16x8.extend_low_i8x16_s (local.get $c)))
            (i32x4.dot_i16x8_s (local.get $hi) (i16x8.extend_high_i8x16_s (local.get $c))))))
          (local.set $qk (i32.add (local.get $qk) (local.get $dimP)))
          (local.set $c (v128.load (local.get $qk)))
          (local.set $a2 (i32x4.add (local.get $a2) (i32x4.add
            (i32x4.dot_i16x8_s (local.get $lo) (i16x8.extend_low_i8x16_s (local.get $c)))
            (i32x4.dot_i16x8_s (local.get $hi) (i16x8.extend_high_i8x16_s (local.get $c))))))
          (local.set $qk (i32.add (local.get $qk) (local.get $dimP)))
          (local.set $c (v128.load (local.get $qk)))
          (local.set $a3 (i32x4.add (local.get $a3) (i32x4.add
            (i32x4.dot_i16x8_s (local.get $lo) (i16x8.extend_low_i8x16_s (local.get $c)))
            (i32x4.dot_i16x8_s (local.get $hi) (i16x8.extend_high_i8x16_s (local.get $c))))))
          (br_if $dot (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 16))) (local.get $dimP))))
        (f32.store (local.get $out) (f32.demote_f64 (f64.mul (f64.mul (call $hsum (local.get $a0)) (local.get $qs))
          (f64.promote_f32 (f32.load (local.get $scales))))))
        (f32.store offset=4 (local.get $out) (f32.demote_f64 (f64.mul (f64.mul (call $hsum (local.get $a1)) (local.get $qs))
          (f64.promote_f32 (f32.load offset=4 (local.get $scales))))))
        (f32.store offset=8 (local.get $out) (f32.demote_f64 (f64.mul (f64.mul (call $hsum (local.get $a2)) (local.get $qs))
          (f64.promote_f32 (f32.load offset=8 (local.get $scales))))))
        (f32.store offset=12 (local.get $out) (f32.demote_f64 (f64.mul (f64.mul (call $hsum (local.get $a3)) (local.get $qs))
          (f64.promote_f32 (f32.load offset=12 (local.get $scales))))))
        (local.set $r0 (i32.add (local.get $r0) (i32.shl (local.get $dimP) (i32.const 2))))
        (local.set $scales (i32.add (local.get $scales) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (br $slots))))

  ;; best[i] = max(best[i], qscales[i] * (qi[i] · codes[j]) * scales[j]) (f64 best).
  (func $keep (param $best i32) (param $acc v128) (param $qscale f32) (param $scale f32)
    (f64.store (local.get $best) (f64.max (f64.load (local.get $best))
      (f64.mul (f64.mul (call $hsum (local.get $acc)) (f64.promote_f32 (local.get $qscale)))
        (f64.promote_f32 (local.get $scale))))))

  ;; ColBERT MaxSim: the mean over the first qRows query rows of max_j qscale_i * (qi_i ·
  ;; codes_j) * scales_j. qi: i16 [qRowsP, dimP] (qRowsP a multiple of 4, extra rows ignored);
  ;; qscales: f32 [qRowsP]; codes: i8 [rowsP, dimP] (rowsP even, >= 2); scales: f32 [rowsP];
  ;; best: f64 [qRowsP] scratch. Tiles of 4 query rows x 2 passage rows (8 accumulators).
  (func (export "maxsim")
    (param $qi i32) (param $qscales i32) (param $qRows i32) (param $qRowsP i32)
    (param $codes i32) (param $scales i32) (param $rowsP i32) (param $dimP i32) (param $best i32)
    (result f64)
    (local $i i32) (local $j i32) (local $k i32) (local $qrow i32) (local $qk i32) (local $c0p i32)
    (local $q2 i32) (local $b i32) (local $total f64)
    (local $c0 v128) (local $c1 v128) (local $qv v128)
    (local $a00 v128) (local $a01 v128) (local $a10 v128) (local $a11 v128)
    (local $a20 v128) (local $a21 v128) (local $a30 v128) (local $a31 v128)
    (local.set $q2 (i32.shl (local.get $dimP) (i32.const 1)))
    (loop $init
      (f64.store (i32.add (local.get $best) (i32.shl (local.get $i) (i32.const 3))) (f64.const -inf))
      (br_if $init (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $qRowsP))))
    (local.set $c0p (local.get $codes))
    (loop $prows
      (local.set $i (i32.const 0))
      (local.set $qrow (local.get $qi))
      (loop $qrows
        (local.set $a00 (v128.const i32x4 0 0 0 0)) (local.set $a01 (v128.const i32x4 0 0 0 0))
        (local.set $a10 (v128.const i32x4 0 0 0 0)) (local.set $a11 (v128.const i32x4 0 0 0 0))
        (local.set $a20 (v128.const i32x4 0 0 0 0)) (local.set $a21 (v128.const i32x4 0 0 0 0))
        (local.set $a30 (v128.const i32x4 0 0 0 0)) (local.set $a31 (v128.const i32x4 0 0 0 0))
        (local.set $k (i32.const 0))
        (loop $dot
          ;; 8 codes of passage rows j, j+1 (widened to i16) against 8 values of query rows i..i+3
          (local.set $qk (i32.add (local.get $c0p) (local.get $k)))
          (local.set $c0 (v128.load8x8_s (local.get $qk)))
          (local.set $c1 (v128.load8x8_s (i32.add (local.get $qk) (local.get $dimP))))
          (local.set $qk (i32.add (local.get $qrow) (i32.shl (local.get $k) (i32.const 1))))
          (local.set $qv (v128.load (local.get $qk)))
          (local.set $a00 (i32x4.add (local.get $a00) (i32x4.dot_i16x8_s (local.get $qv) (local.get $c0))))
          (local.set $a01 (i32x4.add (local.get $a01) (i32x4.dot_i16x8_s (local.get $qv) (local.get $c1))))
          (local.set $qk (i32.add (local.get $qk) (local.get $q2)))
          (local.set $qv (v128.load (local.get $qk)))
          (local.set $a10 (i32x4.add (local.get $a10) (i32x4.dot_i16x8_s (local.get $qv) (local.get $c0))))
          (local.set $a11 (i32x4.add (local.get $a11) (i32x4.dot_i16x8_s (local.get $qv) (local.get $c1))))
          (local.set $qk (i32.add (local.get $qk) (local.get $q2)))
          (local.set $qv (v128.load (local.get $qk)))
          (local.set $a20 (i32x4.add (local.get $a20) (i32x4.dot_i16x8_s (local.get $qv) (local.get $c0))))
          (local.set $a21 (i32x4.add (local.get $a21) (i32x4.dot_i16x8_s (local.get $qv) (local.get $c1))))
          (local.set $qk (i32.add (local.get $qk) (local.get $q2)))
          (local.set $qv (v128.load (local.get $qk)))
          (local.set $a30 (i32x4.add (local.get $a30) (i32x4.dot_i16x8_s (local.get $qv) (local.get $c0))))
          (local.set $a31 (i32x4.add (local.get $a31) (i32x4.dot_i16x8_s (local.get $qv) (local.get $c1))))
          (br_if $dot (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 8))) (local.get $dimP))))
        ;; fold the 4x2 tile into best[i..i+3]
        (local.set $b (i32.add (local.get $best) (i32.shl (local.get $i) (i32.const 3))))
        (local.set $qk (i32.add (local.get $qscales) (i32.shl (local.get $i) (i32.const 2))))
        (call $keep (local.get $b) (local.get $a00) (f32.load (local.get $qk)) (f32.load (local.get $scales)))
        (call $keep (local.get $b) (local.get $a01) (f32.load (local.get $qk)) (f32.load offset=4 (local.get $scales)))
        (local.set $b (i32.add (local.get $b) (i32.const 8)))
        (call $keep (local.get $b) (local.get $a10) (f32.load offset=4 (local.get $qk)) (f32.load (local.get $scales)))
        (call $keep (local.get $b) (local.get $a11) (f32.load offset=4 (local.get $qk)) (f32.load offset=4 (local.get $scales)))
        (local.set $b (i32.add (local.get $b) (i32.const 8)))
        (call $keep (local.get $b) (local.get $a20) (f32.load offset=8 (local.get $qk)) (f32.load (local.get $scales)))
        (call $keep (local.get $b) (local.get $a21) (f32.load offset=8 (local.get $qk)) (f32.load offset=4 (local.get $scales)))
        (local.set $b (i32.add (local.get $b) (i32.const 8)))
        (call $keep (local.get $b) (local.get $a30) (f32.load offset=12 (local.get $qk)) (f32.load (local.get $scales)))
        (call $keep (local.get $b) (local.get $a31) (f32.load offset=12 (local.get $qk)) (f32.load offset=4 (local.get $scales)))
        (local.set $qrow (i32.add (local.get $qrow) (i32.shl (local.get $q2) (i32.const 2))))
        (br_if $qrows (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $qRowsP))))
      (local.set $c0p (i32.add (local.get $c0p) (i32.shl (local.get $dimP) (i32.const 1))))
      (local.set $scales (i32.add (local.get $scales) (i32.const 8)))
      (br_if $prows (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 2))) (local.get $rowsP))))
    ;; mean of best over the real query rows
    (local.set $i (i32.const 0))
    (block $sum_done
      (loop $sum
        (br_if $sum_done (i32.ge_u (local.get $i) (local.get $qRows)))
        (local.set $total (f64.add (local.get $total)
          (f64.load (i32.add (local.get $best) (i32.shl (local.get $i) (i32.const 3))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $sum)))
    (f64.div (local.get $total) (f64.convert_i32_u (local.get $qRows))))
)
