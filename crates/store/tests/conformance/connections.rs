//! Connections, credits, tokens and settings.

use millrace_model::{ConnectionStatus, ObjectType, StreamState};
use millrace_store::secrets::SecretBox;
use millrace_store::{ConnectionFilter, Store, StoreError};

use crate::{asset, checkpoint, create, new_connection, t, token_hash, Ctx};

pub async fn creates_lists_and_filters_connections(ctx: Ctx) {
    let store = &ctx.store;
    for (id, customer, system, created) in [
        ("c1", "acme", "ibm_maximo", 1),
        ("c2", "acme", "fiix", 2),
        ("c3", "initech", "ibm_maximo", 3),
    ] {
        let mut new = new_connection(id, customer, system, 1);
        new.created_at = t(created);
        let connection = store.create_connection(new, 10).await.unwrap();
        assert_eq!(connection.status, ConnectionStatus::Active);
        assert_eq!(connection.created_at, t(created));
    }

    let c1 = store.connection("c1").await.unwrap().unwrap();
    assert_eq!(
        (c1.customer_id.as_str(), c1.system.as_str()),
        ("acme", "ibm_maximo")
    );
    assert_eq!(
        (c1.credits, c1.lookback_days, c1.sync_interval_seconds),
        (1, 30, 900)
    );
    assert_eq!(c1.disconnected_at, None);
    let objects: Vec<&str> = c1.streams.iter().map(|s| s.object.as_str()).collect();
    assert_eq!(
        objects,
        ["assets", "work-orders"],
        "streams come in object order"
    );
    for stream in &c1.streams {
        assert_eq!(stream.state, StreamState::Pending);
        assert_eq!(stream.record_count, 0);
        assert_eq!(
            stream.next_run_at,
            Some(t(1)),
            "the first sync is due at once"
        );
    }
    assert_eq!(store.connection("nope").await.unwrap(), None);

    let ids = |connections: Vec<millrace_model::Connection>| -> Vec<String> {
        connections.into_iter().map(|c| c.id).collect()
    };
    let all = store
        .list_connections(&ConnectionFilter::default())
        .await
        .unwrap();
    assert!(all.iter().all(|c| c.streams.len() == 2));
    assert_eq!(ids(all), ["c3", "c2", "c1"], "newest first");

    let acme = ConnectionFilter {
        customer_id: Some("acme".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_connections(&acme).await.unwrap()),
        ["c2", "c1"]
    );
    let maximo = ConnectionFilter {
        system: Some("ibm_maximo".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_connections(&maximo).await.unwrap()),
        ["c3", "c1"]
    );

    store.disconnect("c3", t(10)).await.unwrap();
    let disconnected = ConnectionFilter {
        status: Some(ConnectionStatus::Disconnected),
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_connections(&disconnected).await.unwrap()),
        ["c3"]
    );
    let active_maximo = ConnectionFilter {
        status: Some(ConnectionStatus::Active),
        ..maximo
    };
    assert_eq!(
        ids(store.list_connections(&active_maximo).await.unwrap()),
        ["c1"]
    );
}

pub async fn reserves_refuses_and_returns_credits(ctx: Ctx) {
    let store = &ctx.store;
    store
        .create_connection(new_connection("c1", "acme", "sap", 3), 5)
        .await
        .unwrap();
    let credits = store.credits(5).await.unwrap();
    assert_eq!((credits.total, credits.used, credits.available), (5, 3, 2));
    assert_eq!(credits.ledger.len(), 1);
    assert_eq!(
        (credits.ledger[0].delta, credits.ledger[0].reason.as_str()),
        (-3, "reserve")
    );

    let refused = store
        .create_connection(new_connection("c2", "acme", "sap", 3), 5)
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::InsufficientCredits {
                needed: 3,
                available: 2
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        store.connection("c2").await.unwrap(),
        None,
        "nothing is created"
    );
    assert_eq!(store.token_lookup(&token_hash("c2")).await.unwrap(), None);
    assert_eq!(store.credits(5).await.unwrap().ledger.len(), 1);

    let disconnected = store.disconnect("c1", t(10)).await.unwrap();
    assert_eq!(disconnected.status, ConnectionStatus::Disconnected);
    assert_eq!(disconnected.disconnected_at, Some(t(10)));
    assert!(disconnected
        .streams
        .iter()
        .all(|s| s.state == StreamState::Paused));
    assert!(disconnected.streams.iter().all(|s| s.next_run_at.is_none()));
    let again = store.disconnect("c1", t(20)).await.unwrap();
    assert_eq!(again, disconnected, "a second disconnect changes nothing");

    let credits = store.credits(5).await.unwrap();
    assert_eq!((credits.used, credits.available), (0, 5));
    let ledger: Vec<(i64, &str)> = credits
        .ledger
        .iter()
        .map(|e| (e.delta, e.reason.as_str()))
        .collect();
    assert_eq!(
        ledger,
        [(3, "release"), (-3, "reserve")],
        "released once, newest first"
    );
    assert_eq!(credits.ledger[0].at, t(10));
    assert!(credits.ledger.iter().all(|e| e.connection_id == "c1"));

    store
        .create_connection(new_connection("c2", "acme", "sap", 5), 5)
        .await
        .unwrap();
    assert_eq!(store.credits(5).await.unwrap().available, 0);
    // A smaller pool than what is held shows nothing available rather than underflowing.
    assert_eq!(store.credits(4).await.unwrap().available, 0);

    let missing = store.disconnect("nope", t(1)).await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound(_))),
        "{missing:?}"
    );
}

