//! The configuration parser: never panics, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = ccs_endpoint::config::Config::parse(
        std::path::Path::new("/etc/ccs/ccs-endpoint.toml"),
        text,
    );
});
