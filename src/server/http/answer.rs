//! The answer for a certificate, without the transport: the certificate step (401 or a root in
//! doubt), and the body for a wrapped key (`validUntil` from its state, the hard kill switch).
//! The handler and `ccs-endpoint wrap` (offline) both answer through these steps.

use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use time::OffsetDateTime;

use super::failure::Failure;
use super::record::Record;
use crate::cert::{TrustStore, VerifiedCert};
use crate::keystore::{KeyStore, Wrapped};
use crate::protocol::{format_timestamp, KekPath, KeyId};
use crate::wrap::WrapOptions;

#[derive(Serialize)]
pub(super) struct KekBody {
    #[serde(rename = "keyId")]
    key_id: KeyId,
    #[serde(rename = "validUntil")]
    valid_until: String,
    #[serde(rename = "wrappedKey")]
    wrapped_key: String,
}

#[derive(Serialize)]
pub(super) struct ErrorBody<'a> {
    pub(super) error: &'a str,
    #[serde(rename = "errorId", skip_serializing_if = "Option::is_none")]
    pub(super) error_id: Option<&'a str>,
}

/// A certificate as the header carried it (verified through the cache) or as DER.
pub(super) enum Presented<'a> {
    Header(&'a [u8]),
    Der(&'a [u8]),
}

/// The certificate step (401) for a parsed request.
pub(super) fn verify(
    trust: &TrustStore,
    presented: Presented<'_>,
    path: &KekPath,
    now: OffsetDateTime,
    record: &mut Record,
) -> Result<VerifiedCert, Failure> {
    let verified = match presented {
        Presented::Header(value) => trust.verify_header(value, &path.instance, now),
        Presented::Der(der) => trust.verify(der, &path.instance, now),
    };
    let verified = verified.map_err(|rejected| {
        record.cert = rejected.identity.map(|identity| *identity);
        Failure::Cert(rejected.error)
    })?;
    record.cert = Some(verified.identity.clone());
    record.verified_by = Some(verified.verified_by.clone());
    record.cert_not_after = Some(verified.not_after);
    if let Some(doubt) = &verified.trust_doubt {
        return Err(Failure::TrustInDoubt(doubt.clone()));
    }
    Ok(verified)
}

/// The answer for a wrapped key: `validUntil` from its state (the hard kill switch) and the body.
pub(super) fn finish(
    wrapped: &Wrapped,
    validity: time::Duration,
    path: &KekPath,
    now: OffsetDateTime,
    record: &mut Record,
) -> Result<KekBody, Failure> {
    record.kcv = Some(wrapped.state.kcv);
    let valid_until = wrapped
        .state
        .valid_until(now, validity)
        .ok_or_else(|| Failure::Internal("validity overflows the calendar".into()))?;
    record.kill_switch = valid_until <= now;
    record.valid_until_at = Some(valid_until);
    let valid_until = format_timestamp(valid_until);
    record.valid_until = Some(valid_until.clone());
    Ok(KekBody {
        key_id: path.key_id,
        valid_until,
        wrapped_key: BASE64.encode(&wrapped.ciphertext),
    })
}

/// What the server would answer for `der` on `path` at `now` with these roots and keys: the
/// status and the JSON body, by the handler's own steps. For `ccs-endpoint wrap`, which computes
/// it offline (a token's wrap blocks here).
pub fn offline_answer(
    trust: &TrustStore,
    keys: &KeyStore,
    wrap: WrapOptions,
    validity: time::Duration,
    der: &[u8],
    path: &KekPath,
    now: OffsetDateTime,
) -> (StatusCode, String) {
    let mut record = Record {
        instance: Some(path.instance.clone()),
        key_id: Some(path.key_id),
        ..Record::default()
    };
    let answer = verify(trust, Presented::Der(der), path, now, &mut record).and_then(|cert| {
        let wrapped = keys
            .wrap_for(&path.instance, path.key_id, &cert.recipient, wrap)
            .map_err(Failure::Key)?;
        finish(&wrapped, validity, path, now, &mut record)
    });
    let body = match answer {
        Ok(body) => {
            return (
                StatusCode::OK,
                serde_json::to_string(&body).unwrap_or_default(),
            )
        }
        Err(failure) => failure,
    };
    let message = body.message(&record, "offline");
    let error = ErrorBody {
        error: &message,
        error_id: None,
    };
    (
        body.status(),
        serde_json::to_string(&error).unwrap_or_default(),
    )
}