pub async fn concurrent_creates_cannot_overdraw(ctx: Ctx) {
    let attempts = (0..12).map(|i| {
        let store = ctx.store.clone();
        tokio::spawn(async move {
            store
                .create_connection(new_connection(&format!("c{i}"), "acme", "x", 1), 5)
                .await
        })
    });
    let mut created = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::InsufficientCredits {
                needed: 1,
                available: 0,
            }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 5);
    let credits = ctx.store.credits(5).await.unwrap();
    assert_eq!(
        (credits.used, credits.available, credits.ledger.len()),
        (5, 0, 5)
    );
}

pub async fn tokens_rotate_and_revoke(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    let first = store
        .token_lookup(&token_hash("c1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.connection_id, "c1");
    assert_eq!(first.connection_status, ConnectionStatus::Active);
    assert_eq!(first.revoked_at, None);
    assert_eq!(store.token_lookup("unknown").await.unwrap(), None);

    store.rotate_token("c1", "second").await.unwrap();
    let old = store
        .token_lookup(&token_hash("c1"))
        .await
        .unwrap()
        .unwrap();
    assert!(old.revoked_at.is_some(), "the old token stops at once");
    let new = store.token_lookup("second").await.unwrap().unwrap();
    assert_eq!((new.connection_id.as_str(), new.revoked_at), ("c1", None));

    store.disconnect("c1", t(30)).await.unwrap();
    let after = store.token_lookup("second").await.unwrap().unwrap();
    assert_eq!(after.connection_status, ConnectionStatus::Disconnected);
    assert_eq!(after.revoked_at, Some(t(30)));
    assert_eq!(
        store
            .token_lookup(&token_hash("c1"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        old.revoked_at,
        "an earlier revocation keeps its time"
    );

    let rotated = store.rotate_token("c1", "third").await;
    assert!(
        matches!(rotated, Err(StoreError::ConnectionInactive(_))),
        "{rotated:?}"
    );
    assert_eq!(store.token_lookup("third").await.unwrap(), None);
    let missing = store.rotate_token("nope", "fourth").await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound(_))),
        "{missing:?}"
    );
}

pub async fn reauth_required_keeps_credits_and_blocks_writes(ctx: Ctx) {
    let store = &ctx.store;
    create(store, "c1").await;
    store
        .set_reauth_required("c1", "password expired")
        .await
        .unwrap();

    let connection = store.connection("c1").await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::ReauthRequired);
    assert_eq!(
        connection.status_reason.as_deref(),
        Some("password expired")
    );
    assert!(connection
        .streams
        .iter()
        .all(|s| s.state == StreamState::Paused));
    assert_eq!(
        store.credits(10).await.unwrap().used,
        1,
        "credits stay reserved"
    );
    let token = store
        .token_lookup(&token_hash("c1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.connection_status, ConnectionStatus::ReauthRequired);

    let page = [asset("c1", "A1", "h1", serde_json::json!({}))];
    let applied = store
        .apply_page("c1", ObjectType::Assets, &page, &checkpoint("r", 1), t(1))
        .await;
    assert!(
        matches!(applied, Err(StoreError::ConnectionInactive(_))),
        "{applied:?}"
    );

    store.disconnect("c1", t(5)).await.unwrap();
    assert_eq!(store.credits(10).await.unwrap().used, 0);
    store.set_reauth_required("c1", "again").await.unwrap();
    let connection = store.connection("c1").await.unwrap().unwrap();
    assert_eq!(
        connection.status,
        ConnectionStatus::Disconnected,
        "a disconnect is final"
    );
    assert_eq!(
        connection.status_reason.as_deref(),
        Some("password expired")
    );
}

pub async fn settings_keep_their_first_value(ctx: Ctx) {
    let store = &ctx.store;
    assert_eq!(store.setting("webhook_secret").await.unwrap(), None);
    assert_eq!(
        store
            .setting_or_insert("webhook_secret", "one")
            .await
            .unwrap(),
        "one"
    );
    assert_eq!(
        store
            .setting_or_insert("webhook_secret", "two")
            .await
            .unwrap(),
        "one"
    );
    assert_eq!(
        store.setting("webhook_secret").await.unwrap().as_deref(),
        Some("one")
    );
}

pub async fn reopening_keeps_schema_and_data(ctx: Ctx) {
    create(&ctx.store, "c1").await;
    ctx.store
        .setting_or_insert("instance", "i-1")
        .await
        .unwrap();

    let reopened = Store::open(&ctx.url).await.unwrap();
    reopened.ping().await.unwrap();
    assert_eq!(reopened.backend(), ctx.store.backend());
    assert!(reopened.connection("c1").await.unwrap().is_some());
    assert_eq!(
        reopened.setting("instance").await.unwrap().as_deref(),
        Some("i-1")
    );
    reopened.close().await;
}

pub async fn sealed_credentials_round_trip(ctx: Ctx) {
    let store = &ctx.store;
    let secrets = SecretBox::new([9; 32]);
    let mut new = new_connection("c1", "acme", "ibm_maximo", 1);
    new.sealed_credentials = secrets.seal(br#"{"apikey":"s3cret"}"#);
    store.create_connection(new, 10).await.unwrap();

    let sealed = store.sealed_credentials("c1").await.unwrap();
    assert_eq!(secrets.open(&sealed).unwrap(), br#"{"apikey":"s3cret"}"#);
    assert_eq!(store.data_epoch("c1").await.unwrap(), 0);
    let missing = store.sealed_credentials("nope").await;
    assert!(
        matches!(missing, Err(StoreError::ConnectionNotFound(_))),
        "{missing:?}"
    );
}
