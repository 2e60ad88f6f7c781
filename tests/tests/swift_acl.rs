//! Container ACLs under TempAuth (swift/common/middleware/tempauth.py `authorize`,
//! acl.py `clean_acl`/`referrer_allowed`): referrer grants, .rlistings, user and
//! account grants for reads and writes, and who may see the ACL headers.

mod common;

use common::{assert_status, mk_container, mk_object};
use hyper::Method;
use tests::{Http, Resp, Server, Session};

struct Users {
    _server: Server,
    owner: Session,
    /// test:tester3, a non-admin user of AUTH_test.
    t3: Session,
    /// test2:tester2, admin of another account, using AUTH_test's URL.
    t2: Session,
    anon: Http,
}

async fn users() -> Users {
    let server = Server::start();
    let owner = Session::new(&server, "test:tester", "testing").await;
    let mut t3 = Session::new(&server, "test:tester3", "testing3").await;
    t3.url = owner.url.clone();
    let mut t2 = Session::new(&server, "test2:tester2", "testing2").await;
    t2.url = owner.url.clone();
    Users {
        _server: server,
        owner,
        t3,
        t2,
        anon: Http::new(),
    }
}

impl Users {
    async fn anon(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        self.anon
            .req(
                m,
                &format!("{}{path}", self.owner.url),
                headers,
                body.to_string(),
            )
            .await
    }

    /// A container with `acl` headers and one object `o` ("secret").
    async fn container(&self, name: &str, acl: &[(&str, &str)]) {
        let r = self.owner.req("PUT", &format!("/{name}"), acl, "").await;
        assert_status(&r, 201, &format!("PUT /{name} with {acl:?}"));
        mk_object(&self.owner, &format!("/{name}/o"), b"secret", &[]).await;
    }
}

#[tokio::test]
async fn referrer_any_lets_anonymous_read_objects_but_not_list() {
    let u = users().await;
    u.container("pub", &[("X-Container-Read", ".r:*")]).await;
    let r = u.anon("GET", "/pub/o", &[], "").await;
    assert_status(&r, 200, "anonymous GET object");
    assert_eq!(&r.body[..], b"secret");
    let r = u.anon("HEAD", "/pub/o", &[], "").await;
    assert_status(&r, 200, "anonymous HEAD object");
    let r = u.anon("GET", "/pub", &[], "").await;
    assert_status(&r, 401, "anonymous listing without .rlistings");
    let r = u.anon("PUT", "/pub/new", &[], "x").await;
    assert_status(&r, 401, "anonymous PUT");
    let r = u.anon("DELETE", "/pub/o", &[], "").await;
    assert_status(&r, 401, "anonymous DELETE");
    assert_status(
        &u.owner.req("GET", "/pub/o", &[], "").await,
        200,
        "still there",
    );
}

#[tokio::test]
async fn referrer_any_with_rlistings_lets_anonymous_list() {
    let u = users().await;
    u.container("pub", &[("X-Container-Read", ".r:*,.rlistings")])
        .await;
    let r = u.anon("GET", "/pub", &[], "").await;
    assert_status(&r, 200, "anonymous listing");
    assert_eq!(r.text(), "o\n");
    let r = u.anon("GET", "/pub?format=json", &[], "").await;
    assert_eq!(r.json()[0]["name"], "o");
    let r = u.anon("HEAD", "/pub", &[], "").await;
    assert_status(&r, 204, "anonymous HEAD container");
    let r = u.anon("GET", "/pub/o", &[], "").await;
    assert_status(&r, 200, "anonymous GET object");
    let r = u.anon("GET", "", &[], "").await;
    assert_status(&r, 401, "the account stays private");
}

#[tokio::test]
async fn referrer_domain_acl_needs_a_matching_referer() {
    let u = users().await;
    u.container("ref", &[("X-Container-Read", ".r:.example.com")])
        .await;
    let r = u
        .anon(
            "GET",
            "/ref/o",
            &[("Referer", "http://www.example.com/page")],
            "",
        )
        .await;
    assert_status(&r, 200, "matching Referer");
    let r = u
        .anon(
            "GET",
            "/ref/o",
            &[("Referer", "http://www.other.org/page")],
            "",
        )
        .await;
    assert_status(&r, 401, "other Referer");
    let r = u.anon("GET", "/ref/o", &[], "").await;
    assert_status(&r, 401, "no Referer");
}

