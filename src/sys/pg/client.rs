//! The monitor's native-protocol probe: one connection over the server's unix socket (or
//! TCP when the host is not a path) and one statement, with connect and statement
//! timeouts from the caller's deadline. A current-thread tokio runtime lives only inside
//! [`probe`]; nothing else in the program uses tokio.
//!
//! The session asks the server not to wait on anything slow: `statement_timeout` and
//! `lock_timeout` end the statement before the deadline and `synchronous_commit=local`
//! keeps a writing monitor statement from waiting on standbys.
//!
//! A host name is resolved before the runtime exists, in a thread nobody waits for: a
//! resolver that never answers cannot be cancelled, and a lookup inside the runtime
//! would hold the runtime's drop (and the process) until the resolver gives up.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::unistd::Uid;

/// Where and how to connect, and what to run.
#[derive(Debug, Clone)]
pub struct Probe {
    /// A socket directory (absolute path) or a host name or address.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub sql: String,
    pub connect_timeout: Duration,
    /// Connect with this effective uid (peer authentication as the system user).
    pub as_uid: Option<Uid>,
}

/// What a probe or a query returns.
pub type ProbeResult<T> = Result<T, ProbeError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No server answers on the socket.
    #[error("cannot connect to {target}: {msg}")]
    Connect { target: String, msg: String },
    /// A server answers but does not accept connections (starting, stopping, recovery).
    #[error("{target} refuses connections: {msg}")]
    NotAccepting { target: String, msg: String },
    /// Connected, but the statement failed.
    #[error("monitor statement on {target} failed: {msg}")]
    Query { target: String, msg: String },
    #[error("{what} on {target}: no answer within {ms} ms")]
    Timeout {
        target: String,
        what: &'static str,
        ms: u128,
    },
    #[error("{0}")]
    Local(String),
}

/// Restores the effective uid when dropped.
struct EuidGuard(Option<Uid>);

impl EuidGuard {
    fn become_user(uid: Option<Uid>) -> Result<EuidGuard, ProbeError> {
        match uid {
            Some(u) if Uid::effective().is_root() && !u.is_root() => {
                nix::unistd::seteuid(u).map_err(|e| {
                    ProbeError::Local(format!("cannot take effective uid {u}: {e}"))
                })?;
                Ok(EuidGuard(Some(Uid::from_raw(0))))
            }
            _ => Ok(EuidGuard(None)),
        }
    }
}

