//! A fleet's test bed: a database migrated and imported through the CLI as an operator does,
//! replicas following it, and polls of ccsdemo/1.

use std::path::{Path, PathBuf};

use super::postgres::Postgres;
use super::process::bin;
use super::{db_cert, header, write_config, write_private, Key, TestServer};

pub const KEK: &str = "/kek/ccsdemo/1";

/// `[state]` for replica `name` reading its database URL from `url_file`.
pub fn state(url_file: &Path, name: &str, staleness: &str) -> String {
    format!(
        "[state]\nbackend = \"postgres\"\nurl_file = \"{}\"\nmax_staleness = \"{staleness}\"\nreplica = \"{name}\"\n",
        url_file.display()
    )
}

/// A database for one test, its schema migrated and the states of `keys` imported through
/// the CLI, as an operator does; returns the operator's configuration.
pub struct Bed {
    pub work: tempfile::TempDir,
    pub url_file: PathBuf,
    pub config: PathBuf,
}

impl Bed {
    pub async fn new(pg: &Postgres, db: &str, keys: &[Key]) -> Self {
        Self::with_ca(pg, db, keys, None).await
    }

    /// As `new`, the operator verifying the database's TLS certificate against `ca` (PEM).
    pub async fn with_ca(pg: &Postgres, db: &str, keys: &[Key], ca: Option<&str>) -> Self {
        let bed = Self::bare(pg, db, keys, ca).await;
        let (code, out, err) = bed.cli(&["db", "migrate"]).await;
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("applied schema version 3"), "{out}");
        let keys_file = bed.work.path().join("keys.toml");
        let keys_file = keys_file.to_str().unwrap();
        let (code, out, err) = bed.cli(&["db", "import-states", "--from", keys_file]).await;
        assert_eq!(code, 0, "{out}{err}");
        bed
    }

    /// An empty database and the operator's configuration for it.
    pub async fn bare(pg: &Postgres, db: &str, keys: &[Key], ca: Option<&str>) -> Self {
        let url = pg.create_db(db).await;
        let work = tempfile::tempdir().unwrap();
        let url_file = work.path().join("state-url");
        write_private(&url_file, &format!("{url}\n"));
        let mut operator = state(&url_file, "operator", "2s");
        if let Some(ca) = ca {
            let path = work.path().join("db-ca.pem");
            std::fs::write(&path, ca).unwrap();
            operator.push_str(&format!("ca = \"{}\"\n", path.display()));
        }
        let config = write_config(work.path(), keys, &operator);
        Self {
            work,
            url_file,
            config,
        }
    }

    /// Runs `ccs-endpoint <args> --config <operator config>`: exit code, stdout, stderr.
    pub async fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = bin();
        cmd.args(args).arg("--config").arg(&self.config);
        cmd.current_dir(self.work.path());
        cmd.env("USER", "alice");
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn replica(&self, keys: &[Key], name: &str) -> TestServer {
        TestServer::start(keys, &state(&self.url_file, name, "2s")).await
    }
}

/// The status of a poll for ccsdemo/1, and whether its `validUntil` has passed.
pub async fn poll(server: &TestServer) -> (u16, bool) {
    let reply = server.get(KEK, Some(&header(&db_cert("ccsdemo")))).await;
    let past = reply.status == 200 && {
        let until = reply.json()["validUntil"].as_str().unwrap().to_owned();
        ccs_endpoint::keystore::parse_time(&until).unwrap() <= time::OffsetDateTime::now_utc()
    };
    (reply.status, past)
}

pub async fn all_answer(servers: &[&TestServer], expected: (u16, bool)) -> bool {
    for server in servers {
        if poll(server).await != expected {
            return false;
        }
    }
    true
}
