//! Tables of configuration parsing: defaults, every option, and errors naming the field.

use std::path::Path;

use super::*;
use crate::wrap::{Padding, Plaintext};

const MINIMAL: &str = r#"
    [tls]
    cert = "certs/server.crt"
    key = "/abs/server.key"
    [trust]
    roots = ["a.pem", "b.pem"]
    [keys]
    file = "keys.toml"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/ccs/ccs-endpoint.toml"), text)
}

#[test]
fn defaults_and_path_resolution() {
    let c = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.server.listen,
        "0.0.0.0:8443".parse().unwrap_or_else(|e| panic!("{e}"))
    );
    assert_eq!(c.tls.cert, Path::new("/etc/ccs/certs/server.crt"));
    assert_eq!(c.tls.key, Path::new("/abs/server.key"));
    assert_eq!(c.trust.roots[1], Path::new("/etc/ccs/b.pem"));
    assert_eq!(c.trust.min_rsa_bits, 2048);
    assert_eq!(c.keys.file, Path::new("/etc/ccs/keys.toml"));
    assert_eq!(c.keys.validity, DEFAULT_VALIDITY);
    assert!(!c.keys.allow_insecure_permissions);
    assert_eq!(c.wrap.padding, Padding::OaepSha1);
    assert_eq!(c.wrap.plaintext, Plaintext::Hex);
}