impl Drop for EuidGuard {
    fn drop(&mut self) {
        if let Some(orig) = self.0 {
            let _ = nix::unistd::seteuid(orig);
        }
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

impl Probe {
    pub fn target(&self) -> String {
        if self.host.starts_with('/') {
            format!("{}/.s.PGSQL.{}", self.host.trim_end_matches('/'), self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The addresses of a host name, looked up before `deadline`; `None` for a socket
    /// directory.
    fn resolve(&self, deadline: Instant) -> Result<Option<Vec<IpAddr>>, ProbeError> {
        if self.host.starts_with('/') {
            return Ok(None);
        }
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(Some(vec![ip]));
        }
        let (tx, rx) = mpsc::channel();
        let (name, port) = (self.host.clone(), self.port);
        let started = Instant::now();
        std::thread::Builder::new()
            .name("pg-resolve".into())
            .spawn(move || {
                let r = (name.as_str(), port).to_socket_addrs().map(|a| {
                    let mut ips: Vec<IpAddr> = Vec::new();
                    for ip in a.map(|s| s.ip()) {
                        if !ips.contains(&ip) {
                            ips.push(ip);
                        }
                    }
                    ips
                });
                let _ = tx.send(r);
            })
            .map_err(|e| ProbeError::Local(format!("cannot start a resolver thread: {e}")))?;
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(ips)) if !ips.is_empty() => Ok(Some(ips)),
            Ok(Ok(_)) => Err(ProbeError::Connect {
                target: self.target(),
                msg: format!("{} resolves to no address", self.host),
            }),
            Ok(Err(e)) => Err(ProbeError::Connect {
                target: self.target(),
                msg: format!("cannot resolve {}: {e}", self.host),
            }),
            Err(_) => Err(ProbeError::Timeout {
                target: self.target(),
                what: "resolving the host name",
                ms: started.elapsed().as_millis(),
            }),
        }
    }

    fn config(&self, deadline: Instant, addrs: Option<&[IpAddr]>) -> tokio_postgres::Config {
        let left = deadline.saturating_duration_since(Instant::now());
        // The statement must end on the server before the deadline ends here.
        let stmt_ms = (left.as_millis() * 8 / 10).max(1);
        let mut c = tokio_postgres::Config::new();
        match addrs {
            None => {
                c.host_path(PathBuf::from(&self.host));
            }
            // The name stays the host (for messages); the runtime never resolves it.
            Some(ips) => {
                for ip in ips {
                    c.host(&self.host).hostaddr(*ip);
                }
            }
        }
        c.port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("pgstack-monitor")
            .connect_timeout(self.connect_timeout.min(left).max(Duration::from_millis(1)))
            .options(format!(
                "-c statement_timeout={stmt_ms} -c lock_timeout={stmt_ms} \
                 -c synchronous_commit=local -c default_transaction_read_only=off"
            ));
        if let Some(p) = &self.password {
            c.password(p.as_bytes());
        }
        c
    }
}

/// What a successful probe learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// `pg_is_in_recovery()`: the server is a standby (or still recovering).
    pub in_recovery: bool,
}

/// Connects, runs the statement, then asks whether the server is in recovery (same
/// session, one more round trip), all before `deadline`.
pub fn probe(p: &Probe, deadline: Instant) -> Result<Answer, ProbeError> {
    let (mut results, _) = session(p, &[&p.sql, "select pg_is_in_recovery()"], None, deadline)?;
    let rows = results.pop().unwrap_or_default();
    let in_recovery = rows
        .first()
        .and_then(|r| r.first())
        .is_some_and(|v| v.as_deref() == Some("t"));
    Ok(Answer { in_recovery })
}

/// One row of a simple query: the columns as text, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// Connects and runs `p.sql`; returns its rows (the last statement's, when `p.sql`
/// holds several), all before `deadline`.
pub fn rows(p: &Probe, deadline: Instant) -> Result<Vec<Row>, ProbeError> {
    let (mut results, _) = session(p, &[&p.sql], None, deadline)?;
    Ok(results.pop().unwrap_or_default())
}

/// The rows of one statement.
pub type Rows = Vec<Row>;

/// Connects as [`Probe`] says and runs `stmts` one after the other in the same session
/// (each its own simple query, so `ALTER SYSTEM` may be among them), all before
/// `deadline`; `p.sql` is not run. The first failing statement ends the session.
pub fn query(p: &Probe, stmts: &[String], deadline: Instant) -> Result<Vec<Rows>, ProbeError> {
    let refs: Vec<&str> = stmts.iter().map(String::as_str).collect();
    session(p, &refs, None, deadline).map(|(rows, _)| rows)
}

/// A statement asked again in the same session until its first column answers false.
#[derive(Clone, Copy)]
pub struct Until<'a> {
    pub sql: &'a str,
    /// The first pause between two askings; it doubles up to `max_every`.
    pub every: Duration,
    pub max_every: Duration,
    /// Called with the rows of the statements once they all answered, before the first
    /// asking: what the caller starts that may run during the wait.
    pub meanwhile: Option<Meanwhile<'a>>,
}

/// What [`Until::meanwhile`] calls with the statements' rows.
pub type Meanwhile<'a> = &'a dyn Fn(&[Rows]);

/// Like [`query`], then asks `until.sql` in the same session until its first column is
/// `f` or `deadline` comes; returns the rows of `stmts` and whether it turned false.
/// One connection, and a pause of milliseconds instead of the server-side waits in
/// tenths of seconds of `pg_promote(true)` or `pg_ctl -w`.
pub fn query_until_false(
    p: &Probe,
    stmts: &[String],
    until: Until<'_>,
    deadline: Instant,
) -> Result<(Vec<Rows>, bool), ProbeError> {
    let refs: Vec<&str> = stmts.iter().map(String::as_str).collect();
    session(p, &refs, Some(until), deadline)
}

