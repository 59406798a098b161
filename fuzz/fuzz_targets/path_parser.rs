//! The request path parser: never panics; what it accepts has the documented shape.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|path: &str| {
    if let Ok(parsed) = ccs_endpoint::protocol::parse_kek_path(path) {
        let canonical = format!("/kek/{}/", parsed.instance.as_str());
        assert!(path.starts_with(&canonical));
        let digits = &path[canonical.len()..];
        assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(digits.parse::<u64>().ok(), Some(parsed.key_id));
    }
});
