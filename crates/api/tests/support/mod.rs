//! The contract suite's harness: the compliance crate's test world with the Maximo connector,
//! and the Maximo-specific helper the contract tests use.

pub mod receiver;

pub use millrace_compliance::world::*;
use serde_json::Value;

/// The contract suite's world: Maximo connected.
pub type Harness = World;

/// Starts a world on `backend` with the Maximo connector.
pub async fn start(backend: Backend) -> Harness {
    let mut registry = millrace_connector::Registry::new();
    registry.register(millrace_ibm_maximo::connector());
    World::start(backend, registry, "ibm_maximo").await
}

/// Reads sandbox contents through the Maximo API.
pub trait MaximoSandbox {
    /// Reads every member of a sandbox structure through its Maximo API (as the source holds
    /// it), with `select` attributes and an optional `where` clause.
    async fn sandbox_members(
        &self,
        index: usize,
        structure: &str,
        select: &str,
        where_clause: Option<&str>,
    ) -> Vec<Value>;
}

impl MaximoSandbox for World {
    async fn sandbox_members(
        &self,
        index: usize,
        structure: &str,
        select: &str,
        where_clause: Option<&str>,
    ) -> Vec<Value> {
        let api_key = self.credentials(index)["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let base_url = self.sandbox_url(index).to_owned();
        let mut query = vec![
            ("lean", "1".to_owned()),
            ("oslc.select", select.to_owned()),
            ("oslc.pageSize", "5000".to_owned()),
        ];
        if let Some(where_clause) = where_clause {
            query.push(("oslc.where", where_clause.to_owned()));
        }
        let mut url =
            reqwest::Url::parse_with_params(&format!("{base_url}/oslc/os/{structure}"), &query)
                .unwrap();
        let mut members = Vec::new();
        loop {
            let response = self
                .http
                .get(url.clone())
                .header("apikey", &api_key)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "sandbox {structure}: {}",
                response.status()
            );
            let body: Value = response.json().await.unwrap();
            members.extend(body["member"].as_array().unwrap().iter().cloned());
            match body["responseInfo"]["nextPage"]["href"].as_str() {
                Some(next) => url = reqwest::Url::parse(next).unwrap(),
                None => return members,
            }
        }
    }
}

/// Declares each listed test once per backend, as `sqlite::NAME` and `postgres::NAME`; each is
/// an `async fn NAME(h: &mut Harness)` in the crate root.
macro_rules! contract {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let mut harness = crate::support::start(crate::support::Backend::Sqlite).await;
                    crate::$module::$test(&mut harness).await;
                    harness.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let mut harness =
                        crate::support::start(crate::support::Backend::Postgres).await;
                    crate::$module::$test(&mut harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}
