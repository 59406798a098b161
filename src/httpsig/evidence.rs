//! A signed request kept as evidence (contract §10): what a signature covered, so that
//! `audit verify --signers FILE` can check it again long after the request, with the signer's
//! secret and nothing the server remembers. It holds no secret: a signature and a body travel
//! in the clear inside TLS, and the HMAC cannot be turned back into its key.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{
    check_digest_if_any, covers, params, verify_hmac, Algorithm, Message, Params, Refusal,
};

/// One signed request, as an audit record carries it. Serialised with its keys in order (the
/// fields are alphabetical, `fields` a sorted map), so its JSON is canonical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The `Host` the request was addressed to.
    pub authority: String,
    /// The body, base64 (its `Content-Digest` is checked against it).
    pub body: String,
    /// Every header field the signature covers, and `signature-input` and `signature`, by
    /// lower-case name, as the signature base reads them.
    pub fields: BTreeMap<String, String>,
    pub keyid: String,
    pub method: String,
    /// The path and query.
    pub path: String,
}

/// Why kept evidence does not prove its signer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unproven {
    #[error("the evidence cannot be read: {0}")]
    Unreadable(String),
    #[error("the signature does not verify: {0}")]
    Refused(Refusal),
    #[error("the signature is by key id {found:?}, not {claimed:?} as the evidence says")]
    OtherKey { claimed: String, found: String },
}

impl Evidence {
    /// The evidence of a request whose signature `params` verified.
    pub fn of(params: &Params, message: &Message<'_>) -> Self {
        let mut fields = BTreeMap::new();
        let covered = params
            .components
            .iter()
            .filter(|c| !c.starts_with('@'))
            .map(String::as_str);
        for name in covered.chain(["signature-input", "signature"]) {
            if let Some(value) = message.field(name) {
                fields.insert(name.to_owned(), value);
            }
        }
        Self {
            authority: message.authority.to_owned(),
            body: BASE64.encode(message.body),
            fields,
            keyid: params.keyid.clone(),
            method: message.method.to_owned(),
            path: message.path_and_query.to_owned(),
        }
    }

    /// The body the request sent.
    pub fn body(&self) -> Result<Vec<u8>, Unproven> {
        BASE64
            .decode(&self.body)
            .map_err(|e| Unproven::Unreadable(format!("body is not base64: {e}")))
    }

    /// Checks the signature again under `secret`: what it covers (as the API requires), the
    /// HMAC of its base, its key id, and the body's digest. Its time window is not checked (it was, when the
    /// request was served; the record's place in the chain dates it). The signature's
    /// parameters.
    pub fn verify(&self, algorithm: Algorithm, secret: &[u8]) -> Result<Params, Unproven> {
        let body = self.body()?;
        self.with_message(&body, |message| {
            let params = self.params_in(message)?;
            if params.alg != algorithm.name() {
                return Err(Unproven::Refused(Refusal::AlgMismatch {
                    keyid: params.keyid.clone(),
                    found: params.alg.clone(),
                    expected: algorithm.name(),
                }));
            }
            // As the API requires of a request: the method, the target and, for a POST (each
            // change), the body's digest covered, and the digest the body's.
            covers(&params, message).map_err(Unproven::Refused)?;
            if message.method == "POST" && !params.components.iter().any(|c| c == "content-digest")
            {
                return Err(Unproven::Refused(Refusal::NotCovered(
                    "content-digest (required for every POST)",
                )));
            }
            check_digest_if_any(&params, message).map_err(Unproven::Refused)?;
            verify_hmac(&params, message, algorithm, secret).map_err(Unproven::Refused)?;
            Ok(params)
        })
    }

    /// The signature's parameters, unverified (its nonce names the request).
    pub fn params(&self) -> Result<Params, Unproven> {
        let body = self.body()?;
        self.with_message(&body, |message| self.params_in(message))
    }

    fn params_in(&self, message: &Message<'_>) -> Result<Params, Unproven> {
        let params = params(message).map_err(Unproven::Refused)?;
        if params.keyid != self.keyid {
            return Err(Unproven::OtherKey {
                claimed: self.keyid.clone(),
                found: params.keyid,
            });
        }
        Ok(params)
    }

    /// `work` on the request as it was sent, with `body`.
    fn with_message<T>(&self, body: &[u8], work: impl FnOnce(&Message<'_>) -> T) -> T {
        let headers: Vec<(&str, &str)> = self
            .fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        work(&Message {
            method: &self.method,
            authority: &self.authority,
            path_and_query: &self.path,
            headers: &headers,
            body,
        })
    }

    /// Its canonical JSON: one member of a record's `signatures` list.
    pub fn json(&self) -> String {
        // Strings and a map of strings: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A record's evidence list.
    pub fn parse_list(json: &str) -> Result<Vec<Evidence>, Unproven> {
        serde_json::from_str(json).map_err(|e| Unproven::Unreadable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{sign, Signing};
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn signed(body: &[u8]) -> (Evidence, Vec<(String, String)>) {
        let message = Message {
            method: "POST",
            authority: "ccs.example.com:8443",
            path_and_query: "/v1/keys/ccsdemo/1/disable",
            headers: &[("content-type", "application/json")],
            body,
        };
        let signing = Signing {
            label: "sig1",
            keyid: "alice",
            algorithm: Algorithm::HmacSha256,
            secret: SECRET,
            created: 1_800_000_000,
            nonce: "0123456789abcdef",
        };
        let added = sign(&message, signing).unwrap();
        let mut all: Vec<(&str, &str)> = message.headers.to_vec();
        all.extend(added.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let with = Message {
            headers: &all,
            ..message
        };
        let params = params(&with).unwrap();
        (Evidence::of(&params, &with), added)
    }

    #[test]
    fn evidence_verifies_later_and_only_as_it_was() {
        let (evidence, _) = signed(br#"{"reason":"incident 7"}"#);
        assert!(evidence.fields.contains_key("content-digest"));
        assert!(!evidence.fields.contains_key("content-type"), "not covered");
        let json = format!("[{}]", evidence.json());
        let back = Evidence::parse_list(&json).unwrap();
        assert_eq!(back, std::slice::from_ref(&evidence));
        assert!(evidence.verify(Algorithm::HmacSha256, SECRET).is_ok());
        assert!(matches!(
            evidence.verify(Algorithm::HmacSha256, b"another secret, 32 bytes long...."),
            Err(Unproven::Refused(Refusal::BadSignature))
        ));
        // Another body (the digest), another key (the path), another key id claimed.
        let mut body = evidence.clone();
        body.body = BASE64.encode(br#"{"reason":"nothing"}"#);
        assert!(matches!(
            body.verify(Algorithm::HmacSha256, SECRET),
            Err(Unproven::Refused(Refusal::Digest(_)))
        ));
        let mut path = evidence.clone();
        path.path = "/v1/keys/ccsdemo/2/disable".into();
        assert!(matches!(
            path.verify(Algorithm::HmacSha256, SECRET),
            Err(Unproven::Refused(Refusal::BadSignature))
        ));
        let mut claimed = evidence;
        claimed.keyid = "bob".into();
        assert!(matches!(
            claimed.verify(Algorithm::HmacSha256, SECRET),
            Err(Unproven::OtherKey { .. })
        ));
    }
}
