//! The binary as operators run it: `serve --dev` and its curl command, `check`, the command the
//! Dockerfile runs, SIGTERM, and a scan of everything the server logged for the secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ccs_endpoint::secret::Secret;
use support::process::*;
use support::*;

#[test]
fn dev_default_serves_its_curl_command_logs_no_secret_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = spawn_dev(dir.path(), "trace");
    let output = server.output();
    assert!(output.contains("DEVELOPMENT ONLY"), "{output}");

    // The banner's curl command, pasted as is, answers 200 with a key for the dev database.
    let curl = output
        .lines()
        .skip_while(|l| !l.contains("Try it:"))
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert!(curl.starts_with("curl "), "{curl}");
    let reply = Command::new("sh")
        .args(["-c", &curl])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        reply.status.success(),
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&reply.stdout).unwrap();
    assert_eq!(body["keyId"], 1);
    let wrapped = BASE64.decode(body["wrappedKey"].as_str().unwrap()).unwrap();

    // The dev key store's secret is what OpenSSL unwraps with the dev database key.
    let keys = std::fs::read_to_string(dir.path().join("dev/keys.toml")).unwrap();
    let secret = keys
        .lines()
        .find_map(|l| l.strip_prefix("secret = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    std::fs::write(dir.path().join("wrapped.bin"), &wrapped).unwrap();
    let unwrapped = Command::new("openssl")
        .args([
            "pkeyutl",
            "-decrypt",
            "-inkey",
            "dev/client.key",
            "-in",
            "wrapped.bin",
        ])
        .args(["-pkeyopt", "rsa_padding_mode:oaep"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        unwrapped.stdout == secret.as_bytes(),
        "OpenSSL did not unwrap the dev secret"
    );

    // Every other row of the status table, so that each kind of log line is scanned.
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let cert = format!(
        "X-DB-Certificate: {}",
        std::fs::read_to_string(dir.path().join("dev/client.b64")).unwrap()
    );
    let tls = ["--cacert", "dev/ca.crt"];
    let rows: Vec<(Vec<String>, &str)> = vec![
        (vec![url("/kek/ccsdemo/1")], "401"),
        (
            vec!["-H".into(), cert.clone(), url("/kek/ccsdemo/2")],
            "404",
        ),
        (
            vec!["-X".into(), "POST".into(), url("/kek/ccsdemo/1")],
            "405",
        ),
        (vec![url("/kek/ccsdemo/1/")], "400"),
        (
            vec![
                "--tlsv1.2".into(),
                "--tls-max".into(),
                "1.2".into(),
                "-H".into(),
                cert,
                url("/kek/ccsdemo/1"),
            ],
            "200",
        ),
    ];
    for (args, want) in rows {
        let mut all: Vec<&str> = tls.to_vec();
        all.extend(args.iter().map(String::as_str));
        assert_eq!(curl_status(&all, dir.path()), want, "{args:?}");
    }

    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
    let log = server.output();
    assert!(
        log.contains("SIGTERM received") && log.contains("stopped"),
        "{log}"
    );
    for status in ["200", "400", "401", "404", "405"] {
        assert!(
            log.contains(&format!("status={status}")),
            "no {status} line in the log"
        );
    }
    assert!(
        log.contains("TRACE"),
        "the scan must cover trace-level output"
    );
    for form in leak_forms(&secret) {
        assert!(
            !log.contains(&form),
            "a form of the secret appears in the server output"
        );
    }
    assert!(
        !log.contains("PRIVATE KEY"),
        "a private key appears in the server output"
    );
}

fn check(config: &Path) -> std::process::Output {
    bin()
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn check_summarises_a_good_configuration_by_kcv_only() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new("ccsdemo", 1).with("not_after = \"2020-01-01T00:00:00Z\"");
    let secret = key.secret.clone();
    let config = write_config(
        dir.path(),
        &[key, Key::new("other", 7).with("disabled = true")],
        "",
    );
    let out = check(&config);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kcv = Secret::from_hex(&secret).unwrap().kcv().to_string();
    for want in [
        kcv.as_str(),
        "instance ccsdemo key_id 1",
        "hard kill switch",
        "instance other key_id 7",
        "disabled",
        "CN=snc-db-encrypt",
        "CN=snc-db-ejbca-root",
        "CN=snc-db-issuing-1",
        "tls ",
        "padding oaep-sha1, plaintext hex",
        "ok: ",
    ] {
        assert!(stdout.contains(want), "want {want:?} in:\n{stdout}");
    }
    for form in leak_forms(&secret) {
        assert!(!stdout.contains(&form), "check printed the secret");
    }

    // The same file through $CCS_ENDPOINT_CONFIG.
    let out = bin()
        .arg("check")
        .env("CCS_ENDPOINT_CONFIG", &config)
        .output()
        .unwrap();
    assert!(out.status.success());

    // --json: the same facts as one object, keys by KCV and state; a failure as ok: false.
    let out = bin()
        .args(["check", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["wrap"]["padding"], "oaep-sha1");
    assert_eq!(summary["trust"]["roots"].as_array().unwrap().len(), 3);
    let keys = summary["keys"].as_array().unwrap();
    assert_eq!(keys[0]["kcv"], kcv.as_str());
    assert_eq!(keys[0]["state"], "expired");
    assert_eq!(keys[0]["not_after"], "2020-01-01T00:00:00.000Z");
    assert_eq!(keys[1]["state"], "disabled");
    for form in leak_forms(&secret) {
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&form),
            "check --json printed the secret"
        );
    }
    std::fs::write(dir.path().join("keys.toml"), "not toml [").unwrap();
    let out = bin()
        .args(["check", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed["ok"], false);
    assert!(failed["error"].as_str().unwrap().contains("keys.toml"));
}

#[test]
fn check_fails_with_the_file_entry_and_field() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], "");
    let keys = dir.path().join("keys.toml");
    let stderr = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    };

    // The example key store's placeholder.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/keys.example.toml"
    ))
    .unwrap();
    write_private(&keys, &example);
    let err = stderr(check(&config));
    assert!(
        err.contains("keys.toml: entry 1 (instance \"ccsdemo\", key_id 1): field `secret`"),
        "{err}"
    );

    // A key store others can read.
    write_private(&keys, "");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = stderr(check(&config));
    assert!(err.contains("chmod 600"), "{err}");
    // ... served with a warning when explicitly allowed.
    let allowed = dir.path().join("allowed.toml");
    std::fs::write(
        &allowed,
        std::fs::read_to_string(&config).unwrap() + "allow_insecure_permissions = true\n",
    )
    .unwrap();
    let out = check(&allowed);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("allow_insecure_permissions"));

    // A missing roots file, a server key that is not the certificate's, a missing config.
    write_private(&keys, "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("root-b.pem", "missing.pem")).unwrap();
    let err = stderr(check(&config));
    assert!(err.contains("missing.pem"), "{err}");
    std::fs::write(&config, &text).unwrap();
    write_private(
        &dir.path().join("server.key"),
        &ccs_endpoint::tools::pki::KeyKind::EcP256
            .generate()
            .unwrap()
            .serialize_pem(),
    );
    let err = stderr(check(&config));
    assert!(
        err.contains("server.key") && err.contains("matching key"),
        "{err}"
    );
    let err = stderr(check(&dir.path().join("nope.toml")));
    assert!(
        err.contains("nope.toml") && err.contains("cannot read"),
        "{err}"
    );
}

