//! The tunnel: the nodelet dials a WebSocket to the API server
//! (`/apis/catalyst.dev/v1alpha1/nodes/NAME/tunnel`) and answers requests that arrive on it —
//! console logs (tail and follow), console commands, metrics — so nodes behind NAT need no
//! inbound port. The frames ([`TunnelRequest`] in, [`TunnelAnswer`] out) are defined in
//! `catalyst_schemas::tunnel`, shared with the API server. Over `wss://` it trusts the CA the
//! API client trusts (the one the join token pins), else the system's roots.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use catalyst_schemas::tunnel::{Answer, TunnelAnswer, TunnelOp, TunnelRequest};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::runtime::Runtime;
use catalyst_client::API;

/// Dials and serves the tunnel forever, redialling with backoff.
pub async fn run(rt: Arc<Runtime>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match serve_once(&rt).await {
            Ok(()) => delay = Duration::from_millis(200),
            Err(e) => tracing::warn!(error = %e, "tunnel closed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn serve_once(rt: &Arc<Runtime>) -> Result<(), String> {
    let base = rt.api.base();
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", base.trim_start_matches("http://"))
    };
    let mut request = format!("{ws_base}{API}/nodes/{}/tunnel", rt.node)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", rt.api.token())
            .parse()
            .map_err(|_| "token is not a header value".to_owned())?,
    );
    let connector = if ws_base.starts_with("wss://") {
        Some(tokio_tungstenite::Connector::Rustls(tls_config(
            rt.api.ca_pem(),
        )?))
    } else {
        None
    };
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("tunnel to the API server open");
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<TunnelAnswer>(1024);
    let writer = tokio::spawn(async move {
        while let Some(answer) = rx.recv().await {
            let text = serde_json::to_string(&answer).expect("answers encode");
            if sink.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
    });
    let mut running: HashMap<u64, tokio::task::AbortHandle> = HashMap::new();
    let result = loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {
                // the API server pings every 20 s; silence means a dead connection
                break Err("tunnel silent for 60 s".to_owned());
            }
        };
        let Some(msg) = msg else { break Ok(()) };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => break Err(e.to_string()),
        };
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break Ok(()),
            _ => continue,
        };
        let req = match serde_json::from_str::<TunnelRequest>(&text) {
            Ok(req) => req,
            Err(e) => {
                // an op this nodelet does not know (a newer API server): refuse it by its id
                if let Some(id) = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_u64))
                {
                    let refused = Answer::Failed {
                        code: 400,
                        error: format!("unknown request: {e}"),
                    };
                    let _ = tx.send(TunnelAnswer::new(id, refused)).await;
                }
                continue;
            }
        };
        running.retain(|_, h| !h.is_finished());
        if req.op == TunnelOp::Cancel {
            if let Some(h) = running.remove(&req.id) {
                h.abort();
            }
            continue;
        }
        let id = req.id;
        let h = tokio::spawn(handle(rt.clone(), req, tx.clone()));
        running.insert(id, h.abort_handle());
    };
    for h in running.values() {
        h.abort();
    }
    writer.abort();
    result
}

/// A rustls client config (ring provider) trusting exactly `ca_pem`, else the system's roots.
pub fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA: {e}"))?;
                roots.add(cert).map_err(|e| format!("the CA: {e}"))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    if roots.is_empty() {
        return Err("no CA to trust".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn handle(rt: Arc<Runtime>, req: TunnelRequest, tx: mpsc::Sender<TunnelAnswer>) {
    let id = req.id;
    let send = |answer: Answer| tx.send(TunnelAnswer::new(id, answer));
    let fail = |code: u16, error: String| Answer::Failed { code, error };
    let uid = match &req.op {
        TunnelOp::Prometheus => {
            let samples = rt.samples.lock().expect("samples").clone();
            let families: Vec<Value> = crate::metrics::FAMILIES
                .iter()
                .map(|(name, typ, help)| json!({"name": name, "type": typ, "help": help}))
                .collect();
            let result = json!({"families": families, "samples": samples});
            let _ = send(Answer::End {
                result: Some(result),
            })
            .await;
            return;
        }
        TunnelOp::Cancel => return,
        TunnelOp::Logs { uid, .. } | TunnelOp::Command { uid, .. } | TunnelOp::Metrics { uid } => {
            uid.clone()
        }
    };
    let known = rt.run_dir(&uid).exists() && !uid.contains(['/', '.']);
    if !known {
        let no_console = "the server has no console on this node yet".to_owned();
        let _ = send(fail(404, no_console)).await;
        return;
    }
    let console = match rt.console(&uid) {
        Ok(c) => c,
        Err(e) => {
            let _ = send(fail(500, e.to_string())).await;
            return;
        }
    };
    match req.op {
        TunnelOp::Logs { tail, follow, .. } => {
            let (lines, mut sub) = console.follow(tail);
            if send(Answer::Started).await.is_err() {
                return;
            }
            for line in lines {
                if send(Answer::Line(line)).await.is_err() {
                    return;
                }
            }
            if follow {
                loop {
                    match sub.recv().await {
                        Ok(line) => {
                            if send(Answer::Line(line)).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let line = format!("[catalyst] {n} lines skipped (slow reader)");
                            let _ = send(Answer::Line(line)).await;
                        }
                        Err(_) => break,
                    }
                }
            }
            let _ = send(Answer::End { result: None }).await;
        }
        TunnelOp::Command { text, .. } => {
            let answer = match console.command(&text).await {
                Ok(_) => Answer::End { result: None },
                Err(e @ crate::console::ConsoleError::BadCommand) => fail(400, e.to_string()),
                Err(other) => fail(409, other.to_string()),
            };
            let _ = send(answer).await;
        }
        TunnelOp::Metrics { .. } => {
            let cid = Runtime::container_id(&uid);
            let pid = match rt.ctd.task_state(&cid).await {
                Ok(Some((crate::ctd::TaskState::Running, pid))) => Some(pid),
                _ => None,
            };
            let dir = rt.server_dir(&uid);
            let m = tokio::task::spawn_blocking(move || crate::metrics::server(&cid, pid, &dir))
                .await
                .unwrap_or_default();
            let result = serde_json::to_value(m).unwrap_or(Value::Null);
            let _ = send(Answer::End {
                result: Some(result),
            })
            .await;
        }
        TunnelOp::Prometheus | TunnelOp::Cancel => {}
    }
}
