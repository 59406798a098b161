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
        .map_err(|e| CertError::NotBase64(e.to_string()))
}

/// Decodes the header value(s) into DER bytes. Exactly one non-empty value is accepted.
pub fn decode_header<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Vec<u8>, CertError> {
    decode_base64(single_header(values)?)
}
