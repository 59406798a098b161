//! Who signed an admin API request (RFC 9421, contract §9), in this order: a signature at all,
//! its parameters, a signer that may sign now, its algorithm, what the signature covers, its
//! time window and the body's digest, the HMAC (constant time) — and then, only for a request a
//! signer made, its one-time nonce (by the caller, which knows where nonces are kept).

use time::OffsetDateTime;

use crate::httpsig::{self, Message, Params, Refusal};
use crate::signers::{Signer, Signers};

/// The signer of `message` and the signature's parameters, or why it is refused (401).
pub fn authenticate<'s>(
    message: &Message<'_>,
    signers: &'s Signers,
    now: OffsetDateTime,
    skew: i64,
) -> Result<(&'s Signer, Params), Refusal> {
    let params = httpsig::params(message)?;
    let signer = signers.signer(&params.keyid, now)?;
    if params.alg != signer.algorithm.name() {
        return Err(Refusal::AlgMismatch {
            keyid: params.keyid.clone(),
            found: params.alg.clone(),
            expected: signer.algorithm.name(),
        });
    }
    httpsig::check(&params, message, now.unix_timestamp(), skew)?;
    httpsig::verify_hmac(&params, message, signer.algorithm, signer.secret())?;
    Ok((signer, params))
}
