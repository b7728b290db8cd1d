//! Int8 matrices with one f32 scale per 32 values, and single-threaded matmul kernels (AVX-VNNI / AVX512-VNNI, AVX2, scalar).
//!
//! Same scheme as GGML's Q8_0 × Q8_0 (weights and activations both quantized per 32-value block)
//! but with f32 scales and kernels that compute four output columns per pass over an activation
//! row. candle's Q8_0 `vec_dot` spends most of its time converting f16 scales and re-reducing
//! for every single dot product; this is about 3x faster for prefill on AVX512-VNNI.
//!
//! Every output element is computed by the same sequence of operations whatever the number of
//! rows in the batch, so results do not depend on how a prompt is split into chunks.

/// Values per quantization block.
pub(crate) const QK: usize = 32;
/// Rows of activations that reuse the same four weight rows while they are in L1.
const ROW_TILE: usize = 8;

/// Which kernel the CPU supports (chosen once at load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Scalar,
    Avx2,
    /// VEX-encoded VNNI (`avxvnni`).
    AvxVnni,
    /// EVEX-encoded VNNI on 256-bit registers (`avx512vnni` + `avx512vl`).
    Avx512Vnni,
}

impl Kernel {
    /// Best kernel for this CPU.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
                return Self::Avx512Vnni;
            }
            if is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("fma") {
                return Self::AvxVnni;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Self::Avx2;
            }
        }
        Self::Scalar
    }

    /// Every kernel this CPU can run (for tests).
    #[cfg(test)]
    pub fn available() -> Vec<Self> {
        let best = Self::detect();
        let mut all = vec![Self::Scalar];
        if best != Self::Scalar {
            all.push(Self::Avx2);
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("fma") {
            all.push(Self::AvxVnni);
        }
        if best == Self::Avx512Vnni {
            all.push(Self::Avx512Vnni);
        }
        all
    }

    /// VNNI kernels take the weights as unsigned bytes (`w + 128`).
    fn biased(self) -> bool {
        matches!(self, Self::AvxVnni | Self::Avx512Vnni)
    }
}

/// Quantize one block: scale = max|x| / 127, values rounded to nearest.
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (o, v) in q.iter_mut().zip(x) {
        // Round half to even without a libm call (exact for |v * id| <= 127).
        let r = (v * id + 12_582_912.0) - 12_582_912.0;
        *o = r.clamp(-127.0, 127.0) as i8;
    }
    d
}

/// Weight matrix: `rows` output features of `cols` inputs, row-major.
pub(crate) struct Q8Mat {
    pub rows: usize,
    pub cols: usize,
    q: Vec<i8>,
    d: Vec<f32>,
    kernel: Kernel,
}

/// Quantized activations (`m` rows), ready for [`Q8Mat::matmul`].
pub(crate) struct Q8Acts {
    m: usize,
    cols: usize,
    q: Vec<i8>,
    d: Vec<f32>,
    /// VNNI only: per block and 4-value lane, `-128 × sum(x)` (cancels the weight bias).
    negbias: Vec<i32>,
}

impl Q8Acts {
    pub fn quantize(x: &[f32], cols: usize, kernel: Kernel) -> Self {
        assert!(cols.is_multiple_of(QK) && x.len().is_multiple_of(cols));
        let m = x.len() / cols;
        let mut q = vec![0i8; x.len()];
        let d: Vec<f32> = x.chunks_exact(QK).zip(q.chunks_exact_mut(QK)).map(|(xb, qb)| quantize_block(xb, qb)).collect();
        let negbias = if kernel.biased() {
            q.chunks_exact(4).map(|l| -128 * l.iter().map(|v| i32::from(*v)).sum::<i32>()).collect()
        } else {
            Vec::new()
        };
        Self { m, cols, q, d, negbias }
    }
}