/// The JSON array of a Dockerfile instruction such as `CMD ["serve"]`.
fn dockerfile_array(dockerfile: &str, instruction: &str) -> Vec<String> {
    let line = dockerfile
        .lines()
        .find(|l| l.starts_with(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"));
    serde_json::from_str(&line[instruction.len() + 1..]).unwrap()
}

#[test]
fn the_dockerfile_command_serves_and_stops_cleanly() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let entrypoint = dockerfile_array(&dockerfile, "ENTRYPOINT");
    let cmd = dockerfile_array(&dockerfile, "CMD");
    assert_eq!(entrypoint, ["/usr/local/bin/ccs-endpoint"]);
    assert!(dockerfile.contains(
        "COPY --from=build /src/target/release/ccs-endpoint /usr/local/bin/ccs-endpoint"
    ));
    let user = dockerfile.lines().find(|l| l.starts_with("USER ")).unwrap();
    assert!(!user.contains(" 0") && !user.contains("root"), "{user}");
    let env = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENV CCS_ENDPOINT_CONFIG="))
        .unwrap();
    assert!(env.starts_with("/etc/ccs-endpoint/"));

    // The admin port is reachable from outside the container: the image sets the address a
    // configuration without [admin] listen gets, and the example configuration leaves it unset.
    let admin_env = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENV CCS_ENDPOINT_ADMIN_LISTEN="))
        .unwrap();
    assert_eq!(admin_env, "0.0.0.0:9090");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/ccs-endpoint.toml"
    ))
    .unwrap();
    assert!(
        !example.contains("\n[admin]"),
        "the example configuration sets [admin]: the image's address would not apply"
    );

    // The image's command, with its configuration variable pointed at a test configuration
    // without [admin] (tests bind loopback only: the admin address comes from the variable).
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[admin]\nlisten = \"127.0.0.1:0\"\n", "");
    assert!(!text.contains("[admin]"), "{text}");
    let text = format!("{text}[server]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::write(&config, text).unwrap();
    let mut command = bin();
    command.args(&cmd).env("CCS_ENDPOINT_CONFIG", &config).env(
        "CCS_ENDPOINT_ADMIN_LISTEN",
        format!("127.0.0.1:{admin_port}"),
    );
    let mut server = Running::spawn(command);
    server.wait_for("listening");
    let url = format!("https://127.0.0.1:{port}/healthz");
    assert_eq!(curl_status(&["-k", &url], dir.path()), "200");
    let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
    let started = std::time::Instant::now();
    while curl_status(&[&readyz], dir.path()) != "200" {
        assert!(
            started.elapsed().as_secs() < 10,
            "the admin listener from CCS_ENDPOINT_ADMIN_LISTEN never got ready:\n{}",
            server.output()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = server.terminate();
    assert!(status.success(), "{status}\n{}", server.output());
}

/// `Key=value` settings of a systemd unit, in order.
fn unit_settings(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_systemd_unit_serves_reloads_and_stops_cleanly() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/systemd/ccs-endpoint.service"
    ))
    .unwrap();
    let start = unit_settings(&unit, "ExecStart");
    let args: Vec<&str> = start[0].split_whitespace().collect();
    assert_eq!(
        args[..3],
        ["/usr/local/bin/ccs-endpoint", "serve", "--config"]
    );
    // The configuration where `init --dir <the read-only directory>` writes it.
    let read_only = unit_settings(&unit, "ReadOnlyPaths");
    let config_dir = args[3]
        .strip_suffix("/config/ccs-endpoint.toml")
        .unwrap_or_else(|| panic!("{}", args[3]));
    assert_eq!(read_only, [config_dir]);
    let skeleton = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["init", "--dir"])
        .arg(skeleton.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(skeleton.path().join("config/ccs-endpoint.toml").is_file());
    assert_eq!(
        unit_settings(&unit, "ExecReload"),
        ["/bin/kill -HUP $MAINPID"]
    );
    assert_eq!(unit_settings(&unit, "KillSignal"), ["SIGTERM"]);
    assert_eq!(unit_settings(&unit, "User"), ["ccs-endpoint"]);
    assert_eq!(unit_settings(&unit, "Type"), ["notify"]);

    // The unit's command with a test configuration in place of its path: serves, reloads on
    // the unit's reload signal, drains and exits 0 on its stop signal.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    // Type=notify: systemd hears READY=1 once the listeners are bound, STOPPING=1 on SIGTERM.
    let socket_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let heard = |notify: &std::os::unix::net::UnixDatagram| {
        let mut buffer = [0u8; 256];
        let n = notify.recv(&mut buffer).expect("no sd_notify message");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    let mut command = bin();
    command
        .args(&args[1..3])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path);
    let mut server = Running::spawn(command);
    assert_eq!(heard(&notify), "READY=1");
    let url = format!("https://127.0.0.1:{port}/healthz");
    assert_eq!(
        curl_status(&["-k", &url], dir.path()),
        "200",
        "ready means serving"
    );
    server.wait_for("listening");
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    server.wait_for("trigger=\"sighup\"");
    assert_eq!(curl_status(&["-k", &url], dir.path()), "200");
    let status = server.terminate();
    assert!(status.success(), "{status}\n{}", server.output());
    assert_eq!(heard(&notify), "STOPPING=1");
}

