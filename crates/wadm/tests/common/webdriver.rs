//! A headless Chromium driven over the W3C WebDriver protocol (`chromedriver`), for the
//! dashboard tests: just the calls they need, as JSON over HTTP/1.1 to a local chromedriver.
//! [`Browser::start`] says why it cannot run (no chromedriver or chromium installed) so the
//! tests can skip with that reason.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The key of an element reference in WebDriver replies.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver process and one browser session in it; both end on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver and a headless Chromium session, or say why not.
    pub async fn start() -> Result<Browser, String> {
        let driver = find_program("WADM_CHROMEDRIVER", &["chromedriver"])
            .ok_or("no chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")?;
        let chrome =
            find_program("WADM_CHROME", &["chromium", "chromium-browser", "google-chrome"])
                .ok_or("no chromium on PATH (Debian: apt-get install chromium chromium-driver)")?;
        let port = super::realhost::free_port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start chromedriver: {e}"))?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut browser = Browser { driver, port, session: String::new(), _profile: profile };
        let ready = wadm_test_support::wait_for(Duration::from_secs(20), || async {
            browser_get(port, "/status").await.ok().filter(|v| v["value"]["ready"] == true)
        })
        .await;
        if ready.is_none() {
            return Err("chromedriver did not become ready".into());
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ],
            },
        }}});
        let reply = send(port, "POST", "/session", Some(&capabilities)).await?;
        browser.session = reply["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no browser session: {reply}"))?
            .to_string();
        Ok(browser)
    }

    /// One command of the session: its value, or the WebDriver error code and message.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, (String, String)> {
        let path = format!("/session/{}{path}", self.session);
        let reply = send(self.port, method, &path, body).await.expect("chromedriver answers");
        match reply["value"]["error"].as_str() {
            Some(code) => {
                Err((code.to_string(), format!("WebDriver {method} {path}: {}", reply["value"])))
            }
            None => Ok(reply["value"].clone()),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_call(method, path, body).await.unwrap_or_else(|(_, message)| panic!("{message}"))
    }

    /// Open `url`.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url }))).await;
    }

    /// Run `script` (a function body; `arguments` are `args`) in the page; its return value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(&json!({ "script": script, "args": args }))).await
    }

    /// The element `css` selects (panics when there is none).
    async fn element(&self, css: &str) -> String {
        let found = self
            .call("POST", "/element", Some(&json!({ "using": "css selector", "value": css })))
            .await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {found}")).to_string()
    }

    /// Click the element `css` selects (found again if the page replaced it meanwhile: live
    /// pages redraw their tables).
    pub async fn click(&self, css: &str) {
        for _ in 0..20 {
            let id = self.element(css).await;
            match self.try_call("POST", &format!("/element/{id}/click"), Some(&json!({}))).await {
                Ok(_) => return,
                Err((code, _)) if code == "stale element reference" => continue,
                Err((_, message)) => panic!("{message}"),
            }
        }
        panic!("{css} kept being replaced before it could be clicked");
    }

    /// Type `text` into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call("POST", &format!("/element/{id}/value"), Some(&json!({ "text": text }))).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let (port, path) = (self.port, format!("/session/{}", self.session));
            // Best effort: chromedriver is killed next anyway.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                if let Ok(rt) = rt {
                    let _ = rt.block_on(send(port, "DELETE", &path, None));
                }
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn browser_get(port: u16, path: &str) -> Result<Value, String> {
    send(port, "GET", path, None).await
}

/// One request to chromedriver; its JSON reply.
async fn send(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("chromedriver: {e}"))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever the request says: read the head, then
    // exactly Content-Length bytes.
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    let body_at = loop {
        if let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("chromedriver closed the connection mid-reply".into());
        }
        response.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&response[..body_at]).to_string();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or_else(|| format!("no Content-Length from chromedriver: {head}"))?;
    while response.len() < body_at + length {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let body = &response[body_at..(body_at + length).min(response.len())];
    serde_json::from_slice(body)
        .map_err(|e| format!("chromedriver reply: {e}: {}", String::from_utf8_lossy(body)))
}
