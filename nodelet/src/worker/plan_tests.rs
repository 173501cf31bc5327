//! The worker's decisions as tables: phase × task state × desired state → plan.

use std::time::Duration;

use catalyst_schemas::gameserver::GameServer;
use catalyst_schemas::lifecycle::{transition, Event, Phase};
use serde_json::json;
use tokio::time::Instant;

use super::*;

fn server(phase: Phase, extra: serde_json::Value) -> GameServer {
    let mut v = json!({
        "apiVersion": "catalyst.dev/v1alpha1", "kind": "GameServer",
        "metadata": {"name": "gs", "namespace": "default", "uid": "u1", "generation": 1,
                     "resourceVersion": "5"},
        "spec": {"image": "busybox", "stop": {"command": "stop", "timeoutSeconds": 20}},
        "status": {"phase": phase},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).expect("a valid GameServer")
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn observed(gs: &GameServer, main: Task, install: Task) -> Observed {
    Observed {
        main,
        install,
        ready: false,
        oom: false,
        resolved: crate::spec::resolve(gs, None).map_err(|e| e.to_string()),
    }
}

fn decide(gs: &GameServer, main: Task, install: Task, memory: &Memory) -> Plan {
    plan(&observed(gs, main, install), gs, memory, Instant::now())
}

/// What a plan decides for every phase with a running task and a server that should run.
#[test]
fn a_running_task_is_adopted_watched_or_left() {
    let m = Memory::default();
    let cases = [
        (Phase::Scheduled, Plan::Adopt),
        (Phase::Stopped, Plan::Adopt),
        (Phase::Crashed, Plan::Adopt),
        (Phase::Unknown, Plan::Adopt),
        (Phase::Starting, Plan::AwaitReady),
        (Phase::Running, Plan::Nothing),
        (Phase::Installing, Plan::Nothing),
    ];
    for (phase, want) in cases {
        let gs = server(phase, json!({}));
        assert_eq!(
            decide(&gs, Task::Running, Task::Absent, &m),
            want,
            "{phase}"
        );
        // and the lifecycle allows what the plan reports
        for e in want.events(phase) {
            assert!(transition(phase, e).is_ok(), "{phase} + {e:?}");
        }
    }
    let gs = server(Phase::Starting, json!({}));
    let mut o = observed(&gs, Task::Running, Task::Absent);
    o.ready = true;
    assert_eq!(plan(&o, &gs, &m, Instant::now()), Plan::MarkReady);
    assert_eq!(Plan::MarkReady.events(Phase::Starting), vec![Event::Ready]);
}

#[test]
fn a_running_task_the_server_no_longer_wants_is_stopped_then_killed() {
    let now = Instant::now();
    let stopped = json!({"spec": {"state": "Stopped"}});
    let suspended = json!({"spec": {"suspended": true}});
    let deleting =
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}});
    let restart =
        json!({"metadata": {"annotations": {"catalyst.dev/restartedAt": "2026-11-30T00:00:00Z"}}});
    for extra in [stopped, suspended, deleting, restart] {
        for phase in [Phase::Starting, Phase::Running] {
            let gs = server(phase, extra.clone());
            let p = decide(&gs, Task::Running, Task::Absent, &Memory::default());
            assert_eq!(
                p,
                Plan::SendStop {
                    how: StopHow::Command("stop".into()),
                    timeout: Duration::from_secs(20)
                },
                "{phase} {extra}"
            );
            assert_eq!(p.events(phase), vec![Event::StopRequested]);
        }
    }
    // a stop already sent: wait for the deadline, then kill
    let gs = server(Phase::Stopping, json!({"spec": {"state": "Stopped"}}));
    let mut m = Memory {
        stop_asked: true,
        stop_deadline: Some(now + Duration::from_secs(7)),
        ..Memory::default()
    };
    let o = observed(&gs, Task::Running, Task::Absent);
    assert_eq!(
        plan(&o, &gs, &m, now),
        Plan::WaitStop(Duration::from_secs(7))
    );
    assert_eq!(plan(&o, &gs, &m, now + Duration::from_secs(7)), Plan::Kill);
    assert!(Plan::Kill.events(Phase::Stopping).is_empty());
    // a stop asked before a nodelet restart is asked again (the deadline was in memory)
    m.stop_deadline = None;
    assert!(matches!(plan(&o, &gs, &m, now), Plan::SendStop { .. }));
    assert!(plan(&o, &gs, &m, now).events(Phase::Stopping).is_empty());
    // a signal when the spec names no command
    let gs = server(
        Phase::Running,
        json!({"spec": {"state": "Stopped", "stop": {"command": null, "signal": "SIGINT"}}}),
    );
    assert_eq!(
        decide(&gs, Task::Running, Task::Absent, &Memory::default()),
        Plan::SendStop {
            how: StopHow::Signal("SIGINT".into(), 2),
            timeout: Duration::from_secs(20)
        }
    );
}

