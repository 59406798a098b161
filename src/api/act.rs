//! What each route does once its request is authenticated and its signer allowed the action
//! (`Api::serve`): reading keys and approvals, and a change or an export put to its quorum.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::answer::{answer, error, key_json, outcome_response};
use super::outcome::{Exported, Failure, Outcome};
use super::{export, Api, ChangeBody, Route};
use crate::quorum::Ballot;
use crate::signers::Action as Permission;

/// Who signed a request: the signer's key id, the signers file it was judged by, and the
/// request as evidence (one `httpsig::Evidence`, its JSON).
#[derive(Clone, Copy)]
pub(super) struct Signer<'a> {
    pub(super) key_id: &'a str,
    pub(super) signers: &'a crate::signers::Signers,
    pub(super) evidence: &'a str,
}

impl Api {
    pub(super) async fn route(
        &self,
        route: Route,
        body: &[u8],
        signed: Signer<'_>,
        now: OffsetDateTime,
    ) -> Result<Response, Failure> {
        let Signer {
            key_id: signer,
            signers,
            evidence,
        } = signed;
        match route {
            Route::Keys => {
                let keys = self.backend.keys(None).await?;
                let keys: Vec<Value> = keys.iter().map(|k| key_json(k, now)).collect();
                Ok(answer(StatusCode::OK, &json!({ "keys": keys })))
            }
            Route::Key(instance, key_id) => {
                let keys = self.backend.keys(Some((&instance, key_id))).await?;
                match keys.first() {
                    Some(key) => Ok(answer(StatusCode::OK, &key_json(key, now))),
                    None => Err(Failure::NoSuchKey(format!(
                        "no key for instance {instance}, key_id {key_id}"
                    ))),
                }
            }
            Route::Approvals => {
                let approvals = self.backend.approvals().await?;
                Ok(answer(StatusCode::OK, &json!({ "approvals": approvals })))
            }
            Route::Export(instance, key_id) => {
                let parsed = ChangeBody::parse(body).and_then(|b| {
                    let export = b.export()?;
                    Ok((b, export))
                });
                let (body, (sha, cloud, target)) = match parsed {
                    Ok(parsed) => parsed,
                    Err(message) => {
                        return Ok(error(StatusCode::BAD_REQUEST, "bad_request", &message))
                    }
                };
                let store = self.state.keys.store();
                if !store
                    .states()
                    .any(|k| k.instance == instance && k.key_id == key_id)
                {
                    return Err(Failure::NoSuchKey(format!(
                        "no key for instance {instance}, key_id {key_id}"
                    )));
                }
                if self.exports.find(&sha).is_none() {
                    let message = format!("certificate sha256 {sha} is not one of [api] export_to: a key is exported only to a certificate the configuration names");
                    return Ok(error(StatusCode::FORBIDDEN, "forbidden", &message));
                }
                let ballot = Ballot {
                    instance: instance.as_str().to_owned(),
                    key_id,
                    action: "export",
                    target,
                    signer: signer.to_owned(),
                    reason: body.reason,
                    state: String::new(),
                    electorate: signers.electorate(Permission::Export, now),
                    evidence: evidence.to_owned(),
                };
                let token = store.blocking().then_some(self.state.wrap.plaintext);
                let required = required(&self.config.quorum, Permission::Export);
                let exports = Arc::clone(&self.exports);
                let outcome = self
                    .backend
                    .export(ballot, required, self.config.approval_timeout, || {
                        export::wrap(&exports, store, &instance, key_id, &sha, cloud, token)
                    })
                    .await?;
                Ok(match outcome {
                    Exported::Pending(pending) => outcome_response(Outcome::Pending(pending), now),
                    Exported::Done {
                        answer: mut body,
                        approvers,
                    } => {
                        if let Some(object) = body.as_object_mut() {
                            object.insert("status".into(), json!("applied"));
                            object.insert("approvers".into(), json!(approvers));
                        }
                        answer(StatusCode::OK, &body)
                    }
                })
            }
            Route::Change(instance, key_id, permission) => {
                let parsed = ChangeBody::parse(body).and_then(|b| {
                    let (action, target) = b.action(permission, now)?;
                    Ok((b, action, target))
                });
                let (body, action, target) = match parsed {
                    Ok(parsed) => parsed,
                    Err(message) => {
                        return Ok(error(StatusCode::BAD_REQUEST, "bad_request", &message))
                    }
                };
                let ballot = Ballot {
                    instance: instance.as_str().to_owned(),
                    key_id,
                    action: permission.name(),
                    target,
                    signer: signer.to_owned(),
                    reason: body.reason,
                    state: String::new(),
                    electorate: signers.electorate(permission, now),
                    evidence: evidence.to_owned(),
                };
                let required = required(&self.config.quorum, permission);
                let outcome = self
                    .backend
                    .change(ballot, action, required, self.config.approval_timeout)
                    .await?;
                Ok(outcome_response(outcome, now))
            }
        }
    }
}

/// The distinct signers `action` needs (reading needs one).
pub(super) fn required(quorum: &crate::config::Quorum, action: crate::signers::Action) -> u32 {
    use crate::signers::Action;
    match action {
        Action::Disable => quorum.disable,
        Action::Shutdown => quorum.shutdown,
        Action::Renew => quorum.renew,
        Action::Enable => quorum.enable,
        Action::Export => quorum.export,
        Action::Status => 1,
    }
}
