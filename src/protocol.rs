//! The wire protocol: the request path, the names it carries, and the time format of answers.

use std::fmt;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// The longest instance name the path may carry (a DNS label).
pub const MAX_INSTANCE_LEN: usize = 63;

/// The first label of a SaaS instance host (`ccsdemo` for ccsdemo.service-now.com):
/// 1–63 characters of `A–Z a–z 0–9 _ -`, compared exactly.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceName(String);

impl InstanceName {
    /// Parses an instance name, refusing anything outside the allowed characters.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() || s.len() > MAX_INSTANCE_LEN {
            return Err(NameError::InstanceLength(s.len()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(NameError::InstanceCharacters);
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Common Name a database certificate for this instance must carry.
    pub fn expected_common_name(&self) -> String {
        format!("tse_{}", self.0)
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A key id: an unsigned decimal integer that fits in 64 bits. Today the SaaS always asks for 1.
pub type KeyId = u64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the instance name must be 1 to {MAX_INSTANCE_LEN} characters long (found {0})")]
    InstanceLength(usize),
    #[error("the instance name may hold only the characters A-Z a-z 0-9 _ -")]
    InstanceCharacters,
}

/// A request path of the exact form `/kek/<instance>/<key_id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekPath {
    pub instance: InstanceName,
    pub key_id: KeyId,
}

/// Why a path is not a key request. Every variant answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("unknown path: the only resource is GET /kek/<instance>/<key_id>")]
    NotKek,
    #[error("the path must be exactly /kek/<instance>/<key_id>, with no empty, extra or trailing segment")]
    Shape,
    #[error("{0}")]
    Instance(NameError),
    #[error(
        "the key id must be a decimal integer from 0 to {} (digits only, no sign)",
        u64::MAX
    )]
    KeyId,
    #[error("the request must not carry a query string")]
    Query,
}

/// Parses the path of a request (without its query).
///
/// The path is taken byte for byte: no percent-decoding, no dot-segment removal and no case
/// folding, so `/kek/%61/1`, `/kek/../x/1` and `/KEK/a/1` are all refused.
pub fn parse_kek_path(path: &str) -> Result<KekPath, PathError> {
    let rest = path.strip_prefix("/kek/").ok_or(PathError::NotKek)?;
    let mut segments = rest.split('/');
    let (Some(instance), Some(key_id), None) = (segments.next(), segments.next(), segments.next())
    else {
        return Err(PathError::Shape);
    };
    if instance.is_empty() || key_id.is_empty() {
        return Err(PathError::Shape);
    }
    let instance = InstanceName::parse(instance).map_err(PathError::Instance)?;
    Ok(KekPath {
        instance,
        key_id: parse_key_id(key_id)?,
    })
}

/// Digits only: `u64::from_str` would also take a leading `+`.
fn parse_key_id(s: &str) -> Result<KeyId, PathError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PathError::KeyId);
    }
    s.parse().map_err(|_| PathError::KeyId)
}

const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats a moment as the protocol wants it: UTC, `yyyy-MM-ddTHH:mm:ss.SSSZ`.
///
/// Sub-millisecond digits are truncated, never rounded up, so the answer is never later than
/// the moment it stands for.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    // Only fails for years outside 0..=9999, which every caller bounds (validity is capped).
    t.format(TIMESTAMP)
        .unwrap_or_else(|_| String::from("9999-12-31T23:59:59.999Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn paths() {
        let ok: &[(&str, &str, u64)] = &[
            ("/kek/ccsdemo/1", "ccsdemo", 1),
            ("/kek/a/0", "a", 0),
            ("/kek/A-b_9/18446744073709551615", "A-b_9", u64::MAX),
            ("/kek/ccsdemo/007", "ccsdemo", 7),
        ];
        for (path, instance, key_id) in ok {
            let parsed = parse_kek_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(parsed.instance.as_str(), *instance, "{path}");
            assert_eq!(parsed.key_id, *key_id, "{path}");
        }
        let long = format!("/kek/{}/1", "a".repeat(64));
        let max = format!("/kek/{}/1", "a".repeat(63));
        assert!(parse_kek_path(&max).is_ok());
        let bad: &[(&str, PathError)] = &[
            ("/", PathError::NotKek),
            ("", PathError::NotKek),
            ("/kek", PathError::NotKek),
            ("/kek/", PathError::Shape),
            ("/KEK/ccsdemo/1", PathError::NotKek),
            ("/Kek/ccsdemo/1", PathError::NotKek),
            ("//kek/ccsdemo/1", PathError::NotKek),
            ("/kek/ccsdemo", PathError::Shape),
            ("/kek/ccsdemo/", PathError::Shape),
            ("/kek/ccsdemo/1/", PathError::Shape),
            ("/kek/ccsdemo/1/2", PathError::Shape),
            ("/kek//1", PathError::Shape),
            ("/kek/ccsdemo//1", PathError::Shape),
            (
                "/kek/../1",
                PathError::Instance(NameError::InstanceCharacters),
            ),
            ("/kek/ccsdemo/..", PathError::KeyId),
            ("/kek/../ccsdemo/1", PathError::Shape),
            (
                "/kek/ccs.demo/1",
                PathError::Instance(NameError::InstanceCharacters),
            ),
            (
                "/kek/ccs%64emo/1",
                PathError::Instance(NameError::InstanceCharacters),
            ),
            (
                "/kek/ccs demo/1",
                PathError::Instance(NameError::InstanceCharacters),
            ),
            (
                "/kek/ccsdémo/1",
                PathError::Instance(NameError::InstanceCharacters),
            ),
            (&long, PathError::Instance(NameError::InstanceLength(64))),
            ("/kek/ccsdemo/+1", PathError::KeyId),
            ("/kek/ccsdemo/-1", PathError::KeyId),
            ("/kek/ccsdemo/1a", PathError::KeyId),
            ("/kek/ccsdemo/0x1", PathError::KeyId),
            ("/kek/ccsdemo/1.0", PathError::KeyId),
            ("/kek/ccsdemo/ 1", PathError::KeyId),
            ("/kek/ccsdemo/18446744073709551616", PathError::KeyId),
            ("/kek/ccsdemo/99999999999999999999999", PathError::KeyId),
            ("/kek/ccsdemo/%31", PathError::KeyId),
        ];
        for (path, want) in bad {
            assert_eq!(parse_kek_path(path).as_ref(), Err(want), "{path}");
        }
    }

    #[test]
    fn instance_names() {
        assert!(InstanceName::parse("tse-prod_01").is_ok());
        assert_eq!(InstanceName::parse(""), Err(NameError::InstanceLength(0)));
        assert_eq!(
            InstanceName::parse("a/b"),
            Err(NameError::InstanceCharacters)
        );
        let name = InstanceName::parse("ccsdemo").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.expected_common_name(), "tse_ccsdemo");
    }

    #[test]
    fn timestamps() {
        let rows = [
            (
                datetime!(2026-11-29 10:15:00 UTC),
                "2026-11-29T10:15:00.000Z",
            ),
            (
                datetime!(2026-01-02 03:04:05.678 UTC),
                "2026-01-02T03:04:05.678Z",
            ),
            (
                datetime!(2026-01-02 03:04:05.678999 UTC),
                "2026-01-02T03:04:05.678Z",
            ),
            (
                datetime!(2026-01-02 01:00:00 +02:00),
                "2026-01-01T23:00:00.000Z",
            ),
            (
                datetime!(0999-12-31 23:59:59.9999 UTC),
                "0999-12-31T23:59:59.999Z",
            ),
        ];
        for (t, want) in rows {
            assert_eq!(format_timestamp(t), want);
        }
    }
}
