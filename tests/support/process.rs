//! Running the binary as a process: spawn, collect its output, signal it; curl; leak forms.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ccs-endpoint"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process whose stdout and stderr are collected as they come.
pub struct Running {
    pub child: Child,
    output: Arc<Mutex<String>>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = output.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Self { child, output }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn wait_for(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.output().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "server exited ({status}) before {needle:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no {needle:?} after 60 s:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status within 15 s.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion with `stdin` as its standard input.
pub fn output_with_stdin(mut cmd: Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn curl_status(args: &[&str], cwd: &Path) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("curl is required (.ci/run installs it)");
    String::from_utf8(out.stdout).unwrap()
}

/// Every form in which a secret could leak.
pub fn leak_forms(secret_hex: &str) -> Vec<String> {
    let lower = secret_hex.to_ascii_lowercase();
    let raw = hex::decode(&lower).unwrap();
    vec![
        lower.clone(),
        lower.to_ascii_uppercase(),
        lower[16..48].to_owned(),
        BASE64.encode(&raw),
        BASE64.encode(lower.as_bytes()),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
        format!("{:?}", raw),
    ]
}

/// `serve --dev` with its files in `dir`, on a free port (admin listener on any port), once it
/// is listening; `RUST_LOG` as given.
pub fn spawn_dev(dir: &Path, rust_log: &str) -> (Running, u16) {
    let port = free_port();
    let mut cmd = bin();
    cmd.args([
        "serve",
        "--dev",
        "--dev-listen",
        &format!("127.0.0.1:{port}"),
    ])
    .args(["--dev-admin-listen", "127.0.0.1:0"])
    .current_dir(dir)
    .env("RUST_LOG", rust_log);
    let mut server = Running::spawn(cmd);
    server.wait_for("listening");
    (server, port)
}

/// `serve --config` with a configuration written into `dir` by `write_config` (`extra` goes
/// after `[keys]`, before the `[server]` table this adds), on a free port, once listening.
pub fn spawn_configured(dir: &Path, keys: &[super::Key], extra: &str) -> (Running, u16) {
    let port = free_port();
    let config = super::write_config(
        dir,
        keys,
        &format!("{extra}\n[server]\nlisten = \"127.0.0.1:{port}\""),
    );
    let mut cmd = bin();
    cmd.args(["serve", "--config"]).arg(&config);
    let mut server = Running::spawn(cmd);
    server.wait_for("listening");
    (server, port)
}
