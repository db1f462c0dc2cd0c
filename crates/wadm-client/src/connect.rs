//! Opening a NATS connection: the one place every wadm process (API server, runtime, `wadm app`
//! CLI, client library) turns connection options into an `async_nats::Client`.
//!
//! [`NatsOptions`] holds a URL (with optional `user:password@` or `token@`, applied explicitly
//! because async-nats ignores credentials written in a URL), an explicit user and password or
//! token (winning over the URL's), a credentials file, an nkey seed plus user JWT, a TLS root CA
//! and a TLS client certificate. Every misconfiguration becomes one [`ConnectError`] whose
//! `Display` is a single line that never shows a password, token or seed ([`redact`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wadm_protocol::one_line;

/// The default NATS URL.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// Environment variable naming the NATS URL (read by [`NatsOptions::from_env`]).
pub const NATS_URL_ENV: &str = "WADM_NATS_URL";
/// Environment variable naming a NATS credentials file (read by [`NatsOptions::from_env`]).
pub const NATS_CREDS_ENV: &str = "WADM_NATS_CREDS";
/// Environment variable naming a TLS root CA file (read by [`NatsOptions::from_env`]).
pub const NATS_TLS_CA_ENV: &str = "WADM_NATS_TLS_CA";

/// How to reach and authenticate to NATS.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// `nats://[user:password@]host:port` (several may be given comma-separated).
    pub url: String,
    /// A `.creds` file (user JWT + nkey seed).
    pub creds_file: Option<PathBuf>,
    /// An nkey seed (`SU…`); with `jwt` it authenticates as that user, alone as a plain nkey user.
    pub seed: Option<String>,
    /// A user JWT, used with `seed`.
    pub jwt: Option<String>,
    /// A PEM file with the root certificate(s) to trust for TLS; setting it requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// A user name (with `password`); overrides a user written in the URL.
    pub user: Option<String>,
    /// The password of `user`.
    pub password: Option<String>,
    /// An authentication token; overrides a token written in the URL.
    pub token: Option<String>,
    /// A PEM client certificate for TLS client authentication (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// How long to wait for the first connection.
    pub connect_timeout: Duration,
    /// Connection name shown by the server.
    pub name: String,
    /// How often the client pings the server. A server that answers none of 2 pings in a row
    /// is left at the 3rd (async-nats' limit), for another of the list: a frozen or cut-off
    /// node is abandoned 2–3 intervals after it stopped answering.
    pub ping_interval: Duration,
}

/// Default [`NatsOptions::ping_interval`]: a frozen node is left within about 3 s (the
/// async-nats default, 60 s, kept wadm on one for minutes).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            url: DEFAULT_NATS_URL.into(),
            creds_file: None,
            seed: None,
            jwt: None,
            tls_ca: None,
            user: None,
            password: None,
            token: None,
            tls_cert: None,
            tls_key: None,
            connect_timeout: Duration::from_secs(5),
            name: "wadm".into(),
            ping_interval: DEFAULT_PING_INTERVAL,
        }
    }
}

impl NatsOptions {
    /// Options for `url` with no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Options from `WADM_NATS_URL` (default [`DEFAULT_NATS_URL`]), `WADM_NATS_CREDS` and
    /// `WADM_NATS_TLS_CA` (empty values count as unset).
    pub fn from_env() -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            url: non_empty(NATS_URL_ENV).unwrap_or_else(|| DEFAULT_NATS_URL.to_string()),
            creds_file: non_empty(NATS_CREDS_ENV).map(PathBuf::from),
            tls_ca: non_empty(NATS_TLS_CA_ENV).map(PathBuf::from),
            ..Self::default()
        }
    }

    /// Connect with these options (see [`connect`]).
    pub async fn connect(&self) -> Result<async_nats::Client, ConnectError> {
        connect(self).await
    }
}

/// Why a connection could not be made. Each variant displays as one line without passwords.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL (or one of a list) cannot be used.
    #[error("invalid NATS URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, its password masked.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The credentials file cannot be read.
    #[error("cannot read NATS credentials file {path}: {reason}")]
    Credentials {
        /// The file.
        path: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The nkey seed is not one (the reason, never the seed).
    #[error("invalid NATS nkey seed: {0}")]
    Seed(String),
    /// A user JWT came without the seed that signs for it.
    #[error("a NATS user JWT needs an nkey seed (--nats-seed)")]
    JwtWithoutSeed,
    /// The TLS root CA file cannot be used.
    #[error("cannot use TLS root CA {path}: {reason}")]
    TlsCa {
        /// The file.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The TLS client certificate or its key cannot be used.
    #[error("cannot use TLS client certificate {path}: {reason}")]
    TlsClientCert {
        /// The certificate or key file.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Only one of the certificate and its key was given.
    #[error(
        "a TLS client certificate needs its key and the key its certificate (--nats-tls-cert with --nats-tls-key)"
    )]
    TlsCertWithoutKey,
    /// A password came without a user.
    #[error("a NATS password needs a user (--nats-user)")]
    PasswordWithoutUser,
    /// Both a user and a token were given.
    #[error("give a NATS user and password or a token, not both")]
    UserAndToken,
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The URL, its password masked.
        url: String,
        /// Why, on one line.
        reason: String,
    },
}

