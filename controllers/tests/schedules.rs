//! The schedule controller in-process against a real store, on a clock the tests move by hand:
//! slots in a time zone, tasks in order with their offsets, onlyWhenRunning, continueOnFailure,
//! missed runs within and after startingDeadlineSeconds (once, never twice), suspension and
//! run-now requests.

use std::sync::Arc;
use std::time::Duration;

use catalyst_apiserver::auth::Authenticator;
use catalyst_apiserver::http::AppState;
use catalyst_apiserver::registry::{Part, Registry, Scope};
use catalyst_controllers::clock::ManualClock;
use catalyst_controllers::manager::{self, Config};
use catalyst_schemas::lookup_kind;
use catalyst_schemas::object::resource_version;
use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};

struct World {
    registry: Registry,
    state: AppState,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store =
        catalyst_apiserver::store::open(&format!("sqlite://{}", dir.path().join("c.db").display()))
            .await
            .unwrap();
    let registry = Registry::new(store);
    let state = AppState::new(registry.clone(), Authenticator::fixed(&[]))
        .await
        .unwrap();
    // whole seconds, as the store keeps creation times
    let now = Utc::now().with_nanosecond(0).unwrap();
    World {
        registry,
        state,
        clock: Arc::new(ManualClock::new(now)),
        _dir: dir,
    }
}

impl World {
    fn start(&self) -> manager::Handle {
        manager::start(
            self.registry.clone(),
            &self.state.caches,
            Config {
                tunnels: self.state.tunnels.clone(),
                clock: self.clock.clone(),
                ..Config::new("server-1", Duration::from_secs(2))
            },
        )
    }

    fn now(&self) -> DateTime<Utc> {
        catalyst_controllers::clock::Clock::now(self.clock.as_ref())
    }

    /// A GameServer in phase `phase` (Pending, or through Scheduled up to Running).
    async fn gameserver(&self, name: &str, phase: &str) {
        let gs = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"image": "busybox"}});
        self.registry
            .create(scope("gameservers"), gs, false)
            .await
            .unwrap();
        for p in ["Scheduled", "Starting", "Running"] {
            if phase == "Pending" {
                break;
            }
            let mut st = json!({"phase": p});
            if p == "Scheduled" {
                st["nodeName"] = "node-a".into();
            }
            self.registry
                .merge_patch(
                    scope("gameservers"),
                    name,
                    json!({"status": st}),
                    Part::Status,
                    false,
                )
                .await
                .unwrap();
            if p == phase {
                break;
            }
        }
    }

    async fn schedule(&self, name: &str, spec: Value) {
        let obj = json!({"apiVersion": "catalyst.dev/v1alpha1", "kind": "Schedule",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec});
        self.registry
            .create(scope("schedules"), obj, false)
            .await
            .unwrap();
    }

    async fn get(&self, kind: &str, name: &str) -> Value {
        self.registry.get(scope(kind), name).await.unwrap()
    }

    /// Waits until the schedule satisfies `what`.
    async fn wait(&self, name: &str, what: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self.get("schedules", name).await;
            if what(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("schedule {name} never got there; last seen {last:#}");
    }

    /// Waits until the controller has looked at the schedule as it is now.
    async fn settled(&self, handle: &manager::Handle, name: &str) -> Value {
        let obj = self.get("schedules", name).await;
        let rv = resource_version(&obj).unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            handle.schedules.wait_for(&format!("default/{name}"), rv),
        )
        .await
        .expect("the controller reconciles the schedule");
        self.get("schedules", name).await
    }
}