impl Q8Mat {
    pub fn quantize(data: &[f32], rows: usize, cols: usize, kernel: Kernel) -> Self {
        assert!(cols.is_multiple_of(QK) && data.len() == rows * cols);
        let mut q = vec![0i8; data.len()];
        let d = data.chunks_exact(QK).zip(q.chunks_exact_mut(QK)).map(|(xb, qb)| quantize_block(xb, qb)).collect();
        if kernel.biased() {
            for v in q.iter_mut() {
                *v = (*v as u8 ^ 0x80) as i8;
            }
        }
        Self { rows, cols, q, d, kernel }
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Dequantized row `r` into `out` (`cols` values).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let kb = self.cols / QK;
        let q = &self.q[r * self.cols..(r + 1) * self.cols];
        let bias = if self.kernel.biased() { 0x80u8 } else { 0 };
        for ((ob, qb), d) in out.chunks_exact_mut(QK).zip(q.chunks_exact(QK)).zip(&self.d[r * kb..(r + 1) * kb]) {
            for (o, v) in ob.iter_mut().zip(qb) {
                *o = f32::from((*v as u8 ^ bias) as i8) * d;
            }
        }
    }

    /// `out[m × rows] = x[m × cols] · selfᵀ`.
    pub fn matmul(&self, x: &Q8Acts, out: &mut [f32]) {
        assert_eq!(x.cols, self.cols, "activation width");
        assert_eq!(out.len(), x.m * self.rows, "output size");
        let (k, kb, n) = (self.cols, self.cols / QK, self.rows);
        for r0 in (0..x.m).step_by(ROW_TILE) {
            let r1 = x.m.min(r0 + ROW_TILE);
            let mut c = 0;
            while c < n {
                let width = (n - c).min(4);
                for r in r0..r1 {
                    let xq = &x.q[r * k..(r + 1) * k];
                    let xd = &x.d[r * kb..(r + 1) * kb];
                    let nb = if x.negbias.is_empty() { &[][..] } else { &x.negbias[r * kb * 8..(r + 1) * kb * 8] };
                    let dst = &mut out[r * n + c..r * n + c + width];
                    if width == 4 {
                        let w = &self.q[c * k..(c + 4) * k];
                        let wd = &self.d[c * kb..(c + 4) * kb];
                        dst.copy_from_slice(&self.dot4(xq, xd, nb, w, wd));
                    } else {
                        for (j, o) in dst.iter_mut().enumerate() {
                            let cc = c + j;
                            *o = self.dot1(xq, xd, nb, &self.q[cc * k..(cc + 1) * k], &self.d[cc * kb..(cc + 1) * kb]);
                        }
                    }
                }
                c += width;
            }
        }
    }

