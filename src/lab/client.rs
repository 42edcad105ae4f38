//! The client's side: code run in a thread that has entered the client's network
//! namespace (sockets it opens live there), connecting as `postgres` through the VIP.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

use super::{now_f, LabError, LabResult, NS_CLIENT, VIP};
use crate::sys::arp::{format_mac, RawLink};
use crate::sys::netlink::Netlink;

/// Runs `f` in a new thread inside the named network namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> LabResult<T> {
    let path = format!("/run/netns/{ns}");
    let file =
        std::fs::File::open(&path).map_err(|e| LabError::io(format!("opening {path}"), e))?;
    let h = std::thread::spawn(move || -> Result<T, nix::errno::Errno> {
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)?;
        Ok(f())
    });
    match h.join() {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(LabError::errno(format!("entering {path}"), e)),
        Err(_) => Err(LabError::Invalid(format!("the thread in {path} panicked"))),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn config(timeout: Duration) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(VIP)
        .port(5432)
        .user("postgres")
        .dbname("postgres")
        .application_name("pgstack-lab")
        .connect_timeout(timeout);
    c
}

/// One connection and one statement through the VIP (call inside the client namespace).
/// Returns the rows' first column as text.
pub fn query_here(sql: &str, timeout: Duration) -> Result<Vec<String>, String> {
    let rt = runtime()?;
    rt.block_on(async {
        let fut = async {
            let (client, conn) = config(timeout)
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("connect {VIP}:5432: {e}"))?;
            tokio::spawn(conn);
            let msgs = client
                .simple_query(sql)
                .await
                .map_err(|e| format!("{sql}: {e}"))?;
            let mut rows = Vec::new();
            for m in msgs {
                if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                    rows.push(r.get(0).unwrap_or("").to_string());
                }
            }
            Ok(rows)
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer from {VIP} within {} ms",
                timeout.as_millis()
            )),
        }
    })
}

/// [`query_here`] from the client namespace.
pub fn query(sql: &str, timeout: Duration) -> LabResult<Result<Vec<String>, String>> {
    let sql = sql.to_string();
    in_netns(NS_CLIENT, move || query_here(&sql, timeout))
}

/// How often [`first_answer`] starts a new attempt.
pub const PROBE_EVERY: Duration = Duration::from_millis(25);
/// How long one attempt of [`first_answer`] may take.
const ATTEMPT_LIMIT: Duration = Duration::from_millis(1000);

/// Starts a `select 1` through the VIP every [`PROBE_EVERY`] until one answers; returns the
/// time of the first answer ([`now_f`]). The attempts overlap: while the address moves, a
/// connection whose SYN went to the old holder waits for a TCP retransmission (a second)
/// or its own timeout, and a probe that waited for it would report that wait, not the
/// takeover. A new attempt every 25 ms means the first SYN sent after the new holder
/// announced the address is answered, so the measurement's own share is at most 25 ms
/// plus one connection and query.
pub fn first_answer(secs: f64) -> LabResult<f64> {
    in_netns(NS_CLIENT, move || -> Result<Option<f64>, String> {
        let rt = runtime()?;
        Ok(rt.block_on(first_answer_here(Duration::from_secs_f64(secs))))
    })?
    .map_err(LabError::Invalid)?
    .ok_or(LabError::Timeout {
        what: format!("PostgreSQL answering through {VIP} from {NS_CLIENT}"),
        secs,
    })
}

async fn attempt(timeout: Duration) -> Result<(), String> {
    let fut = async {
        let (client, conn) = config(timeout)
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        client
            .simple_query("select 1")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn first_answer_here(limit: Duration) -> Option<f64> {
    use tokio::time::{sleep_until, timeout_at, Instant};
    let until = Instant::now() + limit;
    let mut pending = tokio::task::JoinSet::new();
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        pending.spawn(attempt(ATTEMPT_LIMIT.min(left)));
        let next = Instant::now() + PROBE_EVERY;
        loop {
            match timeout_at(next, pending.join_next()).await {
                Ok(Some(Ok(Ok(())))) => {
                    let at = now_f();
                    pending.abort_all();
                    return Some(at);
                }
                // A failed attempt: the others go on.
                Ok(Some(_)) => {}
                Ok(None) => {
                    sleep_until(next).await;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    // The time is up: the attempts still running end within their own limit.
    while let Some(done) = pending.join_next().await {
        if matches!(done, Ok(Ok(()))) {
            return Some(now_f());
        }
    }
    None
}

/// The MAC addresses answering an ARP probe for the VIP on the client's link within `wait`.
pub fn arp_holders(wait: Duration) -> LabResult<Vec<String>> {
    in_netns(NS_CLIENT, move || -> LabResult<Vec<String>> {
        let mut nl = Netlink::open(Instant::now() + Duration::from_secs(2))?;
        let link = nl
            .links()?
            .into_iter()
            .find(|l| l.name == "eth0")
            .ok_or_else(|| LabError::Invalid(format!("{NS_CLIENT} has no eth0")))?;
        let mut raw = RawLink::open(&link)?;
        let ip: Ipv4Addr = VIP.parse().expect("the VIP is an IPv4 address");
        raw.arp_probe(ip)?;
        let until = Instant::now() + wait;
        let mut macs: Vec<String> = Vec::new();
        let mut resent = false;
        while let Some(m) = raw.wait_for_claim(ip, until)? {
            let s = format_mac(&m);
            if !macs.contains(&s) {
                macs.push(s);
            }
            if !resent {
                // A second probe: a slower holder answers it too.
                raw.arp_probe(ip)?;
                resent = true;
            }
        }
        Ok(macs)
    })?
}

/// psql through the VIP from the client namespace, on this terminal.
pub fn psql(sql: Option<&str>) -> LabResult<u8> {
    let mut c = std::process::Command::new("ip");
    c.args([
        "netns", "exec", NS_CLIENT, "psql", "-h", VIP, "-U", "postgres", "-d", "postgres",
    ])
    .env_clear()
    .env("PATH", crate::sys::runner::FIXED_PATH)
    .env("LC_ALL", "C.UTF-8");
    if let Ok(t) = std::env::var("TERM") {
        c.env("TERM", t);
    }
    if let Some(s) = sql {
        c.args(["-c", s]);
    }
    let st = c.status().map_err(|e| LabError::io("running psql", e))?;
    Ok(st.code().unwrap_or(1).clamp(0, 255) as u8)
}