fn scope(kind: &str) -> Scope<'static> {
    Scope {
        kind: lookup_kind(kind).unwrap(),
        namespace: Some("default"),
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("no time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn result(obj: &Value) -> &str {
    obj.pointer("/status/lastResult")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn tasks(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/lastTasks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_schedule_in_a_time_zone_runs_its_tasks_in_order_with_their_offsets() {
    let w = world().await;
    w.gameserver("gs", "Running").await;
    // the command fails (the server's node has no tunnel here) and the run goes on
    w.schedule(
        "every-minute",
        json!({"gameServer": "gs", "cron": "* * * * *", "timezone": "Europe/Berlin", "onlyWhenRunning": true,
               "tasks": [{"action": "Command", "payload": "say hi", "continueOnFailure": true},
                         {"action": "Restart", "offsetSeconds": 30},
                         {"action": "Backup", "offsetSeconds": 10}]}),
    )
    .await;
    w.schedule(
        "nightly",
        json!({"gameServer": "gs", "cron": "0 4 * * *", "timezone": "Europe/Berlin", "tasks": [{"action": "Restart"}]}),
    )
    .await;
    let _controllers = w.start();
    let s = w
        .wait("every-minute", |o| {
            o.pointer("/status/nextRunTime").is_some()
        })
        .await;
    let slot = time(&s["status"]["nextRunTime"]);
    let now = w.now();
    assert!(slot > now && slot - now <= chrono::Duration::seconds(60) && slot.second() == 0);
    // 04:00 in Berlin is 03:00 UTC in winter, 02:00 in summer: never 04:00 UTC
    let nightly = w
        .wait("nightly", |o| o.pointer("/status/nextRunTime").is_some())
        .await;
    let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let next4 = time(&nightly["status"]["nextRunTime"]);
    assert_eq!(next4.with_timezone(&berlin).hour(), 4);
    assert!(matches!(next4.hour(), 2 | 3), "{next4}");
    assert!(next4 > now && next4 - now <= chrono::Duration::hours(24));

    w.clock.set(slot);
    let s = w
        .wait("every-minute", |o| {
            tasks(o).first().is_some_and(|t| t["outcome"] == "Failed")
        })
        .await;
    assert_eq!(time(&s["status"]["lastScheduleTime"]), slot);
    assert_eq!(time(&s["status"]["lastRunTime"]), slot);
    assert_eq!(result(&s), "Running");
    let command = &tasks(&s)[0];
    assert_eq!(time(&command["startedAt"]), slot);
    assert!(
        command["message"].as_str().unwrap().contains("no tunnel"),
        "{command}"
    );
    // the restart waits 30 s after the command
    w.clock.advance(secs(29));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = w.get("schedules", "every-minute").await;
    assert_eq!(tasks(&s).len(), 1, "{s:#}");
    w.clock.advance(secs(1));
    let s = w
        .wait("every-minute", |o| {
            tasks(o).get(1).is_some_and(|t| t["outcome"] == "Succeeded")
        })
        .await;
    assert_eq!(
        time(&tasks(&s)[1]["startedAt"]),
        slot + chrono::Duration::seconds(30)
    );
    let gs = w.get("gameservers", "gs").await;
    assert!(gs
        .pointer("/metadata/annotations/catalyst.dev~1restartedAt")
        .is_some());
    // the backup 10 s after the restart
    w.clock.advance(secs(10));
    let s = w.wait("every-minute", |o| result(o) != "Running").await;
    let t = tasks(&s);
    assert_eq!(t.len(), 3);
    assert_eq!(
        (t[2]["action"].as_str(), t[2]["outcome"].as_str()),
        (Some("Backup"), Some("Succeeded"))
    );
    assert_eq!(
        time(&t[2]["startedAt"]),
        slot + chrono::Duration::seconds(40)
    );
    assert_eq!(result(&s), "Failed", "one task failed, passed over");
    let backup = w.get("backups", t[2]["backup"].as_str().unwrap()).await;
    assert_eq!(backup["spec"]["gameServer"], "gs");
    assert_eq!(
        backup["metadata"]["labels"]["catalyst.dev/schedule"],
        "every-minute"
    );
    // the next slot is the next minute
    assert_eq!(
        time(&s["status"]["nextRunTime"]),
        slot + chrono::Duration::seconds(60)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_stops_the_run_unless_it_may_continue_and_only_when_running_skips() {
    let w = world().await;
    w.gameserver("up", "Running").await;
    w.gameserver("down", "Scheduled").await;
    w.schedule(
        "strict",
        json!({"gameServer": "up", "cron": "* * * * *",
               "tasks": [{"action": "Command", "payload": "save-all"}, {"action": "Stop"}]}),
    )
    .await;
    w.schedule(
        "only-running",
        json!({"gameServer": "down", "cron": "* * * * *", "onlyWhenRunning": true,
               "tasks": [{"action": "Restart"}]}),
    )
    .await;
    let c = w.start();
    let s = w
        .wait("strict", |o| o.pointer("/status/nextRunTime").is_some())
        .await;
    w.settled(&c, "only-running").await;
    w.clock.set(time(&s["status"]["nextRunTime"]));
    let s = w.wait("strict", |o| result(o) == "Failed").await;
    assert_eq!(tasks(&s).len(), 1, "the stop never ran");
    assert_ne!(
        w.get("gameservers", "up").await["spec"]["state"],
        "Stopped",
        "not stopped"
    );
    let s = w.wait("only-running", |o| result(o) == "Skipped").await;
    assert!(tasks(&s).is_empty());
    assert!(
        s["status"]["message"]
            .as_str()
            .unwrap()
            .contains("Scheduled, not Running"),
        "{s:#}"
    );
    assert!(w
        .get("gameservers", "down")
        .await
        .pointer("/metadata/annotations/catalyst.dev~1restartedAt")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_missed_while_down_runs_once_within_the_deadline_and_not_after_it() {
    let w = world().await;
    w.gameserver("gs", "Running").await;
    w.schedule(
        "late",
        json!({"gameServer": "gs", "cron": "* * * * *", "startingDeadlineSeconds": 30,
               "tasks": [{"action": "Restart"}]}),
    )
    .await;
    let created = time(&w.get("schedules", "late").await["metadata"]["creationTimestamp"]);
    // the control plane is down over the first slot, and back 10 s after it
    let first =
        created.with_second(0).unwrap().with_nanosecond(0).unwrap() + chrono::Duration::seconds(60);
    w.clock.set(first + chrono::Duration::seconds(10));
    let c = w.start();
    let s = w.wait("late", |o| result(o) == "Succeeded").await;
    assert_eq!(time(&s["status"]["lastScheduleTime"]), first);
    let ran = time(&s["status"]["lastRunTime"]);
    c.stop();
    // a second controller (after a restart) does not run it again
    let c = w.start();
    let s = w.settled(&c, "late").await;
    assert_eq!(time(&s["status"]["lastRunTime"]), ran);
    assert_eq!(time(&s["status"]["lastScheduleTime"]), first);
    c.stop();
    // down again over the next three slots, back 50 s after the latest: too late
    let later = first + chrono::Duration::seconds(180);
    w.clock.set(later + chrono::Duration::seconds(50));
    let c = w.start();
    let s = w.wait("late", |o| result(o) == "Missed").await;
    assert_eq!(time(&s["status"]["lastScheduleTime"]), later);
    assert_eq!(time(&s["status"]["lastRunTime"]), ran, "nothing ran");
    assert!(tasks(&s).is_empty());
    let events = w
        .registry
        .list(scope("events"), &Default::default())
        .await
        .unwrap();
    assert!(events
        .items
        .iter()
        .any(|e| e["spec"]["reason"] == "MissedSchedule"));
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_schedule_does_not_run_but_a_run_request_does_once() {
    let w = world().await;
    w.gameserver("gs", "Running").await;
    w.schedule(
        "paused",
        json!({"gameServer": "gs", "cron": "* * * * *", "suspend": true,
               "tasks": [{"action": "Restart"}]}),
    )
    .await;
    let c = w.start();
    let s = w.settled(&c, "paused").await;
    assert!(s.pointer("/status/nextRunTime").is_none(), "{s:#}");
    w.clock.advance(secs(130));
    // a change makes the controller look again, at the new time
    w.registry
        .merge_patch(
            scope("schedules"),
            "paused",
            json!({"metadata": {"labels": {"poke": "1"}}}),
            Part::Main,
            false,
        )
        .await
        .unwrap();
    let s = w.settled(&c, "paused").await;
    assert!(s.pointer("/status/lastRunTime").is_none(), "{s:#}");
    let request = catalyst_schemas::schedule::run_now_patch(w.now());
    w.registry
        .merge_patch(
            scope("schedules"),
            "paused",
            request.clone(),
            Part::Main,
            false,
        )
        .await
        .unwrap();
    let s = w.wait("paused", |o| result(o) == "Succeeded").await;
    assert_eq!(time(&s["status"]["lastRunTime"]), w.now());
    assert!(
        s.pointer("/status/lastScheduleTime").is_none(),
        "no cron slot taken"
    );
    let stamp = request["metadata"]["annotations"]["catalyst.dev/runRequestedAt"].clone();
    assert_eq!(s["status"]["lastRunRequest"], stamp);
    // handled once: a later look runs nothing
    let first = s["status"]["lastTasks"][0]["startedAt"].clone();
    w.clock.advance(secs(5));
    let s = w.settled(&c, "paused").await;
    assert_eq!(s["status"]["lastTasks"][0]["startedAt"], first);
}
