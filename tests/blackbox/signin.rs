//! People sign in to the dashboard: one-time links, passwords, sessions, CSRF on every form,
//! sign-in rate limits and lock-outs, and each person sees only their client.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::json;
use telltale_domain::client::Scope;
use telltale_domain::users::Role;

use crate::browser::{Browser, chromium};
use crate::common::*;

const PASSWORD: &str = "correct horse battery";

async fn form(app: &TestApp, path: &str, cookie: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    app.http.post(app.url(path)).header("cookie", cookie).form(fields).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_asks_to_sign_in_and_shows_each_person_only_their_client() {
    let app = TestApp::spawn().await;
    app.create_monitor("acme-job", "1m", "0s").await;
    let globex = app.key_for("globex", &Scope::DEFAULT).await;
    app.post_as(&globex, "/v1/monitors", json!({"slug": "globex-job", "schedule": {"every": "1m"}})).await;
    let response = app.http.get(app.url("/monitors/acme/acme-job")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/signin?next=%2Fmonitors%2Facme%2Facme%2Djob");

    app.user("vera", Some("acme"), Role::Viewer, PASSWORD).await;
    let (cookie, _) = app.sign_in("vera", PASSWORD).await;
    let get = |path: &'static str| {
        let request = app.http.get(app.url(path)).header("cookie", cookie.clone());
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, index) = get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(index.contains("acme-job") && !index.contains("globex-job"), "a viewer sees their client only");
    assert_eq!(get("/monitors/globex/globex-job").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get("/monitors/acme/acme-job").await.0, StatusCode::OK);
    assert_eq!(get("/keys").await.0, StatusCode::NOT_FOUND, "a viewer manages no keys");
    assert_eq!(get("/audit").await.0, StatusCode::NOT_FOUND);

    app.user("root", None, Role::Operator, PASSWORD).await;
    let (operator, _) = app.sign_in("root", PASSWORD).await;
    let index = app.http.get(app.url("/")).header("cookie", operator).send().await.unwrap().text().await.unwrap();
    assert!(index.contains("acme-job") && index.contains("globex-job"), "an operator sees every client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_http_only_and_same_site_and_secure_behind_https() {
    let app = TestApp::spawn_configured(Options::default(), |config| {
        config.public_url = Some("https://telltale.example.com".into());
    })
    .await;
    app.user("ann", Some("acme"), Role::Admin, PASSWORD).await;
    let page = app.http.get(app.url("/signin")).send().await.unwrap();
    let csrf_header = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(csrf_header.contains("SameSite=Strict") && csrf_header.contains("Secure"), "{csrf_header}");
    let csrf = cookie_of(&page, "tt_csrf").unwrap();
    let response =
        form(&app, "/signin", &format!("tt_csrf={csrf}"), &[("name", "ann"), ("password", PASSWORD), ("csrf", &csrf)])
            .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = response.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(session.contains(flag), "{flag}: {session}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_needs_its_csrf_token() {
    let app = TestApp::spawn().await;
    app.user("ann", Some("acme"), Role::Admin, PASSWORD).await;
    // Without the token, or with another one, nothing happens.
    let page = app.http.get(app.url("/signin")).send().await.unwrap();
    let csrf = cookie_of(&page, "tt_csrf").unwrap();
    for (cookie, field) in [
        ("", csrf.as_str()),
        (&format!("tt_csrf={csrf}") as &str, ""),
        (&format!("tt_csrf={csrf}"), "x".repeat(64).as_str()),
    ] {
        let response = form(&app, "/signin", cookie, &[("name", "ann"), ("password", PASSWORD), ("csrf", field)]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(cookie_of(&response, "tt_session").is_none());
    }
    let (cookie, token) = app.sign_in("ann", PASSWORD).await;
    assert_ne!(token, csrf, "signing in issues a new token");
    let keys_before = app.log_types("client:acme").await.len();
    let forged = form(&app, "/keys", &cookie, &[("client", "acme"), ("scope", "admin")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.text().await.unwrap().contains("CSRF"));
    // A token bound to the session: one planted in the browser (cookie and field agreeing, as a
    // sibling subdomain could set them) or one made for another person's session is refused.
    let session = cookie.split("; ").next().unwrap();
    app.user("bob", Some("acme"), Role::Admin, PASSWORD).await;
    let (_, bobs) = app.sign_in("bob", PASSWORD).await;
    for planted in [csrf.clone(), "a".repeat(64), bobs] {
        let cookie = format!("{session}; tt_csrf={planted}");
        let response =
            form(&app, "/keys", &cookie, &[("client", "acme"), ("scope", "admin"), ("csrf", &planted)]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{planted}");
    }
    assert_eq!(app.log_types("client:acme").await.len(), keys_before, "a forged or planted form issues no key");
    // A page loaded with such a cookie replaces it with one bound to the session, and that works.
    let page =
        app.http.get(app.url("/keys")).header("cookie", format!("{session}; tt_csrf={csrf}")).send().await.unwrap();
    let renewed = cookie_of(&page, "tt_csrf").expect("a token bound to this session");
    assert_ne!(renewed, csrf);
    assert!(page.text().await.unwrap().contains(&renewed), "the page's forms carry it");
    let cookie_renewed = format!("{session}; tt_csrf={renewed}");
    let fields = [("client", "acme"), ("scope", "read"), ("label", "renewed"), ("csrf", renewed.as_str())];
    let response = form(&app, "/keys", &cookie_renewed, &fields).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let start = text.find("tt_").unwrap();
    app.secrets.remember(&text[start..start + 84]);
    let keys_before = app.log_types("client:acme").await.len();
    assert_eq!(app.log_types("client:acme").await.len(), keys_before, "a forged form issues no key");
    // Any POST outside the API is checked, also on paths no form posts to yet.
    let unknown = form(&app, "/alerts/123/acknowledge", &cookie, &[]).await;
    assert_eq!(unknown.status(), StatusCode::FORBIDDEN);
    // The token as a header works too (for scripts in the page).
    let response = app
        .http
        .post(app.url("/keys"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &token)
        .form(&[("client", "acme"), ("scope", "read"), ("label", "from a header")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let start = text.find("tt_").unwrap();
    app.secrets.remember(&text[start..start + 84]);
    assert!(text.contains("from a header"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_lock_an_account_and_an_address_is_rate_limited() {
    let app = TestApp::spawn().await;
    app.user("ann", Some("acme"), Role::Admin, PASSWORD).await;
    let page = app.http.get(app.url("/signin")).send().await.unwrap();
    let csrf = cookie_of(&page, "tt_csrf").unwrap();
    let cookie = format!("tt_csrf={csrf}");
    let attempt = |name: &'static str, password: &'static str| {
        let fields = [("name", name), ("password", password), ("csrf", csrf.as_str())];
        let request = app.http.post(app.url("/signin")).header("cookie", cookie.clone()).form(&fields);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (status, retry, response.text().await.unwrap())
        }
    };
    let (status, _, text) = attempt("nobody", "whatever").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("Wrong name or password."), "the same answer for an unknown name");
    for _ in 0..4 {
        let (status, _, text) = attempt("ann", "wrong password!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(text.contains("Wrong name or password."));
    }
    let (status, _, text) = attempt("ann", "wrong password!").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("this account is locked until 2026-03-01T12:15:00Z"), "{text}");
    let (_, _, text) = attempt("ann", PASSWORD).await;
    assert!(text.contains("locked until"), "the right password waits for the lock too");
    assert_eq!(app.log_types("users").await.iter().filter(|t| *t == "UserLockedOut").count(), 1);

    // Ten attempts a minute from one address at most.
    for _ in 0..3 {
        attempt("nobody", "whatever").await;
    }
    let (status, retry, text) = attempt("nobody", "whatever").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("6"));
    assert!(text.contains("Too many sign-in attempts from your address"), "{text}");

    app.advance(secs(15 * 60)).await;
    app.sign_in("ann", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_link_works_once_and_expires() {
    let app = TestApp::spawn().await;
    app.app.add_user("ann", Some("acme"), Role::Admin, "test").await.unwrap();
    let link = app.app.issue_sign_in_link("ann", "test").await.unwrap();
    let url = app.url(&format!("/welcome?token={}", link.expose()));
    let page = app.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let csrf = cookie_of(&page, "tt_csrf").unwrap();
    let cookie = format!("tt_csrf={csrf}");
    let set = async |password: &str, again: &str| {
        let fields = [("token", link.expose()), ("password", password), ("again", again), ("csrf", &csrf)];
        form(&app, "/welcome", &cookie, &fields).await
    };
    assert_eq!(set("short", "short").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(set(PASSWORD, "something else").await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let done = set(PASSWORD, PASSWORD).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(cookie_of(&done, "tt_session").is_some(), "setting the password signs in");
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND, "once");
    assert_eq!(set(PASSWORD, PASSWORD).await.status(), StatusCode::NOT_FOUND);
    app.sign_in("ann", PASSWORD).await;

    let later = app.app.issue_sign_in_link("ann", "test").await.unwrap();
    app.advance(secs(24 * 3600)).await;
    let url = app.url(&format!("/welcome?token={}", later.expose()));
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND, "expired");
    let types = app.log_types("users").await;
    assert_eq!(types, ["UserAdded", "SignInLinkIssued", "SignInLinkUsed", "UserPasswordSet", "SignInLinkIssued"]);
    assert!(!captured_logs().contains(&link.expose()[19..]), "the link never reaches a log");
}

/// In a real browser: a one-time link, a password, then the CSRF-protected key form.
fn welcome_then_issue_a_key(browser: &PathBuf, base: &str, link: &str) -> (String, String) {
    let mut browser = Browser::launch(browser);
    browser.goto(&format!("{base}/welcome?token={link}"));
    browser.submit("#welcome", &[("password", PASSWORD), ("again", PASSWORD)]);
    assert!(browser.dom().contains("signed in as"), "the link signs in");
    browser.goto(&format!("{base}/keys"));
    browser.submit("#new-key", &[("label", "browser-made"), ("rotate_every", "30d"), ("overlap", "7d")]);
    let key = browser.eval("document.querySelector('#new-key-token').textContent").as_str().unwrap().to_string();
    browser.goto(&format!("{base}/audit"));
    (key, browser.dom())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_link_signs_in_and_the_csrf_protected_form_issues_a_key() {
    let Some(browser) = chromium() else { return };
    let app = TestApp::spawn().await;
    app.app.add_user("ann", Some("acme"), Role::Admin, "test").await.unwrap();
    let link = app.app.issue_sign_in_link("ann", "test").await.unwrap();
    let (key, audit) = tokio::task::spawn_blocking({
        let (base, link) = (app.base.clone(), link.expose().to_string());
        move || welcome_then_issue_a_key(&browser, &base, &link)
    })
    .await
    .unwrap();
    app.secrets.remember(&key);
    assert!(key.starts_with("tt_"), "{key}");
    assert_eq!(app.get_as(&key, "/v1/monitors").await.status(), StatusCode::OK, "the key works");
    let keys: serde_json::Value = app.get("/v1/keys").await.json().await.unwrap();
    let made = keys["keys"].as_array().unwrap().iter().find(|k| k["label"] == "browser-made").unwrap().clone();
    assert_eq!((made["issued_by"].as_str(), made["rotate_every"].as_str()), (Some("user:ann"), Some("30d")));
    assert!(audit.contains("user:ann") && audit.contains("data-action=\"issued\""), "{audit}");
}

/// An admin manages the people of their client on the dashboard: adds one (a one-time link,
/// shown once, sets their password), gives a new link, removes one (their session ends at
/// once); nobody else's people, and a viewer none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_links_and_removes_the_people_of_their_client_only() {
    let app = TestApp::spawn().await;
    app.key_for("globex", &Scope::DEFAULT).await;
    app.user("gus", Some("globex"), Role::Viewer, PASSWORD).await;
    app.user("ann", Some("acme"), Role::Admin, PASSWORD).await;
    let (cookie, csrf) = app.sign_in("ann", PASSWORD).await;
    let page = app.http.get(app.url("/people")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("People of acme") && page.contains("data-person=\"ann\"") && !page.contains("gus"), "{page}");

    // Adding carol shows her link once; it lets her choose a password and sign in.
    let fields = [("client", "acme"), ("name", "Carol"), ("role", "viewer"), ("csrf", csrf.as_str())];
    let added = form(&app, "/people", &cookie, &fields).await;
    assert_eq!(added.status(), StatusCode::OK);
    assert_eq!(added.headers()["cache-control"], "no-store");
    let added = added.text().await.unwrap();
    let token = link_in(&added);
    app.secrets.remember(token);
    assert!(added.contains("data-person=\"carol\"") && added.contains("waiting for their link"), "{added}");
    app.app.set_password_with_link(token, "carol's own password").await.unwrap();
    let (carol, _) = app.sign_in("carol", "carol's own password").await;
    let as_carol = |path: &'static str| app.http.get(app.url(path)).header("cookie", carol.clone()).send();
    assert_eq!(as_carol("/").await.unwrap().status(), StatusCode::OK);
    assert_eq!(as_carol("/people").await.unwrap().status(), StatusCode::NOT_FOUND, "a viewer manages nobody");

    // A second name, a bad role, another client's client or person: refused, nothing recorded.
    let directory_before = app.log_types("users").await.len();
    let again =
        form(&app, "/people", &cookie, &[("client", "acme"), ("name", "carol"), ("role", "admin"), ("csrf", &csrf)])
            .await;
    assert!(again.text().await.unwrap().contains("already exists"));
    let operator =
        form(&app, "/people", &cookie, &[("client", "acme"), ("name", "olga"), ("role", "operator"), ("csrf", &csrf)])
            .await;
    assert!(operator.text().await.unwrap().contains("the role is viewer or admin"));
    let foreign = form(
        &app,
        "/people",
        &cookie,
        &[("client", "globex"), ("name", "mallory"), ("role", "admin"), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    for action in ["link", "remove"] {
        let theirs =
            form(&app, &format!("/people/gus/{action}"), &cookie, &[("client", "globex"), ("csrf", &csrf)]).await;
        assert_eq!(theirs.status(), StatusCode::NOT_FOUND, "{action}");
        let disguised =
            form(&app, &format!("/people/gus/{action}"), &cookie, &[("client", "acme"), ("csrf", &csrf)]).await;
        assert_eq!(disguised.status(), StatusCode::NOT_FOUND, "{action}");
    }
    let herself = form(&app, "/people/ann/remove", &cookie, &[("client", "acme"), ("csrf", &csrf)]).await;
    assert!(herself.text().await.unwrap().contains("you cannot remove yourself"));
    assert_eq!(app.log_types("users").await.len(), directory_before, "nothing refused was recorded");

    // A new link for carol (a forgotten password), then carol removed: her session ends at once.
    let relinked = form(&app, "/people/carol/link", &cookie, &[("client", "acme"), ("csrf", &csrf)]).await;
    let relinked = relinked.text().await.unwrap();
    app.secrets.remember(link_in(&relinked));
    assert_ne!(link_in(&relinked), token);
    let removed = form(&app, "/people/carol/remove", &cookie, &[("client", "acme"), ("csrf", &csrf)]).await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert_eq!(as_carol("/").await.unwrap().status(), StatusCode::SEE_OTHER, "sent to sign in again");
    let types = app.log_types("users").await;
    assert_eq!(types[directory_before..], ["SignInLinkIssued", "UserRemoved"]);
    let page = app.http.get(app.url("/people")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("carol"), "{page}");
}

/// The token of the one-time link shown on a page.
fn link_in(page: &str) -> &str {
    let start = page.find("/welcome?token=").expect("the link is shown") + "/welcome?token=".len();
    let token = &page[start..];
    &token[..token.find('<').unwrap()]
}
