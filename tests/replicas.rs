//! Several servers sharing one desk in PostgreSQL, as real processes on loopback: a leader
//! paused past its lease writes nothing once it wakes, and watches on followers see every
//! event exactly once and in order across a failover. (The load across three leader kills is
//! in `crash.rs`; a second server following and taking over in `postgres.rs`.)
//!
//! Each test works in a schema of its own on the server `SERVICEDESK_TEST_POSTGRES` names (CI
//! sets it); without it, on the local default, or the test says it skipped.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::database::ScratchDesk;
use common::*;
use servicedesk::proto::v1::desk_event::Event;
use servicedesk::proto::v1::{
    DeskEvent, EscalationEventType, GetTicketRequest, WatchEventsRequest,
};
use tonic::Code;

/// The lease of these tests: short, so that failovers fit in a test.
const TTL: Duration = Duration::from_secs(2);

/// Reviews expire fast, so that a paused leader wakes with timers due.
fn config(desk: &ScratchDesk) -> String {
    format!(
        "[desk]\nescalation_timeout_secs = 2\nmax_review_reassignments = 0\n{}lease_ttl_secs = {}\n",
        desk.config(),
        TTL.as_secs()
    )
}

/// Every event up to `head`, read by a watch from the start on `server`.
async fn log_until(server: &Server, head: u64) -> Vec<DeskEvent> {
    let mut admin = server.admin();
    let mut watch: Watch<DeskEvent> = Watch::open("WatchEvents", async move {
        admin.watch_events(WatchEventsRequest::default()).await
    });
    watch.until(|e| e.sequence >= head).await
}