/// One session: connects, runs each statement in turn (stopping at the first that
/// fails), and returns the rows of each; then, with `until`, asks its statement until it
/// answers false (the `bool`) or the deadline is near.
fn session(
    p: &Probe,
    sqls: &[&str],
    until: Option<Until<'_>>,
    deadline: Instant,
) -> Result<(Vec<Vec<Row>>, bool), ProbeError> {
    let addrs = p.resolve(deadline)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| ProbeError::Local(format!("cannot build the async runtime: {e}")))?;
    let target = p.target();
    let cfg = p.config(deadline, addrs.as_deref());
    let budget = deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .max(1);
    let timeout = |what: &'static str| ProbeError::Timeout {
        target: target.clone(),
        what,
        ms: budget,
    };
    let query_err = |e: tokio_postgres::Error| ProbeError::Query {
        target: target.clone(),
        msg: describe(&e),
    };
    let until_at = tokio::time::Instant::from_std(deadline);
    let (client, connection) = {
        let _euid = EuidGuard::become_user(p.as_uid)?;
        rt.block_on(async {
            tokio::time::timeout_at(until_at, cfg.connect(tokio_postgres::NoTls)).await
        })
        .map_err(|_| timeout("connect"))?
        .map_err(|e| classify(&target, &e))?
    };
    let answers = rt
        .block_on(async {
            let conn = tokio::spawn(connection);
            let r = tokio::time::timeout_at(until_at, async {
                let mut all = Vec::new();
                for sql in sqls {
                    let r = client.simple_query(sql).await;
                    let failed = r.is_err();
                    all.push(r);
                    if failed {
                        return (all, false);
                    }
                }
                let Some(u) = until else {
                    return (all, false);
                };
                if let Some(f) = u.meanwhile {
                    let rows: Vec<Rows> = all.iter().flatten().map(|m| rows_of(m)).collect();
                    f(&rows);
                }
                let mut nap = u.every;
                loop {
                    match client.simple_query(u.sql).await {
                        Ok(m) if first_is_false(&rows_of(&m)) => return (all, true),
                        Ok(_) => {}
                        Err(e) => {
                            all.push(Err(e));
                            return (all, false);
                        }
                    }
                    // Stop asking while there is time left to answer.
                    if Instant::now() + nap * 2 >= deadline {
                        return (all, false);
                    }
                    tokio::time::sleep(nap).await;
                    nap = (nap * 2).min(u.max_every);
                }
            })
            .await;
            drop(client);
            conn.abort();
            r
        })
        .map_err(|_| timeout("monitor statement"))?;
    let (answers, turned) = answers;
    let mut out = Vec::new();
    for a in answers {
        out.push(rows_of(&a.map_err(query_err)?));
    }
    Ok((out, turned))
}

/// Whether the first column of the first row is `f` (a boolean answered false).
pub fn first_is_false(rows: &Rows) -> bool {
    matches!(rows.first().and_then(|r| r.first()), Some(Some(v)) if v == "f")
}

/// The rows of a simple query's answer, as text.
fn rows_of(msgs: &[tokio_postgres::SimpleQueryMessage]) -> Rows {
    msgs.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

fn classify(target: &str, e: &tokio_postgres::Error) -> ProbeError {
    use tokio_postgres::error::SqlState;
    let msg = describe(e);
    match e.code() {
        Some(c) if *c == SqlState::CANNOT_CONNECT_NOW || *c == SqlState::ADMIN_SHUTDOWN => {
            ProbeError::NotAccepting {
                target: target.to_string(),
                msg,
            }
        }
        _ => ProbeError::Connect {
            target: target.to_string(),
            msg,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `select 1` as postgres on port 1 of `host`, with a 1 s connect timeout.
    fn select_one(host: &str) -> Probe {
        Probe {
            host: host.into(),
            port: 1,
            user: "postgres".into(),
            password: None,
            dbname: "template1".into(),
            sql: "select 1".into(),
            connect_timeout: Duration::from_secs(1),
            as_uid: None,
        }
    }

    #[test]
    fn nothing_listening_is_a_connect_error_within_the_deadline() {
        let p = select_one("/nonexistent/pgst-pg-socket");
        let t = Instant::now();
        let e = probe(&p, Instant::now() + Duration::from_secs(2)).unwrap_err();
        assert!(matches!(e, ProbeError::Connect { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("/nonexistent/pgst-pg-socket/.s.PGSQL.1"),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn names_are_resolved_before_the_runtime_and_addresses_are_taken_as_they_are() {
        let mut p = select_one("localhost");
        let soon = Instant::now() + Duration::from_secs(5);
        let ips = p.resolve(soon).unwrap().unwrap();
        assert!(ips.iter().any(|ip| ip.is_loopback()), "{ips:?}");
        p.host = "127.0.0.1".into();
        assert_eq!(
            p.resolve(soon).unwrap(),
            Some(vec![IpAddr::from([127, 0, 0, 1])])
        );
        let e = probe(&p, soon).unwrap_err();
        assert!(matches!(e, ProbeError::Connect { .. }), "{e}");
        p.host = "/run/x".into();
        assert_eq!(p.resolve(soon).unwrap(), None);
    }
}