#[test]
fn an_exit_is_a_stop_when_asked_and_a_crash_otherwise() {
    let asked = Memory {
        stop_asked: true,
        ..Memory::default()
    };
    let gs = server(Phase::Stopping, json!({}));
    let p = decide(&gs, Task::Exited(0), Task::Absent, &Memory::default());
    assert_eq!(
        p,
        Plan::ReportExit {
            code: 0,
            oom: false,
            asked: true
        }
    );
    assert_eq!(p.events(Phase::Stopping), vec![Event::Stopped]);
    let gs = server(Phase::Running, json!({}));
    let p = decide(&gs, Task::Exited(0), Task::Absent, &asked);
    assert_eq!(
        p.events(Phase::Running),
        vec![Event::StopRequested, Event::Stopped]
    );
    let mut o = observed(&gs, Task::Exited(137), Task::Absent);
    o.oom = true;
    let p = plan(&o, &gs, &Memory::default(), Instant::now());
    assert_eq!(
        p,
        Plan::ReportExit {
            code: 137,
            oom: true,
            asked: false
        }
    );
    assert_eq!(p.events(Phase::Running), vec![Event::Crashed]);
}

#[test]
fn no_task_where_one_should_run_is_reported_lost() {
    let m = Memory::default();
    for (phase, extra, asked) in [
        (Phase::Starting, json!({}), false),
        (Phase::Running, json!({}), false),
        (Phase::Unknown, json!({}), false),
        (Phase::Stopping, json!({}), true),
        (Phase::Running, json!({"spec": {"state": "Stopped"}}), true),
        (
            Phase::Installing,
            json!({"spec": {"state": "Stopped"}}),
            true,
        ),
    ] {
        let gs = server(phase, extra);
        let p = decide(&gs, Task::Absent, Task::Absent, &m);
        assert_eq!(p, Plan::ReportLost { asked }, "{phase}");
        let mut at = phase;
        for e in p.events(phase) {
            at = transition(at, e).unwrap_or_else(|e| panic!("{phase}: {e}"));
        }
        assert_eq!(
            at,
            if asked {
                Phase::Stopped
            } else {
                Phase::Crashed
            }
        );
    }
}

#[test]
fn a_stopped_server_starts_installs_or_waits() {
    let m = Memory::default();
    let gs = server(Phase::Scheduled, json!({}));
    let p = decide(&gs, Task::Absent, Task::Absent, &m);
    assert_eq!(p, Plan::Start(Launch::default()));
    assert_eq!(p.events(Phase::Scheduled), vec![Event::Started]);
    // an install script that has not run yet runs first
    let gs = server(
        Phase::Scheduled,
        json!({"spec": {"install": {"script": "echo hi"}}}),
    );
    let p = decide(&gs, Task::Absent, Task::Absent, &m);
    assert_eq!(p, Plan::Install(Launch::default()));
    assert_eq!(p.events(Phase::Scheduled), vec![Event::InstallStarted]);
    let gs = server(
        Phase::Stopped,
        json!({"spec": {"install": {"script": "echo hi"}},
               "status": {"conditions": [{"type": "Installed", "status": "True"}]}}),
    );
    assert_eq!(
        decide(&gs, Task::Absent, Task::Absent, &m),
        Plan::Start(Launch::default())
    );
    // an install that vanished (containerd lost it) runs again, without a second event
    let gs = server(
        Phase::Installing,
        json!({"spec": {"install": {"script": "echo hi"}}}),
    );
    let p = decide(&gs, Task::Absent, Task::Absent, &m);
    assert_eq!(p, Plan::Install(Launch::default()));
    assert!(p.events(Phase::Installing).is_empty());
    // nothing to run
    for (phase, extra) in [
        (Phase::Stopped, json!({"spec": {"state": "Stopped"}})),
        (Phase::Scheduled, json!({"spec": {"suspended": true}})),
        (Phase::Pending, json!({})),
        (Phase::Error, json!({})),
        (Phase::Suspended, json!({})),
        (Phase::Transferring, json!({})),
    ] {
        let gs = server(phase, extra);
        assert_eq!(
            decide(&gs, Task::Absent, Task::Absent, &m),
            Plan::Nothing,
            "{phase}"
        );
    }
    // deleting: clean up; Stopped reported only where a stop was under way
    let gs = server(
        Phase::Crashed,
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}}),
    );
    let p = decide(&gs, Task::Absent, Task::Absent, &m);
    assert_eq!(p, Plan::CleanUp);
    assert!(p.events(Phase::Crashed).is_empty());
    assert_eq!(p.events(Phase::Unknown), vec![Event::Stopped]);
}