impl ConnectError {
    /// Whether the options themselves are wrong (as opposed to the server being unreachable or
    /// refusing them).
    pub fn is_misconfiguration(&self) -> bool {
        !matches!(self, ConnectError::Connect { .. })
    }
}

/// Connect with these options. Fails fast (no endless reconnect loop before the first connection).
pub async fn connect(options: &NatsOptions) -> Result<async_nats::Client, ConnectError> {
    connect_inner(options, None).await
}

/// [`connect`], handing `on_server_error` the text of every error the server reports on the
/// connection (`-ERR …`: a permissions violation, for one), which a request that ran into it
/// never sees (it only times out).
pub async fn connect_reporting(
    options: &NatsOptions,
    on_server_error: impl Fn(&str) + Send + Sync + 'static,
) -> Result<async_nats::Client, ConnectError> {
    connect_inner(options, Some(Arc::new(on_server_error))).await
}

type OnServerError = Arc<dyn Fn(&str) + Send + Sync>;

async fn connect_inner(
    options: &NatsOptions,
    on_server_error: Option<OnServerError>,
) -> Result<async_nats::Client, ConnectError> {
    let url = options.url.trim().to_string();
    validate_url(&url)?;
    let mut opts = async_nats::ConnectOptions::new()
        .name(&options.name)
        .connection_timeout(options.connect_timeout)
        .ping_interval(options.ping_interval);
    if let Some(report) = on_server_error {
        opts = opts.event_callback(move |event| {
            if let async_nats::Event::ServerError(e) = &event {
                report(&e.to_string());
            }
            async {}
        });
    }
    // async-nats does not apply credentials written in the URL: pass them explicitly. Explicit
    // options win over the URL.
    let explicit = match (&options.user, &options.password, &options.token) {
        (Some(_), _, Some(_)) => return Err(ConnectError::UserAndToken),
        (None, Some(_), _) => return Err(ConnectError::PasswordWithoutUser),
        (Some(user), password, None) => {
            Some(UrlCredentials::UserPassword(user.clone(), password.clone().unwrap_or_default()))
        }
        (None, None, Some(token)) => Some(UrlCredentials::Token(token.clone())),
        (None, None, None) => None,
    };
    match explicit.or_else(|| url_credentials(&url)) {
        Some(UrlCredentials::UserPassword(user, password)) => {
            opts = opts.user_and_password(user, password);
        }
        Some(UrlCredentials::Token(token)) => opts = opts.token(token),
        None => {}
    }
    if let Some(path) = &options.creds_file {
        opts = opts.credentials_file(path).await.map_err(|e| ConnectError::Credentials {
            path: path.display().to_string(),
            reason: one_line(&e),
        })?;
    }
    match (&options.seed, &options.jwt) {
        (Some(seed), Some(jwt)) => {
            let key_pair = Arc::new(
                nkeys::KeyPair::from_seed(seed.trim())
                    .map_err(|e| ConnectError::Seed(one_line(&e)))?,
            );
            opts = opts.jwt(jwt.trim().to_string(), move |nonce| {
                let key_pair = key_pair.clone();
                async move { key_pair.sign(&nonce).map_err(async_nats::AuthError::new) }
            });
        }
        (Some(seed), None) => {
            nkeys::KeyPair::from_seed(seed.trim()).map_err(|e| ConnectError::Seed(one_line(&e)))?;
            opts = opts.nkey(seed.trim().to_string());
        }
        (None, Some(_)) => return Err(ConnectError::JwtWithoutSeed),
        (None, None) => {}
    }
    if let Some(ca) = &options.tls_ca {
        if !ca.is_file() {
            return Err(ConnectError::TlsCa {
                path: ca.display().to_string(),
                reason: "no such file".into(),
            });
        }
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => {
            for path in [cert, key] {
                if !path.is_file() {
                    return Err(ConnectError::TlsClientCert {
                        path: path.display().to_string(),
                        reason: "no such file".into(),
                    });
                }
            }
            opts = opts.add_client_certificate(cert.clone(), key.clone()).require_tls(true);
        }
        (None, None) => {}
        _ => return Err(ConnectError::TlsCertWithoutKey),
    }
    // The client never sees credentials in the URL (it would log them at debug level). It
    // parses a string as ONE server address: a comma-separated list goes as a list.
    let servers: Vec<String> =
        without_credentials(&url).split(',').map(|s| s.trim().to_string()).collect();
    opts.connect(servers)
        .await
        .map_err(|e| ConnectError::Connect { url: redact(&url), reason: one_line(&e) })
}

