//! The dashboard's guards over plain HTTP: the login, the session cookie's attributes, and
//! actions refused without a session or with a forged CSRF token.

use millrace_connector::SandboxOptions;
use reqwest::{Method, StatusCode};

use crate::support::{Harness, ADMIN_KEY};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Returns the `name=value` part of the response's cookie called `name`, and the whole line.
fn cookie(response: &reqwest::Response, name: &str) -> (String, String) {
    let line = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|line| line.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie was set"));
    let pair = line.split(';').next().unwrap().to_owned();
    (pair, line)
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

pub async fn dashboard_actions_need_a_session_and_its_csrf_token(h: &mut Harness) {
    let sandbox = h.sandbox(SandboxOptions::default()).await;
    let (id, token) = h.connect_synced("acme", sandbox).await;
    let http = client();
    let base = &h.base;

    // No session: every page and action sends the browser to the login page.
    for (method, path) in [
        (Method::GET, "/dashboard".to_owned()),
        (Method::GET, format!("/dashboard/connections/{id}/live")),
        (Method::POST, format!("/dashboard/connections/{id}/rotate")),
    ] {
        let answer = http
            .request(method, format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(answer.headers()["location"], "/dashboard/login", "{path}");
    }

    // The login form's token is bound to its pre-login cookie.
    let page = http
        .get(format!("{base}/dashboard/login"))
        .send()
        .await
        .unwrap();
    let (login_cookie, _) = cookie(&page, "__Host-millrace_login");
    let login_csrf = csrf_of(&page.text().await.unwrap());
    let login = |cookie: String, csrf: String, key: &'static str| {
        http.post(format!("{base}/dashboard/login"))
            .header("cookie", cookie)
            .form(&[("csrf", csrf.as_str()), ("key", key)])
            .send()
    };
    let forged = login(login_cookie.clone(), "00".repeat(32), ADMIN_KEY)
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let wrong = login(login_cookie.clone(), login_csrf.clone(), "not-the-key")
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("not the management key"));

    let answer = login(login_cookie, login_csrf, ADMIN_KEY).await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()["location"], "/dashboard");
    let (session, line) = cookie(&answer, "__Host-millrace_session");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            line.contains(attribute),
            "the session cookie lacks {attribute}: {line}"
        );
    }

    // A session without the page's CSRF token changes nothing.
    let connection_page = http
        .get(format!("{base}/dashboard/connections/{id}"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(connection_page.status(), StatusCode::OK);
    let headers = connection_page.headers().clone();
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    let csrf = csrf_of(&connection_page.text().await.unwrap());
    let rotate = |csrf: String| {
        http.post(format!("{base}/dashboard/connections/{id}/rotate"))
            .header("cookie", &session)
            .form(&[("csrf", csrf)])
            .send()
    };
    let refused = rotate("00".repeat(32)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let still = h.token_get(&token, "/v1/connection").await;
    assert_eq!(still["id"], id, "the token still works");

    // With it, the rotation happens and the new token is on that page only.
    let rotated = rotate(csrf).await.unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let html = rotated.text().await.unwrap();
    let marker = "readonly value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let new_token = &html[start..start + html[start..].find('"').unwrap()];
    assert!(new_token.starts_with("mrc_"));
    h.call(Some(&token), Method::GET, "/v1/connection", None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "token_revoked");
    let later = http
        .get(format!("{base}/dashboard/connections/{id}"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert!(!later.text().await.unwrap().contains(new_token));
}
