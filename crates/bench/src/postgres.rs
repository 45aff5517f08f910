//! A PostgreSQL database created for one run and dropped after it.

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::Postgres;

/// A database of its own for one benchmark run.
pub struct FreshDatabase {
    pub url: String,
    name: String,
}

impl FreshDatabase {
    /// Creates `millrace_bench_<pid>_<random>` on the server of `server_url` (whose own
    /// database name is ignored).
    pub async fn create(server_url: &str) -> anyhow::Result<FreshDatabase> {
        let name = format!(
            "millrace_bench_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut url = url::Url::parse(server_url)
            .with_context(|| format!("--postgres-url is not a URL: {server_url}"))?;
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        Postgres::create_database(&url)
            .await
            .with_context(|| format!("cannot create the database {name} (is PostgreSQL up?)"))?;
        Ok(FreshDatabase { url, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, closing any session still open on it.
    pub async fn drop_database(self) -> anyhow::Result<()> {
        Postgres::force_drop_database(&self.url)
            .await
            .with_context(|| format!("cannot drop the database {}", self.name))
    }
}