#[tokio::test]
async fn user_in_read_acl_can_read_but_not_write() {
    let u = users().await;
    u.container("shared", &[("X-Container-Read", "test:tester3")])
        .await;
    let r = u.t3.req("GET", "/shared/o", &[], "").await;
    assert_status(&r, 200, "tester3 GET object");
    assert_eq!(&r.body[..], b"secret");
    let r = u.t3.req("GET", "/shared", &[], "").await;
    assert_status(&r, 200, "tester3 lists");
    assert_eq!(r.text(), "o\n");
    assert_status(
        &u.t3.req("HEAD", "/shared", &[], "").await,
        204,
        "tester3 HEAD",
    );
    let r = u.t3.req("PUT", "/shared/new", &[], "x").await;
    assert_status(&r, 403, "tester3 PUT without write ACL");
    let r = u.t3.req("DELETE", "/shared/o", &[], "").await;
    assert_status(&r, 403, "tester3 DELETE without write ACL");
    let r =
        u.t3.req("POST", "/shared/o", &[("X-Object-Meta-X", "1")], "")
            .await;
    assert_status(&r, 403, "tester3 POST without write ACL");
    // Other users are not in the ACL.
    let r = u.t2.req("GET", "/shared/o", &[], "").await;
    assert_status(&r, 403, "tester2 not in the ACL");
}

#[tokio::test]
async fn user_in_write_acl_can_write() {
    let u = users().await;
    u.container("drop", &[("X-Container-Write", "test:tester3")])
        .await;
    let r = u.t3.req("PUT", "/drop/new", &[], "from tester3").await;
    assert_status(&r, 201, "tester3 PUT with write ACL");
    let r = u.owner.req("GET", "/drop/new", &[], "").await;
    assert_eq!(&r.body[..], b"from tester3");
    let r =
        u.t3.req("POST", "/drop/new", &[("X-Object-Meta-By", "t3")], "")
            .await;
    assert_status(&r, 202, "tester3 POST object with write ACL");
    let r = u.t3.req("GET", "/drop/new", &[], "").await;
    assert_status(&r, 403, "write ACL does not grant reads");
    let r = u.t3.req("GET", "/drop", &[], "").await;
    assert_status(&r, 403, "write ACL does not grant listings");
    let r = u.t3.req("DELETE", "/drop/o", &[], "").await;
    assert_status(&r, 204, "tester3 DELETE with write ACL");
    assert_status(
        &u.owner.req("GET", "/drop/o", &[], "").await,
        404,
        "deleted",
    );
    // Container-level writes stay with the owner.
    let r =
        u.t3.req("POST", "/drop", &[("X-Container-Meta-X", "1")], "")
            .await;
    assert_status(&r, 403, "tester3 POST container");
    let r = u.t3.req("DELETE", "/drop", &[], "").await;
    assert_status(&r, 403, "tester3 DELETE container");
}

/// `test2:*` granting every user of account test2 is zerocloud's documented
/// extension (TempAuth's own spelling is the bare group `test2`, tested below).
#[tokio::test]
async fn account_wildcard_in_acl_grants_every_user_of_that_account() {
    let u = users().await;
    u.container("for-test2", &[("X-Container-Read", "test2:*")])
        .await;
    let r = u.t2.req("GET", "/for-test2/o", &[], "").await;
    assert_status(&r, 200, "tester2 via test2:*");
    assert_eq!(&r.body[..], b"secret");
    let r = u.t2.req("GET", "/for-test2", &[], "").await;
    assert_status(&r, 200, "tester2 lists via test2:*");
    let r = u.t3.req("GET", "/for-test2/o", &[], "").await;
    assert_status(&r, 403, "tester3 is not in account test2");
    let r = u.anon("GET", "/for-test2/o", &[], "").await;
    assert_status(&r, 401, "anonymous");
}

#[tokio::test]
async fn account_group_in_acl_grants_every_user_of_that_account() {
    let u = users().await;
    u.container(
        "g",
        &[
            ("X-Container-Read", "test2"),
            ("X-Container-Write", "test2"),
        ],
    )
    .await;
    let r = u.t2.req("GET", "/g/o", &[], "").await;
    assert_status(&r, 200, "tester2 via group test2");
    let r = u.t2.req("PUT", "/g/by-t2", &[], "x").await;
    assert_status(&r, 201, "tester2 writes via group test2");
    let r = u.t3.req("GET", "/g/o", &[], "").await;
    assert_status(&r, 403, "tester3");
}

#[tokio::test]
async fn tester3_without_acl_is_403() {
    let u = users().await;
    u.container("private", &[]).await;
    for (m, path) in [
        ("GET", "/private/o"),
        ("HEAD", "/private/o"),
        ("GET", "/private"),
        ("HEAD", "/private"),
        ("DELETE", "/private/o"),
        ("GET", ""),
    ] {
        let r = u.t3.req(m, path, &[], "").await;
        assert_status(&r, 403, &format!("tester3 {m} {path:?}"));
    }
    let r = u.t3.req("PUT", "/private/x", &[], "x").await;
    assert_status(&r, 403, "tester3 PUT");
    assert_status(
        &u.owner.req("GET", "/private/x", &[], "").await,
        404,
        "nothing stored",
    );
}

