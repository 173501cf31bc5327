//! A blocking client of the Catalyst API server for the tests: the client crate's `Client` on
//! a current-thread tokio runtime.
#![allow(dead_code)]

use std::time::Duration;

use catalyst_e2e::Server;
use serde_json::Value;

pub struct Api {
    rt: tokio::runtime::Runtime,
    client: catalyst_client::Client,
}

impl Api {
    /// A client of `base` with `token`, trusting the CA `ca_pem` (PEM) when given.
    pub fn new(base: &str, token: &str, ca_pem: Option<&[u8]>) -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            client: catalyst_client::Client::with_ca(base, token, ca_pem).expect("a client"),
        }
    }

    /// A client of a test server with its admin token, trusting its CA.
    pub fn of(server: &Server) -> Self {
        Self::new(
            &server.url.replace("0.0.0.0", "127.0.0.1"),
            &server.token,
            server.ca_pem.as_deref(),
        )
    }

    /// GET a JSON path.
    pub fn get(&self, path: &str) -> Result<Value, catalyst_client::Error> {
        self.rt.block_on(self.client.get(path))
    }

    /// True when `/healthz` answers 200.
    pub fn healthy(&self) -> bool {
        self.get("/healthz").is_ok()
    }

    /// GET a path; the body as text whatever the status.
    pub fn text(&self, path: &str) -> String {
        self.rt.block_on(async {
            let resp = self
                .client
                .request(reqwest::Method::GET, path)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("api server");
            resp.text().await.expect("response")
        })
    }

    /// GET a path; the body as text, or None when no answer came within `timeout` (a paused
    /// or stopped server).
    pub fn try_text(&self, path: &str, timeout: Duration) -> Option<String> {
        self.rt.block_on(async {
            let resp = self
                .client
                .request(reqwest::Method::GET, path)
                .timeout(timeout)
                .send()
                .await
                .ok()?;
            resp.text().await.ok()
        })
    }

    /// Sends `body` as `ct`; the code and the JSON answer (`null` when not JSON). Panics when
    /// the server cannot be reached.
    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        ct: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.try_send(method, path, ct, body)
            .expect("the api server answers")
    }

    /// As [`Api::send`], but None when the server cannot be reached (it may be down on purpose).
    pub fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        ct: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        self.rt.block_on(async {
            let mut req = self.client.request(method, path);
            if let Some(b) = body {
                req = req
                    .header("Content-Type", ct)
                    .body(serde_json::to_vec(&b).expect("json"));
            }
            let resp = req.send().await.ok()?;
            let code = resp.status().as_u16();
            Some((code, resp.json().await.unwrap_or(Value::Null)))
        })
    }
}
