//! Authentication and TLS of the Redfish client against services on loopback started by the
//! tests: basic auth only to the service's own origin, sessions created, used and deleted (also
//! when the client is dropped), HTTPS with a CA file, without one, with the wrong one, insecure.

mod common;

use common::fixture::{facility, set, walk};
use common::{redirect, routes, serve, Reply, Routes};
use hallmark_facility::{
    Auth, ClientOptions, Credentials, FacilityError, RedfishClient, WalkOptions,
};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn basic_auth_goes_to_the_service_only() {
    let other = serve(routes([("/elsewhere", Reply::Json(json!({})))])).await;
    let mut r = facility();
    set(
        &mut r,
        "/redfish/v1/PowerEquipment",
        redirect(&format!("{}/elsewhere", other.url())),
    );
    let server = serve(r).await;
    let creds = Credentials::from_env(Some("ops"), |k| {
        (k == hallmark_facility::auth::ENV_PASSWORD).then(|| "pw".to_string())
    })
    .unwrap()
    .unwrap();
    let opts = ClientOptions {
        auth: Auth::Basic(creds),
        ..ClientOptions::default()
    };
    let shown = format!("{opts:?}");
    assert!(
        shown.contains("ops") && !shown.contains("\"pw\"") && shown.contains("<hidden>"),
        "{shown}"
    );
    walk(&server.url(), opts, WalkOptions::default())
        .await
        .unwrap();
    let seen = server.seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Basic b3BzOnB3")),
        "{seen:?}"
    );
    let there = other.seen.lock().unwrap();
    assert_eq!(there.len(), 1);
    assert_eq!(
        there[0].authorization, None,
        "credentials followed a redirect to another origin"
    );
}

fn session_routes() -> Routes {
    let mut r = facility();
    r.insert(
        "POST /redfish/v1/SessionService/Sessions".into(),
        Reply::Status {
            status: 201,
            headers: vec![
                ("x-auth-token".into(), "tok-123".into()),
                (
                    "location".into(),
                    "/redfish/v1/SessionService/Sessions/7".into(),
                ),
            ],
            body: "{}".into(),
        },
    );
    r.insert(
        "DELETE /redfish/v1/SessionService/Sessions/7".into(),
        Reply::Status {
            status: 204,
            headers: vec![],
            body: String::new(),
        },
    );
    r
}

