//! Reports people and CI can read, drawn only from run records (so they can be rebuilt from a
//! saved `runs.json`): a self-contained `index.html` with timelines and plots, a `summary.md`
//! that fits a CI job summary, a `junit.xml` with one test case per scenario and seed, and the
//! records themselves as `runs.json`.
//!
//! Rooms: `record` (the data), `stats` (per-scenario figures shared by every format), `html`,
//! `markdown`, `junit`.

pub mod html;
pub mod junit;
pub mod markdown;
pub mod record;
pub mod stats;

use std::path::{Path, PathBuf};

pub use record::RunRecord;

/// What the reports say about how they were made.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// The command that produced the runs.
    pub command: String,
}

/// Writes every report into `dir` (created if missing) and returns the paths written.
pub fn write_all(dir: &Path, runs: &[RunRecord], meta: &Meta) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = [
        ("index.html", html::render(runs, meta)),
        ("summary.md", markdown::render(runs, meta)),
        ("junit.xml", junit::render(runs)?),
        (
            "runs.json",
            serde_json::to_string(runs).map_err(|e| format!("runs.json: {e}"))?,
        ),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Reads a `runs.json` back (to rebuild reports, or to merge sweeps).
pub fn read_runs(path: &Path) -> Result<Vec<RunRecord>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}:{}: not a runs.json: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}