#[test]
fn json_logs_audit_reloads_kill_switches_and_sighup() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new("ccsdemo", 1);
    let secret = key.secret.clone();
    let (mut server, port) = spawn_configured(dir.path(), &[key], "[log]\nformat = \"json\"");

    let cert = db_cert("ccsdemo");
    let h = format!("X-DB-Certificate: {}", header(&cert));
    let url = format!("https://127.0.0.1:{port}/kek/ccsdemo/1");
    assert_eq!(curl_status(&["-k", "-H", &h, &url], dir.path()), "200");

    // The soft kill switch, flipped in the file: reloaded and audited without a restart.
    let keys = dir.path().join("keys.toml");
    let tmp = dir.path().join("keys.toml.new");
    std::fs::write(
        &tmp,
        format!(
            "[[key]]\ninstance = \"ccsdemo\"\nkey_id = 1\nsecret = \"{secret}\"\ndisabled = true\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, &keys).unwrap();
    server.wait_for("key_state_changed");
    assert_eq!(curl_status(&["-k", "-H", &h, &url], dir.path()), "404");

    // SIGHUP re-reads the configuration: a changed [limits] is named as needing a restart.
    let config = dir.path().join("ccs-endpoint.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[limits]\nmax_connections = 7\n")).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    server.wait_for("\"sighup\"");
    server.wait_for("take effect only after a restart");
    assert!(server.terminate().success());

    let lines: Vec<serde_json::Value> = server
        .output()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| lines.iter().find(|l| pred(l)).cloned();
    let served = find(&|l| l["status"] == 200).expect("a request line for the 200");
    for field in [
        "request_id",
        "peer",
        "instance",
        "key_id",
        "reason",
        "cert_sha256",
        "cert_serial",
        "root",
        "kcv",
        "valid_until",
        "latency_us",
    ] {
        assert!(!served[field].is_null(), "no {field} in {served}");
    }
    assert_eq!(served["instance"], "ccsdemo");
    let refused = find(&|l| l["status"] == 404).expect("a request line for the 404");
    assert_eq!(refused["reason"], "key_disabled");
    let change = find(&|l| l["event"] == "key_state_changed").unwrap();
    assert_eq!(change["change"], "disabled");
    assert_eq!(change["kcv"], served["kcv"]);
    let sighup = find(&|l| l["trigger"] == "sighup" && l["component"] == "keys").unwrap();
    assert_eq!(sighup["result"], "ok");
    let restart = find(&|l| l["sections"].is_string()).expect("the sections needing a restart");
    assert!(
        restart["sections"].as_str().unwrap().contains("[limits]"),
        "{restart}"
    );
    let text = server.output();
    for form in leak_forms(&secret) {
        assert!(
            !text.contains(&form),
            "a form of the secret appears in the JSON log"
        );
    }
}

