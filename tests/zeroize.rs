//! Secret hygiene in memory: a global allocator that inspects every block freed while armed
//! proves the raw key bytes are wiped before their memory is returned — when a `Secret` is
//! dropped, when a key store is parsed, used and dropped. A control shows the detector sees an
//! unwiped copy. Also: no `Debug` output of the types that hold or describe keys shows them.
//! One test in this binary, so no other test's allocations interfere.

// The one place with `unsafe`: a global allocator must be one. The server's code forbids it
// (`#![forbid(unsafe_code)]` in lib.rs and main.rs; `deny` crate-wide lets this test opt out).
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use base64::Engine;
use ccs_endpoint::keystore::KeySource;
use ccs_endpoint::secret::Secret;

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);
static NEEDLE: [AtomicU8; 32] = [const { AtomicU8::new(0) }; 32];

struct Inspecting;

unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) && layout.size() >= 32 {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            let first = NEEDLE[0].load(Ordering::Relaxed);
            for start in 0..=block.len() - 32 {
                if block[start] == first
                    && (0..32).all(|i| block[start + i] == NEEDLE[i].load(Ordering::Relaxed))
                {
                    FOUND.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Inspecting = Inspecting;

fn arm(needle: &[u8; 32]) {
    for (slot, byte) in NEEDLE.iter().zip(needle) {
        slot.store(*byte, Ordering::SeqCst);
    }
    FOUND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
}

fn disarm() -> usize {
    ARMED.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

#[test]
fn key_bytes_are_wiped_before_their_memory_is_freed_and_never_shown() {
    let secret = Secret::generate().unwrap();
    let raw: [u8; 32] = *secret.expose();
    let hex_text = hex::encode(raw);

    // Control: an unwiped heap copy is seen.
    arm(&raw);
    drop(std::hint::black_box(raw.to_vec()));
    assert_eq!(disarm(), 1, "the detector must see an unwiped copy");

    arm(&raw);
    // A secret on the heap, dropped.
    drop(std::hint::black_box(Box::new(secret.clone())));
    // Parsed from hex, turned back into hex, dropped.
    let again = Secret::from_hex(&hex_text).unwrap();
    drop(std::hint::black_box(again.to_hex()));
    drop(again);
    // A key store holding it, used to wrap, dropped.
    let store = KeySource::File
        .parse(
            std::path::Path::new("keys.toml"),
            &format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{hex_text}\"\n"),
        )
        .unwrap();
    let debug = format!("{store:?} {:?} {secret:?}", store.list());
    drop(store);
    let found = disarm();
    assert_eq!(
        found, 0,
        "raw key bytes were left in {found} freed block(s)"
    );

    for form in [
        hex_text.clone(),
        hex_text.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(raw),
        format!("{raw:?}"),
    ] {
        assert!(!debug.contains(&form), "Debug output shows the secret");
    }
    assert!(
        debug.contains(&secret.kcv().to_string()),
        "Debug names keys by KCV"
    );
}
