//! Operations: hot reload under load, a corrupt key store, a renewed server certificate,
//! metrics after traffic, draining on shutdown, limits, the allow-list and trusted proxies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccs_endpoint::tools::pki;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

fn key_store(entries: &[(&str, u64, &str, &str)]) -> String {
    entries
        .iter()
        .map(|(i, k, secret, extra)| {
            format!("[[key]]\ninstance = \"{i}\"\nkey_id = {k}\nsecret = \"{secret}\"\n{extra}\n")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_served_with_no_failed_request_under_load() {
    let key = Key::new("ccsdemo", 1);
    let old = key.secret.clone();
    let server = TestServer::start(&[key], "").await;
    let cert = Arc::new(db_cert("ccsdemo"));
    let h = Arc::new(header(&cert));
    let stop = Arc::new(AtomicBool::new(false));
    let new = random_secret_hex();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (addr, cert, h, stop) = (server.addr, cert.clone(), h.clone(), stop.clone());
        let (old, new) = (old.clone(), new.clone());
        clients.push(tokio::spawn(async move {
            let (mut olds, mut news, mut failures) = (0, 0, 0);
            let raw = request_bytes("GET", "/kek/ccsdemo/1", &[("X-DB-Certificate", &h)]);
            while !stop.load(Ordering::SeqCst) {
                let reply = raw_request(addr, TLS13, raw.as_bytes()).await;
                if reply.status != 200 {
                    failures += 1;
                    continue;
                }
                let got = unwrap_with(&cert, reply.json()["wrappedKey"].as_str().unwrap(), false);
                if got == old.as_bytes() {
                    olds += 1;
                } else if got == new.as_bytes() {
                    news += 1;
                } else {
                    failures += 1;
                }
            }
            (olds, news, failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    replace_file(
        &server.dir.path().join("keys.toml"),
        &key_store(&[("ccsdemo", 1, &new, "")]),
    );
    let rotated = Instant::now();
    wait_until("the new key", || async {
        let reply = server.get("/kek/ccsdemo/1", Some(&h)).await;
        unwrap_with(&cert, reply.json()["wrappedKey"].as_str().unwrap(), false) == new.as_bytes()
    })
    .await;
    let seen_after = rotated.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut olds, mut news, mut failures) = (0, 0, 0);
    for client in clients {
        let (o, n, f) = client.await.unwrap();
        (olds, news, failures) = (olds + o, news + n, failures + f);
    }
    println!("rotation seen after {seen_after:?}: {olds} old, {news} new, {failures} failed");
    assert_eq!(failures, 0, "no request may fail during a rotation");
    assert!(olds > 0 && news > 0, "{olds} old, {news} new");
    let (_, metrics) = server.admin_get("/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            "ccs_reloads_total{component=\"keys\",result=\"ok\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_renewed_server_certificate_is_presented_to_new_connections() {
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    let first = server.get("/healthz", None).await.server_cert.unwrap();
    assert_eq!(first, pki().server.cert_der());
    let renewed = pki::server(&pki().server_ca, &["localhost", "127.0.0.1"]).unwrap();
    // A certificate without its key fails to load and changes nothing.
    replace_file(&server.dir.path().join("server.crt"), &renewed.cert_pem());
    server.reloader.reload(true, "test");
    assert_eq!(
        server.get("/healthz", None).await.server_cert.unwrap(),
        first
    );
    replace_file(&server.dir.path().join("server.key"), &renewed.key_pem());
    wait_until("the renewed certificate", || async {
        server.get("/healthz", None).await.server_cert.unwrap() == renewed.cert_der()
    })
    .await;
    let (_, metrics) = server.admin_get("/metrics").await;
    assert!(
        sample(
            &metrics,
            "ccs_reloads_total{component=\"tls\",result=\"failed\"}"
        ) >= Some(1.0)
    );
    assert!(
        sample(
            &metrics,
            "ccs_reloads_total{component=\"tls\",result=\"ok\"}"
        ) >= Some(1.0)
    );
}

#[tokio::test]
async fn metrics_health_and_readiness_after_traffic() {
    let server = TestServer::start(
        &[
            Key::new("ccsdemo", 1),
            Key::new("ccsdemo", 2).with("disabled = true"),
        ],
        "",
    )
    .await;
    let cert = db_cert("ccsdemo");
    let h = header(&cert);
    assert_eq!(server.get("/kek/ccsdemo/1", Some(&h)).await.status, 200);
    assert_eq!(server.get("/kek/ccsdemo/1", None).await.status, 401);
    assert_eq!(server.get("/kek/ccsdemo/2", Some(&h)).await.status, 404);
    server.reloader.reload(true, "test");
    assert_eq!(server.admin_get("/healthz").await.0, 200);
    assert_eq!(server.admin_get("/readyz").await.0, 200);
    let (status, m) = server.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let cert_not_after = {
        let (_, c) = x509_parser::parse_x509_certificate(cert.cert_der()).unwrap();
        c.validity().not_after.timestamp() as f64
    };
    let server_not_after = {
        let (_, c) = x509_parser::parse_x509_certificate(pki().server.cert_der()).unwrap();
        c.validity().not_after.timestamp() as f64
    };
    type Check = Box<dyn Fn(f64) -> bool>;
    let build_info = format!(
        "ccs_build_info{{version=\"{}\",commit=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        option_env!("CCS_ENDPOINT_COMMIT").unwrap_or("unknown")
    );
    let expect: Vec<(&str, Check)> = vec![
        (
            "ccs_requests_total{status=\"200\",reason=\"ok\"}",
            Box::new(|v| v == 1.0),
        ),
        (
            "ccs_requests_total{status=\"401\",reason=\"cert_missing\"}",
            Box::new(|v| v == 1.0),
        ),
        (
            "ccs_requests_total{status=\"404\",reason=\"key_disabled\"}",
            Box::new(|v| v == 1.0),
        ),
        ("ccs_request_duration_seconds_count", Box::new(|v| v == 3.0)),
        (
            "ccs_certificate_rejections_total{reason=\"cert_missing\"}",
            Box::new(|v| v == 1.0),
        ),
        (
            "ccs_reloads_total{component=\"keys\",result=\"ok\"}",
            Box::new(|v| v == 1.0),
        ),
        (
            "ccs_reloads_total{component=\"trust\",result=\"ok\"}",
            Box::new(|v| v == 1.0),
        ),
        (
            "ccs_reloads_total{component=\"tls\",result=\"ok\"}",
            Box::new(|v| v == 1.0),
        ),
        (
            "ccs_polls_total{instance=\"ccsdemo\"}",
            Box::new(|v| v == 1.0),
        ),
        (
            "ccs_last_successful_poll_timestamp_seconds{instance=\"ccsdemo\"}",
            Box::new(move |v| (v - now).abs() < 30.0),
        ),
        (
            "ccs_database_certificate_not_after_timestamp_seconds{instance=\"ccsdemo\"}",
            Box::new(move |v| v == cert_not_after),
        ),
        (
            "ccs_server_certificate_not_after_timestamp_seconds",
            Box::new(move |v| v == server_not_after),
        ),
        (
            "ccs_trust_roots_earliest_not_after_timestamp_seconds",
            Box::new(move |v| v > now),
        ),
        ("ccs_keys{state=\"active\"}", Box::new(|v| v == 1.0)),
        ("ccs_keys{state=\"disabled\"}", Box::new(|v| v == 1.0)),
        ("ccs_ready", Box::new(|v| v == 1.0)),
        (build_info.as_str(), Box::new(|v| v == 1.0)),
        // This test process's own figures (the daemon runs in it).
        (
            "process_resident_memory_bytes",
            Box::new(|v| v > 1_000_000.0),
        ),
        ("process_open_fds", Box::new(|v| v >= 3.0)),
        ("process_cpu_seconds_total", Box::new(|v| v > 0.0)),
        (
            "process_start_time_seconds",
            Box::new(move |v| v <= now + 1.0 && v > now - 3600.0),
        ),
    ];
    for (series, ok) in expect {
        let value = sample(&m, series).unwrap_or_else(|| panic!("no {series} in:\n{m}"));
        assert!(ok(value), "{series} = {value}");
    }

    // Every metric the shipped alert rules and dashboard query is one this server exports.
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/ccs-endpoint.json",
    ] {
        let text =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
                .unwrap();
        let mut names: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ccs_") || w.starts_with("process_"))
            // A fleet's series (tests/fleet.rs checks those against a replica), the admin
            // API's (tests/api.rs, against a server with [api]).
            .filter(|w| !w.starts_with("ccs_state_") && !w.starts_with("ccs_api_"))
            .collect();
        names.sort();
        names.dedup();
        assert!(names.len() > 5, "{file}: {names:?}");
        for name in names {
            let family = ["_total", "_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(
                m.contains(&format!("# TYPE {family} ")),
                "{file} queries {name}, which /metrics does not export:\n{m}"
            );
        }
    }
}

/// A daemon whose every request first waits `delay`, so that requests are in flight on demand.
struct Slow {
    addr: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    run: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_slow(delay: Duration, extra_config: &str) -> Slow {
    use ccs_endpoint::runtime::Loaded;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[Key::new("ccsdemo", 1)], extra_config);
    let daemon = Loaded::from_file(&config).unwrap().into_daemon().unwrap();
    let router = daemon.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            tokio::time::sleep(delay).await;
            next.run(request).await
        },
    ));
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, admin_addr) = (service.local_addr().unwrap(), admin.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(daemon.run_with(router, service, Some(admin), async {
        let _ = stopped.await;
    }));
    Slow {
        addr,
        admin: admin_addr,
        stop: Some(stop),
        run,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_request_timeout_gets_503() {
    let slow = start_slow(
        Duration::from_millis(1500),
        "[limits]\nrequest_timeout = \"1s\"",
    )
    .await;
    let h = header(&db_cert("ccsdemo"));
    let raw = request_bytes("GET", "/kek/ccsdemo/1", &[("X-DB-Certificate", &h)]);
    let started = Instant::now();
    let reply = raw_request(slow.addr, TLS13, raw.as_bytes()).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        reply.error().contains("not answered within 1s"),
        "{}",
        reply.body
    );
    assert!(reply.json()["errorId"].is_string(), "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(started.elapsed() < Duration::from_millis(1400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_and_reports_not_ready() {
    // Every request takes 600 ms, so some are in flight when shutdown is asked for.
    let mut slow = start_slow(
        Duration::from_millis(600),
        "[limits]\ndrain_timeout = \"5s\"",
    )
    .await;
    let (addr, admin_addr) = (slow.addr, slow.admin);
    let h = header(&db_cert("ccsdemo"));
    let raw = request_bytes("GET", "/kek/ccsdemo/1", &[("X-DB-Certificate", &h)]);
    let in_flight: Vec<_> = (0..6)
        .map(|_| {
            let raw = raw.clone();
            tokio::spawn(async move { raw_request(addr, TLS13, raw.as_bytes()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let asked = Instant::now();
    slow.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: not ready, and no new connection is taken.
    let mut tcp = TcpStream::connect(admin_addr).await.unwrap();
    tcp.write_all(request_bytes("GET", "/readyz", &[]).as_bytes())
        .await
        .unwrap();
    let mut bytes = Vec::new();
    tcp.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(parse_reply(&bytes, None).status, 503);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "a new connection was accepted while draining"
    );
    for request in in_flight {
        let reply = request.await.unwrap();
        assert_eq!(
            reply.status, 200,
            "an in-flight request was cut: {}",
            reply.body
        );
    }
    slow.run.await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "drain took {:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_slow_client_is_cut_off_at_the_header_timeout_while_others_are_served() {
    let server = TestServer::start(
        &[Key::new("ccsdemo", 1)],
        "[limits]\nheader_timeout = \"1s\"\nhandshake_timeout = \"1s\"",
    )
    .await;
    let h = header(&db_cert("ccsdemo"));
    // A TLS connection that never finishes its headers.
    let connector = tokio_rustls::TlsConnector::from(client_config(TLS13));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut slow = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    slow.write_all(b"GET /kek/ccsdemo/1 HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // A TCP connection that never starts its handshake.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // A plain connection to the admin listener that never finishes its headers.
    let mut admin = TcpStream::connect(server.admin).await.unwrap();
    admin.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    // A keep-alive connection that goes idle after one request.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut idle = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let idled = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let first = idle.read(&mut buf).await.unwrap_or(0);
        assert!(String::from_utf8_lossy(&buf[..first]).starts_with("HTTP/1.1 200"));
        let mut rest = Vec::new();
        let _ = idle.read_to_end(&mut rest).await;
        started.elapsed()
    });
    let cut = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = slow.read_to_end(&mut buf).await;
        started.elapsed()
    });
    let quiet = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = silent.read_to_end(&mut buf).await;
        started.elapsed()
    });
    for _ in 0..5 {
        assert_eq!(server.get("/kek/ccsdemo/1", Some(&h)).await.status, 200);
    }
    let admin_cut = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = admin.read_to_end(&mut buf).await;
        started.elapsed()
    });
    for (what, task) in [
        ("headers", cut),
        ("handshake", quiet),
        ("keep-alive idle", idled),
        ("admin headers", admin_cut),
    ] {
        let elapsed = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap_or_else(|_| panic!("the slow {what} client was never cut off"))
            .unwrap();
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
            "slow {what} cut after {elapsed:?}"
        );
    }
    let (_, m) = server.admin_get("/metrics").await;
    assert_eq!(
        sample(
            &m,
            "ccs_connections_refused_total{reason=\"handshake_timeout\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn connection_and_header_limits() {
    let server = TestServer::start(
        &[Key::new("ccsdemo", 1)],
        "[limits]\nmax_connections = 2\nmax_header_bytes = 8192",
    )
    .await;
    // A head over the limit: 431.
    let big = "a".repeat(9000);
    let reply = server
        .send(TLS13, "GET", "/kek/ccsdemo/1", &[("X-Padding", &big)])
        .await;
    assert_eq!(reply.status, 431);
    // Two idle connections fill the server; a third takes the slot of the one idle longest,
    // which is closed (the listener sheds what does nothing rather than refuse a poller).
    let connector = tokio_rustls::TlsConnector::from(client_config(TLS13));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        held.push(connector.connect(name.clone(), tcp).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut third = connector
        .connect(name.clone(), tcp)
        .await
        .expect("the third connection");
    third
        .write_all(request_bytes("GET", "/healthz", &[]).as_bytes())
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = third.read_to_end(&mut reply).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // The oldest gave way: the server closed it.
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(2), held[0].read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the idlest was not closed: {closed:?}"
    );
    let (_, m) = server.admin_get("/metrics").await;
    assert!(
        sample(&m, "ccs_connections_refused_total{reason=\"shed_idle\"}") >= Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn the_allow_list_and_trusted_proxies() {
    let h = header(&db_cert("ccsdemo"));
    let cert = [("X-DB-Certificate", h.as_str())];

    // 127.0.0.1 is not allowed: closed at accept, before TLS (it never holds a slot).
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "[server]\nallow = [\"saas\"]").await;
    let connector = tokio_rustls::TlsConnector::from(client_config(TLS13));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    for _ in 0..3 {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        assert!(connector.connect(name.clone(), tcp).await.is_err());
    }
    let (_, m) = server.admin_get("/metrics").await;
    assert_eq!(
        sample(&m, "ccs_connections_refused_total{reason=\"not_allowed\"}"),
        Some(3.0)
    );
    assert_eq!(sample(&m, "ccs_open_connections"), Some(0.0));
    drop(server);

    // Behind a trusted proxy, X-Forwarded-For names the client.
    let server = TestServer::start(
        &[Key::new("ccsdemo", 1)],
        "[server]\nallow = [\"saas\"]\ntrusted_proxies = [\"127.0.0.1\"]",
    )
    .await;
    let allowed = [cert[0], ("X-Forwarded-For", "149.96.10.20")];
    assert_eq!(
        server
            .send(TLS13, "GET", "/kek/ccsdemo/1", &allowed)
            .await
            .status,
        200
    );
    let refused = [cert[0], ("X-Forwarded-For", "149.96.10.20, 203.0.113.9")];
    let reply = server.send(TLS13, "GET", "/kek/ccsdemo/1", &refused).await;
    assert_eq!(reply.status, 403);
    assert!(reply.error().contains("203.0.113.9"), "{}", reply.body);
    drop(server);

    // Behind an L4 balancer speaking the PROXY protocol: the client it names is judged before
    // TLS, so an excluded one never holds a slot.
    let server = TestServer::start(
        &[Key::new("ccsdemo", 1)],
        "[server]\nallow = [\"saas\"]\ntrusted_proxies = [\"127.0.0.1\"]\nproxy_protocol = true",
    )
    .await;
    let raw = request_bytes("GET", "/kek/ccsdemo/1", &cert);
    let proxied = |source: &str| format!("PROXY TCP4 {source} 127.0.0.1 40000 8443\r\n");
    let reply = raw_request_after(
        server.addr,
        proxied("149.96.1.1").as_bytes(),
        TLS13,
        raw.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(proxied("198.51.100.1").as_bytes())
        .await
        .unwrap();
    assert!(connector.connect(name.clone(), tcp).await.is_err());
    // Without the header the connection is refused before TLS.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    assert!(connector.connect(name, tcp).await.is_err());
    let (_, m) = server.admin_get("/metrics").await;
    assert_eq!(
        sample(&m, "ccs_connections_refused_total{reason=\"proxy_header\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "ccs_connections_refused_total{reason=\"not_allowed\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_trust_reload_flushes_the_certificate_cache() {
    let server = TestServer::start(&[Key::new("ccsdemo", 1)], "").await;
    let from_b = pki::database(&pki().root_b, "ccsdemo").unwrap();
    let h = header(&from_b);
    // Served twice: verified, then from the cache.
    for _ in 0..2 {
        assert_eq!(server.get("/kek/ccsdemo/1", Some(&h)).await.status, 200);
    }
    // Root B leaves the bundle: the cached certificate must not outlive it.
    replace_file(
        &server.dir.path().join("root-b.pem"),
        &pki().impostor.cert_pem(),
    );
    wait_until("root B to be gone", || async {
        server.get("/kek/ccsdemo/1", Some(&h)).await.status == 401
    })
    .await;
    let reply = server.get("/kek/ccsdemo/1", Some(&h)).await;
    assert!(
        reply
            .error()
            .contains("not issued by a configured trust root"),
        "{}",
        reply.body
    );
}

/// Start-up and reload judge a part with the same loader: a reload gives the warnings start-up
/// gave, and refuses a file with the very words start-up refuses it with.
#[tokio::test]
async fn start_up_and_reload_warn_and_refuse_alike() {
    use ccs_endpoint::runtime::reload::Part;
    use ccs_endpoint::runtime::Loaded;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[], "allow_insecure_permissions = true");
    let keys = dir.path().join("keys.toml");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();

    let loaded = Loaded::from_file(&config).unwrap();
    let mut at_start = loaded.warnings.clone();
    at_start.sort();
    assert!(
        at_start
            .iter()
            .any(|w| w.contains("allow_insecure_permissions"))
            && at_start.iter().any(|w| w.contains("holds no key")),
        "{at_start:?}"
    );
    let daemon = loaded.into_daemon().unwrap();
    let report = daemon.reloader.reload(true, "test");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let mut on_reload: Vec<String> = report.warnings.into_iter().map(|(_, w)| w).collect();
    on_reload.sort();
    assert_eq!(on_reload, at_start);

    // A key store that does not parse: the same refusal both ways.
    std::fs::write(
        &keys,
        "[[key]]\ninstance = \"ccsdemo\"\nkey_id = -1\nsecret = \"00\"\n",
    )
    .unwrap();
    let refused = Loaded::from_file(&config).err().unwrap().to_string();
    assert!(refused.contains("key_id"), "{refused}");
    let report = daemon.reloader.reload(true, "test");
    assert_eq!(report.failed, vec![(Part::Keys, refused)]);
}
