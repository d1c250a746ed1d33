//! Each case of a benchmark runs several times (`--runs N`, at least 3): a
//! machine that varies by ±20 % run to run makes one figure meaningless.
//! Included with `#[path]` like the other shared files.

#![allow(dead_code)] // each benchmark uses its own subset

/// How many times each case runs: `--runs N`, never fewer than 3.
pub fn runs() -> usize {
    super::util::arg_or("--runs", 3usize).max(3)
}

/// The minimum, median and maximum of `xs` (not empty).
pub fn spread(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// `min A / median B / max C UNIT` with `prec` decimals.
pub fn show(xs: &[f64], prec: usize, unit: &str) -> String {
    let (lo, mid, hi) = spread(xs);
    format!("min {lo:.prec$} / median {mid:.prec$} / max {hi:.prec$} {unit}")
}
