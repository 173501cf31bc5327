//! Taking the server's identity for filesystem checks, on the calling thread only.

use std::marker::PhantomData;

use nix::unistd::{geteuid, setfsgid, setfsuid, Gid, Uid};

use super::FsError;

/// While alive, the calling thread's fsuid/fsgid are the server's: the kernel checks every
/// file access as that user, and (fsuid going from 0 to non-zero) drops `CAP_DAC_OVERRIDE`,
/// `CAP_FOWNER`, `CAP_CHOWN`, `CAP_MKNOD` etc. from the thread's effective set, so even a bug
/// in the layer cannot touch a file as root. Dropping it restores the previous ids (0/0).
///
/// `setfsuid(2)` is per-thread on Linux (glibc does not broadcast it), which is why the guard is
/// neither `Send` nor `Sync`: it must be dropped on the thread that made it. When the process is
/// not root there is nothing to give up and the guard does nothing.
///
/// Supplementary groups are left as they are (changing them per thread needs a raw syscall);
/// the nodelet runs with root's, which only matter for files whose group is root's.
#[derive(Debug)]
pub(crate) struct Creds {
    /// The ids to go back to, when switched.
    previous: Option<(u32, u32)>,
    _thread: PhantomData<*const ()>,
}

impl Creds {
    /// Switches the thread to uid/gid, checking that the switch took (`setfsuid` returns the
    /// previous value even on failure, so a second call tells what is in force). `path` is only
    /// for the error.
    pub(crate) fn enter(uid: u32, gid: u32, path: &str) -> Result<Creds, FsError> {
        if !geteuid().is_root() {
            return Ok(Creds {
                previous: None,
                _thread: PhantomData,
            });
        }
        let prev_gid = setfsgid(Gid::from_raw(gid)).as_raw();
        let prev_uid = setfsuid(Uid::from_raw(uid)).as_raw();
        // made before checking so that a half-done switch is undone on the way out
        let guard = Creds {
            previous: Some((prev_uid, prev_gid)),
            _thread: PhantomData,
        };
        let now_gid = setfsgid(Gid::from_raw(gid)).as_raw();
        let now_uid = setfsuid(Uid::from_raw(uid)).as_raw();
        if now_uid != uid || now_gid != gid {
            tracing::error!(
                uid,
                gid,
                now_uid,
                now_gid,
                "could not switch the thread's filesystem ids; refusing the file operation"
            );
            return Err(FsError::other(
                path,
                "could not take the server's identity for file access",
            ));
        }
        Ok(guard)
    }
}

impl Drop for Creds {
    fn drop(&mut self) {
        let Some((uid, gid)) = self.previous else {
            return;
        };
        setfsuid(Uid::from_raw(uid));
        setfsgid(Gid::from_raw(gid));
        let now_uid = setfsuid(Uid::from_raw(uid)).as_raw();
        let now_gid = setfsgid(Gid::from_raw(gid)).as_raw();
        if now_uid != uid || now_gid != gid {
            // the thread keeps the server's (lesser) identity: safe, but its later file
            // operations as root will fail
            tracing::error!(
                uid,
                gid,
                now_uid,
                now_gid,
                "could not restore the thread's filesystem ids"
            );
        }
    }
}
