//! The key-store parser, in both of its forms (secrets in the file; KCVs of secrets kept in a
//! token): never panics, and no error ever quotes a `secret` value it was given (values of 16
//! or more hex digits: what a secret, or a piece of one, looks like). Errors do name an entry by
//! its instance, so a value that is also part of an instance name is exempt.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "shared/quoted.rs"]
mod quoted;
use quoted::values;

fuzz_target!(|text: &str| {
    use ccs_endpoint::keystore::{parse_entries, SecretsIn};
    let path = std::path::Path::new("keys.toml");
    for secrets in [SecretsIn::File, SecretsIn::Token] {
        if let Err(e) = parse_entries(path, text, secrets) {
            check(text, &e.to_string());
        }
    }
});

/// No error may quote a secret-looking `secret` value of the input.
fn check(text: &str, message: &str) {
    let instances = values(text, "instance");
    for value in values(text, "secret") {
        let secret_like = value.len() >= 16 && value.bytes().all(|b| b.is_ascii_hexdigit());
        if secret_like && !instances.iter().any(|i| i.contains(value)) {
            assert!(!message.contains(value), "an error quoted a secret");
        }
    }
}