#[test]
fn every_option() {
    let c = parse(&format!(
        "{MINIMAL}\nvalidity = \"36h\"\nallow_insecure_permissions = true\n[server]\nlisten = \"[::1]:9443\"\n[wrap]\npadding = \"oaep-sha256\"\nplaintext = \"raw\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.keys.validity, time::Duration::hours(36));
    assert!(c.keys.allow_insecure_permissions);
    assert_eq!(c.server.listen.port(), 9443);
    assert_eq!(c.wrap.padding, Padding::OaepSha256);
    assert_eq!(c.wrap.plaintext, Plaintext::Raw);
}

#[test]
fn errors_name_the_field() {
    let rows = [
        (format!("{MINIMAL}\n[extra]\n"), "unknown field `extra`"),
        (
            format!("{MINIMAL}\nvalidty = \"1d\""),
            "unknown field `validty`",
        ),
        (
            format!("{MINIMAL}\nvalidity = \"soon\""),
            "field `keys.validity`: \"soon\" is not a duration",
        ),
        (
            format!("{MINIMAL}\nvalidity = \"0s\""),
            "field `keys.validity`: must be more than 0",
        ),
        (
            format!("{MINIMAL}\nvalidity = \"3651d\""),
            "field `keys.validity`",
        ),
        (
            format!("{MINIMAL}\n[server]\nlisten = \"8443\""),
            "field `server.listen`",
        ),
        (
            format!("{MINIMAL}\n[wrap]\npadding = \"pkcs1\""),
            "unknown variant `pkcs1`",
        ),
        (
            format!("{MINIMAL}\n[wrap]\nplaintext = \"base64\""),
            "unknown variant `base64`",
        ),
        (
            MINIMAL.replace("roots = [\"a.pem\", \"b.pem\"]", "roots = []"),
            "field `trust.roots`",
        ),
        (
            MINIMAL.replace(
                "roots = [\"a.pem\", \"b.pem\"]",
                "roots = [\"a.pem\"]\nmin_rsa_bits = 1024",
            ),
            "field `trust.min_rsa_bits`: must be between 2048 and 8192 (found 1024)",
        ),
        (
            MINIMAL.replace("[keys]\n    file = \"keys.toml\"", ""),
            "missing field `keys`",
        ),
        ("not toml [".into(), "config /etc/ccs/ccs-endpoint.toml: "),
    ];
    for (text, want) in rows {
        let err = parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("config /etc/ccs/ccs-endpoint.toml: "),
            "{err}"
        );
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

#[test]
fn operations_sections() {
    let c = parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.admin.listen.map(|a| a.port()), Some(9090));
    assert_eq!(c.log.format, LogFormat::Text);
    assert!(c.server.allow.is_none() && c.server.trusted_proxies.is_empty());

    let c = parse(&format!(
        "{MINIMAL}\n[server]\nallow = [\"saas\", \"10.1.2.3\", \"192.168.0.0/16\"]\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = true\n\
         [limits]\nhandshake_timeout = \"2s\"\nheader_timeout = \"3s\"\nrequest_timeout = \"4s\"\nmax_header_bytes = 9000\nmax_connections = 7\ndrain_timeout = \"5s\"\n\
         [admin]\nenabled = false\n[log]\nformat = \"json\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let allow = c.server.allow.unwrap_or_default();
    assert_eq!(allow.len(), SAAS_RANGES.len() + 2);
    assert!(allow.iter().any(|n| n.contains(
        &"149.96.1.2"
            .parse::<std::net::IpAddr>()
            .unwrap_or_else(|e| panic!("{e}"))
    )));
    assert_eq!(allow[SAAS_RANGES.len()].to_string(), "10.1.2.3/32");
    assert!(c.server.proxy_protocol);
    assert_eq!(
        c.limits,
        Limits {
            handshake_timeout: Duration::from_secs(2),
            header_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(4),
            max_header_bytes: 9000,
            max_connections: 7,
            max_connections_per_client: 64,
            drain_timeout: Duration::from_secs(5),
        }
    );
    assert!(c.admin.listen.is_none());
    assert_eq!(c.log.format, LogFormat::Json);

    let rows = [
        ("[server]\nallow = []", "field `server.allow`: is empty"),
        (
            "[server]\nallow = [\"10.0.0.0/33\"]",
            "field `server.allow`: \"10.0.0.0/33\"",
        ),
        (
            "[server]\ntrusted_proxies = [\"lb\"]",
            "field `server.trusted_proxies`",
        ),
        (
            "[server]\nproxy_protocol = true",
            "field `server.proxy_protocol`: needs server.trusted_proxies",
        ),
        (
            "[limits]\nheader_timeout = \"0s\"",
            "field `limits.header_timeout`",
        ),
        (
            "[limits]\ndrain_timeout = \"2h\"",
            "field `limits.drain_timeout`",
        ),
        (
            "[limits]\nrequest_timeout = \"soon\"",
            "field `limits.request_timeout`",
        ),
        (
            "[limits]\nmax_header_bytes = 100",
            "field `limits.max_header_bytes`",
        ),
        (
            "[limits]\nmax_connections = 0",
            "field `limits.max_connections`",
        ),
        ("[limits]\nmax_conns = 1", "unknown field `max_conns`"),
        ("[admin]\nlisten = \"localhost\"", "field `admin.listen`"),
        ("[log]\nformat = \"xml\"", "unknown variant `xml`"),
    ];
    for (extra, want) in rows {
        let err = parse(&format!("{MINIMAL}\n{extra}\n"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }
}

#[test]
fn pkcs11_backend() {
    let token = format!(
        "{MINIMAL}\nbackend = \"pkcs11\"\n[keys.pkcs11]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken_label = \"ccs\"\npin_file = \"hsm.pin\"\n"
    );
    let c = parse(&token).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.keys.backend,
        Backend::Pkcs11(Pkcs11Config {
            module: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
            token: TokenSelector::Label("ccs".into()),
            pin: PinSource::File(PathBuf::from("/etc/ccs/hsm.pin")),
            sessions: 4,
            reinitialize_after: Duration::from_secs(30),
        })
    );
    assert_eq!(
        parse(MINIMAL).map(|c| c.keys.backend).ok(),
        Some(Backend::File)
    );
    let rows = [
        (
            format!("{MINIMAL}\nbackend = \"pkcs11\""),
            "field `keys.pkcs11`: missing",
        ),
        (
            token.replace("backend = \"pkcs11\"\n", ""),
            "field `keys.backend`: is \"file\" but a [keys.pkcs11] table is present",
        ),
        (
            token.replace("backend = \"pkcs11\"", "backend = \"hsm\""),
            "unknown variant `hsm`",
        ),
        (
            token.replace("token_label = \"ccs\"\n", ""),
            "field `keys.pkcs11.token_label`: missing",
        ),
        (
            token.replace("token_label = \"ccs\"", "token_label = \"ccs\"\nslot = 3"),
            "field `keys.pkcs11.slot`: give token_label or slot, not both",
        ),
        (
            token.replace(
                "pin_file = \"hsm.pin\"",
                "pin_env = \"PIN\"\npin_file = \"p\"",
            ),
            "field `keys.pkcs11.pin_env`: give pin_file or pin_env, not both",
        ),
        (
            token.replace("pin_file = \"hsm.pin\"\n", ""),
            "field `keys.pkcs11.pin_file`: missing",
        ),
        (
            token.replace("pin_file = \"hsm.pin\"", "pin = \"1234\""),
            "unknown field `pin`",
        ),
        (
            format!("{token}sessions = 0\n"),
            "field `keys.pkcs11.sessions`: must be between 1 and 64",
        ),
        (
            format!("{token}reinitialize_after = \"100ms\"\n"),
            "field `keys.pkcs11.reinitialize_after`: \"100ms\" must be between 1s and 1h",
        ),
    ];
    for (text, want) in rows {
        let error = parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!error.contains("1234"), "a misplaced PIN was quoted");
        assert!(error.contains(want), "{want:?} not in {error:?}");
    }
    let c = parse(&token.replace("token_label = \"ccs\"", "slot = 3").replace(
        "pin_file = \"hsm.pin\"",
        "pin_env = \"CCS_HSM_PIN\"\nsessions = 8",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let Backend::Pkcs11(p) = c.keys.backend else {
        panic!("not pkcs11")
    };
    assert_eq!(p.token, TokenSelector::Slot(3));
    assert_eq!(p.pin, PinSource::Env("CCS_HSM_PIN".into()));
    assert_eq!(p.sessions, 8);
}

#[test]
fn state_backend() {
    assert_eq!(
        parse(MINIMAL).unwrap_or_else(|e| panic!("{e}")).state,
        StateConfig::File
    );
    let c = parse(&format!(
        "{MINIMAL}\n[state]\nbackend = \"postgres\"\nurl_file = \"state-url\"\nca = \"db-ca.pem\"\nreplica = \"r-1.a_b\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let pg = c.state.postgres().unwrap_or_else(|| panic!("postgres"));
    assert_eq!(pg.url, UrlSource::File("/etc/ccs/state-url".into()));
    assert_eq!(pg.ca.as_deref(), Some(Path::new("/etc/ccs/db-ca.pem")));
    assert_eq!(pg.max_staleness, DEFAULT_MAX_STALENESS);
    assert_eq!(pg.replica, "r-1.a_b");
    // Without a name, the host's.
    let c = parse(&format!(
        "{MINIMAL}\n[state]\nbackend = \"postgres\"\nurl_env = \"CCS_STATE_URL\"\nmax_staleness = \"3s\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let pg = c.state.postgres().unwrap_or_else(|| panic!("postgres"));
    assert_eq!(pg.url, UrlSource::Env("CCS_STATE_URL".into()));
    assert_eq!(pg.max_staleness, Duration::from_secs(3));
    assert!(!pg.replica.is_empty());

    let pg = "[state]\nbackend = \"postgres\"\n";
    let rows = [
        (
            format!("{MINIMAL}\n[state]\nbackend = \"etcd\""),
            "field `state.backend`: \"etcd\"",
        ),
        (
            format!("{MINIMAL}\n[state]\nurl_env = \"X\""),
            "field `state.backend`: is \"file\"",
        ),
        (format!("{MINIMAL}\n{pg}"), "field `state.url_env`: missing"),
        (
            format!("{MINIMAL}\n{pg}url_env = \"\""),
            "field `state.url_env`: is empty",
        ),
        (
            format!("{MINIMAL}\n{pg}url_env = \"X\"\nurl_file = \"f\""),
            "field `state.url_env`: give url_env or url_file, not both",
        ),
        (
            format!("{MINIMAL}\n{pg}url_env = \"X\"\nmax_staleness = \"100ms\""),
            "field `state.max_staleness`: \"100ms\" must be between 1s and 1h",
        ),
        (
            format!("{MINIMAL}\n{pg}url_env = \"X\"\nreplica = \"a b\""),
            "field `state.replica`: \"a b\" must be 1 to 128",
        ),
        (
            format!("{MINIMAL}\n{pg}url = \"postgresql://u:pw@h/db\""),
            "unknown field `url`",
        ),
    ];
    for (text, expected) in rows {
        let error = parse(&text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains(expected), "{text}\n→ {error}");
        assert!(!error.contains("pw@"), "{error}");
    }
}