/// The files the Dockerfile's build stage copies, as `docker build` would lay them out.
fn docker_context(dockerfile: &str, into: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ignore = std::fs::read_to_string(repo.join(".dockerignore")).unwrap();
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        let (dest, sources) = parts.split_last().unwrap();
        for source in sources {
            assert!(
                !ignore.lines().any(|i| i == *source),
                ".dockerignore excludes {source}, which the Dockerfile copies"
            );
            let target = if dest.ends_with('/') {
                into.join(dest).join(source)
            } else {
                into.join(dest)
            };
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            let status = Command::new("cp")
                .arg("-r")
                .arg(repo.join(source))
                .arg(&target)
                .status()
                .unwrap();
            assert!(status.success(), "cp {source}");
        }
    }
}

#[test]
fn the_docker_build_context_holds_everything_the_build_needs() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    // The dependency-caching step stubs every [[bench]] target, or its `cargo build` fails.
    let manifest: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let stubbed = dockerfile
        .split("for b in ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the Dockerfile stubs the benches with `for b in …;`");
    for bench in manifest["bench"].as_array().unwrap() {
        let name = bench["name"].as_str().unwrap();
        assert!(
            stubbed.split_whitespace().any(|b| b == name),
            "the Dockerfile's dependency step does not stub benches/{name}.rs"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("src-root");
    std::fs::create_dir_all(&context).unwrap();
    docker_context(&dockerfile, &context);
    // `cargo check` there, sharing this build's target directory so only the crate is checked.
    let out = Command::new(env!("CARGO"))
        .args([
            "check",
            "--locked",
            "--offline",
            "--quiet",
            "--bin",
            "ccs-endpoint",
        ])
        .env(
            "CARGO_TARGET_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/docker-context-check"),
        )
        .current_dir(&context)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Dockerfile's build context does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_rust_log_that_would_hide_every_line_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], "");
    let output = bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "verbose")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("RUST_LOG: `verbose` is neither a level"),
        "{stderr}"
    );
}

#[test]
fn start_up_errors_follow_the_log_format_of_the_flag_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], "");
    // A key store that does not parse: the start fails, naming the file and the field.
    std::fs::write(
        dir.path().join("keys.toml"),
        "[[key]]\ninstance = \"ccsdemo\"\nkey_id = \"one\"\n",
    )
    .unwrap();
    for json_by in ["flag", "environment"] {
        let mut command = bin();
        command.args(["serve", "--config"]).arg(&config);
        match json_by {
            "flag" => command.args(["--log-format", "json"]),
            _ => command.env("CCS_ENDPOINT_LOG_FORMAT", "json"),
        };
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{json_by}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line: serde_json::Value = stdout
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{json_by}: no JSON line in {stdout:?}"));
        assert_eq!(line["level"], "ERROR", "{line}");
        let error = line["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("keys.toml") && error.contains("key_id"),
            "{json_by}: {line}"
        );
    }
}
