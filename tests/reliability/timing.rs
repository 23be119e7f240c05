//! Timing report for `seed::verify`: does the time to reject a signature depend on how many of
//! its leading hex digits match the expected one? A report, not a test (timing assertions are
//! flaky on shared machines): run `tests/reliability/timing.sh`.
//!
//! Method: one secret and user id; signatures that agree with the expected signature on the
//! first 0, 16, 32, 48 and 63 hex digits (the rest changed), plus the valid signature for
//! reference. Batches of calls are timed round-robin across the classes so that frequency
//! scaling and other load hit every class alike. Each class's batch means are compared with the
//! 0-digit class by Welch's t. As a control that the method can see a leak at this noise level,
//! the same measurement is made of a copy of `seed::verify` (hex decode, same HMAC) that ends in
//! a hand-rolled early-exit byte comparison instead (the standard-webhooks counter-example in
//! STYLE.md): there the means and t values grow with the matching prefix.

use std::hint::black_box;
use std::time::Instant;

use dropfix_core::{SecretKey, seed};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIXES: [usize; 5] = [0, 16, 32, 48, 63];

/// Sample mean and unbiased variance.
fn stats(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Welch's t statistic of two samples.
fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let (ma, va) = stats(a);
    let (mb, vb) = stats(b);
    (mb - ma) / (va / a.len() as f64 + vb / b.len() as f64).sqrt()
}

/// A signature equal to `expected` on its first `keep` hex digits and different on every other.
fn with_prefix(expected: &str, keep: usize) -> String {
    expected
        .char_indices()
        .map(|(i, c)| {
            if i < keep {
                c
            } else if c == '0' {
                '1'
            } else {
                '0'
            }
        })
        .collect()
}

/// `seed::verify` as a careless implementation would write it: the same hex decoding and HMAC,
/// then a comparison that returns at the first differing byte.
fn leaky_verify(mac: &Hmac<Sha256>, user_id: &str, signature: &str) -> bool {
    let mut given = [0u8; 32];
    if hex::decode_to_slice(signature, &mut given).is_err() {
        return false;
    }
    let mut mac = mac.clone();
    mac.update(user_id.as_bytes());
    let expected = mac.finalize().into_bytes();
    for i in 0..32 {
        if black_box(given[i]) != black_box(expected[i]) {
            return false;
        }
    }
    true
}

/// Times `f` on every input, `rounds` batches of `batch` calls per input, interleaved.
/// Returns, per input, the mean nanoseconds per call of each batch.
fn measure<T>(inputs: &[T], rounds: usize, batch: usize, f: impl Fn(&T) -> bool) -> Vec<Vec<f64>> {
    let mut samples = vec![Vec::with_capacity(rounds); inputs.len()];
    for _ in 0..batch * 20 {
        for input in inputs {
            black_box(f(black_box(input)));
        }
    }
    for round in 0..rounds {
        // Rotate the order every round so no class always runs first.
        for k in 0..inputs.len() {
            let i = (k + round) % inputs.len();
            let input = &inputs[i];
            let start = Instant::now();
            for _ in 0..batch {
                black_box(f(black_box(input)));
            }
            samples[i].push(start.elapsed().as_nanos() as f64 / batch as f64);
        }
    }
    samples
}

fn report(title: &str, labels: &[String], samples: &[Vec<f64>]) {
    println!("\n{title}");
    println!(
        "  {:<28} {:>10} {:>10} {:>9} {:>9}",
        "class", "mean ns", "median ns", "sd ns", "t vs 0"
    );
    for (label, s) in labels.iter().zip(samples) {
        let (mean, var) = stats(s);
        let mut sorted = s.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "  {:<28} {:>10.2} {:>10.2} {:>9.2} {:>9.2}",
            label,
            mean,
            sorted[sorted.len() / 2],
            var.sqrt(),
            welch_t(&samples[0], s)
        );
    }
}

fn main() {
    let rounds: usize = std::env::var("TIMING_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let batch: usize = std::env::var("TIMING_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let secrets = [SecretKey::new("dfsk_timing_report_secret")];
    let user_id = "user-42";
    let expected = seed::sign(&secrets[0], user_id);

    let mut labels: Vec<String> = PREFIXES
        .iter()
        .map(|k| format!("{k:>2} leading hex digits match"))
        .collect();
    let mut sigs: Vec<String> = PREFIXES
        .iter()
        .map(|&k| with_prefix(&expected, k))
        .collect();
    for sig in &sigs {
        assert_eq!(
            seed::verify(&secrets, user_id, sig),
            seed::SeedCheck::Mismatch
        );
    }
    labels.push("valid (all 64 match)".into());
    sigs.push(expected.clone());

    println!(
        "seed::verify timing: {rounds} rounds x {batch} calls per class ({} calls per class)",
        rounds * batch
    );
    let samples = measure(&sigs, rounds, batch, |sig| {
        matches!(
            seed::verify(&secrets, user_id, sig),
            seed::SeedCheck::Valid { .. }
        )
    });
    report(
        "seed::verify (HMAC + constant-time verify_slice)",
        &labels,
        &samples,
    );

    // Control: the same signatures through the early-exit copy. It compares bytes, so the
    // prefixes are half the hex ones (63 hex digits = 31 whole bytes).
    let keyed = Hmac::<Sha256>::new_from_slice(b"dfsk_timing_report_secret").unwrap();
    let control = measure(&sigs, rounds, batch, |sig| {
        leaky_verify(&keyed, user_id, sig)
    });
    report(
        "control: same HMAC, early-exit comparison (what a leak looks like)",
        &labels,
        &control,
    );
    println!(
        "\n|t| well below ~4 in the first table means no detectable dependence on the matching \
         prefix; the control shows the measurement is sensitive enough to see one."
    );
}
