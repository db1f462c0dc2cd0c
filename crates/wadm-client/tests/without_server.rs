//! Client behaviour against a real NATS with no wadm running: connection errors, no responders,
//! and the status watch (fed by publishing statuses as the server would).

use std::time::Duration;

use wadm_client::{Client, ClientError, ConnectOptions, Status, StatusType};
use wadm_test_support::NatsServer;

#[tokio::test]
async fn no_wadm_means_no_responders() {
    let nats = NatsServer::start();
    let client =
        Client::new(ConnectOptions::new(nats.url()).connect().await.unwrap(), "default", None);
    let err = client.list().await.unwrap_err();
    assert!(
        matches!(&err, ClientError::NoResponders { subject } if subject == "wadm.api.default.model.get"),
        "{err}"
    );
    assert!(err.is_connection_problem());
    assert!(err.to_string().contains("is wadm running"), "{err}");
    let err = client.deploy("app", None).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::NoResponders { subject } if subject == "wadm.api.default.model.deploy.app"),
        "{err}"
    );
}

#[tokio::test]
async fn connect_failures_become_client_errors() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    let missing_creds = ConnectOptions {
        creds_file: Some("/nonexistent/wadm.creds".into()),
        ..ConnectOptions::new(&url)
    };
    let err = ClientError::from(missing_creds.connect().await.unwrap_err());
    assert!(
        matches!(&err, ClientError::InvalidArgument(m) if m.contains("/nonexistent/wadm.creds"))
    );
    assert!(!err.is_connection_problem(), "a misconfiguration, not an outage: {err}");

    nats.stop();
    let options =
        ConnectOptions { connect_timeout: Duration::from_secs(2), ..ConnectOptions::new(&url) };
    let err = ClientError::from(options.connect().await.unwrap_err());
    assert!(matches!(&err, ClientError::Connect { url: u, .. } if *u == url), "{err}");
    assert!(err.is_connection_problem());
}

#[tokio::test]
async fn bad_names_are_refused_before_sending() {
    let nats = NatsServer::start();
    let client =
        Client::new(ConnectOptions::new(nats.url()).connect().await.unwrap(), "default", None);
    let err = client.status("a.b").await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
}

#[tokio::test]
async fn watch_status_yields_published_statuses_and_survives_garbage() {
    let nats = NatsServer::start();
    let conn = ConnectOptions::new(nats.url()).connect().await.unwrap();
    let client = Client::new(conn.clone(), "lat1", None);
    let mut stream = client.watch_status("hello").await.unwrap();
    assert_eq!(stream.subject(), "wadm.status.lat1.hello");

    conn.publish("wadm.status.lat1.hello", "garbage".into()).await.unwrap();
    let waiting = Status::new(StatusType::Waiting, "no hosts");
    conn.publish("wadm.status.lat1.hello", serde_json::to_vec(&waiting).unwrap().into())
        .await
        .unwrap();
    conn.flush().await.unwrap();

    let first = tokio::time::timeout(Duration::from_secs(5), stream.next_status()).await.unwrap();
    assert!(matches!(first, Some(Err(ClientError::Decode { .. }))), "{first:?}");
    let second = tokio::time::timeout(Duration::from_secs(5), stream.next_status()).await.unwrap();
    assert_eq!(second.unwrap().unwrap(), waiting);
}

#[tokio::test]
async fn a_silent_listener_means_timeout() {
    let nats = NatsServer::start();
    let conn = ConnectOptions::new(nats.url()).connect().await.unwrap();
    // Someone listens on the API subject but never answers (a wadm stuck or overloaded).
    let _silent = conn.subscribe("wadm.api.default.model.status.app").await.unwrap();
    conn.flush().await.unwrap();
    let client = Client::new(conn, "default", None).with_timeout(Duration::from_millis(200));
    let err = client.status("app").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Timeout { after, .. } if *after == Duration::from_millis(200)),
        "{err}"
    );
    assert!(err.is_connection_problem());
}

#[tokio::test]
async fn connect_errors_never_show_passwords() {
    let mut nats = NatsServer::start();
    let port = nats.port();
    nats.stop();
    let url = format!("nats://admin:hunter2@127.0.0.1:{port}");
    let err = ConnectOptions::new(url).connect().await.unwrap_err().to_string();
    assert!(!err.contains("hunter2") && err.contains("***@127.0.0.1"), "{err}");
    let missing_ca = ConnectOptions {
        tls_ca: Some("/nonexistent/ca.pem".into()),
        ..ConnectOptions::new(format!("nats://127.0.0.1:{port}"))
    };
    let err = missing_ca.connect().await.unwrap_err().to_string();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}
