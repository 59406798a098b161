//! The PKCS#11 backend against SoftHSM2, end to end through the binary: each test initialises
//! a throw-away token under its own `SOFTHSM2_CONF`, imports or generates keys with
//! `ccs-endpoint keys`, serves, polls with curl and unwraps with OpenSSL. Token failures come from
//! `tests/hsm/fault.c`, a module that forwards to SoftHSM2 and fails on demand.
//!
//! SoftHSM2 (`softhsm2`), OpenSC's `pkcs11-tool` (`opensc`), the p11-kit header
//! (`libp11-kit-dev`), gcc, OpenSSL and curl are required; `.ci/run` installs them. A missing
//! one fails the test and names the package.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ccs_endpoint::tools::pki::Issued;
use support::process::{bin, free_port, leak_forms, output_with_stdin, Running};
use support::*;

const LABEL: &str = "ccs-test";
const PIN: &str = "246810";

fn module() -> PathBuf {
    if let Ok(path) = std::env::var("CCS_TEST_PKCS11_MODULE") {
        return PathBuf::from(path);
    }
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("SoftHSM2 is required for the PKCS#11 tests: apt-get install softhsm2 (.ci/run does)")
}

/// A throw-away token and a configuration that serves from it, in one temporary folder.
struct Token {
    dir: tempfile::TempDir,
    port: u16,
    config: PathBuf,
}

impl Token {
    /// `module` is the PKCS#11 library the server loads (SoftHSM2, or the fault module over it).
    fn new(module: &Path, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", LABEL])
            .args(["--pin", PIN, "--so-pin", "13579111"])
            .env("SOFTHSM2_CONF", dir.path().join("softhsm2.conf"))
            .output()
            .expect("softhsm2-util is required: apt-get install softhsm2 (.ci/run does)");
        assert_succeeded(&out);
        write_private(&dir.path().join("pin"), &format!("{PIN}\n"));
        let port = free_port();
        let config = write_config(
            dir.path(),
            &[],
            &format!(
                "backend = \"pkcs11\"\n[keys.pkcs11]\nmodule = \"{}\"\ntoken_label = \"{LABEL}\"\npin_file = \"pin\"\n{extra}\n[server]\nlisten = \"127.0.0.1:{port}\"",
                module.display()
            ),
        );
        Self { dir, port, config }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self) -> Command {
        let mut cmd = bin();
        cmd.env("SOFTHSM2_CONF", self.path().join("softhsm2.conf"))
            .env("CCS_FAULT_REAL_MODULE", module())
            .env("CCS_FAULT_FILE", self.path().join("fault"))
            .current_dir(self.path());
        cmd
    }

    /// `ccs-endpoint keys <args> --config …`, with `stdin` as its input.
    fn keys(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = self.command();
        cmd.arg("keys").args(args).arg("--config").arg(&self.config);
        output_with_stdin(cmd, stdin)
    }

