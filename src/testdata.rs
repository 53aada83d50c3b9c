//! Deterministic data for the crate's tests and benchmarks. Not part of the agent's interface.

/// `len` pseudo-random bytes (xorshift64) from `seed`: what compressed, encrypted or media
/// payloads look like to a detector, the same on every run.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}
