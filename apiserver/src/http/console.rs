//! The console for browsers: a WebSocket at `…/namespaces/NS/gameservers/NAME/console`.
//!
//! Authentication is the bearer header, or for browsers (which cannot set headers on a
//! WebSocket) a ticket: `POST /auth/v1/tickets {"namespace", "name"}` answers a secret that
//! opens this one console once, within [`TICKET_TTL`], as the caller who asked for it
//! (`…/console?ticket=…`); no long-lived token goes into a URL.
//!
//! Messages are JSON text frames `{"event": …, "data": …}`:
//! - server → client: `line` (the last `tail` lines, default 100, then new ones), `phase`
//!   (now and on every change), `stats` (cpu, memory, network, every [`STATS_EVERY`]),
//!   `error`, and `closed` with the reason before the server closes;
//! - client → server: `command` (one console line; needs `create` on `gameservers/command`,
//!   checked for every command).
//!
//! Limits: client messages of at most [`MESSAGE_BYTES`], commands at [`COMMANDS_PER_SECOND`]
//! (a burst of [`COMMAND_BURST`]; a client that keeps flooding is closed); a client that does
//! not read is closed once [`OUTBOX`] messages wait for it, without holding anyone else up. The
//! connection closes when the caller's credential is revoked or their right to the console is
//! taken away (checked every [`RECHECK`]).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use catalyst_schemas::lookup_kind;
use catalyst_schemas::rbac::Attributes;
use catalyst_schemas::tunnel::{Answer, TunnelOp};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::auth::{hash, new_token, Caller};
use crate::error::ApiError;
use crate::registry::Scope;
use crate::state::AppState;
use crate::watch::{CacheMessage, Subscription};

use super::tunnel::{locate, owner};

/// The largest message a console client may send.
pub const MESSAGE_BYTES: usize = 4096;
/// Commands a client may send per second, on average.
pub const COMMANDS_PER_SECOND: f64 = 10.0;
/// Commands a client may send at once.
pub const COMMAND_BURST: f64 = 20.0;
/// Messages waiting for a client before it counts as not reading and is closed.
pub const OUTBOX: usize = 1024;
/// How often stats are sent.
pub const STATS_EVERY: Duration = Duration::from_secs(5);
/// How often the caller's right to the console is checked again.
pub const RECHECK: Duration = Duration::from_secs(2);
/// How long a console ticket is good for.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// Where tickets are kept (by the hash of their secret), so any API server can redeem them.
const TICKETS: &str = "/_catalyst/tickets/";
/// A ticket's secret starts with this.
pub const TICKET_PREFIX: &str = "ticket_";

/// The console routes.
pub fn routes() -> Router<AppState> {
    const API: &str = "/apis/catalyst.dev/v1alpha1";
    Router::new()
        .route(
            &format!("{API}/namespaces/{{ns}}/gameservers/{{name}}/console"),
            get(console),
        )
        .route("/auth/v1/tickets", post(ticket))
}

/// The console of a GameServer.
fn console_path(ns: &str, name: &str) -> String {
    format!("/apis/catalyst.dev/v1alpha1/namespaces/{ns}/gameservers/{name}/console")
}

/// A stored ticket.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ticket {
    /// `user` or `apikey`.
    kind: String,
    /// The user's or key's name.
    name: String,
    /// The path the ticket opens.
    path: String,
    /// When it stops working.
    expires: chrono::DateTime<chrono::Utc>,
}

/// `POST /auth/v1/tickets`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketRequest {
    /// The GameServer's namespace.
    pub namespace: String,
    /// The GameServer's name.
    pub name: String,
}

