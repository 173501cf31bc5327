//! The executor on recording fakes: installs that a stop interrupts or a deadline ends, crash
//! loop backoff on a paused clock, re-adoption, refused transitions.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use super::fake::{Fakes, ManualClock};
use super::plan::Task;
use super::*;
use crate::worker::env::TokioClock;

const UID: &str = "u1";
const MAIN: &str = "gs-u1";
const INSTALL: &str = "gs-u1-install";

fn object(phase: &str, spec: Value) -> Value {
    let mut spec_v =
        json!({"image": "busybox", "stop": {"signal": "SIGINT", "timeoutSeconds": 20}});
    for (k, v) in spec.as_object().cloned().unwrap_or_default() {
        spec_v[k] = v;
    }
    json!({
        "apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
        "metadata": {"name": "gs", "namespace": "default", "uid": UID, "generation": 1,
                     "resourceVersion": "5"},
        "spec": spec_v,
        "status": {"phase": phase, "nodeName": "n1"},
    })
}

struct Rig {
    fakes: Fakes,
    tx: watch::Sender<Option<Value>>,
    worker: Worker,
}

fn rig(obj: Value, clock: Arc<dyn env::Clock>) -> Rig {
    let fakes = Fakes::new(obj.clone(), clock);
    let (tx, rx) = watch::channel(Some(obj));
    let worker = Worker::new(
        fakes.env(),
        UID.to_owned(),
        rx,
        fakes.runtime.exits.clone(),
        None,
    );
    Rig { fakes, tx, worker }
}

impl Rig {
    /// Changes the stored object as a user would, and tells the worker.
    fn update(&self, f: impl FnOnce(&mut Value)) {
        let mut obj = self.fakes.status.object.lock().expect("object");
        f(&mut obj);
        let rv = catalyst_schemas::object::resource_version(&obj).unwrap_or(0) + 1;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.tx.send_replace(Some(obj.clone()));
    }

    async fn pass(&mut self) -> Next {
        self.worker
            .pass()
            .await
            .expect("a pass")
            .expect("the server is not gone")
    }

