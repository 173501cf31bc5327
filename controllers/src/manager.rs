//! Runs the controllers: informers for GameServers, Nodes and Schedules, leader election, and
//! the workers that reconcile queued keys while this process leads (schedule runs and timers
//! stop when it stops leading).
//!
//! Fencing: every controller writes through a registry fenced by `acting`, the leader's term
//! once the read barrier of its takeover passed (every informer listed again at or after the
//! term's token); the election alone writes unfenced. Workers check the term before taking a
//! key, and the controllers before side effects the store cannot fence (node tunnel calls).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use catalyst_apiserver::registry::{Registry, Term};
use catalyst_apiserver::tunnel::Tunnels;
use catalyst_apiserver::watch::WatchCache;
use catalyst_schemas::lookup_kind;
use serde_json::Value;
use tokio::sync::watch;

use crate::alerts::{self, AlertConfig, Evaluator};
use crate::clock::Clock;
use crate::informer::{self, Cache, Key, Relist};
use crate::leader::{is_leading, Leading};
use crate::progress::Progress;
use crate::queue::WorkQueue;
use crate::reconcilers::{
    reconcile_gameserver, reconcile_node, reconcile_schedule, Action, Context, ReconcileError,
    ScheduleContext,
};
use crate::scheduling::Strategy;

/// How the controllers run.
#[derive(Debug, Clone)]
pub struct Config {
    /// This process's identity in the leader election.
    pub identity: String,
    /// The leader election's lease, renew interval and renew deadline.
    pub election: crate::leader::Timing,
    /// Packed or Distributed scheduling.
    pub strategy: Strategy,
    /// The API server's node tunnels, for the controllers that ask nodes (backups, schedule
    /// Command tasks); [`Config::new`] gives an empty set (no node is ever connected).
    pub tunnels: Arc<Tunnels>,
    /// The time schedules run by.
    pub clock: Arc<dyn Clock>,
    /// How long a node may go without a heartbeat before it is NotReady
    /// ([`crate::reconcilers::NODE_GRACE`] by default).
    pub node_grace: Duration,
    /// The AlertRule evaluator's settings; None: AlertRules are not evaluated.
    pub alerts: Option<AlertConfig>,
}

