//! Writes the fuzzers' generated seeds: `cargo run --example fuzz_seeds -- fuzz/seeds`
//! (scripts/fuzz.sh; the committed corpora are fuzz/corpus).
//! Certificates are generated here, at run time (only certificates: no key is written).

use std::path::Path;

use base64::Engine;
use ccs_endpoint::tools::pki::{self, KeyKind};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    let out = Path::new(&out);
    for (i, path) in [
        "/kek/ccsdemo/1",
        "/kek/A-b_9/18446744073709551615",
        "/kek/ccsdemo/1/",
        "/kek//1",
        "/kek/../1",
        "/KEK/x/1",
        "/kek/ccsdemo/+1",
        "/kek/ccsdemo/18446744073709551616",
    ]
    .iter()
    .enumerate()
    {
        write(out, "path_parser", &format!("seed{i}"), path.as_bytes())?;
    }

    let root = pki::ca("seed root", KeyKind::Rsa2048)?;
    let mut expired = pki::database_params("tse_ccsdemo")?;
    expired.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let certs = [
        pki::database(&root, "ccsdemo")?,
        pki::database(&root, "other")?,
        root.issue(expired, KeyKind::Rsa2048.generate()?)?,
        root.issue(
            pki::database_params("tse_ccsdemo")?,
            KeyKind::EcP256.generate()?,
        )?,
    ];
    for (i, cert) in certs.iter().enumerate() {
        write(out, "certificate", &format!("der{i}"), cert.cert_der())?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.cert_der());
        write(out, "certificate", &format!("b64-{i}"), b64.as_bytes())?;
    }

    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let stores = [
        format!("[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{hex}\"\n"),
        format!("[[key]]\ninstance = \"a\"\nkey_id = 2\nsecret = \"{hex}\"\nnot_after = \"2027-01-01T00:00:00Z\"\ndisabled = true\n"),
        format!("[[key]]\ninstance = \"a\"\nkey_id = 1\nsecret = \"{hex}\"\n[[key]]\ninstance = \"a\"\nkey_id = 1\nsecret = \"{hex}\"\n"),
        format!("[[key]]\ninstance = \"a\"\nkey_id = 1\nsecret = \"{}\"\n", &hex[..40]),
    ];
    for (i, store) in stores.iter().enumerate() {
        write(out, "keystore", &format!("seed{i}"), store.as_bytes())?;
    }

    let config = include_str!("../config/ccs-endpoint.toml");
    write(out, "config", "example", config.as_bytes())?;
    write(
        out,
        "config",
        "full",
        b"[server]\nlisten = \"127.0.0.1:8443\"\nallow = [\"saas\", \"10.0.0.0/8\"]\ntrusted_proxies = [\"10.0.0.1\"]\nproxy_protocol = true\n[tls]\ncert = \"c\"\nkey = \"k\"\n[trust]\nroots = [\"r\"]\nmin_rsa_bits = 3072\n[keys]\nfile = \"f\"\nvalidity = \"1d\"\n[wrap]\npadding = \"oaep-sha256\"\nplaintext = \"raw\"\n[limits]\nheader_timeout = \"5s\"\nmax_connections = 9\n[admin]\nenabled = false\n[log]\nformat = \"json\"\n",
    )?;
    let heads: [&[u8]; 6] = [
        b"GET /kek/ccsdemo/1 HTTP/1.1\r\nHost: x\r\nX-DB-Certificate: AAAA\r\n\r\n",
        b"POST /kek/a/1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /kek/a/1#x HTTP/1.1\r\n\r\n",
        b"\r\nGET / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ];
    for (i, head) in heads.iter().enumerate() {
        write(out, "head", &format!("seed{i}"), head)?;
    }
    // Signed requests as the API's client signs them (with another secret than the fuzzer's),
    // one line per field: method, authority, path, Signature-Input, Signature, Content-Digest,
    // body.
    use ccs_endpoint::httpsig::{self, Algorithm, Message, Signing};
    for (i, (method, path, body, algorithm)) in [
        (
            "POST",
            "/v1/keys/ccsdemo/1/disable",
            "{\"reason\":\"INC-1\"}",
            Algorithm::HmacSha256,
        ),
        ("GET", "/v1/keys", "", Algorithm::HmacSha384),
        (
            "POST",
            "/v1/keys/a/2/renew?x=1",
            "{\"until\":\"2027-01-01T00:00:00Z\"}",
            Algorithm::HmacSha512,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let message = Message {
            method,
            authority: "ccs.example.com:9443",
            path_and_query: path,
            headers: &[],
            body: body.as_bytes(),
        };
        let signing = Signing {
            label: "sig1",
            keyid: "soc-oncall",
            algorithm,
            secret: b"a seed secret, not the fuzzer's, 32+ bytes",
            created: 1_790_000_000,
            nonce: "seed-nonce-0123456",
        };
        let headers = httpsig::sign(&message, signing)?;
        let field = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let seed = format!(
            "{method}\nccs.example.com:9443\n{path}\n{}\n{}\n{}\n{body}",
            field("Signature-Input"),
            field("Signature"),
            field("Content-Digest")
        );
        write(out, "signature", &format!("seed{i}"), seed.as_bytes())?;
    }
    let secret = "c2VlZCBzZWNyZXQgb2YgdGhpcnR5LXR3byBieXRlcyBsb25nISE=";
    let signers = [
        format!("[[signer]]\nkey_id = \"soc-oncall\"\nsecret = \"{secret}\"\nalgorithm = \"hmac-sha256\"\nactions = [\"status\", \"disable\", \"shutdown\"]\n"),
        format!("[[signer]]\nkey_id = \"lead\"\nsecret = \"{secret}\"\nalgorithm = \"hmac-sha512\"\nactions = [\"enable\"]\nexpires = \"2027-06-01T00:00:00Z\"\nactive = false\n"),
        format!("[[signer]]\nkey_id = \"x\"\nsecret = \"{}\"\nalgorithm = \"md5\"\nactions = []\n", &secret[..20]),
    ];
    for (i, text) in signers.iter().enumerate() {
        write(out, "signers", &format!("seed{i}"), text.as_bytes())?;
    }
    println!("seed corpora written under {}", out.display());
    Ok(())
}
