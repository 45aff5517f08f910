//! Link sessions: creation, completion at most once, and the one-time code exchange.

use chrono::{Duration, Utc};
use millrace_model::LinkSessionStatus;
use millrace_store::{CodeExchange, LinkCompletion, NewLinkSession, Store};

use crate::{create, Ctx};

fn new_session(id: &str, expires_in: Duration) -> NewLinkSession {
    let now = Utc::now();
    NewLinkSession {
        id: id.to_owned(),
        url_token_hash: format!("url-hash-{id}"),
        operator_key_hash: "operator-a".to_owned(),
        customer_id: "acme".to_owned(),
        systems: Some(vec!["ibm_maximo".to_owned()]),
        redirect_uri: "https://vendor.example/callback".to_owned(),
        state: Some("xyz".to_owned()),
        created_at: now,
        expires_at: now + expires_in,
    }
}

fn completion(connection_id: &str, code_hash: &str, code_expires_in: Duration) -> LinkCompletion {
    LinkCompletion {
        connection_id: connection_id.to_owned(),
        code_hash: code_hash.to_owned(),
        code_expires_at: Utc::now() + code_expires_in,
        sealed_token: b"sealed-token".to_vec(),
        completed_at: Utc::now(),
    }
}

async fn status(store: &Store, id: &str) -> LinkSessionStatus {
    store.link_session(id).await.unwrap().unwrap().status
}

pub async fn link_sessions_are_created_found_and_listed(ctx: Ctx) {
    let store = &ctx.store;
    let created = store
        .create_link_session(new_session("ls_1", Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(created.status, LinkSessionStatus::Pending);
    assert_eq!(created.systems, Some(vec!["ibm_maximo".to_owned()]));
    assert_eq!(created.state.as_deref(), Some("xyz"));
    assert_eq!(created.connection_id, None);

    let mut open_offer = new_session("ls_2", Duration::hours(1));
    open_offer.systems = None;
    open_offer.state = None;
    store.create_link_session(open_offer).await.unwrap();
    store
        .create_link_session(new_session("ls_old", Duration::seconds(-1)))
        .await
        .unwrap();

    let found = store
        .link_session_by_url_token("url-hash-ls_2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "ls_2");
    assert_eq!(found.systems, None);
    assert!(store
        .link_session_by_url_token("no-such-hash")
        .await
        .unwrap()
        .is_none());
    assert_eq!(status(store, "ls_old").await, LinkSessionStatus::Expired);

    let listed = store.link_sessions(10).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(store.link_sessions(1).await.unwrap().len(), 1);
}

pub async fn a_link_session_completes_once_and_never_after_expiry(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    create(store, "c2").await;
    store
        .create_link_session(new_session("ls_1", Duration::hours(1)))
        .await
        .unwrap();
    store
        .create_link_session(new_session("ls_old", Duration::seconds(-1)))
        .await
        .unwrap();

    let first = completion("c1", "code-1", Duration::minutes(10));
    assert!(store.complete_link_session("ls_1", first).await.unwrap());
    let second = completion("c2", "code-2", Duration::minutes(10));
    assert!(!store.complete_link_session("ls_1", second).await.unwrap());

    let session = store.link_session("ls_1").await.unwrap().unwrap();
    assert_eq!(session.status, LinkSessionStatus::Completed);
    assert_eq!(session.connection_id.as_deref(), Some("c1"));
    assert!(session.completed_at.is_some());

    let late = completion("c2", "code-3", Duration::minutes(10));
    assert!(!store.complete_link_session("ls_old", late).await.unwrap());
    assert_eq!(status(store, "ls_old").await, LinkSessionStatus::Expired);
}

pub async fn a_code_is_exchanged_once_by_its_operator_before_it_expires(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    create(store, "c2").await;
    store
        .create_link_session(new_session("ls_1", Duration::hours(1)))
        .await
        .unwrap();
    store
        .create_link_session(new_session("ls_2", Duration::hours(1)))
        .await
        .unwrap();
    let good = completion("c1", "code-1", Duration::minutes(10));
    assert!(store.complete_link_session("ls_1", good).await.unwrap());
    let stale = completion("c2", "code-2", Duration::seconds(-1));
    assert!(store.complete_link_session("ls_2", stale).await.unwrap());
    let now = Utc::now();

    let unknown = store.exchange_link_code("nope", "operator-a", now);
    assert_eq!(unknown.await.unwrap(), CodeExchange::Unknown);
    let foreign = store.exchange_link_code("code-1", "operator-b", now);
    assert_eq!(foreign.await.unwrap(), CodeExchange::OtherOperator);
    let expired = store.exchange_link_code("code-2", "operator-a", now);
    assert_eq!(expired.await.unwrap(), CodeExchange::Expired);

    let exchanged = store.exchange_link_code("code-1", "operator-a", now);
    assert_eq!(
        exchanged.await.unwrap(),
        CodeExchange::Exchanged {
            session_id: "ls_1".to_owned(),
            connection_id: "c1".to_owned(),
            sealed_token: b"sealed-token".to_vec(),
        }
    );
    let again = store.exchange_link_code("code-1", "operator-a", now);
    assert_eq!(again.await.unwrap(), CodeExchange::AlreadyExchanged);
    let session = store.link_session("ls_1").await.unwrap().unwrap();
    assert_eq!(
        session.exchanged_at.map(|at| at.timestamp_micros()),
        Some(now.timestamp_micros())
    );
}

pub async fn concurrent_exchanges_hand_the_token_out_once(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    store
        .create_link_session(new_session("ls_1", Duration::hours(1)))
        .await
        .unwrap();
    let good = completion("c1", "code-1", Duration::minutes(10));
    assert!(store.complete_link_session("ls_1", good).await.unwrap());

    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .exchange_link_code("code-1", "operator-a", Utc::now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut exchanged = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            CodeExchange::Exchanged { .. } => exchanged += 1,
            CodeExchange::AlreadyExchanged => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(exchanged, 1);
}
