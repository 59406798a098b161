//! The signers file (contract §9): parsing never panics, and no error quotes a `secret` value
//! it was given (values of 16 or more characters, what a secret or a piece of one looks like;
//! a value that also stands elsewhere in the text is exempt: errors name an entry by its key id
//! and an unknown field by its name, and those are not secrets; so is a value the error holds
//! whatever the secret is — the same error with the value replaced still holds it, as when the
//! "secret" is the parser's own message).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "shared/quoted.rs"]
mod quoted;
use quoted::values;

fuzz_target!(|text: &str| {
    let path = std::path::Path::new("signers.toml");
    if let Err(e) = ccs_endpoint::signers::Signers::parse(path, text) {
        let message = e.to_string();
        let ids = values(text, "key_id");
        for value in values(text, "secret") {
            let elsewhere = text.matches(value).count() > 1 || ids.iter().any(|id| id.contains(value));
            if value.len() >= 16 && !elsewhere && message.contains(value) {
                let replaced = text.replace(value, &"x".repeat(value.len()));
                let independent = ccs_endpoint::signers::Signers::parse(path, &replaced)
                    .err()
                    .is_some_and(|e| e.to_string().contains(value));
                assert!(independent, "an error quoted a secret");
            }
        }
    }
});