impl Config {
    /// The defaults: an election renewing at a third of `lease_duration` and stepping down at
    /// two thirds, Packed scheduling, [`crate::reconcilers::NODE_GRACE`], no tunnels, the
    /// system clock, no alerts.
    pub fn new(identity: &str, lease_duration: Duration) -> Self {
        Self {
            identity: identity.to_owned(),
            election: crate::leader::Timing::from_lease(lease_duration),
            strategy: Strategy::Packed,
            node_grace: crate::reconcilers::NODE_GRACE,
            alerts: None,
            tunnels: Arc::new(Tunnels::default()),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }
}

/// The running controllers.
#[derive(Debug)]
pub struct Handle {
    /// The term while this process holds the leader Lease; sent after every election round,
    /// even when unchanged, so `changed()` also tells that a round completed.
    pub leading: Leading,
    /// The term the controllers act and write under: the leader's, once the read barrier of
    /// its takeover passed; None otherwise.
    pub acting: Leading,
    /// What the GameServer worker has reconciled (keys `namespace/name`).
    pub gameservers: Arc<Progress>,
    /// What the Node worker has reconciled (keys: node names).
    pub nodes: Arc<Progress>,
    /// What the Schedule worker has reconciled (keys `namespace/name`).
    pub schedules: Arc<Progress>,
    /// The schedule runs and timers of this process.
    pub schedule_runs: Arc<crate::reconcilers::Runs>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Handle {
    /// Stops every controller task and schedule run (the lease then expires and a standby
    /// takes over).
    pub fn stop(&self) {
        self.tasks.iter().for_each(|t| t.abort());
        self.schedule_runs.stop_all();
    }
}

/// Starts everything; returns at once.
pub fn start(
    registry: Registry,
    caches: &HashMap<&'static str, Arc<WatchCache>>,
    config: Config,
) -> Handle {
    let (leading_tx, leading) = watch::channel(None::<Term>);
    let (acting_tx, acting) = watch::channel(None::<Term>);
    let relist = Arc::new(Relist::default());
    // the election writes unfenced; every controller through `fenced`
    let (election_registry, registry) = (registry.clone(), registry.fenced(acting.clone()));
    let gs_kind = lookup_kind("gameservers").expect("kind");
    let node_kind = lookup_kind("nodes").expect("kind");
    let sched_kind = lookup_kind("schedules").expect("kind");
    let ctx = Context {
        registry: registry.clone(),
        gameservers: Arc::new(Cache::default()),
        nodes: Arc::new(Cache::default()),
        strategy: config.strategy,
        usage: Default::default(),
        node_infos: Default::default(),
        deciding: Default::default(),
        pending: Default::default(),
        node_grace: config.node_grace,
    };
    let gs_queue: Arc<WorkQueue<Key>> = Arc::new(WorkQueue::default());
    let node_queue: Arc<WorkQueue<Key>> = Arc::new(WorkQueue::default());
    let sched_queue: Arc<WorkQueue<Key>> = Arc::new(WorkQueue::default());
    let sched_ctx = ScheduleContext {
        registry: registry.clone(),
        schedules: Arc::new(Cache::default()),
        tunnels: config.tunnels.clone(),
        clock: config.clock.clone(),
        queue: sched_queue.clone(),
        runs: Default::default(),
        leading: acting.clone(),
    };

    let mut tasks = Vec::new();
    let ctx_registry = ctx.registry.clone();
    let registry_for_alerts = ctx.registry.clone();
    let ctx_caches = (ctx.gameservers.clone(), ctx.nodes.clone());
    let (q, tracker) = (gs_queue.clone(), ctx.clone());
    tasks.push(tokio::spawn(informer::run(
        registry.clone(),
        caches[gs_kind.plural].clone(),
        gs_kind,
        ctx.gameservers.clone(),
        move |k| {
            tracker.track(&k);
            if tracker.gameservers.get(&k).is_none() {
                // a deleted server freed its node's resources and ports
                tracker.pending().into_iter().for_each(|p| q.add(p));
            }
            q.add(k)
        },
        relist.clone(),
    )));
    let (nq, gq, node_ctx) = (node_queue.clone(), gs_queue.clone(), ctx.clone());
    tasks.push(tokio::spawn(informer::run(
        registry.clone(),
        caches[node_kind.plural].clone(),
        node_kind,
        ctx.nodes.clone(),
        move |k| {
            nq.add(k);
            node_ctx.node_infos.invalidate();
            // a node change may make waiting servers schedulable
            node_ctx.pending().into_iter().for_each(|k| gq.add(k));
        },
        relist.clone(),
    )));

    let gs_cache_for_backups = ctx.gameservers.clone();
    let ctx_for_transfers = ctx.clone();
    let sq = sched_queue.clone();
    tasks.push(tokio::spawn(informer::run(
        registry.clone(),
        caches[sched_kind.plural].clone(),
        sched_kind,
        sched_ctx.schedules.clone(),
        move |k| sq.add(k),
        relist.clone(),
    )));

    tasks.push(tokio::spawn(crate::leader::run(
        election_registry,
        config.identity.clone(),
        config.election,
        leading_tx,
        caches.get("leases").cloned(),
    )));
    // a new term acts once the barrier passed: then everything is looked at; a lost term stops
    // the schedule runs
    tasks.push(tokio::spawn(follow_term(
        leading.clone(),
        acting_tx,
        relist.clone(),
        Box::new({
            let (ctx, gq, nq, sctx) = (
                ctx.clone(),
                gs_queue.clone(),
                node_queue.clone(),
                sched_ctx.clone(),
            );
            move |acting| {
                if !acting {
                    sctx.runs.stop_all();
                    return;
                }
                ctx.gameservers
                    .all()
                    .iter()
                    .for_each(|o| gq.add(informer::key_of(o)));
                ctx.nodes
                    .all()
                    .iter()
                    .for_each(|o| nq.add(informer::key_of(o)));
                sctx.schedules
                    .all()
                    .iter()
                    .for_each(|o| sctx.queue.add(informer::key_of(o)));
            }
        }),
    )));
    let (gs_progress, node_progress) =
        (Arc::new(Progress::default()), Arc::new(Progress::default()));
    // GameServers: decisions one at a time (each reserves its placement before the next),
    // their writes concurrent, so one commit of the store carries many bindings
    tasks.push(tokio::spawn(worker(
        gs_queue,
        acting.clone(),
        (ctx.gameservers.clone(), gs_progress.clone()),
        (ctx.clone(), GAMESERVER_WORKERS),
        |ctx, key| async move { reconcile_gameserver(&ctx, &key).await },
    )));
    tasks.push(tokio::spawn(worker(
        node_queue,
        acting.clone(),
        (ctx.nodes.clone(), node_progress.clone()),
        (ctx, 1),
        |ctx, key| async move { reconcile_node(&ctx, &key).await },
    )));
    tasks.extend(crate::backups::start(
        ctx_registry.clone(),
        caches,
        gs_cache_for_backups,
        config.tunnels.clone(),
        acting.clone(),
        relist.clone(),
    ));
    tasks.push(crate::transfers::start(
        ctx_for_transfers,
        config.tunnels.clone(),
        acting.clone(),
    ));
    let sched_progress = Arc::new(Progress::default());
    let schedule_runs = sched_ctx.runs.clone();
    tasks.push(tokio::spawn(worker(
        sched_queue,
        acting.clone(),
        (sched_ctx.schedules.clone(), sched_progress.clone()),
        (sched_ctx, 1),
        |ctx, key| async move { reconcile_schedule(&ctx, &key).await },
    )));
    tasks.push(tokio::spawn(expire_events(
        ctx_registry.clone(),
        acting.clone(),
    )));
    let (gc_tasks, _) = crate::gc::start(ctx_registry, caches, acting.clone());
    tasks.extend(gc_tasks);
    if let Some(alert_config) = config.alerts {
        let caches_of = |plural: &'static str, tasks: &mut Vec<tokio::task::JoinHandle<()>>| {
            let cache = Arc::new(Cache::default());
            tasks.push(tokio::spawn(informer::run(
                registry_for_alerts.clone(),
                caches[plural].clone(),
                lookup_kind(plural).expect("kind"),
                cache.clone(),
                |_| {},
                relist.clone(),
            )));
            cache
        };
        let evaluator = Arc::new(Evaluator::new(
            registry_for_alerts.clone(),
            alerts::Caches {
                rules: caches_of("alertrules", &mut tasks),
                backups: caches_of("backups", &mut tasks),
                gameservers: ctx_caches.0,
                nodes: ctx_caches.1,
            },
            alert_config,
        ));
        tasks.push(tokio::spawn(evaluator.run(acting.clone())));
    }
    Handle {
        leading,
        acting,
        gameservers: gs_progress,
        nodes: node_progress,
        schedules: sched_progress,
        schedule_runs,
        tasks,
    }
}

/// Follows the election's `leading` into `acting`: a renewal of the acting term passes on at
/// once; a new term (a new token) only once every informer listed again at or after its
/// token, so nothing is decided from a cache that misses a write of an earlier term. `changed`
/// hears true when a term starts acting, false when one stops.
async fn follow_term(
    mut leading: Leading,
    acting: watch::Sender<Option<Term>>,
    relist: Arc<Relist>,
    changed: Box<dyn Fn(bool) + Send>,
) {
    let token = |t: &Option<Term>| t.as_ref().map(|t| t.guard.create_revision);
    while leading.changed().await.is_ok() {
        let term = leading.borrow_and_update().clone();
        let was = token(&acting.borrow());
        if term.is_some() && token(&term) == was {
            acting.send_replace(term); // renewed
            continue;
        }
        if acting.send_replace(None).is_some() {
            changed(false);
        }
        let Some(t) = token(&term) else { continue };
        relist.request(t);
        let started = std::time::Instant::now();
        relist.wait(t).await;
        // the term may have been renewed (or lost) meanwhile
        let now = leading.borrow().clone();
        if token(&now) == Some(t) {
            tracing::info!(
                token = t,
                barrier_ms = started.elapsed().as_millis() as u64,
                "caches listed at or after the fencing token: acting"
            );
            acting.send_replace(now);
            changed(true);
        }
    }
}

/// GameServer keys reconciled at once.
const GAMESERVER_WORKERS: usize = 64;

/// How long Events are kept.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// While leading, deletes Events whose last occurrence is older than [`EVENT_TTL`], once a minute.
async fn expire_events(registry: Registry, leading: Leading) {
    let scope = catalyst_apiserver::registry::Scope {
        kind: lookup_kind("events").expect("kind"),
        namespace: None,
    };
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        if !is_leading(&leading) {
            continue;
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(EVENT_TTL).expect("small");
        let Ok(list) = registry.list(scope, &Default::default()).await else {
            continue;
        };
        for ev in list.items {
            let last = ev
                .pointer("/spec/lastTimestamp")
                .or_else(|| ev.pointer("/metadata/creationTimestamp"))
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if last.is_some_and(|t| t < cutoff) {
                let name = ev
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ns = ev.pointer("/metadata/namespace").and_then(Value::as_str);
                let scope = catalyst_apiserver::registry::Scope {
                    namespace: ns,
                    ..scope
                };
                let _ = registry.delete(scope, name, None, false).await;
            }
        }
    }
}

/// Reconciles the keys of `queue` while leading, up to `concurrency` keys at once (never one
/// key twice at once: the queue hands a key out again only when it is done); each success is
/// recorded in `progress` with the revision of the cached object (in `cache`) the reconcile
/// started from.
async fn worker<C, F, Fut>(
    queue: Arc<WorkQueue<Key>>,
    leading: Leading,
    (cache, progress): (Arc<Cache>, Arc<Progress>),
    (ctx, concurrency): (C, usize),
    reconcile: F,
) where
    C: Clone + Send + 'static,
    F: Fn(C, Key) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Action, ReconcileError>> + Send,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    while let Some(key) = queue.next().await {
        if !is_leading(&leading) {
            // the leader does the work; everything is queued again when we become leader
            queue.succeeded(&key);
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (queue, cache, progress, ctx, reconcile) = (
            queue.clone(),
            cache.clone(),
            progress.clone(),
            ctx.clone(),
            reconcile.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            let started_at = cache
                .get(&key)
                .map(|o| catalyst_schemas::object::resource_version(&o).unwrap_or(0));
            match reconcile(ctx, key.clone()).await {
                Ok(Action::Done) => {
                    progress.record(&key, started_at);
                    queue.succeeded(&key);
                }
                Ok(Action::RequeueAfter(d)) => {
                    progress.record(&key, started_at);
                    queue.succeeded(&key);
                    queue.add_after(key, d);
                }
                Err(e) => {
                    let delay = queue.failed(&key);
                    tracing::warn!(key, error = %e, retry_in_ms = delay.as_millis() as u64, "reconcile failed");
                }
            }
        });
    }
}
