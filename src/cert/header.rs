//! The `X-DB-Certificate` header value → DER bytes.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::{CertError, MAX_HEADER_LEN};

/// Standard alphabet; padding optional, since some clients strip it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The one header value: exactly one, not empty, not too long.
pub fn single_header<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> Result<&'a [u8], CertError> {
    let value = values.next().ok_or(CertError::Missing)?;
    if values.next().is_some() {
        return Err(CertError::Multiple);
    }
    let value = value.trim_ascii();
    if value.is_empty() {
        return Err(CertError::Empty);
    }
    if value.len() > MAX_HEADER_LEN {
        return Err(CertError::TooLong(value.len()));
    }
    Ok(value)
}

/// Base64 (standard alphabet, padding optional) → DER bytes.
pub fn decode_base64(value: &[u8]) -> Result<Vec<u8>, CertError> {
    BASE64
        .decode(value)
        .map_err(|e| CertError::NotBase64(base64_problem(value, &e)))
}

/// What is wrong with a header value that is not base64, and how to fix it (never the
/// decoder's own wording, such as `Invalid symbol 45, offset 3.`).
fn base64_problem(value: &[u8], e: &base64::DecodeError) -> String {
    const SEND: &str = "send the base64 of the certificate's DER bytes on one line";
    if value.starts_with(b"-----BEGIN") {
        return format!("it looks like PEM: {SEND} (the lines between BEGIN and END, joined)");
    }
    match *e {
        base64::DecodeError::InvalidByte(at, b'-' | b'_') => format!(
            "character {} is from the URL-safe alphabet: use the standard one (+ and /)",
            at + 1
        ),
        base64::DecodeError::InvalidByte(at, byte) if byte.is_ascii_whitespace() => {
            format!("character {} is a space or line break: {SEND}", at + 1)
        }
        base64::DecodeError::InvalidByte(at, _) => {
            format!("character {} is not a base64 character: {SEND}", at + 1)
        }
        base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidLastSymbol(..) => {
            format!("it is cut short or has characters too many: {SEND}")
        }
        base64::DecodeError::InvalidPadding => format!("its `=` padding is wrong: {SEND}"),
    }
}

/// Decodes the header value(s) into DER bytes. Exactly one non-empty value is accepted.
pub fn decode_header<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Vec<u8>, CertError> {
    decode_base64(single_header(values)?)
}
