//! TempAuth v1 (Swift's `tempauth` middleware): token requests, token checks on
//! `/v1`, and the 401s and their `Www-Authenticate` realms.

mod common;

use common::{assert_status, swob_body};
use hyper::Method;
use tests::{Http, Server, Session};

async fn auth_get(server: &Server, headers: &[(&str, &str)]) -> tests::Resp {
    Http::new()
        .req(Method::GET, &server.auth_url(), headers, "")
        .await
}

#[tokio::test]
async fn auth_v1_with_x_auth_user_and_key_returns_token_and_storage_url() {
    let server = Server::start();
    let r = auth_get(
        &server,
        &[("X-Auth-User", "test:tester"), ("X-Auth-Key", "testing")],
    )
    .await;
    assert_status(&r, 200, "token request");
    let token = r.header("x-auth-token");
    assert!(token.starts_with("AUTH_tk"), "token {token:?}");
    assert!(token.len() > "AUTH_tk".len() + 8, "token {token:?}");
    assert_eq!(r.header("x-storage-token"), token);
    assert_eq!(
        r.header("x-storage-url"),
        format!("{}/v1/AUTH_test", server.url)
    );
    let expires: u64 = r
        .header("x-auth-token-expires")
        .parse()
        .expect("X-Auth-Token-Expires is an integer");
    assert!(
        expires > 80_000 && expires <= 86_400,
        "expires in {expires}"
    );
    // The token works on the storage URL.
    let h = Http::new()
        .req(
            Method::HEAD,
            r.header("x-storage-url"),
            &[("X-Auth-Token", token)],
            "",
        )
        .await;
    assert_status(&h, 204, "HEAD account with the new token");
}

#[tokio::test]
async fn auth_v1_with_x_storage_user_and_pass_returns_token() {
    let server = Server::start();
    let r = auth_get(
        &server,
        &[
            ("X-Storage-User", "test2:tester2"),
            ("X-Storage-Pass", "testing2"),
        ],
    )
    .await;
    assert_status(&r, 200, "token request with X-Storage-User/Pass");
    let token = r.header("x-auth-token");
    assert!(token.starts_with("AUTH_tk"), "token {token:?}");
    assert_eq!(r.header("x-storage-token"), token);
    assert_eq!(
        r.header("x-storage-url"),
        format!("{}/v1/AUTH_test2", server.url)
    );
    assert!(r.header("x-auth-token-expires").parse::<u64>().is_ok());
    // X-Storage-Token is accepted in place of X-Auth-Token.
    let h = Http::new()
        .req(
            Method::GET,
            r.header("x-storage-url"),
            &[("X-Storage-Token", token)],
            "",
        )
        .await;
    assert_status(&h, 204, "GET empty account with X-Storage-Token");
}

#[tokio::test]
async fn auth_v1_on_account_path_takes_bare_storage_user() {
    let server = Server::start();
    let r = Http::new()
        .req(
            Method::GET,
            &format!("{}/v1/test/auth", server.url),
            &[("X-Storage-User", "tester"), ("X-Storage-Pass", "testing")],
            "",
        )
        .await;
    assert_status(&r, 200, "GET /v1/test/auth");
    assert_eq!(
        r.header("x-storage-url"),
        format!("{}/v1/AUTH_test", server.url)
    );
    assert!(r.header("x-auth-token").starts_with("AUTH_tk"));
}

#[tokio::test]
async fn repeated_login_returns_the_same_unexpired_token() {
    let server = Server::start();
    let (_, t1) = server.login("test:tester", "testing").await;
    let (_, t2) = server.login("test:tester", "testing").await;
    assert_eq!(t1, t2);
    let (_, t3) = server.login("test:tester3", "testing3").await;
    assert_ne!(t1, t3, "another user gets another token");
}

#[tokio::test]
async fn auth_with_wrong_key_is_401_with_account_realm() {
    let server = Server::start();
    let r = auth_get(
        &server,
        &[("X-Auth-User", "test:tester"), ("X-Auth-Key", "wrong")],
    )
    .await;
    assert_status(&r, 401, "wrong key");
    assert_eq!(r.header("www-authenticate"), "Swift realm=\"test\"");
    assert_eq!(r.header("x-auth-token"), "");
    assert_eq!(r.header("x-storage-url"), "");
}

#[tokio::test]
async fn auth_with_unknown_user_is_401() {
    let server = Server::start();
    let r = auth_get(
        &server,
        &[("X-Auth-User", "nosuch:user"), ("X-Auth-Key", "testing")],
    )
    .await;
    assert_status(&r, 401, "unknown user");
    assert_eq!(r.header("www-authenticate"), "Swift realm=\"nosuch\"");
    assert_eq!(r.header("x-auth-token"), "");
    let r = auth_get(
        &server,
        &[("X-Auth-User", "test:nosuch"), ("X-Auth-Key", "testing")],
    )
    .await;
    assert_status(&r, 401, "unknown user in a known account");
}