#[tokio::test]
async fn other_account_admin_without_acl_is_403() {
    let u = users().await;
    u.container("private", &[]).await;
    for (m, path) in [
        ("GET", "/private/o"),
        ("GET", "/private"),
        ("GET", ""),
        ("HEAD", ""),
    ] {
        let r = u.t2.req(m, path, &[], "").await;
        assert_status(&r, 403, &format!("tester2 {m} {path:?}"));
    }
    let r = u.t2.req("PUT", "/private/x", &[], "x").await;
    assert_status(&r, 403, "tester2 PUT");
    let r = u.t2.req("PUT", "/mine", &[], "").await;
    assert_status(&r, 403, "tester2 PUT container in AUTH_test");
}

#[tokio::test]
async fn anonymous_without_acl_is_401() {
    let u = users().await;
    u.container("private", &[]).await;
    for (m, path) in [
        ("GET", "/private/o"),
        ("HEAD", "/private/o"),
        ("GET", "/private"),
    ] {
        let r = u.anon(m, path, &[], "").await;
        assert_status(&r, 401, &format!("anonymous {m} {path:?}"));
    }
}

#[tokio::test]
async fn non_owners_do_not_see_acl_headers() {
    let u = users().await;
    u.container(
        "acl",
        &[
            ("X-Container-Read", ".r:*,.rlistings,test:tester3"),
            ("X-Container-Write", "test:tester3"),
        ],
    )
    .await;
    let r = u.owner.req("HEAD", "/acl", &[], "").await;
    assert_eq!(r.header("x-container-read"), ".r:*,.rlistings,test:tester3");
    assert_eq!(r.header("x-container-write"), "test:tester3");
    let r = u.t3.req("HEAD", "/acl", &[], "").await;
    assert_status(&r, 204, "tester3 HEAD");
    assert!(
        r.headers.get("x-container-read").is_none(),
        "tester3 sees read ACL"
    );
    assert!(
        r.headers.get("x-container-write").is_none(),
        "tester3 sees write ACL"
    );
    let r = u.t3.req("GET", "/acl", &[], "").await;
    assert!(
        r.headers.get("x-container-read").is_none(),
        "tester3 GET sees read ACL"
    );
    let r = u.anon("HEAD", "/acl", &[], "").await;
    assert_status(&r, 204, "anonymous HEAD");
    assert!(
        r.headers.get("x-container-read").is_none(),
        "anonymous sees read ACL"
    );
    assert!(
        r.headers.get("x-container-write").is_none(),
        "anonymous sees write ACL"
    );
}

#[tokio::test]
async fn removing_the_acl_revokes_access_at_once() {
    let u = users().await;
    u.container("temp", &[("X-Container-Read", "test:tester3")])
        .await;
    assert_status(&u.t3.req("GET", "/temp/o", &[], "").await, 200, "granted");
    let r = u
        .owner
        .req("POST", "/temp", &[("X-Remove-Container-Read", "x")], "")
        .await;
    assert_status(&r, 204, "POST X-Remove-Container-Read");
    assert_status(&u.t3.req("GET", "/temp/o", &[], "").await, 403, "revoked");
    let r = u
        .owner
        .req("POST", "/temp", &[("X-Container-Read", ".r:*")], "")
        .await;
    assert_status(&r, 204, "POST X-Container-Read");
    assert_status(&u.anon("GET", "/temp/o", &[], "").await, 200, "public now");
}

#[tokio::test]
async fn invalid_acls_are_400_with_swifts_messages() {
    let u = users().await;
    mk_container(&u.owner, "c").await;
    let r = u
        .owner
        .req("POST", "/c", &[("X-Container-Write", ".r:*")], "")
        .await;
    assert_status(&r, 400, "referrer in a write ACL");
    assert_eq!(r.text(), "Referrers not allowed in write ACL: '.r:*'");
    let r = u
        .owner
        .req("POST", "/c", &[("X-Container-Read", ".r:")], "")
        .await;
    assert_status(&r, 400, "empty referrer");
    assert_eq!(
        r.text(),
        "No host/domain value after referrer designation in ACL: '.r:'"
    );
    let r = u
        .owner
        .req("PUT", "/c2", &[("X-Container-Read", ".bogus:x")], "")
        .await;
    assert_status(&r, 400, "unknown designator");
    assert_eq!(r.text(), "Unknown designator '.bogus' in ACL: '.bogus:x'");
    assert_status(
        &u.owner.req("HEAD", "/c2", &[], "").await,
        404,
        "PUT refused",
    );
}
