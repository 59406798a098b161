//! The head guard's judgement of arbitrary bytes (and the lenient reading of a refused key
//! store's withdrawals): never panics; a head it passes is within the limit, judged the same
//! when cut out alone, and a target with a fragment never passes.
#![no_main]

use ccs_endpoint::server::head_guard::{judge, Judged};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    match judge(data, MAX) {
        Judged::Head { len, then_body } => {
            assert!(len <= data.len() && len <= MAX);
            assert_eq!(judge(&data[..len], MAX), Judged::Head { len, then_body });
            let head = String::from_utf8_lossy(&data[..len]);
            let request_line = head.lines().find(|l| !l.is_empty()).unwrap_or_default();
            let target = request_line.split(' ').nth(1).unwrap_or_default();
            assert!(!target.contains('#'), "a fragment passed: {request_line:?}");
        }
        Judged::H2 => assert!(data.starts_with(b"PRI * HTTP/2.0\r\n")),
        Judged::NeedMore => assert!(data.len() <= MAX),
        Judged::Refuse(_) => {}
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ccs_endpoint::keystore::Withdrawals::read(text);
    }
});
