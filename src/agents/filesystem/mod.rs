//! `ocf:pgstack:filesystem`: one mounted file system (XFS first, ext4 too), the
//! replacement of `ocf:heartbeat:Filesystem` with the same parameter names.
//!
//! **Manages** the mount of `device` on `directory`, as read from `/proc/self/mountinfo`
//! (mount IDs and `major:minor`, so a symlinked device name or a path with spaces is
//! matched exactly). Each action resolves `directory` (and a device path) once to its
//! canonical form (symbolic links, `.`, `..`) and uses that form for every step and
//! comparison. Another device mounted on the directory is an error with a reason, never
//! "running". `/`, however spelled, is never managed. Start and stop of one resource
//! instance run one at a time (a lock under `/run/pgstack`).
//!
//! **Actions**
//! - `start`: checks the device (a path, `UUID=` or `LABEL=`) and the directory (created
//!   when missing), runs `fsck -p` for ext file systems (`run_fsck`; XFS is never repaired,
//!   `run_fsck=force` runs the read-only `xfs_repair -n`), mounts through mount(2) with the
//!   VFS flags taken from `options` and the rest passed as file-system data, and verifies
//!   the result in mountinfo; a start that fails after mounting unmounts again.
//! - `stop`: unmounts the deepest sub-mounts first, then the mount itself. A busy mount's
//!   holders are found by walking `/proc` (cwd, root, exe, open files by mount ID, mappings
//!   by device number) for that mount only: never the parent mount or `/`, never by
//!   stat-ing a path on it. PID 1, the agent and its ancestors, Pacemaker's daemons and
//!   corosync are never signalled. `term_signals` then `kill_signals` are sent, `signal_delay`
//!   apart, within one deadline for all sub-mounts; if the mount stays busy the action
//!   fails naming the remaining holders. Only a mount positively identified as this
//!   device is acted on: a foreign device, or one that cannot be identified (the device
//!   is missing here, the parameters name none), is left alone and said so.
//! - `monitor`: depth 0 checks the mount and its device; depth 10 adds an O_DIRECT read of
//!   the device and a read of the mount's root directory; depth 20 adds an O_DIRECT write,
//!   fsync and read-back of a per-node status file, opened below the mount point without
//!   following links (`sys::safefs`; a planted link fails the monitor). The I/O runs in a forked child with
//!   the operation's deadline, so a hung device gives an error with a reason before
//!   Pacemaker's timeout, and an XFS forced shutdown (EIO) is reported.
//! - `validate-all`: syntax errors give 6, a missing device, directory or kernel support
//!   gives 5.
//!
//! **Side effects**: the mount, the directory (created by start), the status directory
//! and file of depth-20 monitors, and signals to the holders of a busy mount at stop.
//! Not promotable; refuses to run as a clone of a non-cluster file system unless
//! `force_clones` is set.

#![forbid(unsafe_code)]

mod actions;
mod config;
mod node;
mod stop;
#[cfg(test)]
mod tests;

pub use config::{
    configure, parse_device, parse_directory, parse_options, parse_signals, DeviceSpec, FsConfig,
    Fsck,
};
pub use stop::Busy;

use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::params::ParamSpec;
use crate::ocf::Action;
use crate::sys::blockio::ProbeError;
use crate::sys::mount::Mounts;

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string(
        "device",
        "Block device",
        "The device to mount: a path (/dev/VG_POSTGRES/LV_DATA), UUID=... or LABEL=..., \
         or a source of a network or bind mount.",
    )
    .required(),
    ParamSpec::string(
        "directory",
        "Mount point",
        "The absolute path to mount on; created at start when missing. Symbolic links on \
         the way are resolved: the mount is made and recognised on the real path. Trailing \
         slashes are ignored; '/', however spelled, is refused.",
    )
    .required(),
    ParamSpec::string(
        "fstype",
        "File system type",
        "The type (xfs, ext4, ...). Empty lets mount(8) detect it. 'none' bind-mounts \
         device on directory.",
    ),
    ParamSpec::string(
        "options",
        "Mount options",
        "Comma-separated mount options, as for mount -o. VFS flags (noatime, nodiratime, ro, \
         nosuid, ...) become mount flags, the rest (logbsize=256k, allocsize=1m, nouuid, ...) \
         is passed to the file system. White space and shell separators are refused.",
    ),
    ParamSpec::string(
        "statusfile_prefix",
        "Status file directory",
        "Where the depth-20 monitor writes its status file, relative to directory; the \
         file is named after the instance (and clone number) and the node.",
    )
    .default(".Filesystem_status/"),
    ParamSpec::string(
        "run_fsck",
        "Check before mounting",
        "'auto' runs fsck -p for ext2/3/4 and nothing for XFS; 'force' also runs the \
         read-only xfs_repair -n for XFS; 'no' never checks.",
    )
    .default("auto"),
    ParamSpec::boolean(
        "fast_stop",
        "Escalate quickly",
        "When true, holders of a busy mount get one round of term_signals, then \
         kill_signals. When false, term_signals are repeated for half of the stop timeout \
         before kill_signals.",
    )
    .default("no"),
    ParamSpec::boolean(
        "force_clones",
        "Allow clones of local file systems",
        "Allow this resource in a clone although the file system (xfs, ext4) is not \
         cluster-aware. Only for configurations that guarantee a single writer.",
    )
    .default("false"),
    ParamSpec::string(
        "force_unmount",
        "Kill holders at stop",
        "'true' (or 'safe', the same here: holders are always found without touching the \
         file system) signals the processes holding a busy mount; 'false' only tries to \
         unmount.",
    )
    .default("true"),
    ParamSpec::string(
        "term_signals",
        "First signals",
        "Signals sent first to the holders of a busy mount, by name or number, separated \
         by commas or spaces.",
    )
    .default("TERM"),
    ParamSpec::string(
        "kill_signals",
        "Last signals",
        "Signals sent when term_signals did not free the mount.",
    )
    .default("KILL"),
    ParamSpec::integer(
        "signal_delay",
        "Seconds between signals",
        "How long to wait for holders to go after each round of signals, from 0 to 60 \
         seconds (the mount is retried every few milliseconds meanwhile).",
    )
    .default("1"),
];

static ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 60),
    ActionSpec::new(Action::Stop, 60),
    ActionSpec::new(Action::Monitor, 40).interval(20).depth(0),
    ActionSpec::new(Action::Monitor, 40).interval(60).depth(10),
    ActionSpec::new(Action::Monitor, 40).interval(120).depth(20),
    ActionSpec::new(Action::MetaData, 5),
    ActionSpec::new(Action::ValidateAll, 10),
];

pub static INFO: AgentInfo = AgentInfo {
    name: "filesystem",
    shortdesc: "Mounted file system (XFS, ext4) with a safe, bounded stop",
    longdesc: "Mounts a block device (XFS, ext4, ...) on a directory. Stop unmounts sub-mounts \
        first and signals only the processes that hold the mount itself, found without \
        touching the file system, within the operation's timeout. Deep monitors read and \
        write with O_DIRECT under a deadline, so a hung or shut-down file system is \
        reported before Pacemaker's timeout. Parameter names follow \
        ocf:heartbeat:Filesystem.",
    params: PARAMS,
    actions: ACTIONS,
    needs_root: true,
};

// A deep monitor's I/O probe failed: the file system does not serve I/O.
crate::agent_failure!(ProbeError => ErrGeneric);

pub struct Filesystem<M: Mounts> {
    sys: M,
}

impl<M: Mounts> Filesystem<M> {
    pub fn new(sys: M) -> Self {
        Filesystem { sys }
    }
}