#[test]
fn a_spec_that_cannot_run_fails_from_every_phase_it_can_be_asked_in() {
    let m = Memory::default();
    for phase in [Phase::Scheduled, Phase::Stopped, Phase::Crashed] {
        let gs = server(phase, json!({"spec": {"image": null, "template": "gone"}}));
        let p = decide(&gs, Task::Absent, Task::Absent, &m);
        assert!(
            matches!(&p, Plan::Fail { reason, .. } if reason == "InvalidSpec"),
            "{phase}: {p:?}"
        );
        // a real edge of the table, no made-up Starting on the way
        assert_eq!(p.events(phase), vec![Event::Failed]);
        assert_eq!(transition(phase, Event::Failed), Ok(Phase::Error));
    }
}

#[test]
fn crash_restarts_follow_the_policy_and_back_off() {
    let now = Instant::now();
    let crashed = |policy: &str, code: u32, restarts: i64| {
        server(
            Phase::Crashed,
            json!({"spec": {"restartPolicy": policy},
                   "status": {"restartCount": restarts,
                              "lastExit": {"exitCode": code, "oomKilled": false,
                                           "finishedAt": "2026-01-01T00:00:00Z"}}}),
        )
    };
    let m = Memory {
        crashed_at: Some(now),
        ..Memory::default()
    };
    // policy decides whether at all
    assert_eq!(
        decide(&crashed("Never", 1, 0), Task::Absent, Task::Absent, &m),
        Plan::Nothing
    );
    assert_eq!(
        decide(&crashed("OnCrash", 0, 0), Task::Absent, Task::Absent, &m),
        Plan::Nothing
    );
    let o = observed(&crashed("OnCrash", 1, 0), Task::Absent, Task::Absent);
    let gs = crashed("OnCrash", 1, 0);
    assert_eq!(
        plan(&o, &gs, &m, now),
        Plan::WaitBackoff(Duration::from_secs(1))
    );
    assert_eq!(
        plan(&o, &gs, &m, now + Duration::from_millis(400)),
        Plan::WaitBackoff(Duration::from_millis(600))
    );
    assert_eq!(
        plan(&o, &gs, &m, now + Duration::from_secs(1)),
        Plan::Start(Launch {
            restart_count: Some(1),
            ..Launch::default()
        })
    );
    // 1, 2, 4, … 60 s
    for (restarts, secs) in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (20, 60)] {
        let gs = crashed("Always", 0, restarts);
        let o = observed(&gs, Task::Absent, Task::Absent);
        assert_eq!(
            plan(&o, &gs, &m, now),
            Plan::WaitBackoff(Duration::from_secs(secs)),
            "{restarts}"
        );
        let p = plan(&o, &gs, &m, now + Duration::from_secs(secs));
        assert_eq!(
            p,
            Plan::Start(Launch {
                restart_count: Some(restarts + 1),
                crash_loop: restarts + 1 >= CRASH_LOOP,
                acknowledge_restart: None,
                acknowledge_reinstall: None,
            })
        );
    }
    // a user's restart skips the backoff and resets the count
    let mut gs = crashed("Always", 1, 4);
    gs.metadata
        .annotations
        .insert(RESTARTED_AT.into(), "t1".into());
    let o = observed(&gs, Task::Absent, Task::Absent);
    assert_eq!(
        plan(&o, &gs, &m, now),
        Plan::Start(Launch {
            restart_count: Some(0),
            acknowledge_restart: Some("t1".into()),
            acknowledge_reinstall: None,
            crash_loop: false
        })
    );
    // once acknowledged, it is not acted on again
    let acked = Memory {
        restarted_at: Some("t1".into()),
        ..m.clone()
    };
    assert!(matches!(plan(&o, &gs, &acked, now), Plan::WaitBackoff(_)));
}