/// Check the URL's shape before handing it to the client, so typos get a precise message.
fn validate_url(url: &str) -> Result<(), ConnectError> {
    let bad = |reason: &str| ConnectError::InvalidUrl { url: redact(url), reason: reason.into() };
    if url.is_empty() {
        return Err(bad("empty"));
    }
    for part in url.split(',') {
        let part = part.trim();
        let rest = match part.split_once("://") {
            Some((scheme, rest)) => {
                if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
                    return Err(bad(&format!(
                        "unsupported scheme {scheme:?} (use nats://, tls://, ws:// or wss://)"
                    )));
                }
                rest
            }
            None => part,
        };
        let host_port = authority(rest).rsplit_once('@').map_or(authority(rest), |(_, hp)| hp);
        if host_port.is_empty() {
            return Err(bad("no host"));
        }
        if let Some((_, port)) = host_port.rsplit_once(':')
            && !host_port.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(bad(&format!("port {port:?} is not a number from 0 to 65535")));
        }
    }
    Ok(())
}

/// The `[userinfo@]host[:port]` part of a URL without its scheme.
fn authority(rest: &str) -> &str {
    rest.split('/').next().unwrap_or_default()
}

/// Credentials written in a NATS URL.
#[derive(Debug, PartialEq, Eq)]
enum UrlCredentials {
    /// `nats://user:password@host`.
    UserPassword(String, String),
    /// `nats://token@host`.
    Token(String),
}

/// The credentials of the first URL of a (comma-separated) list, percent-decoded.
fn url_credentials(urls: &str) -> Option<UrlCredentials> {
    let first = urls.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, r)| r);
    let (userinfo, _) = authority(rest).rsplit_once('@')?;
    match userinfo.split_once(':') {
        Some((user, password)) => {
            Some(UrlCredentials::UserPassword(percent_decode(user), percent_decode(password)))
        }
        None if !userinfo.is_empty() => Some(UrlCredentials::Token(percent_decode(userinfo))),
        None => None,
    }
}

/// Decode `%XX` escapes (invalid escapes are kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL(s) with every password (`user:***@`) or token (`***@`) hidden, for messages.
pub fn redact(urls: &str) -> String {
    rewrite_userinfo(urls, |userinfo| match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***@"),
        None => "***@".to_string(),
    })
}

/// The URL(s) without any `userinfo@` part.
fn without_credentials(urls: &str) -> String {
    rewrite_userinfo(urls, |_| String::new())
}

