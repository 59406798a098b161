//! `RUST_LOG` → the log filter, refusing what would silently drop the lines operators rely on.
//!
//! tracing's own syntax reads a bare word as a target: `RUST_LOG=verbose` parses, enables the
//! target `verbose` and nothing else, and so silences every request and audit line. Here a bare
//! word must be a level or a target of this program.

use tracing_subscriber::EnvFilter;

/// The levels a directive may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The filter for `value` (the `RUST_LOG` text); `None` or blank means `info`.
pub fn parse(value: Option<&str>) -> Result<EnvFilter, String> {
    let value = match value.map(str::trim) {
        None | Some("") => return Ok(EnvFilter::new("info")),
        Some(v) => v,
    };
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains('=') && !directive.contains('[');
        let ours = directive == "ccs_endpoint" || directive.starts_with("ccs_endpoint::");
        if bare && !ours && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "RUST_LOG: `{}` is neither a level ({}) nor target=level (such as ccs_endpoint=debug); \
                 as written it would hide every request and audit line",
                directive.escape_debug(),
                LEVELS.join(", ")
            ));
        }
    }
    EnvFilter::try_new(value).map_err(|e| format!("RUST_LOG: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn levels_and_targets_pass_and_bare_words_do_not() {
        for good in [
            None,
            Some(""),
            Some("info"),
            Some("DEBUG"),
            Some("warn,ccs_endpoint::request=info"),
            Some("ccs_endpoint"),
            Some("info,hyper=off"),
        ] {
            assert!(parse(good).is_ok(), "{good:?}");
        }
        for bad in ["verbose", "info,verbos", "ccs_endpoint=loud", "=x=y"] {
            let error = parse(Some(bad)).err().unwrap_or_default();
            assert!(error.starts_with("RUST_LOG: "), "{bad}: {error}");
        }
    }
}