fn session_opts() -> ClientOptions {
    let pw = common::temp_file("pw", "s3cret\n");
    ClientOptions {
        auth: Auth::Session(Credentials::from_password_file("ops", &pw).unwrap()),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_session_is_created_used_and_deleted() {
    let server = serve(session_routes()).await;
    let inv = walk(&server.url(), session_opts(), WalkOptions::default())
        .await
        .unwrap();
    assert_eq!(inv.pdus[0].power_w, Some(6438.0));
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        serde_json::from_str::<Value>(&seen[0].body).unwrap(),
        json!({"UserName": "ops", "Password": "s3cret"})
    );
    let gets: Vec<_> = seen.iter().filter(|s| s.method == "GET").collect();
    assert!(
        gets.len() > 10
            && gets
                .iter()
                .all(|s| s.token.as_deref() == Some("tok-123") && s.authorization.is_none()),
        "{gets:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(
        (
            last.method.as_str(),
            last.path.as_str(),
            last.token.as_deref()
        ),
        (
            "DELETE",
            "/redfish/v1/SessionService/Sessions/7",
            Some("tok-123")
        )
    );
}

#[tokio::test]
async fn a_dropped_client_deletes_its_session() {
    let server = serve(session_routes()).await;
    let mut client = RedfishClient::new(&server.url(), session_opts()).unwrap();
    client.login().await.unwrap();
    assert!(!format!("{client:?}").contains("tok-123"));
    drop(client);
    for _ in 0..100 {
        if server.count("DELETE", "/redfish/v1/SessionService/Sessions/7") == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no DELETE of the session within 2 s of dropping the client");
}

#[tokio::test]
async fn a_service_without_sessions_says_to_use_basic_auth() {
    let server = serve(facility()).await;
    let e = walk(&server.url(), session_opts(), WalkOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, FacilityError::Session { .. }) && e.to_string().contains("--auth basic"),
        "{e}"
    );
    assert!(!e.to_string().contains("s3cret"));
}

#[tokio::test]
async fn https_with_a_ca_file_without_and_with_the_wrong_one() {
    let (ca, cert, key) = common::certificates("facility test CA");
    let server = common::serve_tls(facility(), &cert, &key).await;
    let ca_file = common::temp_file("ca.pem", &ca);
    let trusted = ClientOptions {
        trust: Some(hallmark_facility::Trust::CaFile(ca_file)),
        ..ClientOptions::default()
    };
    let inv = walk(&server.https_url(), trusted, WalkOptions::default())
        .await
        .unwrap();
    assert_eq!(inv.pdus[0].power_w, Some(6438.0));

    let e = RedfishClient::new(&server.https_url(), ClientOptions::default()).unwrap_err();
    assert!(
        matches!(e, FacilityError::NeedsTrust { .. }) && e.to_string().contains("--ca FILE"),
        "{e}"
    );

    let (other_ca, _, _) = common::certificates("another CA");
    let wrong = ClientOptions {
        trust: Some(hallmark_facility::Trust::CaFile(common::temp_file(
            "other.pem",
            &other_ca,
        ))),
        ..ClientOptions::default()
    };
    let e = walk(&server.https_url(), wrong, WalkOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, FacilityError::Tls { .. }), "{e:?}");
    assert!(
        e.to_string().contains("localhost") && e.to_string().contains("--insecure"),
        "{e}"
    );

    let insecure = ClientOptions {
        trust: Some(hallmark_facility::Trust::Insecure),
        ..ClientOptions::default()
    };
    let inv = walk(&server.https_url(), insecure, WalkOptions::default())
        .await
        .unwrap();
    assert_eq!(inv.chassis[0].power_w, Some(374.0));

    let bad_ca = ClientOptions {
        trust: Some(hallmark_facility::Trust::CaFile(common::temp_file(
            "bad.pem",
            "not a certificate",
        ))),
        ..ClientOptions::default()
    };
    let e = RedfishClient::new(&server.https_url(), bad_ca).unwrap_err();
    assert!(
        matches!(e, FacilityError::CaFile { .. }) && e.to_string().contains("bad.pem"),
        "{e}"
    );
}

async fn over_tls_without_close_notify(reply: &str) -> Result<Value, FacilityError> {
    let (ca, cert, key) = common::certificates("close_notify test CA");
    let (addr, task) = common::raw_tls_server(&cert, &key, reply.as_bytes().to_vec()).await;
    let trust = hallmark_facility::Trust::CaFile(common::temp_file("ca.pem", &ca));
    let opts = ClientOptions {
        trust: Some(trust),
        ..ClientOptions::default()
    };
    let mut client =
        RedfishClient::new(&format!("https://localhost:{}", addr.port()), opts).unwrap();
    let root = client.root().clone();
    let r = client.get_json(&root).await.map(|f| f.body);
    task.abort();
    r
}

#[tokio::test]
async fn a_tls_peer_closing_without_close_notify_ends_a_close_delimited_body_only() {
    // HTTP/1.0, no Content-Length: the body ends with the connection (sushy-static over HTTPS).
    let v = over_tls_without_close_notify(
        "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Name\": \"root\"}",
    )
    .await
    .unwrap();
    assert_eq!(v, json!({"Name": "root"}));
    // Cut short of its Content-Length: an error, not a shorter body.
    let e = over_tls_without_close_notify(
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Name\": \"root\"}",
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FacilityError::Http { .. }), "{e:?}");
    // Cut inside a close-delimited body: no valid JSON.
    let e = over_tls_without_close_notify("HTTP/1.0 200 OK\r\n\r\n{\"Name\": \"ro")
        .await
        .unwrap_err();
    assert!(matches!(e, FacilityError::Json { .. }), "{e:?}");
}
