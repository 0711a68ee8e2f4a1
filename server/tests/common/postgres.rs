//! A PostgreSQL database of a test's own (the store contract, migrate, the cluster tests).

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// A database of its own on the PostgreSQL server named by `TETHER_TEST_POSTGRES` (a URL the test
/// may create databases from; default: the local server over its Unix socket, as the current
/// user). CI installs and starts one (`scripts/install-test-deps.sh`); elsewhere, without one,
/// the PostgreSQL tests say so and pass.
pub struct TestDatabase {
    admin: PgConnectOptions,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Option<TestDatabase> {
        let url = std::env::var("TETHER_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres:///postgres?host=/var/run/postgresql".to_owned());
        let admin: PgConnectOptions = url
            .parse()
            .expect("TETHER_TEST_POSTGRES is a postgres:// URL");
        let mut connection = match PgConnection::connect_with(&admin).await {
            Ok(connection) => connection,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("no PostgreSQL server for this test ({e}); skipped");
                return None;
            }
            Err(e) => panic!("CI has no PostgreSQL server at {url}: {e}"),
        };
        let name = format!("tether_test_{}_{}", std::process::id(), rand_suffix());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .expect("create the test database");
        Some(TestDatabase {
            admin,
            admin_url: url,
            name,
        })
    }

    pub fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    /// The database's address, for a `tether-server --db`.
    pub fn url(&self) -> String {
        let (base, query) = match self.admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (self.admin_url.as_str(), String::new()),
        };
        let authority_end = base.find("://").map_or(0, |i| i + 3);
        let path_start = base[authority_end..]
            .find('/')
            .map_or(base.len(), |i| authority_end + i);
        format!("{}/{}{query}", &base[..path_start], self.name)
    }

    pub async fn drop(self) {
        let mut connection = PgConnection::connect_with(&self.admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut connection)
            .await
            .expect("drop the test database");
    }
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos:x}")
}
