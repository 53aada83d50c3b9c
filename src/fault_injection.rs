//! A test hook, compiled only with the `fault-injection` cargo feature (the conformance crate
//! turns it on; release builds leave it off and refuse `--debug-panic-marker`): with
//! `--debug-panic-marker M`, a detector panics on any message containing `M` and a connection
//! actor on any frame whose correlation id contains it, so supervision and the fail-open path can
//! be exercised against the real binary. In-process tests can also ask for one connection
//! actor panic on the next frame of one correlation id ([`crash_next_frame_of`]), so that the
//! frame after it shows what a fresh actor decides.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

static MARKER: OnceLock<Vec<u8>> = OnceLock::new();

/// Correlation ids whose next frame crashes its connection actor (once each).
static CRASH_ONCE: Mutex<Option<HashSet<Vec<u8>>>> = Mutex::new(None);
/// True while [`CRASH_ONCE`] may hold an id: frames skip the lock otherwise.
static CRASH_ONCE_ARMED: AtomicBool = AtomicBool::new(false);

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

/// The connection actor that handles the next frame of `correlation_id` panics (once).
pub fn crash_next_frame_of(correlation_id: &str) {
    let mut ids = CRASH_ONCE.lock().unwrap_or_else(|e| e.into_inner());
    ids.get_or_insert_with(HashSet::new)
        .insert(correlation_id.as_bytes().to_vec());
    CRASH_ONCE_ARMED.store(true, Ordering::Release);
}

/// Panics when `correlation_id` matches the marker, or was given to [`crash_next_frame_of`]
/// since its last frame.
pub fn maybe_crash_connection(correlation_id: &[u8]) {
    maybe_panic(correlation_id);
    if !CRASH_ONCE_ARMED.load(Ordering::Acquire) {
        return;
    }
    let crash = {
        let mut ids = CRASH_ONCE.lock().unwrap_or_else(|e| e.into_inner());
        ids.as_mut().is_some_and(|ids| ids.remove(correlation_id))
    };
    if crash {
        panic!("fault injection: connection actor crash requested by a test");
    }
}
