//! Checking the answer's shape and unwrapping it as the database would.

use aws_lc_rs::rsa::OaepPrivateDecryptingKey;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use zeroize::Zeroizing;

use super::{ProbeError, ProbeOptions};
use crate::protocol::KeyId;
use crate::secret::{Secret, SECRET_LEN};
use crate::wrap::{Padding, Plaintext};

/// Exactly `keyId` (the requested number), `validUntil` (`yyyy-MM-ddTHH:mm:ss.SSSZ`) and
/// `wrappedKey` (padded standard base64).
pub(super) fn check_shape(
    json: &serde_json::Value,
    want_key_id: KeyId,
) -> Result<(KeyId, String, Vec<u8>), ProbeError> {
    let shape = |m: String| ProbeError::Shape(m);
    let object = json
        .as_object()
        .ok_or_else(|| shape("the body is not a JSON object".into()))?;
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    fields.sort_unstable();
    if fields != ["keyId", "validUntil", "wrappedKey"] {
        return Err(shape(format!(
            "fields are {fields:?}, not keyId, validUntil, wrappedKey"
        )));
    }
    let key_id = object["keyId"].as_u64().ok_or_else(|| {
        shape(format!(
            "keyId {} is not an unsigned number",
            object["keyId"]
        ))
    })?;
    if key_id != want_key_id {
        return Err(shape(format!(
            "keyId is {key_id}, but key {want_key_id} was asked for"
        )));
    }
    let valid_until = object["validUntil"]
        .as_str()
        .ok_or_else(|| shape("validUntil is not a string".into()))?;
    let b = valid_until.as_bytes();
    let format_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !format_ok {
        return Err(shape(format!(
            "validUntil {valid_until:?} is not yyyy-MM-ddTHH:mm:ss.SSSZ"
        )));
    }
    let wrapped = object["wrappedKey"]
        .as_str()
        .ok_or_else(|| shape("wrappedKey is not a string".into()))?;
    let wrapped = BASE64
        .decode(wrapped)
        .map_err(|e| shape(format!("wrappedKey is not padded standard base64: {e}")))?;
    Ok((key_id, valid_until.to_owned(), wrapped))
}

/// Unwraps with the expected padding; when that fails, tries the other to name the mismatch.
pub(super) fn unwrap(
    key: &OaepPrivateDecryptingKey,
    wrapped: &[u8],
    options: &ProbeOptions,
) -> Result<(Secret, Padding, Plaintext), ProbeError> {
    let expected = options.expect.padding;
    let other = match expected {
        Padding::OaepSha1 => Padding::OaepSha256,
        Padding::OaepSha256 => Padding::OaepSha1,
    };
    let mut out = Zeroizing::new(vec![0u8; wrapped.len().max(key.key_size_bytes())]);
    let len = match key.decrypt(expected.algorithm(), wrapped, &mut out, None) {
        Ok(plain) => plain.len(),
        Err(_) => {
            return Err(
                match key.decrypt(other.algorithm(), wrapped, &mut out, None) {
                    Ok(_) => ProbeError::Padding {
                        expected: expected.name(),
                        actual: other.name(),
                    },
                    Err(_) => ProbeError::Unwrap {
                        key: options.key.clone(),
                    },
                },
            )
        }
    };
    let plain = &out[..len];
    let (secret, form) = if len == 2 * SECRET_LEN && plain.iter().all(u8::is_ascii_hexdigit) {
        let text = std::str::from_utf8(plain).unwrap_or_default();
        (Secret::from_hex(text), Plaintext::Hex)
    } else if len == SECRET_LEN {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        bytes.copy_from_slice(plain);
        (Secret::from_bytes(bytes), Plaintext::Raw)
    } else {
        return Err(ProbeError::Shape(format!(
            "the unwrapped key is {len} bytes: neither 64 hex characters nor 32 bytes"
        )));
    };
    if form != options.expect.plaintext {
        return Err(ProbeError::Plaintext {
            expected: options.expect.plaintext.name(),
            actual: form.name(),
        });
    }
    let secret = secret.map_err(|e| ProbeError::Shape(format!("the unwrapped key: {e}")))?;
    Ok((secret, expected, form))
}
