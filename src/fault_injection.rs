//! A test hook, compiled only with the `fault-injection` cargo feature (the conformance crate
//! turns it on; release builds leave it off and refuse `--debug-panic-marker`): with
//! `--debug-panic-marker M`, a detector panics on any message containing `M` and a connection
//! actor on any frame whose correlation id contains it, so supervision and the fail-open path can
//! be exercised against the real binary.

use std::sync::OnceLock;

static MARKER: OnceLock<Vec<u8>> = OnceLock::new();

/// Arms the hook (once per process).
pub fn arm(marker: &str) {
    if !marker.is_empty() {
        let _ = MARKER.set(marker.as_bytes().to_vec());
    }
}

/// Panics when the hook is armed and `data` contains the marker.
pub fn maybe_panic(data: &[u8]) {
    if let Some(marker) = MARKER.get() {
        if data.windows(marker.len()).any(|w| w == marker.as_slice()) {
            panic!("fault injection: detector panic requested by --debug-panic-marker");
        }
    }
}