    /// Four consecutive weight rows `w` (4 × k) against one activation row.
    fn dot4(&self, xq: &[i8], xd: &[f32], nb: &[i32], w: &[i8], wd: &[f32]) -> [f32; 4] {
        debug_assert!(w.len() == 4 * xq.len() && wd.len() == 4 * xd.len());
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the kernel was chosen by runtime feature detection; slice lengths are
            // checked by the callers (`matmul` asserts shapes) and re-checked in the kernel.
            Kernel::Avx512Vnni => unsafe { x86::dot4_avx512vnni(xq, xd, nb, w, wd) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::AvxVnni => unsafe { x86::dot4_avxvnni(xq, xd, nb, w, wd) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { x86::dot4_avx2(xq, xd, w, wd) },
            _ => {
                let k = xq.len();
                let kb = xd.len();
                std::array::from_fn(|j| dot_scalar(xq, xd, &w[j * k..(j + 1) * k], &wd[j * kb..(j + 1) * kb], self.kernel.biased()))
            }
        }
    }

    fn dot1(&self, xq: &[i8], xd: &[f32], nb: &[i32], w: &[i8], wd: &[f32]) -> f32 {
        let _ = nb;
        dot_scalar(xq, xd, w, wd, self.kernel.biased())
    }
}

/// Reference dot product (8 float lanes of 4 values per block, like the SIMD kernels).
fn dot_scalar(xq: &[i8], xd: &[f32], w: &[i8], wd: &[f32], biased: bool) -> f32 {
    let bias = if biased { 0x80u8 } else { 0 };
    let mut acc = [0f32; 8];
    for (b, (xb, wb)) in xq.chunks_exact(QK).zip(w.chunks_exact(QK)).enumerate() {
        let s = xd[b] * wd[b];
        for (lane, (xl, wl)) in xb.chunks_exact(4).zip(wb.chunks_exact(4)).enumerate() {
            let t: i32 = xl.iter().zip(wl).map(|(x, w)| i32::from(*x) * i32::from((*w as u8 ^ bias) as i8)).sum();
            acc[lane] += t as f32 * s;
        }
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::QK;

    /// # Safety
    /// Only called from the AVX2 kernels below.
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        // ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)), same order as `dot_scalar`.
        // SAFETY: AVX is enabled in every caller.
        unsafe {
            let lo = _mm256_castps256_ps128(v);
            let hi = _mm256_extractf128_ps::<1>(v);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }

    type Block = [i8; QK];

    /// Four consecutive rows (`w`: 4 × k values, `wd`: 4 × kb scales) as blocks.
    #[allow(clippy::type_complexity)]
    fn rows4<'a>(w: &'a [i8], wd: &'a [f32], kb: usize) -> ([&'a [Block]; 4], [&'a [f32]; 4]) {
        let (blocks, rest) = w.as_chunks::<QK>();
        assert!(rest.is_empty() && blocks.len() == 4 * kb && wd.len() == 4 * kb);
        let (w01, w23) = blocks.split_at(2 * kb);
        let (w0, w1) = w01.split_at(kb);
        let (w2, w3) = w23.split_at(kb);
        let (d01, d23) = wd.split_at(2 * kb);
        let (d0, d1) = d01.split_at(kb);
        let (d2, d3) = d23.split_at(kb);
        ([w0, w1, w2, w3], [d0, d1, d2, d3])
    }

    #[inline(always)]
    fn load32(v: &Block) -> __m256i {
        // SAFETY: `v` is 32 bytes; unaligned load.
        unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) }
    }

    #[inline(always)]
    fn load8(v: &[i32; 8]) -> __m256i {
        // SAFETY: `v` is 32 bytes; unaligned load.
        unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) }
    }

    macro_rules! vnni_kernel {
        ($name:ident, $features:literal, $dpbusd:ident) => {
            /// # Safety
            /// The CPU must support the enabled features.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(xq: &[i8], xd: &[f32], nb: &[i32], w: &[i8], wd: &[f32]) -> [f32; 4] {
                let kb = xd.len();
                let (x, _) = xq.as_chunks::<QK>();
                let (nb, _) = nb.as_chunks::<8>();
                let ([w0, w1, w2, w3], [d0, d1, d2, d3]) = rows4(w, wd, kb);
                assert!(x.len() == kb && nb.len() == kb);
                let (mut a0, mut a1, mut a2, mut a3) =
                    (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                for b in 0..kb {
                    let xv = load32(&x[b]);
                    let bias = load8(&nb[b]);
                    let dx = _mm256_set1_ps(xd[b]);
                    // bias + Σ (w + 128) · x = Σ w · x per 4-value lane.
                    let f0 = _mm256_cvtepi32_ps($dpbusd(bias, load32(&w0[b]), xv));
                    let f1 = _mm256_cvtepi32_ps($dpbusd(bias, load32(&w1[b]), xv));
                    let f2 = _mm256_cvtepi32_ps($dpbusd(bias, load32(&w2[b]), xv));
                    let f3 = _mm256_cvtepi32_ps($dpbusd(bias, load32(&w3[b]), xv));
                    a0 = _mm256_fmadd_ps(f0, _mm256_mul_ps(dx, _mm256_set1_ps(d0[b])), a0);
                    a1 = _mm256_fmadd_ps(f1, _mm256_mul_ps(dx, _mm256_set1_ps(d1[b])), a1);
                    a2 = _mm256_fmadd_ps(f2, _mm256_mul_ps(dx, _mm256_set1_ps(d2[b])), a2);
                    a3 = _mm256_fmadd_ps(f3, _mm256_mul_ps(dx, _mm256_set1_ps(d3[b])), a3);
                }
                // SAFETY: AVX is enabled here.
                unsafe { [hsum(a0), hsum(a1), hsum(a2), hsum(a3)] }
            }
        };
    }

    vnni_kernel!(dot4_avx512vnni, "avx512vnni,avx512vl,avx2,fma", _mm256_dpbusd_epi32);
    vnni_kernel!(dot4_avxvnni, "avxvnni,avx2,fma", _mm256_dpbusd_avx_epi32);

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot4_avx2(xq: &[i8], xd: &[f32], w: &[i8], wd: &[f32]) -> [f32; 4] {
        let kb = xd.len();
        let (x, _) = xq.as_chunks::<QK>();
        let ([w0, w1, w2, w3], [d0, d1, d2, d3]) = rows4(w, wd, kb);
        assert_eq!(x.len(), kb);
        let ones = _mm256_set1_epi16(1);
        // |w| · (x · sign(w)) = w · x; |w|, |x| <= 127 so the i16 pair sums cannot saturate.
        let dot = |wv: __m256i, xv: __m256i| {
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
            _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones))
        };
        let (mut a0, mut a1, mut a2, mut a3) =
            (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        for b in 0..kb {
            let xv = load32(&x[b]);
            let dx = _mm256_set1_ps(xd[b]);
            a0 = _mm256_fmadd_ps(dot(load32(&w0[b]), xv), _mm256_mul_ps(dx, _mm256_set1_ps(d0[b])), a0);
            a1 = _mm256_fmadd_ps(dot(load32(&w1[b]), xv), _mm256_mul_ps(dx, _mm256_set1_ps(d1[b])), a1);
            a2 = _mm256_fmadd_ps(dot(load32(&w2[b]), xv), _mm256_mul_ps(dx, _mm256_set1_ps(d2[b])), a2);
            a3 = _mm256_fmadd_ps(dot(load32(&w3[b]), xv), _mm256_mul_ps(dx, _mm256_set1_ps(d3[b])), a3);
        }
        // SAFETY: AVX is enabled here.
        unsafe { [hsum(a0), hsum(a1), hsum(a2), hsum(a3)] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    #[test]
    fn kernels_match_f32_reference() {
        let (rows, cols, m) = (10, 96, 3);
        let w = pseudo_random(rows * cols, 1);
        let x = pseudo_random(m * cols, 2);
        let mut want = vec![0f32; m * rows];
        for r in 0..m {
            for c in 0..rows {
                want[r * rows + c] = (0..cols).map(|i| x[r * cols + i] * w[c * cols + i]).sum();
            }
        }
        let mut results = Vec::new();
        for kernel in Kernel::available() {
            let mat = Q8Mat::quantize(&w, rows, cols, kernel);
            let acts = Q8Acts::quantize(&x, cols, kernel);
            let mut got = vec![0f32; m * rows];
            mat.matmul(&acts, &mut got);
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 0.05 * (1.0 + e.abs()), "{kernel:?}: {g} vs {e}");
            }
            // Row independence: each row alone gives the same bits.
            for r in 0..m {
                let one = Q8Acts::quantize(&x[r * cols..(r + 1) * cols], cols, kernel);
                let mut single = vec![0f32; rows];
                mat.matmul(&one, &mut single);
                assert_eq!(single, got[r * rows..(r + 1) * rows], "{kernel:?} row {r}");
            }
            let mut row = vec![0f32; cols];
            mat.dequantize_row(3, &mut row);
            assert!(row.iter().zip(&w[3 * cols..4 * cols]).all(|(a, b)| (a - b).abs() < 0.02));
            results.push(got);
        }
        // All kernels compute the same integer block sums; only FMA rounding may differ.
        for r in &results[1..] {
            for (a, b) in r.iter().zip(&results[0]) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()));
            }
        }
    }
}