async fn ticket(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > MESSAGE_BYTES {
        return Err(ApiError::PayloadTooLarge(
            "a ticket request is small".into(),
        ));
    }
    let req: TicketRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let (kind, name) = match &caller {
        Caller::User { name, .. } => ("user", name.clone()),
        Caller::ApiKey { name, .. } => ("apikey", name.clone()),
        other => {
            return Err(ApiError::Forbidden(format!(
                "{} {} cannot take console tickets (use the bearer header)",
                other.kind(),
                other.name()
            )))
        }
    };
    let wanted = Attributes::new("get", "gameservers/console")
        .in_namespace(&req.namespace)
        .named(&req.name);
    if !state.access.may(&caller, &wanted) {
        return Err(ApiError::Forbidden(format!(
            "{kind} {name} may not open the console of gameserver {}/{}",
            req.namespace, req.name
        )));
    }
    let secret = format!("{TICKET_PREFIX}{}", new_token());
    let expires = chrono::Utc::now() + chrono::Duration::from_std(TICKET_TTL).expect("ttl fits");
    let record = Ticket {
        kind: kind.into(),
        name,
        path: console_path(&req.namespace, &req.name),
        expires,
    };
    state
        .registry
        .store()
        .create(
            &format!("{TICKETS}{}", hash(&secret)),
            &serde_json::to_vec(&record).expect("encodes"),
        )
        .await?;
    Ok(Json(json!({"ticket": secret, "expiresAt": expires, "path": record.path})).into_response())
}

/// The caller a console ticket stands for, once (it is deleted as it is used), when it is for
/// `path` and not expired.
///
/// # Errors
/// 401 for an unknown, used, expired or misdirected ticket, or a caller gone since.
pub async fn redeem(state: &AppState, secret: &str, path: &str) -> Result<Caller, ApiError> {
    let bad = || ApiError::Unauthorized("invalid, used or expired console ticket".into());
    let store = state.registry.store();
    let key = format!("{TICKETS}{}", hash(secret));
    let kv = store.get(&key).await?.ok_or_else(bad)?;
    // single use: whoever deletes it first has it
    if store.delete(&key, Some(kv.mod_revision)).await.is_err() {
        return Err(bad());
    }
    let t: Ticket = serde_json::from_slice(&kv.value).map_err(|_| bad())?;
    if t.expires <= chrono::Utc::now() || t.path != path {
        return Err(bad());
    }
    match t.kind.as_str() {
        "user" => state.access.user_caller(&t.name),
        "apikey" => {
            let owner = state
                .access
                .rbac
                .keys
                .get(&t.name)
                .map(|k| k.spec.owner.clone())
                .ok_or_else(bad)?;
            let c = Caller::ApiKey {
                name: t.name,
                owner,
            };
            if state.access.still_valid(&c) {
                Ok(c)
            } else {
                Err(bad())
            }
        }
        _ => Err(bad()),
    }
}

/// Removes expired tickets (never redeemed) from the store.
pub async fn sweep_tickets(state: &AppState) {
    let store = state.registry.store();
    let Ok(page) = store.list(TICKETS, &Default::default()).await else {
        return;
    };
    let now = chrono::Utc::now();
    for kv in page.items {
        let expired =
            serde_json::from_slice::<Ticket>(&kv.value).map_or(true, |t| t.expires <= now);
        if expired {
            let _ = store.delete(&kv.key, Some(kv.mod_revision)).await;
        }
    }
}

/// Query of the console.
#[derive(Debug, Default, Deserialize)]
pub struct ConsoleQuery {
    /// Lines of history to replay (default 100).
    #[serde(default)]
    pub tail: Option<usize>,
}

/// `GET …/console`: the WebSocket.
pub async fn console(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<ConsoleQuery>,
    Extension(caller): Extension<Caller>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // the server must be on a node before there is a console to open
    let (node, uid) = locate(&state, &ns, &name).await?;
    let tail = q.tail.unwrap_or(100).min(10_000);
    Ok(ws
        .max_message_size(MESSAGE_BYTES)
        .max_frame_size(MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            let session = Session {
                state,
                caller,
                ns,
                name,
                node,
                uid,
            };
            session.run(socket, tail).await;
        }))
}