    fn phase(&self) -> String {
        self.fakes.status.get()["status"]["phase"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

#[tokio::test]
async fn a_stop_interrupts_a_running_install_without_waiting_for_it() {
    let clock = Arc::new(ManualClock::new());
    let mut r = rig(
        object(
            "Scheduled",
            json!({"install": {"script": "sleep 1000", "timeoutSeconds": 600}}),
        ),
        clock.clone(),
    );
    // the install starts and the pass returns at once with its deadline as the next wake-up
    assert_eq!(r.pass().await, Next::After(Duration::from_secs(600)));
    assert_eq!(r.phase(), "Installing");
    assert_eq!(r.fakes.runtime.get(INSTALL), Task::Running);
    assert_eq!(
        r.fakes.runtime.calls_of("create"),
        vec![format!("create {INSTALL} install")]
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(r.pass().await, Next::After(Duration::from_secs(540)));
    // the user stops the server while the script runs
    r.update(|o| o["spec"]["state"] = json!("Stopped"));
    r.pass().await;
    assert_eq!(
        r.fakes.runtime.calls_of("kill"),
        vec![format!("kill {INSTALL} 9 all")]
    );
    assert_eq!(r.phase(), "Stopping");
    // its exit: stopped, not failed, not installed; the main container never made
    r.pass().await;
    assert_eq!(r.phase(), "Stopped");
    assert_eq!(r.fakes.runtime.get(INSTALL), Task::Absent);
    let obj = r.fakes.status.get();
    assert!(!catalyst_schemas::object::condition_true(&obj, "Installed"));
    assert!(r
        .fakes
        .runtime
        .calls_of(&format!("create {MAIN} "))
        .is_empty());
    assert!(r
        .fakes
        .status
        .reasons()
        .contains(&"InstallStopped".to_owned()));
    assert_eq!(r.pass().await, Next::Idle);
    // started again: the install runs again
    r.update(|o| o["spec"]["state"] = json!("Running"));
    r.pass().await;
    assert_eq!(r.phase(), "Installing");
    assert_eq!(r.fakes.runtime.calls_of("create").len(), 2);
}

#[tokio::test]
async fn a_delete_interrupts_a_running_install_and_cleans_up() {
    let mut r = rig(
        object("Scheduled", json!({"install": {"script": "sleep 1000"}})),
        Arc::new(ManualClock::new()),
    );
    r.pass().await;
    assert_eq!(r.phase(), "Installing");
    r.update(|o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-11-30T00:00:00Z");
        o["metadata"]["finalizers"] = json!(["catalyst.dev/gameserver"]);
    });
    r.pass().await; // kill
    r.pass().await; // its exit
    r.pass().await; // clean up
    assert_eq!(r.phase(), "Stopped");
    let calls = r.fakes.runtime.calls.lock().expect("calls").clone();
    for call in [
        format!("kill {INSTALL} 9 all"),
        format!("remove {MAIN}"),
        format!("remove {INSTALL}"),
        format!("detach {MAIN}"),
        "release gone=false".to_owned(),
    ] {
        assert!(calls.contains(&call), "{call}: {calls:?}");
    }
    // gone from the API: everything, data included
    r.tx.send_replace(None);
    assert!(r.worker.pass().await.expect("pass").is_none());
    assert!(r
        .fakes
        .runtime
        .calls_of("release")
        .contains(&"release gone=true".to_owned()));
}

#[tokio::test]
async fn an_install_past_its_deadline_is_killed_and_fails() {
    let clock = Arc::new(ManualClock::new());
    let mut r = rig(
        object(
            "Scheduled",
            json!({"install": {"script": "sleep 1000", "timeoutSeconds": 30}}),
        ),
        clock.clone(),
    );
    r.pass().await;
    clock.advance(Duration::from_secs(30));
    r.pass().await;
    assert_eq!(
        r.fakes.runtime.calls_of("kill"),
        vec![format!("kill {INSTALL} 9 all")]
    );
    assert_eq!(r.phase(), "Installing");
    r.pass().await;
    assert_eq!(r.phase(), "Error");
    let obj = r.fakes.status.get();
    assert_eq!(obj["status"]["reason"], "InstallFailed");
    assert!(obj["status"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("timeout")));
    let installed = catalyst_schemas::object::conditions_of(&obj);
    assert!(installed
        .iter()
        .any(|c| c.type_ == "Installed" && c.reason == "InstallFailed"));
    assert_eq!(r.fakes.runtime.calls_of("own-data").len(), 1);
}

#[tokio::test]
async fn a_successful_install_is_followed_by_the_start() {
    let mut r = rig(
        object("Scheduled", json!({"install": {"script": "true"}})),
        Arc::new(ManualClock::new()),
    );
    r.pass().await;
    r.fakes.runtime.set(INSTALL, Task::Exited(0));
    r.pass().await;
    assert_eq!(r.phase(), "Stopped");
    assert!(catalyst_schemas::object::condition_true(
        &r.fakes.status.get(),
        "Installed"
    ));
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    assert_eq!(r.fakes.runtime.get(MAIN), Task::Running);
    assert_eq!(
        *r.fakes.status.phases.lock().expect("phases"),
        vec!["Installing", "Stopped", "Starting", "Running"]
    );
}

/// Crashes restart after 1, 2, 4, 8, 16 s (tokio's clock, paused and auto-advanced), and the
/// fifth restart in a row is reported as a crash loop.
#[tokio::test(start_paused = true)]
async fn crash_loop_restarts_back_off_on_the_clock() {
    let r = rig(
        object("Scheduled", json!({"restartPolicy": "Always"})),
        Arc::new(TokioClock),
    );
    *r.fakes.runtime.crash_with.lock().expect("crash") = Some(1);
    let fakes = r.fakes.clone();
    let _tx = r.tx;
    let task = tokio::spawn(r.worker.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while fakes.runtime.starts.lock().expect("starts").len() < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not restarted enough"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    let starts = fakes.runtime.starts.lock().expect("starts").clone();
    let gaps: Vec<u64> = starts
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).as_secs())
        .collect();
    assert_eq!(gaps, vec![1, 2, 4, 8, 16]);
    let obj = fakes.status.get();
    assert_eq!(obj["status"]["restartCount"], 5);
    assert_eq!(obj["status"]["phase"], "Crashed");
    assert!(fakes.status.reasons().contains(&"CrashLoop".to_owned()));
}

#[tokio::test]
async fn a_running_container_found_after_a_restart_is_adopted() {
    let mut r = rig(object("Stopped", json!({})), Arc::new(ManualClock::new()));
    r.fakes.runtime.set(MAIN, Task::Running);
    r.pass().await;
    assert_eq!(r.phase(), "Starting");
    assert!(r.fakes.status.reasons().contains(&"Adopted".to_owned()));
    // no ready pattern: ready at once
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    assert_eq!(r.pass().await, Next::Idle);
    // nothing was made or killed
    assert!(r.fakes.runtime.calls_of("create").is_empty());
    assert!(r.fakes.runtime.calls_of("kill").is_empty());
}

#[tokio::test]
async fn a_running_install_found_after_a_restart_gets_a_deadline_not_a_second_run() {
    let mut r = rig(
        object(
            "Installing",
            json!({"install": {"script": "x", "timeoutSeconds": 90}}),
        ),
        Arc::new(ManualClock::new()),
    );
    r.fakes.runtime.set(INSTALL, Task::Running);
    assert_eq!(r.pass().await, Next::After(Duration::from_secs(90)));
    assert!(r.fakes.runtime.calls_of("create").is_empty());
    assert!(r.fakes.runtime.calls_of("remove").is_empty());
}

#[tokio::test]
async fn a_stop_signal_then_sigkill_at_the_deadline() {
    let clock = Arc::new(ManualClock::new());
    let mut r = rig(
        object("Running", json!({"state": "Stopped"})),
        clock.clone(),
    );
    r.fakes.runtime.set(MAIN, Task::Running);
    assert_eq!(r.pass().await, Next::After(Duration::from_secs(20)));
    assert_eq!(
        r.fakes.runtime.calls_of("kill"),
        vec![format!("kill {MAIN} 2")]
    );
    assert_eq!(r.phase(), "Stopping");
    clock.advance(Duration::from_secs(20));
    r.pass().await;
    assert_eq!(
        r.fakes.runtime.calls_of("kill"),
        vec![format!("kill {MAIN} 2"), format!("kill {MAIN} 9 all")]
    );
    r.pass().await;
    assert_eq!(r.phase(), "Stopped");
    assert_eq!(r.fakes.status.get()["status"]["lastExit"]["exitCode"], 137);
}

#[tokio::test]
async fn a_refused_transition_is_surfaced_as_an_event() {
    // a task runs while the status says Error (someone wrote it): stopping it cannot move the
    // phase by StopRequested
    let mut r = rig(object("Error", json!({})), Arc::new(ManualClock::new()));
    r.fakes.runtime.set(MAIN, Task::Running);
    r.pass().await;
    assert!(r
        .fakes
        .status
        .reasons()
        .contains(&"IllegalTransition".to_owned()));
    assert_eq!(r.phase(), "Error");
    // the stop is still carried out
    assert_eq!(
        r.fakes.runtime.calls_of("kill"),
        vec![format!("kill {MAIN} 2")]
    );
}

#[tokio::test]
async fn a_start_whose_image_cannot_be_had_goes_to_error_from_stopped() {
    let mut r = rig(
        object("Stopped", json!({"image": "missing:1"})),
        Arc::new(ManualClock::new()),
    );
    r.pass().await;
    assert_eq!(r.phase(), "Error");
    // no made-up Starting on the way
    assert_eq!(
        *r.fakes.status.phases.lock().expect("phases"),
        vec!["Error"]
    );
}

#[tokio::test]
async fn a_running_server_kept_after_a_nodelet_restart_is_announced_once() {
    let mut r = rig(object("Running", json!({})), Arc::new(ManualClock::new()));
    r.fakes.runtime.set(MAIN, Task::Running);
    assert_eq!(r.pass().await, Next::Idle);
    assert_eq!(r.pass().await, Next::Idle);
    let adopted = r
        .fakes
        .status
        .reasons()
        .iter()
        .filter(|r| *r == "Adopted")
        .count();
    assert_eq!(adopted, 1);
    assert_eq!(r.phase(), "Running");
    assert!(r.fakes.runtime.calls.lock().expect("calls").is_empty());
}

#[tokio::test]
async fn an_install_that_ends_well_as_a_stop_comes_counts_as_installed() {
    let mut r = rig(
        object("Scheduled", json!({"install": {"script": "true"}})),
        Arc::new(ManualClock::new()),
    );
    r.pass().await;
    r.update(|o| o["spec"]["state"] = json!("Stopped"));
    // it exited 0 before the worker got to kill it
    r.fakes.runtime.set(INSTALL, Task::Exited(0));
    r.pass().await;
    assert_eq!(r.phase(), "Stopped");
    assert!(catalyst_schemas::object::condition_true(
        &r.fakes.status.get(),
        "Installed"
    ));
    assert!(r.fakes.runtime.calls_of("kill").is_empty());
}

#[tokio::test]
async fn a_fresh_sandbox_drops_the_old_attachment_before_its_namespaces_are_made() {
    let mut r = rig(object("Scheduled", json!({})), Arc::new(ManualClock::new()));
    *r.fakes.runtime.fresh.lock().expect("fresh") = true;
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    let calls = r.fakes.runtime.calls.lock().expect("calls").clone();
    let at = |c: &str| {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("{c}: {calls:?}"))
    };
    // the image's lock is held over its fetch only
    assert!(at("lock busybox") < at("fetch busybox"));
    assert!(at("fetch busybox") < at("unlock busybox"));
    assert!(at("detach gs-u1") < at("namespaces"));
    assert!(at("namespaces") < at("attach gs-u1"));
    assert!(at("attach gs-u1") < at("ports gs-u1"));
    assert!(at("namespaces") < at("create gs-u1 main"));
    assert!(at("create gs-u1 main") < at("start gs-u1"));
    // the disk is mounted beside the network and the container, before the task
    assert!(at("sandbox") < at("disk"));
    assert!(at("disk") < at("start gs-u1"));
}

#[tokio::test]
async fn a_start_whose_ports_cannot_be_mapped_removes_the_task_and_tries_again() {
    let mut r = rig(object("Scheduled", json!({})), Arc::new(ManualClock::new()));
    *r.fakes.network.ports_fail.lock().expect("fail") = true;
    // the task started beside the port mapping; without its ports it goes, and the phase
    // says nothing ran (a transient failure: the pass fails and is retried)
    assert!(r.worker.pass().await.is_err());
    assert_eq!(r.phase(), "Scheduled");
    assert_eq!(r.fakes.runtime.calls_of("start").len(), 1);
    assert_eq!(r.fakes.runtime.calls_of("remove gs-u1").len(), 1);
    assert_eq!(r.fakes.runtime.get(MAIN), Task::Absent);
    *r.fakes.network.ports_fail.lock().expect("fail") = false;
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    assert_eq!(r.fakes.runtime.get(MAIN), Task::Running);
    assert_eq!(r.fakes.runtime.calls_of("ports gs-u1").len(), 2);
}

#[tokio::test]
async fn an_install_that_outlives_its_kill_is_killed_again_and_its_timeout_remembered() {
    let clock = Arc::new(ManualClock::new());
    let mut r = rig(
        object(
            "Scheduled",
            json!({"install": {"script": "x", "timeoutSeconds": 30}}),
        ),
        clock.clone(),
    );
    r.pass().await;
    clock.advance(Duration::from_secs(30));
    r.pass().await;
    // SIGKILL did not take (a process stuck in the kernel)
    r.fakes.runtime.set(INSTALL, Task::Running);
    assert_eq!(r.pass().await, Next::After(Duration::from_secs(5)));
    clock.advance(Duration::from_secs(5));
    r.pass().await;
    assert_eq!(
        r.fakes.runtime.calls_of("kill"),
        vec![
            format!("kill {INSTALL} 9 all"),
            format!("kill {INSTALL} 9 all")
        ]
    );
    // a new worker (a nodelet restart) still knows it was the timeout
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("state.json");
    r.worker.state_file = Some(state.clone());
    r.worker.save();
    let (_tx, rx) = watch::channel(Some(r.fakes.status.get()));
    let mut again = Worker::new(
        r.fakes.env(),
        UID.to_owned(),
        rx,
        Arc::new(Notify::new()),
        Some(state),
    );
    assert!(again.memory.install_timed_out);
    r.fakes.runtime.set(INSTALL, Task::Exited(137));
    again.pass().await.expect("pass");
    let obj = r.fakes.status.get();
    assert_eq!(obj["status"]["phase"], "Error");
    assert!(obj["status"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("timeout")));
}

#[tokio::test]
async fn a_disk_that_cannot_be_had_is_an_error_and_nothing_runs_on_the_nodes_filesystem() {
    let mut r = rig(object("Scheduled", json!({})), Arc::new(ManualClock::new()));
    *r.fakes.runtime.disk_fails.lock().expect("disk") = Some("no space".into());
    r.pass().await;
    let obj = r.fakes.status.get();
    assert_eq!(obj["status"]["phase"], "Error", "{obj}");
    assert_eq!(obj["status"]["reason"], "DiskFailed");
    assert!(obj["status"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("no space") && m.contains("nothing was lost")));
    // the container made beside the disk's mount is removed, and never started
    assert_eq!(r.fakes.runtime.calls_of("create").len(), 1);
    assert_eq!(r.fakes.runtime.calls_of(&format!("remove {MAIN}")).len(), 1);
    assert!(r.fakes.runtime.calls_of("start").is_empty());
    assert!(r.fakes.status.reasons().contains(&"DiskFailed".to_owned()));
}

fn usage(used_mib: u64, limit_mib: u64) -> crate::disk::Usage {
    crate::disk::Usage {
        used_bytes: used_mib << 20,
        limit_bytes: limit_mib << 20,
    }
}

#[tokio::test]
async fn disk_use_goes_to_the_status_and_almost_full_warns_once_per_crossing() {
    let clock = Arc::new(ManualClock::new());
    let mut r = rig(object("Scheduled", json!({})), clock.clone());
    *r.fakes.runtime.usage.lock().expect("usage") = Some(usage(1, 100));
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    let disk = |r: &Rig| r.fakes.status.get()["status"]["disk"].clone();
    assert_eq!(
        disk(&r),
        json!({"usedBytes": 1u64 << 20, "limitBytes": 100u64 << 20}),
        "written with the start"
    );
    let warnings = |r: &Rig| {
        r.fakes
            .status
            .reasons()
            .iter()
            .filter(|x| *x == "DiskAlmostFull")
            .count()
    };
    let at = |used: u64, r: &mut Rig| {
        *r.fakes.runtime.usage.lock().expect("usage") = Some(usage(used, 100));
        clock.advance(Duration::from_secs(11));
    };
    at(50, &mut r);
    r.pass().await;
    assert_eq!(disk(&r)["usedBytes"], json!(50u64 << 20));
    at(92, &mut r);
    r.pass().await;
    assert_eq!(warnings(&r), 1);
    assert_eq!(disk(&r)["usedBytes"], json!(92u64 << 20));
    at(99, &mut r);
    r.pass().await;
    at(87, &mut r);
    r.pass().await;
    at(95, &mut r);
    r.pass().await;
    assert_eq!(warnings(&r), 1, "still above 85 %: no second warning");
    at(40, &mut r);
    r.pass().await;
    at(91, &mut r);
    r.pass().await;
    assert_eq!(warnings(&r), 2, "fell below 85 % and crossed 90 % again");
    let (_, _, msg) = r
        .fakes
        .status
        .events
        .lock()
        .expect("events")
        .iter()
        .rfind(|(_, reason, _)| reason == "DiskAlmostFull")
        .cloned()
        .expect("event");
    assert!(msg.contains("91% full"), "{msg}");

    // a small move within 10 s is not written; a nodelet restart does not warn again about a
    // disk already reported full
    *r.fakes.runtime.usage.lock().expect("usage") = Some(usage(92, 100));
    r.pass().await;
    assert_eq!(disk(&r)["usedBytes"], json!(91u64 << 20));
    let (_tx, rx) = watch::channel(Some(r.fakes.status.get()));
    let mut again = Worker::new(
        r.fakes.env(),
        UID.to_owned(),
        rx,
        Arc::new(Notify::new()),
        None,
    );
    again.pass().await.expect("pass");
    assert_eq!(warnings(&r), 2);
}

#[tokio::test]
async fn a_lowered_disk_limit_is_warned_about_once_and_nothing_is_shrunk() {
    let clock = Arc::new(ManualClock::new());
    let mut r = rig(object("Scheduled", json!({})), clock.clone());
    *r.fakes.runtime.disk.lock().expect("disk") = Some(crate::disk::Ensured {
        asked_bytes: 16 << 20,
        image_bytes: 64 << 20,
        ..Default::default()
    });
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    // a crash, and the restart after its backoff: the disk is made sure of again
    r.fakes.runtime.set(MAIN, Task::Exited(1));
    r.pass().await;
    assert_eq!(r.phase(), "Crashed");
    clock.advance(Duration::from_secs(2));
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    assert_eq!(
        r.fakes.runtime.calls_of("sandbox").len(),
        2,
        "{:?}",
        r.fakes.runtime.calls
    );
    let events = r.fakes.status.events.lock().expect("events").clone();
    let lowered: Vec<_> = events
        .iter()
        .filter(|(_, reason, _)| reason == "DiskNotShrunk")
        .collect();
    assert_eq!(lowered.len(), 1, "{events:?}");
    assert_eq!(lowered[0].0, "Warning");
    assert!(lowered[0].2.contains("keeps 64 MiB"), "{}", lowered[0].2);
}

/// A Template changed while its server runs reaches the server at its next start: the stop of
/// the running task is the one it started with, and the status names the generation in use.
#[tokio::test]
async fn a_template_change_waits_for_the_next_start() {
    let template = |generation: i64, signal: &str| -> catalyst_schemas::template::Template {
        serde_json::from_value(json!({
            "apiVersion": "catalyst.dev/v1alpha1", "kind": "Template",
            "metadata": {"name": "t", "generation": generation},
            "spec": {"images": [{"name": "x", "image": "busybox"}],
                     "stop": {"signal": signal, "timeoutSeconds": 20}}}))
        .expect("template")
    };
    let set = |r: &Rig, t| {
        r.fakes
            .status
            .templates
            .lock()
            .expect("templates")
            .insert("t".into(), t);
    };
    let clock = Arc::new(ManualClock::new());
    let mut spec = object("Stopped", json!({"template": "t"}));
    spec["spec"].as_object_mut().unwrap().remove("stop");
    spec["spec"].as_object_mut().unwrap().remove("image");
    let mut r = rig(spec, clock.clone());
    set(&r, template(1, "SIGTERM"));
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    assert_eq!(r.fakes.status.get()["status"]["templateGeneration"], 1);
    set(&r, template(2, "SIGINT"));
    r.update(|o| o["spec"]["state"] = json!("Stopped"));
    r.pass().await;
    assert_eq!(
        r.fakes.runtime.calls_of("kill"),
        vec![format!("kill {MAIN} 15")]
    );
    r.fakes.runtime.set(MAIN, Task::Exited(0));
    r.pass().await;
    assert_eq!(r.phase(), "Stopped");
    r.update(|o| o["spec"]["state"] = json!("Running"));
    r.pass().await;
    assert_eq!(r.phase(), "Running");
    assert_eq!(r.fakes.status.get()["status"]["templateGeneration"], 2);
    r.update(|o| o["spec"]["state"] = json!("Stopped"));
    r.pass().await;
    assert_eq!(
        r.fakes.runtime.calls_of("kill"),
        vec![format!("kill {MAIN} 15"), format!("kill {MAIN} 2")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_pull_writes_its_progress_at_most_once_a_second_then_pulled() {
    // the fake pull streams 5 MiB, one a 300 ms
    let mut r = rig(
        object("Scheduled", json!({"image": "slow-pull/5"})),
        Arc::new(TokioClock),
    );
    r.pass().await;
    let pulling: Vec<String> = r
        .fakes
        .status
        .patches
        .lock()
        .expect("patches")
        .iter()
        .filter_map(|p| {
            let c = p["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "ImagePulled")?;
            (c["reason"] == "Pulling").then(|| c["message"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    // at 0 s and 1 s (the latest then: 3 MiB at 0.9 s); the pull is over at 1.8 s
    assert_eq!(
        pulling,
        ["0.0 MiB of 5.0 MiB (0%)", "3.0 MiB of 5.0 MiB (60%)"]
    );
    let obj = r.fakes.status.get();
    assert!(catalyst_schemas::object::condition_true(
        &obj,
        "ImagePulled"
    ));
    assert_eq!(r.phase(), "Running");
}
