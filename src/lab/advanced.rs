//! The book's advanced stack under a live Pacemaker, in two UML guests ([`super::uml`]):
//! LVM on the raw disk -> DRBD on its LV -> LVM on /dev/drbd0 (5% kept free) -> XFS with
//! the book's mount options -> PostgreSQL -> VIP, all as the `advanced` template renders
//! it (`pgstack cib render --template advanced`: the CIB, `--format corosync`, `--format
//! drbd`), the agents `ocf:pgstack:*` (or the reference agents with `provider=heartbeat`).
//!
//! The guests run the installed pgstack: the harness bind-mounts the given binary and OCF
//! directory over /usr/sbin/pgstack and /usr/lib/ocf/resource.d/pgstack inside each guest
//! (their overlay root is private), so a private install is what Pacemaker runs there.
//!
//! Fencing: `fence_pgstack_uml` in each guest writes its request into the share's fence
//! mailbox; the host's fence daemon (`pgstack lab _umlfenced`) powers the target guest off
//! as [`Pair::power_off`] does (every host process of the guest killed at once).
//!
//! A guest's root is a tmpfs: a power cut loses its configuration, so every boot applies
//! the node's files again ([`Advanced::setup_node`]); its disk keeps DRBD, LVM and the
//! data. Cluster services are not started at boot (the book: examine a crashed node
//! first); [`Advanced::restore`] boots and starts them.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cluster;
use super::history::{self, ClusterStatus};
use super::uml::{Pair, Spec, NET_CLUSTER, NET_REPL, NODES};
use super::{poll, proc, run, LabError, LabResult, Steps};
use crate::cib::{Format, RenderOptions};
use crate::sys::runner::Cmd;

/// The advanced lab's state directory (never the netns lab's).
pub const DIR: &str = "/tmp/pgst-adv";
pub const UMID: &str = "pgst-adv";
pub const VIP: &str = "10.99.0.50";
/// The DRBD resource and its clone, as the template names them.
pub const RES: &str = "pg";
pub const CLONE: &str = "ms_drbd_pg";
/// The group, in start order, and the volume groups of the stack.
pub const GROUP: [&str; 4] = ["pg_lvm", "pg_fs", "pg_db", "pg_vip"];
pub const LOWER_VG: &str = "VG_DRBD";
pub const UPPER_VG: &str = "VG_POSTGRES";
pub const MOUNT: &str = "/db";
pub const PGDATA: &str = "/db/pgdata";
pub const FENCE_AGENT: &str = "fence_pgstack_uml";
/// The guests run the host's PostgreSQL and keep their alerts where the netns nodes do.
pub use super::{ALERT_FILE, PG_BINDIR};
/// Where the writer keeps its acknowledged ids, on the share.
const WRITER_DIR: &str = "writer";
/// The provisioning script of the storage stack, shared with the Vagrant lab.
const STACK_SH: &str = include_str!("../../vagrant/provision/stack.sh");
/// The Vagrant lab's corosync + CIB step, run in the guests too.
const CLUSTER_SH: &str = include_str!("../../vagrant/provision/cluster.sh");
/// The template variables `cluster.sh` sets itself (from its CLUSTER_* settings).
const CLUSTER_SH_OWN: [&str; 10] = [
    "provider",
    "cluster_name",
    "node1",
    "node2",
    "node1_addr",
    "node2_addr",
    "vip",
    "vip_cidr",
    "vip_nic",
    "corosync_keyfile",
];
const CLUSTER_NAME: &str = "pgstadv";

/// The id of the constraint DRBD's fence-peer handler places (LINBIT's naming).
pub fn fence_constraint_id() -> String {
    format!("drbd-fence-by-handler-{RES}-{CLONE}")
}

/// The options of `pgstack lab up --stack advanced`.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub umid: String,
    /// The pgstack binary and OCF directory the guests run (bind-mounted there).
    pub exe: PathBuf,
    pub ocf_dir: PathBuf,
    /// The alert agent named in the CIB.
    pub alert_agent: PathBuf,
    /// `provider=heartbeat` and other template variables.
    pub sets: Vec<(String, String)>,
    pub mem: String,
    pub disk_mb: u64,
}

impl Options {
    /// The lab's defaults for the pgstack installed at `exe` (its OCF directory and
    /// alert agent are found from its install prefix, else the system paths).
    pub fn for_exe(exe: &Path) -> Options {
        let prefix = exe.parent().and_then(Path::parent);
        let private = |rel: &str, system: &str| {
            prefix
                .map(|p| p.join(rel))
                .filter(|p| p.exists() && prefix != Some(Path::new("/usr")))
                .unwrap_or_else(|| PathBuf::from(system))
        };
        Options {
            dir: PathBuf::from(DIR),
            umid: UMID.into(),
            exe: exe.to_path_buf(),
            ocf_dir: private("ocf", "/usr/lib/ocf/resource.d/pgstack"),
            alert_agent: private("lib/pgstack-alert", super::ALERT_AGENT),
            sets: Vec::new(),
            mem: "1024M".into(),
            disk_mb: 512,
        }
    }
}

/// A handle on the running advanced lab.
#[derive(Debug, Clone)]
pub struct Advanced {
    pub pair: Pair,
    pub provider: String,
    pub exe: PathBuf,
    pub ocf_dir: PathBuf,
}

fn node_addr(i: usize) -> String {
    format!("{NET_CLUSTER}.{}", i + 1)
}

/// Seconds of the guests' clock (UML guests read the host's).
const NOW: &str = "date +%s.%N";

/// DRBD's common section: the test network needs fast reconnects and fast loss detection.
const DRBD_COMMON: &str = "# Written by pgstack lab (advanced stack).
global { usage-count no; }
common {
  net { protocol C; connect-int 2; ping-int 1; ping-timeout 5; }
  disk { c-plan-ahead 0; resync-rate 100M; }
}
";