/// Until `server` acknowledges an inquiry: it leads, or follows a leader.
async fn until_served(server: &Server, what: &str) {
    let limit = 4 * TTL + Duration::from_secs(5);
    poll_until(limit, what, || {
        let mut desk = server.desk();
        async move {
            let mut call = tonic::Request::new(inquiry("cust_probe", PASSWORD_RESET));
            call.set_timeout(Duration::from_secs(5));
            desk.handle_inquiry(call).await.ok()
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_paused_past_its_lease_writes_nothing_once_it_wakes() {
    let Some(desk) = ScratchDesk::new("a_paused_leader_writes_nothing") else {
        return;
    };
    let config = config(&desk);
    let paused = Server::start_with_config(&config).await;
    let other = Server::start_with_config(&config).await;
    assert_eq!(desk.lease_holder_pid(), Some(paused.pid()));
    // Reviews whose deadlines fall while the leader is paused: it wakes with them due.
    let mut reviews = Vec::new();
    for n in 0..3 {
        let answer = create_refund_escalation(&mut paused.desk(), &format!("cust_pause_{n}")).await;
        reviews.push(answer.escalation_id);
    }

    paused.send_signal("STOP");
    let stopped = Instant::now();
    until_served(&other, "the other server takes over").await;
    assert_eq!(desk.lease_holder_pid(), Some(other.pid()));
    eprintln!("took over from a paused leader in {:?}", stopped.elapsed());
    // The new leader expires the reviews when their deadlines fall.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Woken, the old leader finds its lease gone: its due expiries and any inquiry sent to it
    // must not reach the store. What it acknowledges, it acknowledged as a follower, through
    // the new leader.
    paused.send_signal("CONT");
    let mut acknowledged = Vec::new();
    let woke = Instant::now();
    while woke.elapsed() < Duration::from_secs(4) {
        let mut desk = paused.desk();
        let mut call = tonic::Request::new(inquiry("cust_after_wake", PASSWORD_RESET));
        call.set_timeout(Duration::from_secs(5));
        match desk.handle_inquiry(call).await {
            Ok(answer) => acknowledged.push(answer.into_inner().ticket.unwrap()),
            // Refused as unavailable, or, raced by the connection's end as the server changes
            // role, failed by the client's transport: both are retried elsewhere, and neither
            // acknowledged anything.
            Err(status) => assert!(
                status.code() == Code::Unavailable || went_away(&status),
                "{status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    paused
        .until_logged("no longer leads the desk", Duration::from_secs(10))
        .await;
    assert!(
        !acknowledged.is_empty(),
        "the woken server serves again, as a follower"
    );
    for ticket in &acknowledged {
        let stored = ok(
            other
                .desk()
                .get_ticket(GetTicketRequest {
                    ticket_id: ticket.ticket_id.clone(),
                })
                .await,
            "a ticket the woken server acknowledged",
        );
        assert_eq!(&stored, ticket);
    }

    // One log, consecutive, each review expired once: nothing of the deposed leader's landed.
    let head = head(&other).await;
    let log = log_until(&other, head).await;
    let sequences: Vec<u64> = log.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=head).collect::<Vec<_>>());
    let mut expiries: HashMap<String, usize> = HashMap::new();
    for event in &log {
        if let Some(Event::Escalation(e)) = &event.event {
            if e.r#type() == EscalationEventType::Expired {
                let id = e.escalation.as_ref().unwrap().escalation_id.clone();
                *expiries.entry(id).or_default() += 1;
            }
        }
    }
    for id in &reviews {
        assert_eq!(
            expiries.get(id),
            Some(&1),
            "review {id} expired once: {expiries:?}"
        );
    }
    assert_eq!(
        desk.lease_holder_pid(),
        Some(other.pid()),
        "the new leader leads on"
    );
    assert_eq!(
        head,
        self::head(&paused).await,
        "both servers read one desk"
    );
}

/// A watch of the whole log on one of `servers`, resumed by sequence on the next one whenever
/// its stream ends, until it has seen `head`; how many times it had to resume.
async fn watch_resuming(servers: &[&Server], head: u64, seen: &mut Vec<u64>) -> usize {
    let mut resumed = 0;
    let mut at = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.last().copied().unwrap_or(0) < head {
        assert!(
            Instant::now() < deadline,
            "the watch did not reach {head}: {seen:?}"
        );
        let after = seen.last().copied().unwrap_or(0);
        let mut admin = servers[at % servers.len()].admin();
        let opened = admin
            .watch_events(WatchEventsRequest {
                after_sequence: after,
                ..Default::default()
            })
            .await;
        let mut stream = match opened {
            Ok(stream) => stream.into_inner(),
            Err(_) => {
                at += 1;
                resumed += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        loop {
            match tokio::time::timeout(STREAM_TIMEOUT, stream.message()).await {
                Ok(Ok(Some(event))) => {
                    seen.push(event.sequence);
                    if event.sequence >= head {
                        return resumed;
                    }
                }
                // The stream ended (its server changed role or died): resume elsewhere.
                Ok(_) => break,
                Err(_) => panic!("the watch went quiet before {head}: {seen:?}"),
            }
        }
        at += 1;
        resumed += 1;
    }
    resumed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_on_followers_see_every_event_once_and_in_order_across_a_failover() {
    let Some(desk) = ScratchDesk::new("watches_across_a_failover") else {
        return;
    };
    let config = config(&desk);
    let leader = Server::start_with_config(&config).await;
    let b = Server::start_with_config(&config).await;
    let c = Server::start_with_config(&config).await;
    for n in 0..5 {
        ask(
            &mut leader.desk(),
            inquiry(&format!("cust_w_{n}"), PASSWORD_RESET),
        )
        .await;
    }
    // Watches on both followers, opened before the failover and reading as it happens.
    let first = head(&b).await;
    let mut watches = Vec::new();
    for (me, other) in [(&b, &c), (&c, &b)] {
        let mut admin = me.admin();
        let stream = ok(
            admin
                .watch_events(WatchEventsRequest {
                    after_sequence: 0,
                    ..Default::default()
                })
                .await,
            "WatchEvents on a follower",
        );
        watches.push((stream, me, other));
    }
    drop(leader.kill().await);
    until_served(&b, "a follower takes over").await;
    until_served(&c, "the other follows the new leader").await;
    // More events on the new leader, through either server.
    for n in 0..5 {
        ask(
            &mut b.desk(),
            inquiry(&format!("cust_w_after_{n}"), PASSWORD_RESET),
        )
        .await;
        ask(
            &mut c.desk(),
            inquiry(&format!("cust_w_after_c{n}"), PASSWORD_RESET),
        )
        .await;
    }
    let last = head(&b).await;
    assert!(last > first);
    let mut kept_open = 0;
    for (mut stream, me, other) in watches {
        let mut seen = Vec::new();
        let mut ended = false;
        while seen.last().copied().unwrap_or(0) < last {
            match tokio::time::timeout(STREAM_TIMEOUT, stream.message()).await {
                Ok(Ok(Some(event))) => seen.push(event.sequence),
                Ok(_) => {
                    ended = true;
                    break;
                }
                Err(_) => panic!("a watch on a follower went quiet: {seen:?}"),
            }
        }
        if ended {
            // Its server took over (and ended its follower's streams): resume by sequence.
            watch_resuming(&[me, other], last, &mut seen).await;
        } else {
            kept_open += 1;
        }
        assert_eq!(
            seen,
            (1..=last).collect::<Vec<_>>(),
            "every event once and in order"
        );
    }
    assert!(
        kept_open >= 1,
        "the follower that stayed one kept its watch open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_forwards_more_streams_than_one_connection_carries() {
    use servicedesk::proto::v1::attach_response::Message;
    use servicedesk::proto::v1::AttachRequest;
    let Some(desk) = ScratchDesk::new("a_follower_forwards_many_streams") else {
        return;
    };
    let config = format!("{}[server]\nmax_concurrent_streams = 16\n", config(&desk));
    let _leader = Server::start_with_config(&config).await;
    let follower = Server::start_with_config(&config).await;
    follower
        .until_logged("following the desk's leader", Duration::from_secs(10))
        .await;
    // Remote agents attached through the follower: each holds a forwarded stream open, more
    // of them than the leader runs on one connection.
    let mut attached = Vec::new();
    for n in 0..40 {
        // Each agent on a connection of its own, as agent processes are.
        let mut agents = follower.agents_on_own_connection(ADMIN_KEY).await;
        let mut call = tonic::Request::new(AttachRequest {
            name: format!("Remote_{n}"),
            tier: "L1".into(),
            capacity: 1,
            ..Default::default()
        });
        call.set_timeout(Duration::from_secs(60));
        let mut stream = tokio::time::timeout(Duration::from_secs(10), agents.attach(call))
            .await
            .unwrap_or_else(|_| panic!("attach {n} through the follower hung"))
            .expect("attach through the follower")
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap_or_else(|_| panic!("attach {n}: no answer through the follower"));
        assert!(matches!(
            first.unwrap().unwrap().message,
            Some(Message::Attached(_))
        ));
        attached.push(stream);
    }
    // And the follower still forwards a change at once.
    let started = Instant::now();
    let mut call = tonic::Request::new(inquiry("cust_many_streams", PASSWORD_RESET));
    call.set_timeout(Duration::from_secs(10));
    ok(
        follower.desk().handle_inquiry(call).await,
        "an inquiry beside 40 agent streams",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A renewal the store is slow to answer (a long fsync, a commit holding the lease's row) is
/// followed at once by the next. Here renewals of a 4 s lease wait 1.8 s, and the row is free
/// for only 0.7 s between two such waits: the renewal asked at once gets through, and the
/// leader leads on. Asked a fifth of the TTL (0.8 s) after the slow answer instead, the next
/// renewal waits too, and 1.8 + 0.8 + 1.8 s outlast the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_whose_renewals_stall_for_most_of_half_the_lease_leads_on() {
    const LEASE: Duration = Duration::from_secs(4);
    let Some(desk) = ScratchDesk::new("renewals_stall") else {
        return;
    };
    let config = format!("{}lease_ttl_secs = {}\n", desk.config(), LEASE.as_secs());
    let leader = Server::start_with_config(&config).await;
    assert_eq!(desk.lease_holder_pid(), Some(leader.pid()));
    let stall = Duration::from_millis(1800);
    let stalling = desk.stall_lease_renewals(stall, Duration::from_millis(700), 3 * LEASE);
    let mut desk_client = leader.desk();
    let mut n = 0;
    while !stalling.is_finished() {
        n += 1;
        let mut call = tonic::Request::new(inquiry(&format!("cust_stall_{n}"), PASSWORD_RESET));
        call.set_timeout(LEASE);
        ok(
            desk_client.handle_inquiry(call).await,
            "an inquiry while renewals stall",
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stalled = stalling.join().expect("the stalling session");
    eprintln!("{stalled} renewals stalled {stall:?} each");
    assert!(stalled >= 3, "{stalled} renewals stalled");
    assert!(
        !leader.log_text().contains("stops leading"),
        "the leader stepped down while its renewals were only slow"
    );
    assert_eq!(desk.lease_holder_pid(), Some(leader.pid()));
    ask(
        &mut desk_client,
        inquiry("cust_stall_after", PASSWORD_RESET),
    )
    .await;
}

/// Whether `server` reports the desk's services as serving.
async fn serving(server: &Server) -> bool {
    use tonic_health::pb::HealthCheckRequest;
    let mut call = tonic::Request::new(HealthCheckRequest {
        service: "servicedesk.v1.DeskService".into(),
    });
    call.set_timeout(Duration::from_secs(2));
    matches!(
        server.health().check(call).await,
        Ok(answer) if answer.get_ref().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    )
}

/// Asks the whole server's health ("", what a liveness probe asks) as a kubelet does: a new
/// connection each time, every `period`, with a timeout shorter than the manifests'
/// livenessProbe gives (3 s); until stopped, it gathers what each probe that did not answer
/// SERVING got.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);

struct LivenessProbe {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl LivenessProbe {
    fn start(addr: std::net::SocketAddr, period: Duration) -> LivenessProbe {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let (mut probes, mut failures) = (0, Vec::new());
            loop {
                let asked = async {
                    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                        .unwrap()
                        .connect()
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    let answer = HealthClient::new(channel)
                        .check(HealthCheckRequest::default())
                        .await
                        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                    match answer.into_inner().status() {
                        ServingStatus::Serving => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                };
                let started = Instant::now();
                let result = tokio::time::timeout(LIVENESS_TIMEOUT, asked).await;
                probes += 1;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failures.push(e),
                    Err(_) => failures.push(format!("no answer within {LIVENESS_TIMEOUT:?}")),
                }
                tokio::select! {
                    _ = tokio::time::sleep(period.saturating_sub(started.elapsed())) => {}
                    _ = &mut stopped => return (probes, failures),
                }
            }
        });
        LivenessProbe { stop, task }
    }

    /// Stops probing; how many probes were made, and what those that failed got.
    async fn stop(self) -> (usize, Vec<String>) {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_from_the_database_hands_over_and_follows_once_it_is_back() {
    leader_out_of_reach("a_leader_cut_off", common::proxy::Proxy::cut, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_partitioned_from_the_database_stays_alive_and_follows_once_it_is_back() {
    leader_out_of_reach("a_leader_partitioned", common::proxy::Proxy::stall, false).await;
}

/// A leader loses the database (`lose` cuts or stalls its connections): the other server takes
/// over, the one out of reach stays alive to a liveness probe throughout, unready while it
/// cannot reach the database, and serves again as a follower once it can. When the database
/// refuses it at once (`refused_at_once`), so do its reads, UNAVAILABLE, for the client to retry.
async fn leader_out_of_reach(name: &str, lose: fn(&common::proxy::Proxy), refused_at_once: bool) {
    use common::proxy::Proxy;
    let Some(desk) = ScratchDesk::new(name) else {
        return;
    };
    let proxy = Proxy::start(desk.server_addr()).await;
    let extra = format!("lease_ttl_secs = {}\n", TTL.as_secs());
    let cut_off =
        Server::start_with_config(&format!("{}{extra}", desk.config_via(proxy.addr))).await;
    let other = Server::start_with_config(&format!("{}{extra}", desk.config())).await;
    assert_eq!(desk.lease_holder_pid(), Some(cut_off.pid()));
    let mut acknowledged = Vec::new();
    acknowledged.push(ask(&mut other.desk(), inquiry("cust_cut_0", PASSWORD_RESET)).await);

    // Through the whole outage and the changes of role it causes, the cut-off server stays
    // alive to a liveness probe: it is unready, never dead.
    let liveness = LivenessProbe::start(cut_off.addr(), Duration::from_millis(250));
    lose(&proxy);
    let cut = Instant::now();
    // The other server takes the lease once it expired, and serves.
    until_served(&other, "the server still reaching the database takes over").await;
    eprintln!(
        "took over from a leader cut off from the database in {:?}",
        cut.elapsed()
    );
    assert_eq!(desk.lease_holder_pid(), Some(other.pid()));
    acknowledged.push(ask(&mut other.desk(), inquiry("cust_cut_1", PASSWORD_RESET)).await);
    // The one cut off stops leading, and says it cannot serve.
    poll_until(
        4 * TTL,
        "the cut-off server reports NOT_SERVING",
        || async { (!serving(&cut_off).await).then_some(()) },
    )
    .await;
    let refused = cut_off
        .desk()
        .handle_inquiry(inquiry("cust_cut_x", PASSWORD_RESET))
        .await;
    expect_code(
        refused,
        Code::Unavailable,
        "an inquiry to the cut-off server",
    );
    if refused_at_once {
        let first = acknowledged[0].ticket.as_ref().unwrap().ticket_id.clone();
        let read = cut_off
            .desk()
            .get_ticket(GetTicketRequest { ticket_id: first })
            .await;
        expect_code(read, Code::Unavailable, "a read on the cut-off server");
    }

    // Back in reach, it serves again, as a follower of the new leader.
    proxy.restore();
    poll_until(
        4 * TTL,
        "the server back in reach reports SERVING",
        || async { serving(&cut_off).await.then_some(()) },
    )
    .await;
    until_served(
        &cut_off,
        "the server back in reach forwards to the new leader",
    )
    .await;
    assert_eq!(
        desk.lease_holder_pid(),
        Some(other.pid()),
        "the new leader leads on"
    );
    acknowledged.push(ask(&mut cut_off.desk(), inquiry("cust_cut_2", PASSWORD_RESET)).await);
    let (probes, failed) = liveness.stop().await;
    eprintln!("liveness probes through the outage: {probes}, failed: {failed:?}");
    assert!(probes >= 8, "{probes} probes");
    assert!(
        failed.is_empty(),
        "liveness failed {} of {probes}: {failed:?}",
        failed.len()
    );
    for answer in &acknowledged {
        let ticket = answer.ticket.as_ref().unwrap();
        let read = ok(
            cut_off
                .desk()
                .get_ticket(GetTicketRequest {
                    ticket_id: ticket.ticket_id.clone(),
                })
                .await,
            "an acknowledged ticket",
        );
        assert_eq!(&read, ticket);
    }
    let head = head(&cut_off).await;
    let log: Vec<u64> = log_until(&cut_off, head)
        .await
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(log, (1..=head).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_forwarded_to_a_leader_that_stops_answering_ends_when_the_lease_moves() {
    let Some(desk) = ScratchDesk::new("a_forwarded_call_follows_the_lease") else {
        return;
    };
    let with_ttl = |ttl: u64| format!("{}lease_ttl_secs = {ttl}\n", desk.config());
    let leader = Server::start_with_config(&with_ttl(TTL.as_secs())).await;
    // This one reads the lease seldom (every fifth of 30 s): the next leader is the other.
    let follower = Server::start_with_config(&with_ttl(30)).await;
    let next = Server::start_with_config(&with_ttl(TTL.as_secs())).await;
    assert_eq!(desk.lease_holder_pid(), Some(leader.pid()));
    ask(&mut follower.desk(), inquiry("cust_fwd_0", PASSWORD_RESET)).await;

    // The leader stops answering; a change sent to the follower goes to it all the same.
    leader.send_signal("STOP");
    let mut call = tonic::Request::new(inquiry("cust_fwd_1", PASSWORD_RESET));
    call.set_timeout(Duration::from_secs(60));
    let sent = Instant::now();
    let mut desk_client = follower.desk();
    let answer = tokio::spawn(async move { desk_client.handle_inquiry(call).await });
    until_served(&next, "the next server takes the lease").await;
    assert_eq!(desk.lease_holder_pid(), Some(next.pid()));
    // The follower reads the lease within 6 s and moves its route: the call held by the
    // paused leader ends then, UNAVAILABLE, rather than at its 60 s deadline.
    let ended = tokio::time::timeout(Duration::from_secs(20), answer)
        .await
        .expect("the forwarded call ends once the lease moves")
        .unwrap();
    let status = ended.expect_err("not answered by a paused leader");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains("changed while this call was forwarded"),
        "{status:?}"
    );
    eprintln!(
        "a call forwarded to a paused leader ended after {:?}",
        sent.elapsed()
    );
    // And the follower now forwards to the new leader.
    until_served(&follower, "the follower forwards to the new leader").await;
    leader.send_signal("CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_whose_database_stops_answering_says_it_is_unready_and_stays_alive() {
    use common::proxy::Proxy;
    let Some(desk) = ScratchDesk::new("a_follower_partitioned") else {
        return;
    };
    let extra = format!("lease_ttl_secs = {}\n", TTL.as_secs());
    let leader = Server::start_with_config(&format!("{}{extra}", desk.config())).await;
    let proxy = Proxy::start(desk.server_addr()).await;
    let follower =
        Server::start_with_config(&format!("{}{extra}", desk.config_via(proxy.addr))).await;
    assert_eq!(desk.lease_holder_pid(), Some(leader.pid()));
    ask(
        &mut follower.desk(),
        inquiry("cust_frozen_0", PASSWORD_RESET),
    )
    .await;
    assert!(serving(&follower).await);

    // The database stops answering this follower, without refusing anything.
    let liveness = LivenessProbe::start(follower.addr(), Duration::from_millis(250));
    proxy.stall();
    let stalled = Instant::now();
    poll_until(
        Duration::from_secs(10),
        "the follower reports NOT_SERVING",
        || async { (!serving(&follower).await).then_some(()) },
    )
    .await;
    eprintln!(
        "a follower whose database stopped answering was unready after {:?}",
        stalled.elapsed()
    );
    // Once it answers again, the follower is ready again by itself.
    proxy.restore();
    poll_until(
        Duration::from_secs(20),
        "the follower reports SERVING again",
        || async { serving(&follower).await.then_some(()) },
    )
    .await;
    ask(
        &mut follower.desk(),
        inquiry("cust_frozen_1", PASSWORD_RESET),
    )
    .await;
    let (probes, failed) = liveness.stop().await;
    assert!(
        failed.is_empty(),
        "liveness failed {} of {probes}: {failed:?}",
        failed.len()
    );
}
