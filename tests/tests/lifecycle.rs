//! Server lifecycle: config files, token expiry, clean shutdown on Ctrl-C.

use std::process::Command;
use std::time::Duration;

use tests::{bin, Http, Server, Session};

#[tokio::test]
async fn tokens_expire_after_token_life() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("zc.toml");
    std::fs::write(&cfg, "token_life = 1\n").unwrap();
    let server = Server::start_at(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(s.req("HEAD", "", &[], "").await.status, 204);
    // Poll (bounded) until the token has expired; it must expire.
    let mut expired = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if s.req("HEAD", "", &[], "").await.status == 401 {
            expired = true;
            break;
        }
    }
    assert!(expired, "token still valid after 5 s with token_life = 1");
    // A new login gives a new, working token.
    let s2 = Session::new(&server, "test:tester", "testing").await;
    assert_ne!(s2.token, s.token);
    assert_eq!(s2.req("HEAD", "", &[], "").await.status, 204);
}

#[tokio::test]
async fn configured_users_replace_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("zc.toml");
    std::fs::write(
        &cfg,
        "[[users]]\nuser = \"acme:alice\"\nkey = \"secret\"\ngroups = [\".admin\"]\n",
    )
    .unwrap();
    let server = Server::start_at(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let s = Session::new(&server, "acme:alice", "secret").await;
    assert!(s.url.ends_with("/v1/AUTH_acme"), "{}", s.url);
    assert_eq!(s.req("PUT", "/c", &[], "").await.status, 201);
    let r = Http::new()
        .req(
            hyper::Method::GET,
            &server.auth_url(),
            &[("x-auth-user", "test:tester"), ("x-auth-key", "testing")],
            "",
        )
        .await;
    assert_eq!(r.status, 401);
}

#[test]
fn a_config_with_an_unknown_key_is_refused_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("zc.toml");
    std::fs::write(&cfg, "bind = \"127.0.0.1:0\"\ntoken_lfie = 5\n").unwrap();
    let out = Command::new(bin("zerocloud"))
        .args([
            "up",
            "--no-image-install",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token_lfie"), "{err}");
}

#[tokio::test]
async fn ctrl_c_shuts_down_cleanly_and_data_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_at(&data, &[]);
    let s = Session::new(&server, "test:tester", "testing").await;
    assert_eq!(s.req("PUT", "/keep", &[], "").await.status, 201);
    assert_eq!(s.req("PUT", "/keep/o", &[], "persisted").await.status, 201);
    let status = Command::new("kill")
        .args(["-INT", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut server = server;
    let exit = server
        .wait_exit(Duration::from_secs(15))
        .expect("exits after SIGINT");
    assert!(exit.success(), "exit status {exit:?}");
    let again = Server::start_at(&data, &[]);
    let s = Session::new(&again, "test:tester", "testing").await;
    let r = s.req("GET", "/keep/o", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "persisted"));
}