/// The fence agent inside a guest: a shim to pgstack's agent speaking to the mailbox.
const FENCE_SHIM: &str = "#!/bin/sh
# The advanced lab's fence agent (pgstack lab); lives only in this guest's root.
exec /usr/sbin/pgstack lab fence-agent --mailbox /shared/fence --name fence_pgstack_uml \"$@\"
";

impl Advanced {
    /// Opens the lab recorded in `dir`.
    pub fn open(dir: &Path) -> LabResult<Advanced> {
        let pair = Pair::open(dir)?;
        let p = dir.join("advanced.conf");
        let text = std::fs::read_to_string(&p).map_err(|_| LabError::NotUp(p.clone()))?;
        let m: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            m.get(k)
                .map(|v| v.to_string())
                .ok_or_else(|| LabError::Invalid(format!("{}: no {k}", p.display())))
        };
        Ok(Advanced {
            pair,
            provider: get("provider")?,
            exe: PathBuf::from(get("exe")?),
            ocf_dir: PathBuf::from(get("ocf_dir")?),
        })
    }

    /// Boots the guests, provisions the stack, starts the cluster and waits until
    /// PostgreSQL answers through the VIP. On failure everything is removed.
    pub fn up(opts: &Options, steps: &Steps) -> LabResult<Advanced> {
        if let Some(why) = super::uml::unavailable() {
            return Err(LabError::Invalid(format!(
                "this machine cannot run the advanced stack's UML guests: {why}"
            )));
        }
        for p in [&opts.exe, &opts.ocf_dir, &opts.alert_agent] {
            run::plain_path(p)?;
            if !p.exists() {
                return Err(LabError::Invalid(format!(
                    "{} is missing (pgstack install)",
                    p.display()
                )));
            }
        }
        let provider = super::provider_of(&opts.sets);
        let mut spec = Spec::unique("adv", &opts.mem, opts.disk_mb);
        spec.dir = opts.dir.clone();
        spec.umid = opts.umid.clone();
        spec.second_net = true;
        // Render first: a bad --set fails before anything boots.
        let files = render(opts, &provider)?;
        let pair = Pair::create(&spec)?;
        let adv = Advanced {
            pair,
            provider,
            exe: opts.exe.clone(),
            ocf_dir: opts.ocf_dir.clone(),
        };
        steps.undo_failed_up(adv.bring_up(opts, &files, steps), || {
            let kept = failed_logs_dir(&opts.dir);
            match adv.keep_logs(&kept) {
                Ok(()) => steps.say(&format!("the guests' logs kept in {}", kept.display())),
                Err(e) => steps.say(&format!("keeping the guests' logs: {e}")),
            }
            Advanced::down_dir(&opts.dir)
        })?;
        Ok(adv)
    }

    /// Copies what explains a failed `up` into `to` (replacing an earlier copy): each
    /// live guest's Pacemaker and Corosync logs, the cluster's view with the operations'
    /// exec times, DRBD's state and the kernel's messages, and the host-side files of the
    /// pair (console logs, the outputs of the provisioning and cluster steps).
    pub fn keep_logs(&self, to: &Path) -> LabResult<()> {
        if to.exists() {
            std::fs::remove_dir_all(to)
                .map_err(|e| LabError::io(format!("removing {}", to.display()), e))?;
        }
        run::mkdir(to)?;
        if let Ok(rd) = std::fs::read_dir(&self.pair.dir) {
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if p.is_file() && (name.ends_with(".log") || name.ends_with(".out")) {
                    let _ = std::fs::copy(&p, to.join(&name));
                }
            }
        }
        const LOGS: [(&str, &str); 7] = [
            ("pacemaker.log", "cat /var/log/pacemaker/pacemaker.log"),
            ("corosync.out", "cat /var/log/corosync.out"),
            ("pacemakerd.out", "cat /var/log/pacemakerd.out"),
            ("crm_mon.txt", "crm_mon -1 -r -A -f -t 2>&1 || true"),
            ("cib.xml", "cibadmin -Q 2>&1 || true"),
            (
                "drbd.txt",
                "drbdsetup status --verbose 2>&1; drbdadm dump 2>&1 || true",
            ),
            ("dmesg.txt", "dmesg 2>&1 | tail -n 300"),
        ];
        for n in self.alive() {
            for (file, script) in LOGS {
                let text = self
                    .on(n, script, 60)
                    .unwrap_or_else(|e| format!("({script}: {e})\n"));
                run::write(&to.join(format!("{n}-{file}")), &text)?;
            }
        }
        Ok(())
    }

    fn cfg(&self, rel: &str) -> PathBuf {
        self.pair.shared("cfg").join(rel)
    }

    fn bring_up(&self, opts: &Options, files: &Files, steps: &Steps) -> LabResult<()> {
        let d = &self.pair.dir;
        run::write(
            &d.join("advanced.conf"),
            &format!(
                "provider={}\nexe={}\nocf_dir={}\n",
                self.provider,
                self.exe.display(),
                self.ocf_dir.display()
            ),
        )?;
        steps.say(&format!(
            "guests n1 ({}), n2 ({}) booted, mem {}, state in {}",
            node_addr(0),
            node_addr(1),
            opts.mem,
            d.display()
        ));
        run::mkdir(&self.pair.shared("cfg"))?;
        run::mkdir(&self.pair.shared("fence"))?;
        run::mkdir(&self.pair.shared(WRITER_DIR))?;
        run::write(&self.cfg("corosync.conf"), &files.corosync)?;
        run::write(&self.cfg(&format!("{RES}.res")), &files.drbd)?;
        run::write(&self.cfg("global_common.conf"), DRBD_COMMON)?;
        run::write(&self.cfg(FENCE_AGENT), FENCE_SHIM)?;
        let cib = self.cfg("cib.xml");
        run::write(&cib, &files.cib)?;
        // The lab's fence device powers off (a reboot would boot a guest with no cluster).
        for (name, value) in [("stonith-action", "off"), ("dc-deadtime", "5s")] {
            run::cmd_ok(
                &Cmd::new("crm_attribute")
                    .args(["--type", "crm_config", "--name", name, "--update", value])
                    .env("CIB_file", &cib),
                Duration::from_secs(30),
            )?;
        }
        steps.say(
            "CIB, corosync.conf and the DRBD resource rendered from the template \"advanced\"",
        );
        for n in NODES {
            self.setup_node(n)?;
        }
        steps.say("node files in place (private pgstack bind-mounted)");
        self.provision(steps)?;
        start_fence_daemon(&self.pair, &self.exe)?;
        steps.say("fence daemon started");
        self.cluster_sh(&files.cluster_sets, steps)?;
        self.wait_online(&["n1", "n2"], 180.0)?;
        steps.say("both nodes online");
        let at = self.wait_group(None, 240.0)?;
        steps.say(&format!("PGServer started on {at}"));
        self.first_answer(&other(&at), 120)?;
        steps.say(&format!("PostgreSQL answers through the VIP {VIP}"));
        Ok(())
    }

    /// The node's files, every boot: the private pgstack over the system paths, the
    /// fence agent, DRBD and corosync configuration, PostgreSQL's socket directory.
    pub fn setup_node(&self, name: &str) -> LabResult<()> {
        let exe = run::plain_path(&self.exe)?;
        let ocf = run::plain_path(&self.ocf_dir)?;
        let mut s = String::from("set -e\n");
        if exe != "/usr/sbin/pgstack" {
            let _ = writeln!(
                s,
                "[ -e /usr/sbin/pgstack ] || touch /usr/sbin/pgstack\nmount --bind {exe} /usr/sbin/pgstack"
            );
        }
        if ocf != "/usr/lib/ocf/resource.d/pgstack" {
            let _ = writeln!(
                s,
                "mkdir -p /usr/lib/ocf/resource.d/pgstack\nmount --bind {ocf} /usr/lib/ocf/resource.d/pgstack"
            );
        }
        let _ = write!(
            s,
            "install -m 0755 /shared/cfg/{FENCE_AGENT} /usr/sbin/{FENCE_AGENT}
mkdir -p /etc/drbd.d /etc/corosync {MOUNT}
install -m 0644 /shared/cfg/global_common.conf /etc/drbd.d/global_common.conf
install -m 0644 /shared/cfg/{RES}.res /etc/drbd.d/{RES}.res
install -m 0644 /shared/cfg/corosync.conf /etc/corosync/corosync.conf
[ -e /shared/cfg/authkey ] && install -m 0400 /shared/cfg/authkey /etc/corosync/authkey
[ -e /shared/cfg/lvmlocal-{name}.conf ] && install -m 0644 /shared/cfg/lvmlocal-{name}.conf /etc/lvm/lvmlocal.conf
install -d -o postgres -g postgres -m 2775 /run/postgresql
# The lower volume group is the node's own (activated at boot); the upper one is
# Pacemaker's, never activated here.
vgchange -q -a y {LOWER_VG} >/dev/null 2>&1 || true
printf '%s n1\\n%s n2\\n' {} {} >> /etc/hosts
true
",
            node_addr(0),
            node_addr(1)
        );
        self.pair.ok(name, &s, Duration::from_secs(60)).map(|_| ())
    }

    /// The book's chapter 9 on the guests' disks, once, by the provisioning script the
    /// Vagrant lab runs too (`vagrant/provision/stack.sh`): lower VG on the raw disk, DRBD
    /// on its LV (replicating on eth1), upper VG on /dev/drbd0 with 5% free, XFS (`pgstack
    /// xfs format`: the book's agcount rule) with the book's mount options, PGDATA. The
    /// lab then lets the guests' network in without a password and hands everything over
    /// to Pacemaker (unmounted, upper VG inactive, DRBD Secondary on both).
    fn provision(&self, steps: &Steps) -> LabResult<()> {
        let long = Duration::from_secs(600);
        run::write(&self.cfg("stack.sh"), STACK_SH)?;
        run::chmod(&self.cfg("stack.sh"), 0o755)?;
        for n in ["n2", "n1"] {
            let out = self.pair.ok(
                n,
                &format!(
                    "STACK_NODE1=n1 STACK_NODE2=n2 STACK_NODE1_ADDR={NET_REPL}.1 STACK_NODE2_ADDR={NET_REPL}.2 \
STACK_DISK=/dev/ubdb STACK_INITRAMFS=0 STACK_PGSTACK=/usr/sbin/pgstack STACK_VIP={VIP} \
STACK_PROVIDER={} STACK_LOWER_VG={LOWER_VG} STACK_UPPER_VG={UPPER_VG} STACK_DRBD_RESOURCE={RES} \
STACK_MOUNT={MOUNT} STACK_PGDATA={PGDATA} STACK_PG_BINDIR={PG_BINDIR} \
STACK_HANDOVER=0 STACK_SYNC_WAIT=180 /shared/cfg/stack.sh",
                    self.provider
                ),
                long,
            )?;
            run::write(&self.pair.dir.join(format!("stack-{n}.out")), &out)?;
            // stack.sh's LVM settings live in the guest's root: kept for the next boots.
            self.pair.ok(
                n,
                &format!("install -m 0644 /etc/lvm/lvmlocal.conf /shared/cfg/lvmlocal-{n}.conf"),
                Duration::from_secs(30),
            )?;
        }
        steps.say(&format!(
            "vagrant/provision/stack.sh on n2, then n1: {LOWER_VG} on /dev/ubdb, DRBD {RES}, \
             {UPPER_VG} (95%) on /dev/drbd0, XFS on {MOUNT}, PGDATA {PGDATA}"
        ));
        self.pair.ok(
            "n1",
            &format!(
                "set -e
cat >> {PGDATA}/postgresql.conf <<'END'
listen_addresses = '*'
unix_socket_directories = '/run/postgresql'
END
echo 'host all all {NET_CLUSTER}.0/24 trust' >> {PGDATA}/pg_hba.conf
umount {MOUNT}
vgchange -q -a n {UPPER_VG}
drbdadm secondary {RES}"
            ),
            long,
        )?;
        steps.say("handed over to Pacemaker: unmounted, upper VG inactive, DRBD Secondary");
        Ok(())
    }

    /// Corosync, Pacemaker and the CIB as the Vagrant lab makes them:
    /// `vagrant/provision/cluster.sh` on n1 (the key made and left on the share, the
    /// daemons started), then on n2 (the key joined, the daemons started, the `advanced`
    /// template rendered and loaded once both are members). The lab's own properties
    /// (the fence device powers off; a short dc-deadtime) are set on the live CIB after,
    /// and the key is kept on the share for the boots after a power cut.
    fn cluster_sh(&self, sets: &[(String, String)], steps: &Steps) -> LabResult<()> {
        run::write(&self.cfg("cluster.sh"), CLUSTER_SH)?;
        run::chmod(&self.cfg("cluster.sh"), 0o755)?;
        let mut extra = Vec::new();
        for (k, v) in sets {
            if !(v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./:,=@+-".contains(c))
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            {
                return Err(LabError::Invalid(format!(
                    "--set {k}={v}: a value cluster.sh cannot carry (CLUSTER_SETS)"
                )));
            }
            extra.push(format!("{k}={v}"));
        }
        let extra = extra.join(" ");
        for (n, load) in [("n1", 0), ("n2", 1)] {
            let out = self.pair.ok(
                n,
                &format!(
                    "TZ=UTC CLUSTER_NODE1=n1 CLUSTER_NODE2=n2 CLUSTER_NODE1_ADDR={} CLUSTER_NODE2_ADDR={} \
CLUSTER_NAME={CLUSTER_NAME} CLUSTER_KEY_DIR=/shared/cfg/key CLUSTER_LOAD={load} CLUSTER_TIMEOUT=240 \
CLUSTER_START=direct CLUSTER_PROVIDER={} CLUSTER_VIP={VIP} CLUSTER_VIP_CIDR=24 CLUSTER_VIP_NIC=eth0 \
CLUSTER_PGSTACK=/usr/sbin/pgstack CLUSTER_SETS='{extra}' /shared/cfg/cluster.sh",
                    node_addr(0),
                    node_addr(1),
                    self.provider
                ),
                Duration::from_secs(420),
            )?;
            run::write(&self.pair.dir.join(format!("cluster-{n}.out")), &out)?;
        }
        steps.say("vagrant/provision/cluster.sh on n1, then n2: corosync key, corosync and pacemakerd started, the template loaded");
        self.pair.ok(
            "n2",
            "set -e
crm_attribute --type crm_config --name stonith-action --update off
crm_attribute --type crm_config --name dc-deadtime --update 5s
install -m 0400 /etc/corosync/authkey /shared/cfg/authkey",
            Duration::from_secs(120),
        )?;
        steps.say("the lab's properties set (stonith-action=off, dc-deadtime=5s)");
        Ok(())
    }

    /// Starts corosync, then pacemakerd, on `name` (with the rendered CIB seeded at the
    /// first start of the cluster).
    pub fn start_cluster(&self, name: &str, seed: bool) -> LabResult<()> {
        let mut s = String::from("set -e\n");
        if seed {
            s.push_str(
                "install -o hacluster -g haclient -m 0600 /shared/cfg/cib.xml /var/lib/pacemaker/cib/cib.xml
rm -f /var/lib/pacemaker/cib/cib.xml.sig
",
            );
        }
        s.push_str(
            "export TZ=UTC
setsid corosync -f </dev/null >/var/log/corosync.out 2>&1 &
i=0; until corosync-cfgtool -s >/dev/null 2>&1; do sleep 0.2; i=$((i+1)); [ $i -lt 300 ] || exit 1; done
setsid pacemakerd </dev/null >/var/log/pacemakerd.out 2>&1 &
true
",
        );
        self.pair.ok(name, &s, Duration::from_secs(120)).map(|_| ())
    }

    /// A command on `name`; its stdout on success.
    pub fn on(&self, name: &str, script: &str, secs: u64) -> LabResult<String> {
        self.pair.ok(name, script, Duration::from_secs(secs))
    }

    /// The live guests.
    pub fn alive(&self) -> Vec<&'static str> {
        NODES
            .into_iter()
            .filter(|n| self.pair.is_alive(n))
            .collect()
    }

    /// Pacemaker's view ([`cluster::status`]).
    pub fn cluster_status(&self) -> LabResult<ClusterStatus> {
        cluster::status(self)
    }

    pub fn wait_online(&self, names: &[&str], secs: f64) -> LabResult<()> {
        cluster::wait_online(self, names, secs)
    }

    /// Waits until every resource of PGServer runs on one node (`on`, when given).
    pub fn wait_group(&self, on: Option<&str>, secs: f64) -> LabResult<String> {
        poll(
            &format!(
                "PGServer started{}",
                on.map(|n| format!(" on {n}")).unwrap_or_default()
            ),
            secs,
            Duration::from_millis(500),
            || {
                let st = self.cluster_status().ok()?;
                let at = group_node(&st)?;
                on.is_none_or(|n| n == at).then_some(at)
            },
        )
    }

    /// `crm_resource --wait` on the DC (a node that has just joined may not answer yet):
    /// nothing left to do.
    pub fn settle(&self, secs: u64) -> LabResult<()> {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let dc = self.cluster_status().ok().and_then(|s| s.dc);
            let n = dc
                .or_else(|| self.alive().first().map(|s| s.to_string()))
                .ok_or_else(|| LabError::Invalid("no guest is running".into()))?;
            let left = until
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(5);
            match self.on(
                &n,
                &format!("crm_resource --wait --timeout={left}s"),
                left + 30,
            ) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= until => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }

    /// Probes `select 1` through the VIP from `from` every 100 ms; the time ([`NOW`]) of
    /// the first answer.
    pub fn first_answer(&self, from: &str, secs: u64) -> LabResult<f64> {
        let out = self.on(
            from,
            &format!(
                "end=$(( $(date +%s) + {secs} ))
until timeout -s KILL 2 psql -h {VIP} -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; do
  [ $(date +%s) -lt $end ] || exit 1; sleep 0.1
done; {NOW}"
            ),
            secs + 30,
        )?;
        out.trim()
            .parse()
            .map_err(|_| LabError::Invalid(format!("first answer: unreadable time {out:?}")))
    }

    /// One SQL statement through the VIP from `from`; the output lines.
    pub fn sql(&self, from: &str, sql: &str) -> LabResult<Vec<String>> {
        if sql.contains('\'') {
            return Err(LabError::Invalid(
                "SQL for the lab's probe cannot contain single quotes".into(),
            ));
        }
        let out = self.on(
            from,
            &format!("psql -h {VIP} -U postgres -d postgres -v ON_ERROR_STOP=1 -Atqc '{sql}'"),
            60,
        )?;
        Ok(out.lines().map(str::to_string).collect())
    }

    /// The CIB with its status, from `from`.
    pub fn cib_query(&self, from: &str) -> LabResult<String> {
        self.on(from, "cibadmin -Q", 60)
    }

    /// The guest's pacemaker.log, parsed.
    pub fn pacemaker_log(&self, name: &str) -> LabResult<Vec<history::LogLine>> {
        let text = self.on(name, "cat /var/log/pacemaker/pacemaker.log", 60)?;
        Ok(history::parse_pacemaker_log(&text, history::this_year()))
    }

    /// A power cut of `name`; the time of the cut.
    pub fn crash(&self, name: &str) -> LabResult<f64> {
        self.pair.power_off(name)
    }

    /// Boots `name` again (powered off first when it runs), applies its files and
    /// starts its cluster services, then waits until it is online.
    pub fn restore(&self, name: &str) -> LabResult<()> {
        if self.pair.is_alive(name) {
            self.pair.power_off(name)?;
        }
        self.pair.start(&[name])?;
        self.setup_node(name)?;
        self.start_cluster(name, false)?;
        self.wait_online(&[name], 180.0)
    }

    /// DRBD's view on `name`: the line of /proc/drbd with the roles and disk states.
    pub fn drbd_state(&self, name: &str) -> LabResult<String> {
        let out = self.on(name, "cat /proc/drbd", 30)?;
        Ok(out
            .lines()
            .find(|l| l.contains("cs:"))
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| "unconfigured".into()))
    }

    /// Starts the writer on `from` (a node not running PGServer), through the VIP. As
    /// every command in the guests, it runs `/usr/sbin/pgstack`, which is the configured
    /// `exe` there ([`Advanced::setup_node`] bind-mounts it over that path at every boot).
    pub fn writer_start(&self, from: &str) -> LabResult<()> {
        let d = format!("/shared/{WRITER_DIR}");
        self.on(
            from,
            &format!(
                "[ -e /run/pgst-writer.pid ] && kill -0 $(cat /run/pgst-writer.pid) 2>/dev/null && {{ echo 'the writer already runs'; exit 1; }}
setsid /usr/sbin/pgstack lab _writer --dir {d} --host {VIP} </dev/null >>{d}/writer.log 2>&1 &
echo $! > /run/pgst-writer.pid
echo {from} > {d}/node"
            ),
            60,
        )?;
        poll(
            "the writer's first acknowledged row",
            60.0,
            Duration::from_millis(200),
            || (!self.acked().is_empty()).then_some(()),
        )
    }

    /// The node the writer was started on.
    pub fn writer_node(&self) -> Option<String> {
        run::read_line(&self.pair.shared(WRITER_DIR).join("node"))
    }

    fn acked(&self) -> Vec<u64> {
        std::fs::read_to_string(self.pair.shared(WRITER_DIR).join("writer.acked"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Stops the writer (its ids flushed to the share).
    pub fn writer_stop(&self) -> LabResult<bool> {
        let Some(n) = self.writer_node() else {
            return Ok(false);
        };
        if !self.pair.is_alive(&n) {
            return Ok(false);
        }
        let out = self.on(
            &n,
            "[ -e /run/pgst-writer.pid ] || { echo none; exit 0; }
p=$(cat /run/pgst-writer.pid); kill $p 2>/dev/null; i=0
while kill -0 $p 2>/dev/null; do sleep 0.1; i=$((i+1)); [ $i -lt 50 ] || kill -9 $p; done
rm -f /run/pgst-writer.pid; sync; echo stopped",
            60,
        )?;
        Ok(out.trim() == "stopped")
    }

    /// Stops the writer and lists the acknowledged ids missing from the database.
    pub fn writer_check(&self) -> LabResult<super::writer::Check> {
        self.writer_stop()?;
        let from = self
            .writer_node()
            .filter(|n| self.pair.is_alive(n))
            .or_else(|| self.alive().first().map(|s| s.to_string()))
            .ok_or_else(|| LabError::Invalid("no guest is running".into()))?;
        let acked: std::collections::BTreeSet<u64> = self.acked().into_iter().collect();
        let present: std::collections::BTreeSet<u64> = self
            .sql(&from, "SELECT id FROM lab_writes")?
            .iter()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        Ok(super::writer::Check {
            acked: acked.len(),
            present: present.len(),
            missing: acked.difference(&present).copied().collect(),
        })
    }

    /// `pgstack cib migrate PGServer <to>` (the book's recipe: the constraint is cleared
    /// by it), measured from the cluster's own records.
    pub fn migrate(&self, to: &str) -> LabResult<Move> {
        Pair::index(to)?;
        let st = self.cluster_status()?;
        let from = group_node(&st)
            .ok_or_else(|| LabError::Invalid("PGServer is not running on one node".into()))?;
        if from == to {
            return Err(LabError::Invalid(format!("PGServer already runs on {to}")));
        }
        let t0 = super::now_f() - 0.001;
        let started = Instant::now();
        let output = self.on(
            &from,
            &format!("/usr/sbin/pgstack cib migrate PGServer {to} --wait 240"),
            300,
        )?;
        let command_secs = started.elapsed().as_secs_f64();
        let (stop_vip, start_vip) = cluster::move_logged(
            self,
            &from,
            ("stop", "pg_vip"),
            to,
            t0,
            60.0,
            Duration::from_millis(500),
        )?;
        let demoted =
            history::result_logged(&self.pacemaker_log(&from)?, "demote", "drbd_pg", &from, t0);
        let promoted =
            history::result_logged(&self.pacemaker_log(to)?, "promote", "drbd_pg", to, t0);
        let cib = self.cib_query(to)?;
        let ops = history::parse_ops(&cib)?;
        let vip_stop_exec = cluster::exec_secs(&ops, &from, "pg_vip", "stop");
        Ok(Move {
            secs: start_vip - (stop_vip - vip_stop_exec),
            command_secs,
            agents_secs: cluster::agents_secs(&ops, &from, &MOVE_FROM, 0)
                + cluster::agents_secs(&ops, to, &MOVE_TO, 0),
            on_from: cluster::steps(&ops, &from, &MOVE_FROM),
            on_to: cluster::steps(&ops, to, &MOVE_TO),
            want_from: cluster::step_names(&MOVE_FROM),
            want_to: cluster::step_names(&MOVE_TO),
            demote_before_promote: matches!((demoted, promoted), (Some(d), Some(p)) if d <= p),
            constraint_left: cib.contains("cli-prefer-PGServer")
                || cib.contains("cli-ban-PGServer"),
            output,
            from,
            to: to.to_string(),
        })
    }

    /// A power cut of the node running PGServer (or `name`), then the takeover measured
    /// from the survivor: the first answer through the VIP, and its pacemaker.log.
    pub fn crash_measured(&self, name: Option<&str>) -> LabResult<Takeover> {
        let victim = match name {
            Some(n) => n.to_string(),
            None => group_node(&self.cluster_status()?)
                .ok_or_else(|| LabError::Invalid("PGServer is not running on one node".into()))?,
        };
        Pair::index(&victim)?;
        let survivor = other(&victim);
        if !self.pair.is_alive(&survivor) {
            return Err(LabError::Invalid(format!(
                "{survivor} is down: nothing would take over"
            )));
        }
        let cut = self.crash(&victim)?;
        let answered = self.first_answer(&survivor, 240)?;
        self.wait_group(Some(&survivor), 60.0)?;
        let log = self.pacemaker_log(&survivor)?;
        let cib = self.cib_query(&survivor)?;
        let fence_constraint = cib.contains(&fence_constraint_id());
        let ops = history::parse_ops(&cib).ok();
        let steps = TakeoverSteps::logged(&log, ops.as_deref(), &victim, &survivor, cut);
        Ok(Takeover {
            victim,
            survivor,
            total: answered - cut,
            steps,
            fence_constraint,
        })
    }

    /// Removes the lab in `dir`: the fence daemon, the guests, the switches, the files.
    pub fn down_dir(dir: &Path) -> LabResult<()> {
        stop_fence_daemon(dir);
        Pair::down_dir(dir)
    }

    /// A status report: guests, DRBD, Pacemaker's view.
    pub fn status_report(&self) -> String {
        let mut s = String::new();
        for n in NODES {
            let alive = self.pair.is_alive(n);
            let drbd = if alive {
                self.drbd_state(n).unwrap_or_else(|e| e.to_string())
            } else {
                "-".into()
            };
            let _ = writeln!(
                s,
                "{n:<3} {:<5} DRBD {drbd}",
                if alive { "up" } else { "DOWN" }
            );
        }
        match self.cluster_status() {
            Ok(c) => {
                let at = group_node(&c).unwrap_or_else(|| "nowhere (or split)".into());
                s.push_str(&cluster::report(&c, "PGServer", &at));
            }
            Err(e) => {
                let _ = writeln!(s, "pacemaker: no answer ({e})");
            }
        }
        s
    }
}

impl cluster::Nodes for Advanced {
    const KIND: &'static str = "guest";
    const POLL: Duration = Duration::from_millis(500);
    const CRM_MON_LIMIT: Duration = Duration::from_secs(30);
    fn live(&self) -> Vec<String> {
        self.alive().into_iter().map(str::to_string).collect()
    }
    fn exec(&self, name: &str, argv: &[&str], limit: Duration) -> LabResult<String> {
        self.pair.ok(name, &shell_words(argv), limit)
    }
    fn log(&self, name: &str) -> LabResult<Vec<history::LogLine>> {
        self.pacemaker_log(name)
    }
}

/// `argv` as one line of the guests' shell: a word with more than letters, digits and
/// `_./=:,+-` is single-quoted.
fn shell_words(argv: &[&str]) -> String {
    argv.iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./=:,+-".contains(c))
            {
                w.to_string()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the whole group runs (every member started on the same node).
pub fn group_node(st: &ClusterStatus) -> Option<String> {
    let mut at: Option<&str> = None;
    for r in GROUP {
        let (_, on) = st.resources.iter().find(|(id, _)| id == r)?;
        if on.contains(' ') || on == "Stopped" || on.contains("FAILED") {
            return None;
        }
        match at {
            None => at = Some(on.as_str()),
            Some(a) if a == on => {}
            Some(_) => return None,
        }
    }
    at.map(str::to_string)
}

/// The other guest.
pub fn other(name: &str) -> String {
    if name == "n1" { "n2" } else { "n1" }.to_string()
}

/// The book's order of a move: stop VIP, postgresql, fs, lvm, demote DRBD on the node it
/// leaves; promote DRBD, start lvm, fs, postgresql, VIP on the node it goes to.
const MOVE_FROM: [cluster::Step; 5] = [
    ("stop", "pg_vip"),
    ("stop", "pg_db"),
    ("stop", "pg_fs"),
    ("stop", "pg_lvm"),
    ("demote", "drbd_pg"),
];
const MOVE_TO: [cluster::Step; 5] = [
    ("promote", "drbd_pg"),
    ("start", "pg_lvm"),
    ("start", "pg_fs"),
    ("start", "pg_db"),
    ("start", "pg_vip"),
];

pub use super::cluster::Move;

/// A takeover after a power cut (seconds from the cut).
#[derive(Debug, Clone)]
pub struct Takeover {
    pub victim: String,
    pub survivor: String,
    /// Until the first query answered through the VIP, from the survivor.
    pub total: f64,
    /// The steps on the way, as the survivor's log and CIB show them.
    pub steps: TakeoverSteps,
    /// DRBD's fence-peer handler left its constraint against the lost node.
    pub fence_constraint: bool,
}

/// The steps of a takeover, seconds from the power cut (`None`: not found).
#[derive(Debug, Clone, Default)]
pub struct TakeoverSteps {
    /// Until the survivor's Pacemaker saw the node lost.
    pub membership: Option<f64>,
    /// Until the fencing of the victim was logged.
    pub fenced: Option<f64>,
    /// Until the VIP's start was done.
    pub vip_started: Option<f64>,
    /// The exec times of the promote and the four starts on the survivor.
    pub agents_secs: Option<f64>,
}

impl TakeoverSteps {
    /// Reads them from the survivor's pacemaker.log and the CIB's operation history
    /// (`None` when that does not parse).
    fn logged(
        log: &[history::LogLine],
        ops: Option<&[history::Op]>,
        victim: &str,
        survivor: &str,
        cut: f64,
    ) -> TakeoverSteps {
        let after = cut - 0.001;
        let lost = history::lost_logged(log, victim, after);
        let vip = history::result_logged(log, "start", "pg_vip", survivor, after);
        let fenced = history::logged(log, &format!("Operation 'off' targeting {victim}"), after)
            .or_else(|| history::logged(log, &format!("Node {victim} will be fenced"), after));
        TakeoverSteps {
            membership: lost.map(|l| l - cut),
            fenced: fenced.map(|f| f - cut),
            vip_started: vip.map(|v| v - cut),
            agents_secs: ops
                .map(|ops| cluster::agents_secs(ops, survivor, &MOVE_TO, cut.floor() as u64)),
        }
    }

    fn report(&self) -> String {
        let f = |v: Option<f64>| v.map(|x| format!("{x:.2} s")).unwrap_or_else(|| "?".into());
        format!(
            "node lost at {}, fencing at {}, VIP started at {}; agents' own promote and starts {}",
            f(self.membership),
            f(self.fenced),
            f(self.vip_started),
            f(self.agents_secs),
        )
    }
}

impl Takeover {
    pub fn report(&self) -> String {
        format!(
            "takeover {} -> {}: {:.2} s to the first answer through the VIP ({}; DRBD fence constraint {})",
            self.victim,
            self.survivor,
            self.total,
            self.steps.report(),
            if self.fence_constraint { "placed" } else { "NOT placed" }
        )
    }
}

/// What the template renders for the guests.
struct Files {
    cib: String,
    corosync: String,
    drbd: String,
    /// The variables of the render that `cluster.sh` does not set itself (CLUSTER_SETS).
    cluster_sets: Vec<(String, String)>,
}

fn render(opts: &Options, provider: &str) -> LabResult<Files> {
    let s = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut sets = vec![
        s("node1", "n1"),
        s("node2", "n2"),
        s("node1_id", "1"),
        s("node2_id", "2"),
        s("node1_addr", &node_addr(0)),
        s("node2_addr", &node_addr(1)),
        s("vip", VIP),
        s("vip_cidr", "24"),
        s("vip_nic", "eth0"),
        s("fence_agent", FENCE_AGENT),
        s("fence_node1_ip", &node_addr(0)),
        s("fence_node2_ip", &node_addr(1)),
        s("cluster_name", CLUSTER_NAME),
        s("alert_recipient", ALERT_FILE),
        s("alert_path", &run::plain_path(&opts.alert_agent)?),
        s("pg_bindir", PG_BINDIR),
        // Where the guests' postgresql.conf puts the socket (unix_socket_directories).
        s("pg_socketdir", "/run/postgresql"),
    ];
    sets.extend(opts.sets.iter().cloned());
    let r = crate::cib::render("advanced", &sets, RenderOptions { fencing: true })?;
    // DRBD replicates on its own link (eth1), so that cutting it leaves corosync alone.
    let mut repl = sets.clone();
    repl.push(s("node1_addr", &format!("{NET_REPL}.1")));
    repl.push(s("node2_addr", &format!("{NET_REPL}.2")));
    let d = crate::cib::render("advanced", &repl, RenderOptions { fencing: true })?;
    let _ = provider;
    Ok(Files {
        cib: r.xml.clone(),
        corosync: r.format(Format::Corosync)?,
        drbd: d.format(Format::Drbd)?,
        cluster_sets: sets
            .into_iter()
            .filter(|(k, _)| !CLUSTER_SH_OWN.contains(&k.as_str()))
            .collect(),
    })
}

/// Where a failed `up` keeps the guests' logs: next to the lab's directory, which goes.
pub fn failed_logs_dir(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".failed");
    PathBuf::from(name)
}

fn fenced_pidfile(dir: &Path) -> PathBuf {
    dir.join("umlfenced.pid")
}

/// Starts `pgstack lab _umlfenced --dir DIR` (detached).
fn start_fence_daemon(pair: &Pair, exe: &Path) -> LabResult<()> {
    let dir = run::plain_path(&pair.dir)?;
    let exe = run::plain_path(exe)?;
    let c = Cmd::new(&exe).args(["lab", "_umlfenced", "--dir", &dir]);
    let pid = run::spawn_logged(&c, &pair.dir.join("fenced.log"))?;
    let (_, start) = proc::stat(pid)
        .ok_or_else(|| LabError::Invalid(format!("the fence daemon ({pid}) exited at once")))?;
    run::write(&fenced_pidfile(&pair.dir), &format!("{pid} {start}\n"))
}

fn stop_fence_daemon(dir: &Path) {
    let Some(line) = run::read_line(&fenced_pidfile(dir)) else {
        return;
    };
    let mut w = line.split_whitespace();
    let (Some(Ok(pid)), Some(Ok(start))) = (
        w.next().map(str::parse::<u32>),
        w.next().map(str::parse::<u64>),
    ) else {
        return;
    };
    let tag = format!("lab _umlfenced --dir {}", dir.display());
    if proc::stat(pid).map(|(_, s)| s) == Some(start)
        && proc::cmdline(pid).is_some_and(|c| c.contains(&tag))
    {
        proc::kill9(pid);
    }
}

/// The host side of `fence_pgstack_uml`: answers the requests in the share's fence
/// mailbox (`ID.req` -> `ID.rep`) until the lab's directory goes away.
pub fn fence_daemon(dir: &Path) -> LabResult<()> {
    let mbox = dir.join("shared").join("fence");
    loop {
        if !dir.join("pair.conf").exists() {
            return Ok(());
        }
        let mut reqs: Vec<PathBuf> = std::fs::read_dir(&mbox)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "req"))
                    .collect()
            })
            .unwrap_or_default();
        reqs.sort();
        for r in reqs {
            let Some(req) = run::read_line(&r) else {
                continue;
            };
            let reply = match Pair::open(dir) {
                Ok(p) => handle_fence(&p, req.trim()),
                Err(e) => format!("err {e}"),
            };
            eprintln!("{:.3} {} -> {reply}", super::now_f(), req.trim());
            let rep = r.with_extension("rep");
            let tmp = r.with_extension("rep.tmp");
            if run::write(&tmp, &format!("{reply}\n")).is_ok() {
                let _ = std::fs::rename(&tmp, &rep);
            }
            let _ = std::fs::remove_file(&r);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn handle_fence(p: &Pair, req: &str) -> String {
    let mut w = req.split_whitespace();
    let (op, target) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    if op == "list" {
        return format!("ok {}", NODES.join(" "));
    }
    if Pair::index(target).is_err() {
        return format!("err unknown node {target:?}");
    }
    match op {
        "off" => match p.power_off(target) {
            Ok(_) => "ok".into(),
            Err(e) => format!("err {e}"),
        },
        // Powering on boots the guest without its cluster services (as after a reboot).
        "on" if p.is_alive(target) => "ok".into(),
        "on" => match p.start(&[target]) {
            Ok(()) => "ok".into(),
            Err(e) => format!("err {e}"),
        },
        "status" if p.is_alive(target) => "ok on".into(),
        "status" => "ok off".into(),
        _ => format!("err unknown request {op:?}"),
    }
}

/// The time the fence daemon recorded for each request (`off n1` ...).
pub fn fence_events(dir: &Path) -> Vec<String> {
    super::fence::events(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(res: &[(&str, &str)]) -> ClusterStatus {
        ClusterStatus {
            resources: res
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn argv_becomes_one_quoted_shell_line() {
        assert_eq!(
            shell_words(&["crm_mon", "-1", "--output-as=xml"]),
            "crm_mon -1 --output-as=xml"
        );
        assert_eq!(
            shell_words(&["echo", "a b", "it's", ""]),
            r"echo 'a b' 'it'\''s' ''"
        );
    }

    #[test]
    fn the_group_runs_where_all_its_members_run() {
        let all = |n: &str| {
            st(&[
                ("drbd_pg", "n1 n2"),
                ("pg_lvm", n),
                ("pg_fs", n),
                ("pg_db", n),
                ("pg_vip", n),
            ])
        };
        assert_eq!(group_node(&all("n2")).as_deref(), Some("n2"));
        assert_eq!(group_node(&all("Stopped")), None);
        let split = st(&[
            ("pg_lvm", "n1"),
            ("pg_fs", "n1"),
            ("pg_db", "n2"),
            ("pg_vip", "n1"),
        ]);
        assert_eq!(group_node(&split), None);
    }

    #[test]
    fn the_lab_renders_for_the_guests() {
        let o = Options::for_exe(Path::new("/usr/sbin/pgstack"));
        assert_eq!(o.dir, Path::new(DIR));
        let f = render(&o, "pgstack").unwrap();
        assert!(f.cib.contains("10.99.0.50"), "{}", f.cib);
        assert!(f.cib.contains("fence_pgstack_uml"));
        assert!(f.corosync.contains("ring0_addr: 10.99.0.1"));
        assert!(f.drbd.contains("address 10.99.1.2:7788"), "{}", f.drbd);
        assert!(!f.drbd.contains("10.99.0."), "{}", f.drbd);
    }

    #[test]
    fn move_order_is_the_books() {
        assert_eq!(
            cluster::step_names(&MOVE_FROM),
            [
                "stop pg_vip",
                "stop pg_db",
                "stop pg_fs",
                "stop pg_lvm",
                "demote drbd_pg"
            ]
        );
        assert_eq!(
            cluster::step_names(&MOVE_TO),
            [
                "promote drbd_pg",
                "start pg_lvm",
                "start pg_fs",
                "start pg_db",
                "start pg_vip"
            ]
        );
    }
}