#[test]
fn a_running_install_waits_times_out_or_is_stopped() {
    let now = Instant::now();
    let gs = server(
        Phase::Installing,
        json!({"spec": {"install": {"script": "sleep 1000"}}}),
    );
    let o = observed(&gs, Task::Absent, Task::Running);
    let running = Memory {
        install_deadline: Some(now + Duration::from_secs(100)),
        ..Memory::default()
    };
    assert_eq!(
        plan(&o, &gs, &running, now),
        Plan::WaitInstall(Duration::from_secs(100))
    );
    assert_eq!(
        plan(&o, &gs, &running, now + Duration::from_secs(100)),
        Plan::StopInstall { timed_out: true }
    );
    // found running after a nodelet restart
    assert_eq!(plan(&o, &gs, &Memory::default(), now), Plan::AdoptInstall);
    // a stop or a delete interrupts it, whatever its deadline
    for extra in [
        json!({"spec": {"state": "Stopped"}}),
        json!({"spec": {"suspended": true}}),
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}}),
    ] {
        let gs = server(Phase::Installing, extra.clone());
        let o = observed(&gs, Task::Absent, Task::Running);
        let p = plan(&o, &gs, &running, now);
        assert_eq!(p, Plan::StopInstall { timed_out: false }, "{extra}");
        assert_eq!(p.events(Phase::Installing), vec![Event::StopRequested]);
    }
    // killed: wait for it to go, and kill it again if it has not gone
    let killed = Memory {
        install_killed: true,
        install_kill_deadline: Some(now + KILL_GRACE),
        stop_asked: true,
        ..running.clone()
    };
    let stopped = server(Phase::Stopping, json!({"spec": {"state": "Stopped"}}));
    let o = observed(&stopped, Task::Absent, Task::Running);
    assert_eq!(
        plan(&o, &stopped, &killed, now),
        Plan::WaitInstall(KILL_GRACE)
    );
    let p = plan(&o, &stopped, &killed, now + KILL_GRACE);
    assert_eq!(p, Plan::StopInstall { timed_out: false });
    assert!(p.events(Phase::Stopping).is_empty());
    let timed_out = Memory {
        install_timed_out: true,
        stop_asked: false,
        ..killed
    };
    assert_eq!(
        plan(&o, &gs, &timed_out, now + KILL_GRACE),
        Plan::StopInstall { timed_out: true }
    );
}

#[test]
fn an_install_exit_succeeds_fails_or_counts_as_stopped() {
    let m = Memory::default();
    let gs = server(
        Phase::Installing,
        json!({"spec": {"install": {"script": "true"}}}),
    );
    let p = decide(&gs, Task::Absent, Task::Exited(0), &m);
    assert_eq!(
        p,
        Plan::FinishInstall {
            code: 0,
            interrupted: false,
            timed_out: false
        }
    );
    assert_eq!(p.events(Phase::Installing), vec![Event::InstallSucceeded]);
    let p = decide(&gs, Task::Absent, Task::Exited(3), &m);
    assert_eq!(p.events(Phase::Installing), vec![Event::InstallFailed]);
    let timed_out = Memory {
        install_timed_out: true,
        install_killed: true,
        ..Memory::default()
    };
    let p = decide(&gs, Task::Absent, Task::Exited(137), &timed_out);
    assert_eq!(
        p,
        Plan::FinishInstall {
            code: 137,
            interrupted: false,
            timed_out: true
        }
    );
    assert_eq!(p.events(Phase::Installing), vec![Event::InstallFailed]);
    // killed for a stop: Stopped, not failed
    let stopped = server(Phase::Stopping, json!({"spec": {"state": "Stopped"}}));
    let asked = Memory {
        stop_asked: true,
        install_killed: true,
        ..Memory::default()
    };
    let p = decide(&stopped, Task::Absent, Task::Exited(137), &asked);
    assert_eq!(
        p,
        Plan::FinishInstall {
            code: 137,
            interrupted: true,
            timed_out: false
        }
    );
    assert_eq!(p.events(Phase::Stopping), vec![Event::Stopped]);
    // a script that got to exit 0 as the stop came: installed, and stopped
    let p = decide(&stopped, Task::Absent, Task::Exited(0), &asked);
    assert_eq!(
        p,
        Plan::FinishInstall {
            code: 0,
            interrupted: false,
            timed_out: false
        }
    );
    assert_eq!(p.events(Phase::Stopping), vec![Event::Stopped]);
    // the install container comes first even if a main task is somehow there
    assert!(matches!(
        decide(&gs, Task::Running, Task::Exited(0), &m),
        Plan::FinishInstall { .. }
    ));
}

#[test]
fn tasks_containerd_cannot_describe_are_looked_at_again() {
    let gs = server(Phase::Running, json!({}));
    let m = Memory::default();
    assert_eq!(
        decide(&gs, Task::Unknown, Task::Absent, &m),
        Plan::Retry(UNKNOWN_RETRY)
    );
    assert_eq!(
        decide(&gs, Task::Absent, Task::Unknown, &m),
        Plan::Retry(UNKNOWN_RETRY)
    );
}