#[tokio::test]
async fn auth_without_credentials_is_401() {
    let server = Server::start();
    let r = auth_get(&server, &[]).await;
    assert_status(&r, 401, "no headers");
    assert_eq!(r.header("www-authenticate"), "Swift realm=\"unknown\"");
    assert_eq!(r.header("x-auth-token"), "");

    let r = auth_get(&server, &[("X-Auth-User", "test:tester")]).await;
    assert_status(&r, 401, "user without key");
    assert_eq!(r.header("x-auth-token"), "");

    let r = auth_get(&server, &[("X-Auth-Key", "testing")]).await;
    assert_status(&r, 401, "key without user");

    let r = auth_get(
        &server,
        &[("X-Auth-User", "tester"), ("X-Auth-Key", "testing")],
    )
    .await;
    assert_status(&r, 401, "user without account part");
    assert_eq!(r.header("www-authenticate"), "Swift realm=\"unknown\"");
}

#[tokio::test]
async fn bad_token_on_v1_is_401() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    let r = s.req("PUT", "/c", &[], "").await;
    assert_status(&r, 201, "PUT container");
    for path in ["", "/c", "/c/o"] {
        let r = Http::new()
            .req(
                Method::GET,
                &format!("{}{path}", s.url),
                &[("X-Auth-Token", "AUTH_tkdeadbeefdeadbeefdeadbeefdeadbeef")],
                "",
            )
            .await;
        assert_status(&r, 401, &format!("GET {path:?} with a bad token"));
        assert_eq!(r.text(), swob_body(401));
    }
}

#[tokio::test]
async fn no_token_on_private_container_is_401() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_status(&s.req("PUT", "/private", &[], "").await, 201, "PUT");
    assert_status(
        &s.req("PUT", "/private/o", &[], "data").await,
        201,
        "PUT object",
    );
    let http = Http::new();
    for (m, path) in [
        (Method::GET, "/private"),
        (Method::HEAD, "/private"),
        (Method::GET, "/private/o"),
        (Method::GET, ""),
    ] {
        let r = http
            .req(m.clone(), &format!("{}{path}", s.url), &[], "")
            .await;
        assert_status(&r, 401, &format!("anonymous {m} {path:?}"));
    }
    let r = http
        .req(Method::PUT, &format!("{}/private/new", s.url), &[], "x")
        .await;
    assert_status(&r, 401, "anonymous PUT");
    let r = s.req("GET", "/private/new", &[], "").await;
    assert_status(&r, 404, "anonymous PUT stored nothing");
}

#[tokio::test]
async fn token_of_one_account_is_403_on_another() {
    let server = Server::start();
    let s2 = Session::new(&server, "test2:tester2", "testing2").await;
    let url = s2.url.replace("AUTH_test2", "AUTH_test");
    let r = s2
        .http
        .req(Method::GET, &url, &[("X-Auth-Token", &s2.token)], "")
        .await;
    assert_status(&r, 403, "test2 token on AUTH_test");
    assert_eq!(r.text(), swob_body(403));
}

#[tokio::test]
async fn reseller_admin_can_use_any_account() {
    let server = Server::start();
    let admin = Session::new(&server, "admin:admin", "admin").await;
    let url = admin.url.replace("AUTH_admin", "AUTH_test");
    let http = Http::new();
    let r = http
        .req(
            Method::PUT,
            &format!("{url}/fromadmin"),
            &[("X-Auth-Token", &admin.token)],
            "",
        )
        .await;
    assert_status(&r, 201, "reseller admin PUT container in AUTH_test");
    let s = Session::new(&server, "test:tester", "testing").await;
    let r = s.req("GET", "", &[], "").await;
    assert_status(&r, 200, "owner lists");
    assert_eq!(r.text(), "fromadmin\n");
}

#[tokio::test]
async fn non_admin_user_cannot_list_or_create_in_own_account() {
    let server = Server::start();
    let s3 = Session::new(&server, "test:tester3", "testing3").await;
    assert_eq!(s3.url, format!("{}/v1/AUTH_test", server.url));
    let r = s3.req("GET", "", &[], "").await;
    assert_status(&r, 403, "tester3 GET account");
    let r = s3.req("PUT", "/mine", &[], "").await;
    assert_status(&r, 403, "tester3 PUT container");
}

/// swob adds `Www-Authenticate: Swift realm="<account>"` to every 401 on /v1, and
/// tempauth sets it itself for a token it does not know.
#[tokio::test]
async fn unauthorized_v1_responses_carry_www_authenticate_with_account_realm() {
    let server = Server::start();
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_status(&s.req("PUT", "/c", &[], "").await, 201, "PUT");
    let http = Http::new();
    let bad = [("X-Auth-Token", "AUTH_tkdeadbeefdeadbeefdeadbeefdeadbeef")];
    for (headers, path) in [
        (&bad[..], "/c/o"),
        (&bad[..], ""),
        (&[][..], "/c"),
        (&[][..], "/c/o"),
    ] {
        let r = http
            .req(Method::GET, &format!("{}{path}", s.url), headers, "")
            .await;
        assert_status(&r, 401, &format!("GET {path:?}"));
        assert_eq!(
            r.header("www-authenticate"),
            "Swift realm=\"AUTH_test\"",
            "GET {path:?} with {headers:?}"
        );
    }
}
