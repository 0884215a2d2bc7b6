//! A node machine's log share: the file server the passive pulls closed logs from. It reads the
//! machine's disk directly, so it keeps serving when the node's services have died — which is
//! what lets a survivor copy the last logs of a node whose store failed but whose machine is up.

use crate::disk::Disk;

use super::node::{GroupFiles, STATE_FILE};
use super::wire::Msg;

/// Answers one request, about any storage group. `stores_running[g]` is whether that
/// machine's store has storage group `g`'s logs open (a group past the list's end: no); the
/// open log is served only when it is not (it is still being written otherwise), and the
/// database only when it is: a seed streams from the active store, as Exchange's
/// `Update-StorageGroupCopy` does — never from the file of a store that is down, which may be
/// damaged or about to be rolled back.
pub fn serve(disk: &mut dyn Disk, request: &Msg, stores_running: &[bool]) -> Option<Msg> {
    let (group, request) = match request {
        Msg::ForGroup { group, msg } => (*group, &**msg),
        request => (0, request),
    };
    let store_running = stores_running
        .get(usize::from(group))
        .copied()
        .unwrap_or(false);
    let reply = serve_group(disk, GroupFiles::of(group), request, store_running)?;
    Some(Msg::for_group(group, reply))
}

fn serve_group(
    disk: &mut dyn Disk,
    files: GroupFiles,
    request: &Msg,
    store_running: bool,
) -> Option<Msg> {
    let missing = |generation, reason: String| Msg::NoLog { generation, reason };
    Some(match request {
        Msg::FetchLog { generation } => match disk.read(&files.logs.closed_path(*generation)) {
            Ok(done) => Msg::LogFile {
                generation: *generation,
                bytes: done.value,
            },
            Err(e) => missing(Some(*generation), e.to_string()),
        },
        Msg::FetchOpenLog if store_running => {
            missing(None, "the store has the open log in use".into())
        }
        Msg::FetchOpenLog => match disk.read(&files.logs.open_path()) {
            Ok(done) => Msg::OpenLogFile { bytes: done.value },
            Err(e) => missing(None, e.to_string()),
        },
        Msg::FetchDatabase if !store_running => {
            missing(None, "no store is running here to seed from".into())
        }
        Msg::FetchDatabase => match disk.read(&files.db) {
            Ok(done) => Msg::DatabaseFile { bytes: done.value },
            // No checkpoint written yet: the database is empty at generation 0, and every
            // log from the first one is the seed's to replay.
            Err(crate::disk::DiskError::NotFound { .. }) => Msg::DatabaseFile {
                bytes: crate::storage::database::Database::new(0).image(),
            },
            Err(e) => missing(None, e.to_string()),
        },
        Msg::FetchState => match disk.read(STATE_FILE) {
            Ok(done) => Msg::StateFile { bytes: done.value },
            Err(e) => missing(None, e.to_string()),
        },
        _ => return None,
    })
}