    fn import(&self, instance: &str, key_id: u64, secret: &str) -> String {
        let out = self.keys(
            &[
                "import",
                "--instance",
                instance,
                "--key-id",
                &key_id.to_string(),
            ],
            secret,
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// OpenSC's `pkcs11-tool`, logged in to the token (an independent PKCS#11 client).
    fn pkcs11_tool(&self, args: &[&str]) -> Output {
        Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module())
            .args(["--token-label", LABEL, "--login", "--pin", PIN])
            .args(args)
            .env("SOFTHSM2_CONF", self.path().join("softhsm2.conf"))
            .output()
            .expect("pkcs11-tool is required: apt-get install opensc (.ci/run does)")
    }

    fn check(&self) -> Output {
        self.command()
            .args(["check", "--config"])
            .arg(&self.config)
            .output()
            .unwrap()
    }

    fn serve(&self) -> Running {
        let mut cmd = self.command();
        cmd.args(["serve", "--config"]).arg(&self.config);
        let mut server = Running::spawn(cmd);
        server.wait_for("listening");
        server
    }

    /// The status and body of a poll with `cert`.
    fn poll(&self, path: &str, cert: &Issued) -> (u16, serde_json::Value) {
        let out = Command::new("curl")
            .args(["-s", "-k", "-w", "\n%{http_code}", "-H"])
            .arg(format!("X-DB-Certificate: {}", header(cert)))
            .arg(format!("https://127.0.0.1:{}{path}", self.port))
            .output()
            .expect("curl is required (.ci/run installs it)");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (
            status.parse().unwrap(),
            serde_json::from_str(body).unwrap_or_default(),
        )
    }

    /// Polls until the status is `want` (a reload takes a moment), for at most 10 s.
    fn poll_until(&self, path: &str, cert: &Issued, want: u16) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let (status, body) = self.poll(path, cert);
            if status == want {
                return body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{path}: still {status} {body}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn fault(&self, kind: Option<&str>) {
        let file = self.path().join("fault");
        match kind {
            Some(kind) => std::fs::write(file, kind).unwrap(),
            None => std::fs::remove_file(file).unwrap(),
        }
    }
}

/// Asserts that a command succeeded, showing its standard error when it did not.
fn assert_succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn readyz(server: &Running) -> u16 {
    let admin = admin_address(server);
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{admin}/readyz"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

/// The value of a metric without labels.
fn metric(server: &Running, name: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", &format!("http://{}/metrics", admin_address(server))])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .to_owned()
}

/// The admin listener's address, from the start-up log.
fn admin_address(server: &Running) -> String {
    let output = server.output();
    let line = output
        .lines()
        .find(|l| l.contains("admin listener"))
        .expect("the admin listener is logged");
    line.rsplit("address=").next().unwrap().trim().to_owned()
}

/// OpenSSL's RSA-OAEP (SHA-1) decryption of a `wrappedKey` with the certificate's private key,
/// as text (the default plaintext form: 64 hex characters).
fn openssl_unwrap(dir: &Path, cert: &Issued, wrapped_b64: &str) -> String {
    String::from_utf8(openssl_unwrap_bytes(dir, cert, wrapped_b64)).unwrap()
}

fn openssl_unwrap_bytes(dir: &Path, cert: &Issued, wrapped_b64: &str) -> Vec<u8> {
    let key = dir.join("db.key");
    write_private(&key, &cert.key_pem());
    let input = dir.join("wrapped.bin");
    std::fs::write(&input, BASE64.decode(wrapped_b64).unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-decrypt", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(&input)
        .args(["-pkeyopt", "rsa_padding_mode:oaep"])
        .args([
            "-pkeyopt",
            "rsa_oaep_md:sha1",
            "-pkeyopt",
            "rsa_mgf1_md:sha1",
        ])
        .output()
        .expect("openssl is required (.ci/run installs it)");
    assert!(out.status.success(), "openssl could not unwrap");
    out.stdout
}

/// The KCV of a hex secret by OpenSSL: AES-256-ECB of a zero block, first 3 bytes.
fn openssl_kcv(dir: &Path, secret_hex: &str) -> String {
    let zero = dir.join("zero.bin");
    std::fs::write(&zero, [0u8; 16]).unwrap();
    let out = Command::new("openssl")
        .args(["enc", "-aes-256-ecb", "-nopad", "-K", secret_hex, "-in"])
        .arg(&zero)
        .output()
        .unwrap();
    assert!(out.status.success());
    hex::encode_upper(&out.stdout[..3])
}

fn assert_quiet(output: &str, secret: &str) {
    for form in leak_forms(secret) {
        assert!(!output.contains(&form), "a form of the secret was printed");
    }
    assert!(!output.contains(PIN), "the PIN was printed");
}

#[test]
fn a_poll_served_by_the_token_unwraps_with_openssl_to_the_imported_secret() {
    let token = Token::new(&module(), "");
    let secret = random_secret_hex();
    let imported = token.import("ccsdemo", 1, &secret);
    let store = std::fs::read_to_string(token.path().join("keys.toml")).unwrap();
    assert!(!store.contains("secret"), "{store}");
    let kcv = openssl_kcv(token.path(), &secret);
    assert!(store.contains(&format!("kcv = \"{kcv}\"")), "{store}");
    assert!(imported.contains(&format!("kcv {kcv}")), "{imported}");

    // `keys generate` draws from the token's own generator; its KCV is checked by OpenSSL
    // once the server has wrapped it.
    let generated = token.keys(&["generate", "--instance", "other", "--key-id", "1"], "");
    assert!(generated.status.success());
    let generated = String::from_utf8(generated.stdout).unwrap();
    let other_kcv = generated
        .split("kcv ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let list = token.keys(&["list"], "");
    let list_text = String::from_utf8(list.stdout).unwrap();
    assert!(list.status.success(), "{list_text}");
    assert!(
        list_text.contains(&format!("{kcv}  active"))
            && list_text.contains("token: ccs/ccsdemo/1 (sensitive)")
            && list_text.contains("token: ccs/other/1 (sensitive)"),
        "{list_text}"
    );

    let mut server = token.serve();
    assert_eq!(readyz(&server), 200);
    let cert = db_cert("ccsdemo");
    let (status, body) = token.poll("/kek/ccsdemo/1", &cert);
    assert_eq!(status, 200, "{body}");
    let plain = openssl_unwrap(token.path(), &cert, body["wrappedKey"].as_str().unwrap());
    assert!(
        plain == secret,
        "OpenSSL did not unwrap the imported secret"
    );

    let other = db_cert("other");
    let (status, body) = token.poll("/kek/other/1", &other);
    assert_eq!(status, 200, "{body}");
    let plain = openssl_unwrap(token.path(), &other, body["wrappedKey"].as_str().unwrap());
    assert_eq!(openssl_kcv(token.path(), &plain), other_kcv);

    // A key swapped in the token behind the key store's back (here its CKA_ID changed with
    // OpenSC) is not served to a new certificate.
    let set_id = token.pkcs11_tool(&[
        "--type",
        "secrkey",
        "--id",
        &kcv.to_lowercase(),
        "--set-id",
        "0a0b0c",
    ]);
    assert_succeeded(&set_id);
    let (status, body) = token.poll("/kek/ccsdemo/1", &db_cert("ccsdemo"));
    assert_eq!(status, 500, "{body}");

    server.terminate();
    let output = server.output();
    assert!(
        output.contains(&format!("no longer in the token with CKA_ID {kcv}")),
        "{output}"
    );
    assert!(output.contains("kcv=") && output.contains(&kcv), "{output}");
    assert_quiet(&output, &secret);
    assert_quiet(&format!("{imported}{list_text}"), &secret);
}

#[test]
fn with_plaintext_raw_the_object_holds_the_32_bytes() {
    let token = Token::new(&module(), "[wrap]\nplaintext = \"raw\"");
    let secret = random_secret_hex();
    token.import("ccsdemo", 1, &secret);
    let _server = token.serve();
    let cert = db_cert("ccsdemo");
    let body = token.poll_until("/kek/ccsdemo/1", &cert, 200);
    let plain = openssl_unwrap_bytes(token.path(), &cert, body["wrappedKey"].as_str().unwrap());
    assert!(plain == hex::decode(&secret).unwrap(), "not the 32 bytes");

    // An object made for the other form is refused at start-up, with the reason.
    let config = std::fs::read_to_string(&token.config).unwrap();
    std::fs::write(
        &token.config,
        config.replace("plaintext = \"raw\"", "plaintext = \"hex\""),
    )
    .unwrap();
    let out = token.check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "object \"ccs/ccsdemo/1\": holds 32 bytes but [wrap] plaintext = \"hex\" needs 64"
        ),
        "{stderr}"
    );
}

#[test]
fn escrow_from_a_token_is_the_tokens_own_wrap_or_a_clear_refusal() {
    // Escrow records are RSA-OAEP-SHA-256, wrapped by the token itself (C_WrapKey): the secret
    // never leaves it. SoftHSM2 2.6 wraps with OAEP-SHA-1 only, so here the export must be
    // refused, saying why, with nothing written and nothing leaked.
    use ccs_endpoint::tools::pki::{self, KeyKind};
    let token = Token::new(&module(), "");
    let secret = random_secret_hex();
    token.import("ccsdemo", 1, &secret);
    let d = token.path();
    let escrow = pki::ca("escrow", KeyKind::Rsa2048).unwrap();
    std::fs::write(d.join("escrow.crt"), escrow.cert_pem()).unwrap();
    let export = [
        "export",
        "--instance",
        "ccsdemo",
        "--key-id",
        "1",
        "--to",
        "escrow.crt",
        "--out",
        "escrow.json",
    ];
    let out = token.keys(&export, "");
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("does not wrap with RSA-OAEP-SHA-256")
            && said.contains("C_WrapKey failed: ArgumentsBad"),
        "{said}"
    );
    assert!(!d.join("escrow.json").exists());
    // Cloud Encryption needs the raw bytes, which the default hex objects cannot give.
    let cloud = token.keys(
        &[&export[..], &["--format", "cloud-encryption"]].concat(),
        "",
    );
    assert_eq!(cloud.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cloud.stderr).contains("raw 32 bytes"));
    for output in [&out, &cloud] {
        assert_quiet(
            &format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            &secret,
        );
    }
}

#[test]
fn the_kill_switches_work_as_with_the_file_backend_even_while_the_token_is_down() {
    let token = Token::new(&build_fault_module(), "");
    for id in [1, 2, 3] {
        token.import("ccsdemo", id, &random_secret_hex());
    }
    let _server = token.serve();
    let polled = db_cert("ccsdemo");
    for id in [1, 2, 3] {
        token.poll_until(&format!("/kek/ccsdemo/{id}"), &polled, 200);
    }

    // With a healthy token: soft kill switch 404, hard kill switch a past validUntil.
    let disable = token.keys(&["disable", "--instance", "ccsdemo", "--key-id", "1"], "");
    assert!(disable.status.success());
    let body = token.poll_until("/kek/ccsdemo/1", &db_cert("ccsdemo"), 404);
    assert_eq!(
        body["error"], "No active key for instance ccsdemo, key id 1",
        "the same 404 as the file backend"
    );
    let shutdown = token.keys(&["shutdown", "--instance", "ccsdemo", "--key-id", "2"], "");
    assert!(shutdown.status.success());
    wait_for_past_valid_until(&token, "/kek/ccsdemo/2", &db_cert("ccsdemo"));
    let enable = token.keys(&["enable", "--instance", "ccsdemo", "--key-id", "1"], "");
    assert!(enable.status.success());
    token.poll_until("/kek/ccsdemo/1", &db_cert("ccsdemo"), 200);

    // The token goes down. The kill switches need no token call: the soft one answers 404,
    // and the hard one answers a database that has polled before with its past validUntil.
    token.fault(Some("device"));
    let (status, _) = token.poll("/kek/ccsdemo/3", &db_cert("ccsdemo"));
    assert_eq!(status, 500, "a new certificate needs the token");
    let disable = token.keys(&["disable", "--instance", "ccsdemo", "--key-id", "1"], "");
    assert!(
        disable.status.success(),
        "the soft kill switch needs no token"
    );
    token.poll_until("/kek/ccsdemo/1", &polled, 404);
    let shutdown = token.keys(&["shutdown", "--instance", "ccsdemo", "--key-id", "3"], "");
    assert!(
        shutdown.status.success(),
        "the hard kill switch needs no token"
    );
    wait_for_past_valid_until(&token, "/kek/ccsdemo/3", &polled);
    token.fault(None);
}

/// Polls until the answer is 200 with a `validUntil` in the past (a reload takes a moment).
fn wait_for_past_valid_until(token: &Token, path: &str, cert: &Issued) {
    let start = Instant::now();
    loop {
        let (status, body) = token.poll(path, cert);
        if status == 200 {
            let until = time::OffsetDateTime::parse(
                body["validUntil"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            if until <= time::OffsetDateTime::now_utc() {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{path}: still {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn start_up_fails_with_a_clear_message() {
    let token = Token::new(&module(), "");
    token.import("ccsdemo", 1, &random_secret_hex());
    assert!(token.check().status.success());
    let config = std::fs::read_to_string(&token.config).unwrap();
    let rows: [(&str, String, &str); 6] = [
        (
            "world-readable PIN file",
            config.replace("pin_file = \"pin\"", "pin_file = \"open-pin\""),
            "refusing a PIN file that others can access or its group can write (mode 644)",
        ),
        (
            "wrong PIN",
            config.replace("pin_file = \"pin\"", "pin_file = \"wrong-pin\""),
            "the user PIN is wrong (CKR_PIN_INCORRECT)",
        ),
        (
            "missing token",
            config.replace(
                &format!("token_label = \"{LABEL}\""),
                "token_label = \"absent\"",
            ),
            &format!("token \"absent\": not found; the module offers \"{LABEL}\""),
        ),
        (
            "unset PIN variable",
            config.replace("pin_file = \"pin\"", "pin_env = \"CCS_TEST_UNSET_PIN\""),
            "the PIN environment variable CCS_TEST_UNSET_PIN (keys.pkcs11.pin_env) is not set",
        ),
        (
            "SHA-256 padding SoftHSM2 cannot wrap with",
            format!("{config}\n[wrap]\npadding = \"oaep-sha256\"\n"),
            "does not wrap with RSA-OAEP SHA-256/MGF1-SHA-256",
        ),
        (
            "missing module",
            config.replace(&module().display().to_string(), "/nonexistent/libpkcs11.so"),
            "/nonexistent/libpkcs11.so: no such file",
        ),
    ];
    write_private(&token.path().join("wrong-pin"), "999999\n");
    std::fs::write(token.path().join("open-pin"), format!("{PIN}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(token.path().join("open-pin"), open).unwrap();
    }
    for (name, text, want) in rows {
        std::fs::write(&token.config, text).unwrap();
        let out = token.check();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: check passed");
        // Checked first, and never printed: the output may hold the PIN.
        assert!(
            !stderr.contains(PIN) && !stderr.contains("999999"),
            "{name}: a PIN was printed"
        );
        assert!(stderr.contains(want), "{name}: {stderr}");
    }
    std::fs::write(&token.config, &config).unwrap();

    // The key store of a token backend holds no secret, and every entry needs its object.
    let store = token.path().join("keys.toml");
    let good = std::fs::read_to_string(&store).unwrap();
    let secret = random_secret_hex();
    let rows = [
        (
            format!("{good}secret = \"{secret}\"\n"),
            "field `secret`: not allowed: [keys] backend = \"pkcs11\" keeps secrets in the token",
        ),
        (
            format!("{good}[[key]]\ninstance = \"ccsdemo\"\nkey_id = 2\nkcv = \"ABCDEF\"\n"),
            "entry 2 (instance \"ccsdemo\", key_id 2): token \"ccs-test\": no object labelled \"ccs/ccsdemo/2\" in the token; import it with `ccs-endpoint keys import --instance ccsdemo --key-id 2`",
        ),
        (
            good.replace("kcv = \"", "kcv = \"0"),
            "field `kcv`: must be the 6 hex digits",
        ),
    ];
    for (text, want) in rows {
        write_private(&store, &text);
        let out = token.check();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{want}: check passed");
        assert!(
            !stderr.contains(&secret),
            "the misplaced secret was printed"
        );
        assert!(stderr.contains(want), "{stderr}");
    }
}

#[test]
fn a_token_failure_gives_500_with_an_error_id_and_service_resumes() {
    let fault = build_fault_module();
    let token = Token::new(&fault, "reinitialize_after = \"1s\"");
    let secret = random_secret_hex();
    token.import("ccsdemo", 1, &secret);
    let mut server = token.serve();

    // The device fails: 500 with an error id, /readyz 503, until it is back; after a second
    // of failures the library is re-initialised too.
    token.fault(Some("device"));
    let (status, body) = token.poll("/kek/ccsdemo/1", &db_cert("ccsdemo"));
    assert_eq!(status, 500, "{body}");
    let error_id = body["errorId"].as_str().unwrap().to_owned();
    assert!(body["error"].as_str().unwrap().contains(&error_id));
    assert_eq!(
        metric(&server, "ccs_key_backend_up"),
        "0",
        "set by the failed poll"
    );
    assert_eq!(readyz(&server), 503);
    std::thread::sleep(Duration::from_millis(1200));
    let (status, _) = token.poll("/kek/ccsdemo/1", &db_cert("ccsdemo"));
    assert_eq!(status, 500);
    token.fault(None);
    let cert = db_cert("ccsdemo");
    let body = token.poll_until("/kek/ccsdemo/1", &cert, 200);
    let plain = openssl_unwrap(token.path(), &cert, body["wrappedKey"].as_str().unwrap());
    assert!(plain == secret, "the unwrapped key differs after recovery");
    assert_eq!(
        metric(&server, "ccs_key_backend_up"),
        "1",
        "set by the served poll"
    );
    let start = Instant::now();
    while readyz(&server) != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "/readyz stays 503"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A closed session and a logged-out token are recovered within the request.
    for kind in ["session", "logout"] {
        token.fault(Some(kind));
        let (status, body) = token.poll("/kek/ccsdemo/1", &db_cert("ccsdemo"));
        assert_eq!(status, 200, "{kind}: {body}");
        assert!(
            !token.path().join("fault").exists(),
            "{kind}: the fault did not fire"
        );
    }

    server.terminate();
    let output = server.output();
    for want in [
        &format!("error_id=\"{error_id}\""),
        "reason=\"key_backend_failed\"",
        "C_FindObjectsInit failed: DeviceError",
        "recovery=\"reconnect\"",
        "re-initialising the PKCS#11 library",
        "recovery=\"new session\"",
        "recovery=\"log in again\"",
    ] {
        assert!(output.contains(want), "{want} not in:\n{output}");
    }
    assert_quiet(&output, &secret);
}

#[test]
fn concurrent_polls_through_a_flapping_token_never_break_the_server() {
    let fault = build_fault_module();
    let token = Token::new(&fault, "sessions = 2");
    let ids: Vec<u64> = (1..=6).collect();
    for &id in &ids {
        token.import("ccsdemo", id, &random_secret_hex());
    }
    let certs: Vec<Issued> = (0..4).map(|_| db_cert("ccsdemo")).collect();
    let mut server = token.serve();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let statuses = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        // The device fails and comes back every 40 ms while four pollers ask for 24
        // (certificate, key) pairs, each a token call, with two sessions between them.
        scope.spawn(|| {
            let mut on = false;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                on = !on;
                token.fault(on.then_some("device"));
                std::thread::sleep(Duration::from_millis(40));
            }
            if on {
                token.fault(None);
            }
        });
        let pollers: Vec<_> = certs
            .iter()
            .map(|cert| {
                let (ids, token, statuses) = (&ids, &token, &statuses);
                scope.spawn(move || {
                    for &id in ids {
                        let (status, body) = token.poll(&format!("/kek/ccsdemo/{id}"), cert);
                        if status == 500 {
                            assert!(body["errorId"].is_string(), "{body}");
                        }
                        statuses.lock().unwrap().push(status);
                    }
                })
            })
            .collect();
        for poller in pollers {
            poller.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let statuses = statuses.into_inner().unwrap();
    let failed = statuses.iter().filter(|s| **s == 500).count();
    println!(
        "{} polls while the token flapped: {failed} got 500",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 500),
        "{statuses:?} (server: {:?})\n{}",
        server.child.try_wait(),
        server.output()
    );
    // Once the token is steady, every pair is served.
    for cert in &certs {
        for &id in &ids {
            token.poll_until(&format!("/kek/ccsdemo/{id}"), cert, 200);
        }
    }
    assert_eq!(readyz(&server), 200);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!server.output().contains("panicked"), "{}", server.output());
}

#[test]
fn objects_are_sensitive_and_the_backend_never_reads_cka_value() {
    let token = Token::new(&module(), "");
    token.import("ccsdemo", 1, &random_secret_hex());
    // OpenSC's pkcs11-tool, an independent implementation, sees a sensitive object and is
    // refused its value.
    let tool = |args: &[&str]| token.pkcs11_tool(args);
    let listed = tool(&["--list-objects", "--type", "secrkey"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("label:      ccs/ccsdemo/1") && listed.contains("Access:     sensitive"),
        "{listed}"
    );
    let read = tool(&[
        "--read-object",
        "--type",
        "secrkey",
        "--label",
        "ccs/ccsdemo/1",
    ]);
    assert!(
        !read.status.success(),
        "the value was read out of the token"
    );
    assert!(String::from_utf8_lossy(&read.stderr).contains("CKR_ATTRIBUTE_SENSITIVE"));

    // A token that does not keep an object sensitive: `keys import` destroys it again and
    // fails, and nothing is left in the token or the key store.
    let careless = Token::new(&build_fault_module(), "");
    careless.fault(Some("careless"));
    let secret = random_secret_hex();
    let out = careless.keys(
        &["import", "--instance", "ccsdemo", "--key-id", "1"],
        &secret,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "did not keep the new object sensitive and extractable; it was destroyed again"
        ),
        "{stderr}"
    );
    careless.fault(None);
    let store = std::fs::read_to_string(careless.path().join("keys.toml")).unwrap();
    assert!(!store.contains("ccsdemo"), "{store}");
    let list = careless.keys(&["list"], "");
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(!list.contains("in the token"), "{list}");

    // An object written by another tool without CKA_SENSITIVE is refused at start-up (this
    // OpenSC writes AES but not generic secret keys; the sensitivity check comes first).
    let value = token.path().join("value.bin");
    let other_secret = random_secret_hex();
    std::fs::write(&value, hex::decode(&other_secret).unwrap()).unwrap();
    let kcv = Command::new("openssl")
        .args(["enc", "-aes-256-ecb", "-nopad", "-K", &other_secret])
        .arg("-in")
        .arg({
            let zero = token.path().join("zero.bin");
            std::fs::write(&zero, [0u8; 16]).unwrap();
            zero
        })
        .output()
        .unwrap()
        .stdout;
    let kcv = hex::encode_upper(&kcv[..3]);
    let written = tool(&[
        "--write-object",
        value.to_str().unwrap(),
        "--type",
        "secrkey",
        "--key-type",
        "AES:32",
        "--extractable",
        "--private",
        "--label",
        "ccs/other/1",
        "--id",
        &kcv.to_lowercase(),
    ]);
    assert_succeeded(&written);
    let store = token.path().join("keys.toml");
    let mut text = std::fs::read_to_string(&store).unwrap();
    text.push_str(&format!(
        "[[key]]\ninstance = \"other\"\nkey_id = 1\nkcv = \"{kcv}\"\n"
    ));
    write_private(&store, &text);
    let out = token.check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains(&other_secret), "the secret was printed");
    assert!(
        stderr.contains("object \"ccs/other/1\": is not sensitive (CKA_SENSITIVE is not true)"),
        "{stderr}"
    );

    // Two objects under one label are an error, never a choice.
    let second = tool(&[
        "--write-object",
        value.to_str().unwrap(),
        "--type",
        "secrkey",
        "--key-type",
        "AES:32",
        "--sensitive",
        "--extractable",
        "--private",
        "--label",
        "ccs/ccsdemo/1",
    ]);
    assert_succeeded(&second);
    let out = token.check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("entry 1 (instance \"ccsdemo\", key_id 1): token \"ccs-test\": object \"ccs/ccsdemo/1\": 2 objects carry this label"),
        "{stderr}"
    );

    // No code path asks a token for CKA_VALUE: the attribute type is never named (only set,
    // as `Attribute::Value`, when `keys import` creates an object).
    let mut named = Vec::new();
    scan(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path(),
        &mut named,
    );
    assert!(named.is_empty(), "CKA_VALUE is read in {named:?}");
}

fn scan(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let reads = line.match_indices("AttributeType::Value").any(|(i, m)| {
                    !line[i + m.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if reads || line.contains("CKA_VALUE,") || line.contains("CKA_VALUE)") {
                    found.push(format!("{}:{}", path.display(), n + 1));
                }
            }
        }
    }
}

/// Builds `tests/hsm/fault.c` into a temporary folder (kept for the life of the process).
fn build_fault_module() -> PathBuf {
    static BUILT: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, path) = BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("libccs-fault.so");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hsm/fault.c");
        let status = Command::new("gcc")
            .args(["-shared", "-fPIC", "-Wall", "-Werror", "-I/usr/include/p11-kit-1", "-o"])
            .arg(&out)
            .arg(&source)
            .arg("-ldl")
            .status()
            .expect("gcc is required to build the fault-injecting PKCS#11 module");
        assert!(
            status.success(),
            "building tests/hsm/fault.c failed: it needs the p11-kit header (apt-get install libp11-kit-dev; .ci/run does)"
        );
        (dir, out)
    });
    path.clone()
}
