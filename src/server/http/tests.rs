//! Unit tables for `http`.

use super::*;
use crate::cert::TrustStore;
use crate::keystore::KeySource;
use crate::tools::pki;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use http_body_util::BodyExt;
use tower::ServiceExt;

const SECRET: &str = "8f2b0e5a3c4d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";

fn app() -> (Router, String) {
    let root = pki::ca("router test root", pki::KeyKind::Rsa2048).unwrap_or_else(|e| panic!("{e}"));
    let db = pki::database(&root, "ccsdemo").unwrap_or_else(|e| panic!("{e}"));
    let trust = TrustStore::from_certs(
        vec![(
            "root.pem".into(),
            rustls_pki_types::CertificateDer::from(root.cert_der().to_vec()),
        )],
        2048,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let keys = KeySource::File
        .parse(
            std::path::Path::new("keys.toml"),
            &format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{SECRET}\"\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let state = AppState::new(
        Arc::new(trust),
        Arc::new(keys),
        crate::wrap::WrapOptions::default(),
        time::Duration::hours(1),
        Arc::new(crate::runtime::metrics::Metrics::new()),
    );
    (
        router(Arc::new(state), crate::server::peer::PeerPolicy::default()),
        BASE64.encode(db.cert_der()),
    )
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    cert: Option<&str>,
) -> (StatusCode, HeaderMap, serde_json::Value) {
    let mut request = axum::http::Request::builder().method(method).uri(uri);
    if let Some(cert) = cert {
        request = request.header("X-DB-Certificate", cert);
    }
    let request = request
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    let response = app
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    (parts.status, parts.headers, json)
}

#[tokio::test]
async fn the_order_of_checks() {
    let (app, good) = app();
    let rows: &[(&str, &str, Option<&str>, u16)] = &[
        ("GET", "/kek/ccsdemo/1", Some(&good), 200),
        ("GET", "/kek/ccsdemo/2", Some(&good), 404),
        ("GET", "/kek/ccsdemo/1", None, 401),
        ("GET", "/kek/other/1", Some(&good), 401),
        ("POST", "/kek/ccsdemo/1", Some(&good), 405),
        ("DELETE", "/kek/nothing/1", None, 405),
        ("POST", "/kek/ccsdemo/1/", Some(&good), 400),
        ("GET", "/kek/ccsdemo/x", None, 400),
        ("GET", "/kek/ccsdemo/1?debug=1", Some(&good), 400),
    ];
    for (method, uri, cert, want) in rows {
        let (status, headers, body) = call(&app, method, uri, *cert).await;
        assert_eq!(status.as_u16(), *want, "{method} {uri}: {body}");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert_eq!(headers[REQUEST_ID].len(), 16);
        if *want == 405 {
            assert_eq!(headers[ALLOW], "GET");
        }
        if *want == 200 {
            assert_eq!(body["keyId"], 1);
        } else {
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{body}"
            );
            assert!(body.get("errorId").is_none());
        }
        assert!(!body.to_string().contains(SECRET));
    }
}