/// Every plan, in every phase it can be made in, names events the table allows — except the
/// ones the table is meant to refuse (which the executor surfaces).
#[test]
fn every_plan_s_events_walk_the_table_from_the_phases_it_is_made_in() {
    let now = Instant::now();
    let extras = [
        json!({}),
        json!({"spec": {"state": "Stopped"}}),
        json!({"spec": {"install": {"script": "x"}}}),
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}}),
    ];
    let tasks = [
        Task::Absent,
        Task::Running,
        Task::Exited(0),
        Task::Exited(1),
    ];
    let memories = [
        Memory::default(),
        Memory {
            stop_asked: true,
            ..Memory::default()
        },
        Memory {
            crashed_at: Some(now - Duration::from_secs(120)),
            install_deadline: Some(now + Duration::from_secs(5)),
            ..Memory::default()
        },
        Memory {
            stop_asked: true,
            stop_deadline: Some(now),
            install_killed: true,
            install_timed_out: true,
            install_deadline: Some(now),
            ..Memory::default()
        },
    ];
    let mut checked = 0;
    for phase in Phase::ALL {
        // phases the controllers own, with nothing of the server on the node
        let controller_owned = matches!(
            phase,
            Phase::Pending | Phase::Suspended | Phase::Transferring | Phase::Error
        );
        for extra in &extras {
            let gs = server(phase, extra.clone());
            for main in tasks {
                for install in tasks {
                    for m in &memories {
                        let o = observed(&gs, main, install);
                        let p = plan(&o, &gs, m, now);
                        if controller_owned && main == Task::Absent && install == Task::Absent {
                            assert!(
                                matches!(p, Plan::Nothing | Plan::CleanUp),
                                "{phase} {extra}: {p:?}"
                            );
                        }
                        let mut at = phase;
                        for e in p.events(phase) {
                            match transition(at, e) {
                                Ok(next) => at = next,
                                // a task running in a phase the controllers own: the refusal
                                // is surfaced by the executor
                                Err(_) if controller_owned => {}
                                // a main task beside an install: cannot happen (the install
                                // is written before its container exists); surfaced if it does
                                Err(_) if phase == Phase::Installing && main != Task::Absent => {}
                                Err(err) => panic!(
                                    "{phase} {extra} {main:?}/{install:?} {m:?}: {p:?}: {err}"
                                ),
                            }
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(
        checked,
        Phase::ALL.len() * extras.len() * tasks.len() * tasks.len() * memories.len()
    );
}

/// `reinstall`: a running server is stopped, then the install runs again although the server
/// is installed, acknowledging the request; once acknowledged the server just starts.
#[test]
fn a_reinstall_request_stops_the_server_and_runs_the_install_again() {
    let ask = json!({
        "metadata": {"annotations": {"catalyst.dev/reinstallRequestedAt": "2026-11-30T00:00:00Z"}},
        "spec": {"install": {"script": "true"}},
        "status": {"conditions": [{"type": "Installed", "status": "True"}]}});
    let m = Memory::default();
    let running = server(Phase::Running, ask.clone());
    assert!(matches!(
        decide(&running, Task::Running, Task::Absent, &m),
        Plan::SendStop { .. }
    ));
    let stopped = server(Phase::Stopped, ask.clone());
    let Plan::Install(launch) = decide(&stopped, Task::Absent, Task::Absent, &m) else {
        panic!("an install");
    };
    assert_eq!(
        launch.acknowledge_reinstall.as_deref(),
        Some("2026-11-30T00:00:00Z")
    );
    let done = Memory {
        reinstalled_at: Some("2026-11-30T00:00:00Z".into()),
        ..Memory::default()
    };
    assert!(matches!(
        decide(&stopped, Task::Absent, Task::Absent, &done),
        Plan::Start(_)
    ));
    assert_eq!(
        decide(&running, Task::Running, Task::Absent, &done),
        Plan::Nothing
    );
    // acted on by another node (the server moved): the status says so, it is not run again
    let mut moved = ask.clone();
    moved["status"]["reinstalledAt"] = json!("2026-11-30T00:00:00Z");
    let moved = server(Phase::Stopped, moved);
    assert!(matches!(
        decide(&moved, Task::Absent, Task::Absent, &m),
        Plan::Start(_)
    ));
    // without an install script there is nothing to run again
    let mut plain = ask.clone();
    plain["spec"]["install"] = serde_json::Value::Null;
    let plain = server(Phase::Running, plain);
    assert_eq!(
        decide(&plain, Task::Running, Task::Absent, &m),
        Plan::Nothing
    );
}
