#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a valid signature is allowed to mean on the signed admin API (contract §9): it is
//! bound to the server it was made for (a staging/production pair sharing one signers file),
//! one `Host` header, a nonce long enough not to be guessed, and HTTP/1.1 only on the port.

mod support;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ccs_endpoint::httpsig::{self, Algorithm, Message, Signing};
use support::api::{add_signer, Signer};
use support::fleet::KEK;
use support::{db_cert, header, raw_request, write_private, Key, TestServer};

/// A server with the signed API answering to `names`, signers from `signers`.
async fn server(keys: &[Key], names: &str, signers: &str) -> TestServer {
    let config =
        format!("[api]\nlisten = \"127.0.0.1:0\"\nsigners = \"signers.toml\"\nnames = [{names}]\n");
    TestServer::start_with_files(keys, &config, |dir| {
        write_private(&dir.join("signers.toml"), signers);
    })
    .await
}

/// A request for `authority` signed by `signer` (covering @method, @target-uri and, for a
/// POST, content-digest), as raw HTTP/1.1 bytes with the given extra header lines.
fn signed(
    signer: &Signer,
    method: &str,
    authority: &str,
    path: &str,
    body: &str,
    nonce: &str,
    extra: &str,
) -> String {
    let secret = BASE64.decode(&signer.secret).unwrap();
    let message = Message {
        method,
        authority,
        path_and_query: path,
        headers: &[],
        body: body.as_bytes(),
    };
    let signing = Signing {
        label: "sig1",
        keyid: &signer.key_id,
        algorithm: Algorithm::HmacSha256,
        secret: &secret,
        created: time::OffsetDateTime::now_utc().unix_timestamp(),
        nonce,
    };
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{extra}");
    for (name, value) in httpsig::sign(&message, signing).unwrap() {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    raw.push_str("Connection: close\r\n\r\n");
    raw.push_str(body);
    raw
}

async fn send(server: &TestServer, raw: &str) -> support::Reply {
    raw_request(server.api.unwrap(), &rustls::version::TLS13, raw.as_bytes()).await
}

/// The message of an API refusal.
fn message(reply: &support::Reply) -> String {
    reply.json()["message"]
        .as_str()
        .unwrap_or(&reply.body)
        .to_owned()
}

fn nonce() -> String {
    support::random_secret_hex()[..32].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_made_for_staging_changes_nothing_in_production() {
    let keys = [Key::new("ccsdemo", 1).with("disabled = true")];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status,disable,enable");
    let lead = add_signer(&file, "sec-lead", "status,enable");
    let signers = std::fs::read_to_string(&file).unwrap();
    // One signers file, two servers: staging and production.
    let staging = server(&keys, "\"staging.example.com\"", &signers).await;
    let production = server(&keys, "\"ccs.example.com\"", &signers).await;
    let poll = async |s: &TestServer| s.get(KEK, Some(&header(&db_cert("ccsdemo")))).await.status;
    assert_eq!(poll(&production).await, 404);

    // Two signers un-kill the key on staging; their requests, replayed byte for byte to
    // production, are refused there and the production key stays killed.
    let path = "/v1/keys/ccsdemo/1/enable";
    let body = r#"{"reason":"staging drill"}"#;
    let requests: Vec<String> = [&soc, &lead]
        .iter()
        .map(|s| signed(s, "POST", "staging.example.com", path, body, &nonce(), ""))
        .collect();
    assert_eq!(send(&staging, &requests[0]).await.status, 202);
    assert_eq!(send(&staging, &requests[1]).await.status, 200);
    assert_eq!(poll(&staging).await, 200);
    for request in &requests {
        let reply = send(&production, request).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        let message = message(&reply);
        assert!(
            message.contains("\"staging.example.com\"")
                && message.contains("not this API (ccs.example.com)"),
            "{message}"
        );
    }
    assert_eq!(poll(&production).await, 404);

    // The same requests re-addressed to production no longer verify (the authority is signed).
    let moved = requests[0].replacen("Host: staging.example.com", "Host: ccs.example.com", 1);
    let reply = send(&production, &moved).await;
    assert_eq!(reply.status, 401);
    assert!(message(&reply).contains("HMAC"), "{}", reply.body);

    // Made for production, a GET works there.
    let get = signed(&soc, "GET", "ccs.example.com", "/v1/keys", "", &nonce(), "");
    assert_eq!(send(&production, &get).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_a_long_nonce_and_http1_only() {
    let keys = [Key::new("ccsdemo", 1)];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status,disable");
    let signers = std::fs::read_to_string(&file).unwrap();
    let api = server(&keys, "\"ccs.example.com\"", &signers).await;

    // Two Host headers: which one was signed is ambiguous, so neither is taken.
    let twice = signed(
        &soc,
        "GET",
        "ccs.example.com",
        "/v1/keys",
        "",
        &nonce(),
        "Host: ccs.example.com\r\n",
    );
    let reply = send(&api, &twice).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        message(&reply).contains("exactly one Host"),
        "{}",
        reply.body
    );

    // A nonce of 15 characters is refused (before anything else of the signature); 16 is taken.
    let enough = signed(
        &soc,
        "GET",
        "ccs.example.com",
        "/v1/keys",
        "",
        "0123456789abcdef",
        "",
    );
    let short = enough.replace("nonce=\"0123456789abcdef\"", "nonce=\"0123456789abcde\"");
    let reply = send(&api, &short).await;
    assert_eq!(reply.status, 401);
    assert!(message(&reply).contains("at least 16"), "{}", reply.body);
    assert_eq!(send(&api, &enough).await.status, 200);

    // HTTP/2 by prior knowledge gets an HTTP/1.1 refusal, not an HTTP/2 answer.
    let reply = raw_request(
        api.api.unwrap(),
        &rustls::version::TLS13,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("HTTP/1.1 only"), "{}", reply.body);
}

/// Runs `ccs-endpoint keys <args>` on `server`'s configuration, as an operator on the host.
fn keys_cli(server: &TestServer, args: &[&str]) {
    let out = support::process::bin()
        .arg("keys")
        .args(args)
        .args(["--instance", "ccsdemo", "--key-id", "1", "--config"])
        .arg(server.dir.path().join("ccs-endpoint.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_counts_only_while_its_signer_may_and_its_key_is_unchanged() {
    let keys = [Key::new("ccsdemo", 1).with("disabled = true")];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let signers: Vec<Signer> = ["alice", "bob", "carol"]
        .iter()
        .map(|id| add_signer(&file, id, "status,disable,enable"))
        .collect();
    let text = std::fs::read_to_string(&file).unwrap();
    let api = server(&keys, "\"ccs.example.com\"", &text).await;
    let path = "/v1/keys/ccsdemo/1/enable";
    let enable = async |signer: &Signer, reason: &str| {
        let body = format!(r#"{{"reason":"{reason}"}}"#);
        let raw = signed(signer, "POST", "ccs.example.com", path, &body, &nonce(), "");
        let reply = send(&api, &raw).await;
        (reply.status, reply.json())
    };
    let poll = async || {
        api.get(KEK, Some(&header(&db_cert("ccsdemo"))))
            .await
            .status
    };

    // alice approves the un-kill, then is retired: her approval no longer counts, so bob's is
    // the first of two again.
    assert_eq!(enable(&signers[0], "alice").await.0, 202);
    let live = api.dir.path().join("signers.toml");
    let retired = std::fs::read_to_string(&live).unwrap().replacen(
        "actions = [",
        "active = false\nactions = [",
        1,
    );
    write_private(&live, &retired);
    let (status, body) = enable(&signers[1], "bob").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["approvals"], 1, "{body}");
    assert_eq!(poll().await, 404);

    // bob's approval was cast on this kill; the key is un-killed and killed again on the host
    // (a new incident): carol alone cannot complete the un-kill with bob's old approval.
    write_private(&live, &text);
    keys_cli(&api, &["enable"]);
    keys_cli(&api, &["disable", "--reason", "incident 2"]);
    let (status, body) = enable(&signers[2], "carol").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["approvals"], 1, "{body}");
    // A second signer on this incident completes it.
    let (status, body) = enable(&signers[1], "bob again").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["approvers"],
        serde_json::json!(["carol", "bob"]),
        "{body}"
    );
    assert_eq!(poll().await, 200);

    // The chain beside the key store carries both signed requests, and they verify
    // (contract §10).
    let out = support::process::bin()
        .args(["audit", "verify", "--signers"])
        .arg(&file)
        .arg("--config")
        .arg(api.dir.path().join("ccs-endpoint.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("signatures verified: 1 API changes, 2 signatures"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_moves_a_lease_and_never_a_scheduled_shutdown() {
    let keys = [Key::new("ccsdemo", 1)];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status,shutdown");
    let timer = add_signer(&file, "dead-man", "status,renew");
    let signers = std::fs::read_to_string(&file).unwrap();
    let api = server(&keys, "\"ccs.example.com\"", &signers).await;
    let post = async |signer: &Signer, action: &str, body: String| {
        let path = format!("/v1/keys/ccsdemo/1/{action}");
        let raw = signed(
            signer,
            "POST",
            "ccs.example.com",
            &path,
            &body,
            &nonce(),
            "",
        );
        let reply = send(&api, &raw).await;
        (reply.status, message(&reply))
    };
    let at = |days: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::days(days))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    // The dead-man timer starts a lease and moves it on.
    let (status, body) = post(&timer, "renew", format!(r#"{{"until":"{}"}}"#, at(8))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&timer, "renew", format!(r#"{{"until":"{}"}}"#, at(9))).await;
    assert_eq!(status, 200, "{body}");
    let store = std::fs::read_to_string(api.dir.path().join("keys.toml")).unwrap();
    assert!(store.contains("lease = true"), "{store}");

    // A shutdown scheduled for tomorrow: the renew-only signer can neither lift nor postpone
    // nor shorten it.
    let (status, body) = post(
        &soc,
        "shutdown",
        format!(r#"{{"reason":"planned exit","at":"{}"}}"#, at(1)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for until in [at(30), at(2)] {
        let (status, body) = post(&timer, "renew", format!(r#"{{"until":"{until}"}}"#)).await;
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("scheduled"), "{body}");
    }
    let store = std::fs::read_to_string(api.dir.path().join("keys.toml")).unwrap();
    assert!(!store.contains("lease"), "{store}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signers_file_withdraws_at_once_and_gives_only_once_settled() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let keys = [Key::new("ccsdemo", 1)];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status");
    let good = std::fs::read_to_string(&file).unwrap();
    let retired = good.replacen("actions = [", "active = false\nactions = [", 1);
    let api = server(&keys, "\"ccs.example.com\"", &retired).await;
    let live = api.dir.path().join("signers.toml");
    let get = async || {
        let raw = signed(&soc, "GET", "ccs.example.com", "/v1/keys", "", &nonce(), "");
        send(&api, &raw).await.status
    };
    assert_eq!(get().await, 401);

    // A slow in-place rewrite whose first half re-activates the retired signer: never served.
    let (first, rest) = retired.split_at(retired.find("active = false").unwrap());
    let writer = {
        let (live, first, rest) = (live.clone(), first.to_owned(), rest.to_owned());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&live)
                .unwrap();
            f.write_all(first.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1500));
            f.write_all(rest.as_bytes()).unwrap();
        })
    };
    let began = std::time::Instant::now();
    while began.elapsed() < std::time::Duration::from_secs(5) {
        // 401 (inactive) or 503 (a file read half-written): never 200.
        let status = get().await;
        assert!(
            status == 401 || status == 503,
            "a retired signer signed during a rewrite: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    writer.join().unwrap();

    // Activated for good: in force once the file has settled (3 s), not before.
    write_private(&live, &good);
    let began = std::time::Instant::now();
    assert_eq!(
        get().await,
        401,
        "an activation was taken before the file settled"
    );
    support::wait_until("the settled activation", async || get().await == 200).await;
    assert!(began.elapsed() >= std::time::Duration::from_secs(3));

    // `chmod 644` is a change: the file is judged again, and refused at once.
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(get().await, 503);
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o600)).unwrap();
    support::wait_until("the file fixed", async || get().await == 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_captured_before_a_restart_is_refused_after_it() {
    let keys = [Key::new("ccsdemo", 1)];
    let dir = tempfile::tempdir().unwrap();
    let soc = add_signer(&dir.path().join("signers.toml"), "soc-oncall", "status");
    let port = support::process::free_port();
    let extra = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\nsigners = \"signers.toml\"\nnames = [\"ccs.example.com\"]\n"
    );
    let api: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let captured = signed(&soc, "GET", "ccs.example.com", "/v1/keys", "", &nonce(), "");
    let answer = async |raw: &str| {
        raw_request(api, &rustls::version::TLS13, raw.as_bytes())
            .await
            .status
    };
    let (mut first, _) = support::process::spawn_configured(dir.path(), &keys, &extra);
    assert_eq!(answer(&captured).await, 200);
    assert_eq!(answer(&captured).await, 401, "a replay was taken");
    assert!(first.terminate().success());

    let (mut second, _) = support::process::spawn_configured(dir.path(), &keys, &extra);
    let reply = raw_request(api, &rustls::version::TLS13, captured.as_bytes()).await;
    assert_eq!(reply.status, 401, "a replay across a restart was taken");
    assert!(message(&reply).contains("already used"), "{}", reply.body);
    let fresh = signed(&soc, "GET", "ccs.example.com", "/v1/keys", "", &nonce(), "");
    assert_eq!(answer(&fresh).await, 200);
    assert!(second.terminate().success());
    let kept = std::fs::read_to_string(dir.path().join("api-nonces.tsv")).unwrap();
    assert_eq!(kept.lines().count(), 2, "{kept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_only_the_clients_of_its_allow_list() {
    let keys = [Key::new("ccsdemo", 1)];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signers.toml");
    let soc = add_signer(&file, "soc-oncall", "status");
    let signers = std::fs::read_to_string(&file).unwrap();
    let config = "[api]\nlisten = \"127.0.0.1:0\"\nsigners = \"signers.toml\"\nnames = [\"ccs.example.com\"]\nallow = [\"127.0.0.1/32\"]\n";
    let api = TestServer::start_with_files(&keys, config, |dir| {
        write_private(&dir.join("signers.toml"), &signers);
    })
    .await;
    let raw = signed(&soc, "GET", "ccs.example.com", "/v1/keys", "", &nonce(), "");
    assert_eq!(send(&api, &raw).await.status, 200);
    // From another address: closed at accept, before TLS.
    let tcp = support::attack::connect_from("127.0.0.5".parse().unwrap(), api.api.unwrap())
        .await
        .unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(support::client_config(&rustls::version::TLS13));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    assert!(
        connector.connect(name, tcp).await.is_err(),
        "a client outside allow got in"
    );
    let (_, m) = api.admin_get("/metrics").await;
    assert!(
        support::sample(&m, "ccs_connections_refused_total{reason=\"not_allowed\"}") >= Some(1.0),
        "{m}"
    );
}

/// A directory this process cannot write in (`chattr +i`, which holds for root too, as the
/// systemd unit's `ReadOnlyPaths=` does), made writable again when dropped.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn make(dir: &std::path::Path) -> Self {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .expect("chattr (Debian package e2fsprogs) is needed to make a read-only directory");
        assert!(
            status.success(),
            "chattr +i {}: the file system must take it",
            dir.display()
        );
        Self(dir.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// Issue 21: under a read-only configuration directory (the shipped systemd unit's), the file
/// backend's API cannot apply a kill: `check`, `/readyz` and the API's 503 say so plainly, a
/// poll is still served, and once the directory is writable the API works without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_store_directory_is_said_plainly() {
    let keys = [Key::new("ccsdemo", 1)];
    let dir = tempfile::tempdir().unwrap();
    let soc = add_signer(
        &dir.path().join("signers.toml"),
        "soc-oncall",
        "status,disable",
    );
    let signers = std::fs::read_to_string(dir.path().join("signers.toml")).unwrap();
    let mut guard = None;
    let config =
        "[api]\nlisten = \"127.0.0.1:0\"\nsigners = \"signers.toml\"\nnames = [\"ccs.example.com\"]\n";
    let api = TestServer::start_with_files(&keys, config, |dir| {
        write_private(&dir.join("signers.toml"), &signers);
        guard = Some(ReadOnly::make(dir));
    })
    .await;
    let plainly = "the signed API cannot apply a change on this node";

    let out = support::process::bin()
        .arg("check")
        .arg("--config")
        .arg(api.dir.path().join("ccs-endpoint.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(plainly), "{stdout}");
    assert!(stdout.contains("ReadWritePaths="), "{stdout}");

    let (status, ready) = api.admin_get("/readyz").await;
    assert_eq!(status, 200, "polls are served: {ready}");
    assert!(ready.contains(plainly), "{ready}");

    let kill = async || {
        let body = r#"{"reason":"INC-21"}"#;
        let path = "/v1/keys/ccsdemo/1/disable";
        let raw = signed(&soc, "POST", "ccs.example.com", path, body, &nonce(), "");
        send(&api, &raw).await
    };
    let reply = kill().await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(message(&reply).contains(plainly), "{}", reply.body);
    let poll = api.get(KEK, Some(&header(&db_cert("ccsdemo")))).await;
    assert_eq!(poll.status, 200);

    // Writable again: the next kill applies, and /readyz no longer warns.
    drop(guard.take());
    let reply = kill().await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let poll = api.get(KEK, Some(&header(&db_cert("ccsdemo")))).await;
    assert_eq!(poll.status, 404);
    let (_, ready) = api.admin_get("/readyz").await;
    assert!(!ready.contains(plainly), "{ready}");
}
