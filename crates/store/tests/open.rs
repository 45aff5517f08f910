//! Opening stores from URLs.

use millrace_model::{Deployment, ObjectType};
use millrace_store::{Backend, NewConnection, Store, StoreError};

#[tokio::test]
async fn an_in_memory_sqlite_store_works() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    let new = NewConnection {
        id: "c1".into(),
        customer_id: "acme".into(),
        system: "ibm_maximo".into(),
        deployment: Deployment::OnPremise,
        name: "Maximo".into(),
        credits: 4,
        lookback_days: 30,
        sync_interval_seconds: 900,
        sealed_credentials: vec![0],
        token_hash: "h".into(),
        objects: vec![ObjectType::Assets],
        created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    };
    store.create_connection(new, 10).await.unwrap();
    let connection = store.connection("c1").await.unwrap().unwrap();
    assert_eq!(connection.deployment, Deployment::OnPremise);
    assert_eq!(store.credits(10).await.unwrap().available, 6);
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_their_password() {
    let refused = Store::open("mysql://root:hunter2@db/millrace").await;
    let Err(StoreError::UnsupportedUrl(url)) = refused else {
        panic!("expected UnsupportedUrl");
    };
    assert!(!url.contains("hunter2"), "{url}");
}