struct Session {
    state: AppState,
    caller: Caller,
    ns: String,
    name: String,
    node: String,
    uid: String,
}

fn event(name: &str, data: impl serde::Serialize) -> Message {
    Message::Text(json!({"event": name, "data": data}).to_string().into())
}

/// A token bucket for commands.
struct Bucket {
    tokens: f64,
    last: tokio::time::Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * COMMANDS_PER_SECOND;
        self.tokens = (self.tokens + refill).min(COMMAND_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A message from a client.
#[derive(Debug, Deserialize)]
struct ClientMessage {
    event: String,
    #[serde(default)]
    data: Value,
}

impl Session {
    fn on(&self, verb: &str, res: &str) -> Attributes {
        Attributes::new(verb, res)
            .in_namespace(&self.ns)
            .named(&self.name)
    }

    fn may_watch(&self) -> bool {
        self.state
            .access
            .may(&self.caller, &self.on("get", "gameservers/console"))
    }

    /// The server's phase now.
    async fn phase(&self) -> Option<String> {
        let kind = lookup_kind("gameservers").expect("kind");
        let scope = Scope {
            kind,
            namespace: Some(&self.ns),
        };
        let obj = self.state.registry.get(scope, &self.name).await.ok()?;
        obj.pointer("/status/phase")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    async fn run(self, socket: WebSocket, tail: usize) {
        let who = owner(Some(&self.caller));
        let (mut sink, mut stream) = socket.split();
        let (out, mut outbox) = mpsc::channel::<Message>(OUTBOX);
        // the writer: the only one that waits on this client's socket
        let writer = tokio::spawn(async move {
            while let Some(msg) = outbox.recv().await {
                let last = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || last {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reason = self.serve(&who, &out, &mut stream, tail).await;
        tracing::info!(
            caller = self.caller.key(),
            server = format!("{}/{}", self.ns, self.name),
            reason,
            "console closed"
        );
        // a client that stopped reading gets no farewell: its outbox is full
        let _ = out.try_send(event("closed", &reason));
        let _ = out.try_send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: reason.chars().take(100).collect::<String>().into(),
        })));
        drop(out);
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    }

    /// Serves until the console ends; why it ended.
    async fn serve(
        &self,
        who: &str,
        out: &mpsc::Sender<Message>,
        stream: &mut futures::stream::SplitStream<WebSocket>,
        tail: usize,
    ) -> String {
        let push = |m: Message| out.try_send(m).is_ok();
        let mut lines = match self
            .state
            .tunnels
            .request(
                &self.node,
                who,
                TunnelOp::Logs {
                    uid: self.uid.clone(),
                    tail: Some(tail),
                    follow: true,
                },
            )
            .await
        {
            Ok(a) => a,
            Err(e) => return ApiError::from(e).to_string(),
        };
        let mut phase = self.phase().await;
        if !push(event("phase", &phase)) {
            return "the client does not read".into();
        }
        let mut changes = self.changes();
        let revoked = self.state.access.clone().revoked(self.caller.clone());
        tokio::pin!(revoked);
        let mut stats = tokio::time::interval(STATS_EVERY);
        let mut recheck = tokio::time::interval(RECHECK);
        let mut ping = tokio::time::interval(Duration::from_secs(20));
        let mut bucket = Bucket {
            tokens: COMMAND_BURST,
            last: tokio::time::Instant::now(),
        };
        let mut floods = 0u32;
        loop {
            tokio::select! {
                answer = lines.next() => match answer {
                    Some(Answer::Line(l)) => {
                        if !push(event("line", l)) {
                            return "the client does not read".into();
                        }
                    }
                    Some(Answer::Failed { error, .. }) => return error,
                    Some(Answer::End { .. }) | None => return "the console ended".into(),
                    Some(_) => {}
                },
                msg = stream.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | None => return "the client closed".into(),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return format!("the client's connection failed: {e}"),
                    };
                    let msg: ClientMessage = match serde_json::from_str(&text) {
                        Ok(m) => m,
                        Err(e) => {
                            push(event("error", format!("not a console message: {e}")));
                            continue;
                        }
                    };
                    if msg.event != "command" {
                        push(event("error", format!("unknown event {:?}", msg.event)));
                        continue;
                    }
                    if !bucket.take() {
                        floods += 1;
                        if floods > 100 {
                            return "too many commands".into();
                        }
                        push(event("error", "too many commands: slow down"));
                        continue;
                    }
                    self.command(who, &msg.data, &push).await;
                }
                () = &mut revoked => return "the credential was revoked".into(),
                _ = recheck.tick() => {
                    if !self.may_watch() {
                        return "the right to this console was taken away".into();
                    }
                }
                _ = stats.tick() => {
                    if let Some(s) = self.stats(who).await {
                        if !push(event("stats", s)) {
                            return "the client does not read".into();
                        }
                    }
                }
                _ = ping.tick() => {
                    if !push(Message::Ping(Bytes::new())) {
                        return "the client does not read".into();
                    }
                }
                change = changes.recv() => {
                    let now = match change {
                        Ok(CacheMessage::Event(e)) => {
                            let o = e.object();
                            let field = |p: &str| o.pointer(p).and_then(Value::as_str);
                            if field("/metadata/name") != Some(&self.name)
                                || field("/metadata/namespace") != Some(&self.ns)
                            {
                                continue;
                            }
                            if matches!(e.event, catalyst_schemas::watch::WatchEvent::Deleted(_)) {
                                return "the server was deleted".into();
                            }
                            field("/status/phase").map(str::to_owned)
                        }
                        Ok(CacheMessage::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            self.phase().await
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            changes = self.changes();
                            continue;
                        }
                    };
                    if now != phase {
                        phase = now;
                        if !push(event("phase", &phase)) {
                            return "the client does not read".into();
                        }
                    }
                }
            }
        }
    }

    /// The live changes of GameServers (this one is picked out of them).
    fn changes(&self) -> broadcast::Receiver<CacheMessage> {
        let cache = self.state.caches["gameservers"].clone();
        match cache.subscribe(cache.newest()) {
            Subscription::Cached { live, .. } => live,
            // cannot happen for the newest revision; a closed receiver is resubscribed
            Subscription::TooOld => broadcast::channel(1).1,
        }
    }

    async fn command(&self, who: &str, data: &Value, push: &impl Fn(Message) -> bool) {
        let Some(text) = data.as_str() else {
            push(event("error", "a command's data is a string"));
            return;
        };
        if text.contains(['\n', '\r', '\0']) {
            push(event("error", "a command is one line without NUL bytes"));
            return;
        }
        if !self
            .state
            .access
            .may(&self.caller, &self.on("create", "gameservers/command"))
        {
            push(event("error", "you may not send commands to this server"));
            return;
        }
        let op = TunnelOp::Command {
            uid: self.uid.clone(),
            text: text.to_owned(),
        };
        let answer = match self.state.tunnels.request(&self.node, who, op).await {
            Ok(mut a) => a.next_in_time().await.map_err(ApiError::from),
            Err(e) => Err(e.into()),
        };
        match answer {
            Ok(Answer::Failed { error, .. }) => {
                push(event("error", error));
            }
            Err(e) => {
                push(event("error", e.to_string()));
            }
            Ok(_) => {}
        }
    }

    async fn stats(&self, who: &str) -> Option<Value> {
        let op = TunnelOp::Metrics {
            uid: self.uid.clone(),
        };
        let mut a = self.state.tunnels.request(&self.node, who, op).await.ok()?;
        match a.next_in_time().await.ok()? {
            Answer::End { result } => result,
            _ => None,
        }
    }
}

/// Starts sweeping expired tickets every minute; abort the task to stop it.
pub fn spawn_sweeper(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            sweep_tickets(&state).await;
        }
    })
}