/// Replace the `userinfo@` of each comma-separated URL by what `replace` makes of `userinfo`.
fn rewrite_userinfo(urls: &str, replace: impl Fn(&str) -> String) -> String {
    let parts = urls.split(',').map(|part| {
        let (scheme, rest) = part.find("://").map_or(("", part), |i| part.split_at(i + 3));
        let authority = authority(rest);
        match authority.rsplit_once('@') {
            Some((userinfo, _)) => {
                format!("{scheme}{}{}", replace(userinfo), &rest[userinfo.len() + 1..])
            }
            None => part.to_string(),
        }
    });
    parts.collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use wadm_test_support::wait_until;

    #[test]
    fn urls_are_checked() {
        assert!(validate_url("nats://127.0.0.1:4222").is_ok());
        assert!(validate_url("nats://u:p@localhost:4222,nats://other:4223").is_ok());
        assert!(validate_url("127.0.0.1:4222").is_ok());
        let e = validate_url("http://x:1").unwrap_err().to_string();
        assert!(e.contains("unsupported scheme"), "{e}");
        let e = validate_url("nats://u:secret@host:99999").unwrap_err().to_string();
        assert!(e.contains("port") && !e.contains("secret"), "{e}");
        assert!(validate_url("nats://").is_err());
    }

    #[test]
    fn passwords_and_tokens_are_hidden() {
        assert_eq!(redact("nats://u:pw@h:1"), "nats://u:***@h:1");
        assert_eq!(redact("nats://tok@h:1"), "nats://***@h:1");
        assert_eq!(redact("tok@host"), "***@host");
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact("nats://host/a@b"), "nats://host/a@b");
        assert_eq!(
            redact("nats://a:x@h1:1,nats://b:y@h2:2"),
            "nats://a:***@h1:1,nats://b:***@h2:2"
        );
        assert_eq!(
            without_credentials("nats://a:x@h1:1, tls://tok@h2:2,h3:3"),
            "nats://h1:1, tls://h2:2,h3:3"
        );
    }

    #[test]
    fn credentials_come_from_the_url() {
        use UrlCredentials::*;
        let creds = url_credentials("nats://me:p%40ss@h:4222,nats://other@h2:1");
        assert_eq!(creds, Some(UserPassword("me".into(), "p@ss".into())));
        assert_eq!(url_credentials("tls://tok@h:1"), Some(Token("tok".into())));
        assert_eq!(url_credentials("nats://h:1"), None);
        assert_eq!(url_credentials("h:1"), None);
        assert_eq!(url_credentials("nats://h:1/a@b"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[tokio::test]
    async fn misconfiguration_is_one_line() {
        let opts = NatsOptions { jwt: Some("x".into()), ..Default::default() };
        assert!(matches!(connect(&opts).await, Err(ConnectError::JwtWithoutSeed)));
        let opts = NatsOptions { seed: Some("nonsense".into()), ..Default::default() };
        let e = connect(&opts).await.unwrap_err();
        assert!(e.is_misconfiguration());
        let e = e.to_string();
        assert!(e.starts_with("invalid NATS nkey seed") && !e.contains('\n'), "{e}");
        let opts =
            NatsOptions { creds_file: Some("/nonexistent/x.creds".into()), ..Default::default() };
        let e = connect(&opts).await.unwrap_err().to_string();
        assert!(e.contains("/nonexistent/x.creds") && !e.contains('\n'), "{e}");
        let opts = NatsOptions { tls_ca: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        let e = connect(&opts).await.unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let opts = NatsOptions { tls_cert: Some("c.pem".into()), ..Default::default() };
        assert!(matches!(connect(&opts).await, Err(ConnectError::TlsCertWithoutKey)));
        let opts = NatsOptions {
            tls_cert: Some("/nonexistent/c.pem".into()),
            tls_key: Some("/nonexistent/k.pem".into()),
            ..Default::default()
        };
        let e = connect(&opts).await.unwrap_err().to_string();
        assert!(e.contains("/nonexistent/c.pem"), "{e}");
        let opts = NatsOptions { password: Some("hidden-pw".into()), ..Default::default() };
        let e = connect(&opts).await.unwrap_err();
        assert!(matches!(e, ConnectError::PasswordWithoutUser));
        assert!(!e.to_string().contains("hidden-pw"));
        let opts = NatsOptions {
            user: Some("u".into()),
            token: Some("hidden-token".into()),
            ..Default::default()
        };
        let e = connect(&opts).await.unwrap_err();
        assert!(matches!(e, ConnectError::UserAndToken) && !e.to_string().contains("hidden"));
    }

    /// A plain `nats-server` (no JetStream) requiring a user and password; killed on drop.
    struct PasswordNats {
        child: Child,
        port: u16,
    }

    impl PasswordNats {
        fn start(user: &str, password: &str) -> PasswordNats {
            let binary = wadm_nats_server::find_binary().expect("nats-server installed");
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
            let port = port.port();
            let child = Command::new(binary)
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--user", user])
                .args(["--pass", password])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            assert!(wait_until(Duration::from_secs(15), || {
                std::net::TcpStream::connect(addr).is_ok()
            }));
            PasswordNats { child, port }
        }
    }

    impl Drop for PasswordNats {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test]
    async fn user_and_password_in_the_url_authenticate() {
        let nats = PasswordNats::start("wadm", "s3cr%t");
        let good = NatsOptions::new(format!("nats://wadm:s3cr%25t@127.0.0.1:{}", nats.port));
        let client = good.connect().await.expect("URL credentials are applied");
        client.flush().await.unwrap();

        let bad = NatsOptions::new(format!("nats://wadm:wrong@127.0.0.1:{}", nats.port));
        let e = bad.connect().await.unwrap_err();
        assert!(matches!(e, ConnectError::Connect { .. }) && !e.is_misconfiguration());
        let e = e.to_string();
        assert!(e.contains("wadm:***@127.0.0.1") && !e.contains("wrong"), "{e}");
        assert!(!e.contains('\n'), "{e}");

        let none = NatsOptions::new(format!("nats://127.0.0.1:{}", nats.port));
        assert!(none.connect().await.is_err(), "the server really requires a password");

        // Explicit options win over the URL's.
        let explicit = NatsOptions {
            user: Some("wadm".into()),
            password: Some("s3cr%t".into()),
            ..NatsOptions::new(format!("nats://wadm:wrong@127.0.0.1:{}", nats.port))
        };
        explicit.connect().await.expect("the explicit password is used");
    }
}
