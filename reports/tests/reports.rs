//! The reports from hand-made records: what each format must show for a pass and a failure.

use ccr_reports::record::{
    Failover, Invariant, MachineSample, Mark, Mount, RunRecord, Sample, Timeline, Violation, Window,
};

fn machine(state: &str, faults: &[&str], copy: u32) -> MachineSample {
    MachineSample {
        state: state.into(),
        faults: faults.iter().map(|f| f.to_string()).collect(),
        copy_queue: copy,
        replay_queue: copy / 2,
    }
}

fn record(scenario: &str, seed: u64, violation: Option<Violation>) -> RunRecord {
    let samples = (0..60)
        .map(|t| {
            let crashed = (30..46).contains(&t);
            Sample {
                t_s: t as f64,
                machines: vec![
                    if crashed {
                        machine("down", &["down"], 0)
                    } else if t < 30 {
                        machine("active", &[], 0)
                    } else {
                        machine("passive", &[], 3)
                    },
                    if t < 46 {
                        machine("passive", &[], t % 4)
                    } else {
                        machine("active", &[], 0)
                    },
                    machine("witness up", &[], 0),
                    machine(if crashed { "outage" } else { "served" }, &[], 0),
                ],
                witness_owner: Some(if t < 40 { "node1" } else { "node2" }.into()),
                serving: (!crashed).then(|| "node1".into()),
                acked: u64::from(t) * 10,
                network_faults: Vec::new(),
            }
        })
        .collect();
    RunRecord {
        scenario: scenario.into(),
        description: format!("the {scenario} scenario"),
        source: format!("scenarios/{scenario}.toml"),
        seed,
        outcome: violation
            .as_ref()
            .map_or("pass".into(), |v| v.invariant.name().into()),
        trace_hash: "00000000deadbeef".into(),
        sim_seconds: 60.0,
        wall_ms: 12,
        failovers: vec![Failover { duration_s: 15.5 }],
        acked: 590,
        lost: 0,
        lost_beyond_dumpster: 0,
        duplicated: 0,
        resubmitted: 3,
        lost_to_clock_skew: 0,
        violation,
        mounts: vec![Mount {
            at_s: 45.5,
            node: "node2".into(),
            lost: 0,
        }],
        final_state: "node2 serves; node1 copy Healthy".into(),
        settings: Vec::new(),
        coverage: Default::default(),
        timeline: Timeline {
            machines: ["node1", "node2", "hub", "clients"]
                .map(String::from)
                .to_vec(),
            samples,
            steps: vec![Mark {
                t_s: 30.0,
                label: "crash-active".into(),
            }],
            failover_windows: vec![Window {
                from_s: 30.0,
                to_s: 45.5,
            }],
            liveness_from_s: Some(50.0),
        },
        trace: None,
    }
}

fn broken() -> Violation {
    Violation {
        invariant: Invariant::SingleActive,
        at_s: 41.25,
        message: "node1 and node2 both have the database <mounted>".into(),
        last_events: vec![
            "41.000s node1 Mounted".into(),
            "41.250s node2 Mounted".into(),
        ],
    }
}

#[test]
fn html_draws_lanes_faults_windows_plots_and_the_violation() {
    let runs = vec![record("crash", 1, None), record("crash", 2, Some(broken()))];
    let html = ccr_reports::html::render(&runs, &Default::default());
    for lane in [
        "node1",
        "node2",
        "hub",
        "clients",
        "networks",
        "witness lock",
    ] {
        assert!(html.contains(&format!(">{lane}</text>")), "lane {lane}");
    }
    assert!(html.contains("class=\"st-down\""), "a down segment");
    assert!(html.contains("class=\"st-outage\""), "a client outage");
    assert!(html.contains("class=\"fault\""), "faults shaded");
    assert!(html.contains("failover 15.5 s"), "the failover window");
    assert!(html.contains("crash-active"), "the step");
    assert!(html.contains("polyline class=\"copy\""), "the queue plot");
    assert!(html.contains("polyline class=\"acked\""), "the acked plot");
    assert!(
        html.contains("line class=\"violation\""),
        "the violation marked"
    );
    // Text from the run is escaped, never interpreted.
    assert!(html.contains("database &lt;mounted&gt;"));
    assert!(!html.contains("<mounted>"));
    assert!(html.contains("cargo xtask sim run scenarios/crash.toml --seed 2 --trace trace.txt"));
    assert!(html.contains("1 failed"));
    // Self-contained: nothing fetched from elsewhere.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
}

#[test]
fn a_huge_sweep_draws_failures_and_a_bounded_number_of_passes() {
    let mut runs: Vec<RunRecord> = (0..400).map(|s| record("sweep", s, None)).collect();
    runs.push(record("sweep", 999, Some(broken())));
    let html = ccr_reports::html::render(&runs, &Default::default());
    assert_eq!(html.matches("<svg class=\"timeline\"").count(), 201);
    assert!(html.contains("first 200 passing runs"));
}

#[test]
fn junit_has_one_case_per_seed_and_a_failure_with_the_repro() {
    let runs = vec![
        record("crash", 1, None),
        record("crash", 2, Some(broken())),
        record("moves", 1, None),
    ];
    let xml = ccr_reports::junit::render(&runs).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 3);
    assert_eq!(xml.matches("<testsuite ").count(), 2);
    assert_eq!(xml.matches("<failure ").count(), 1);
    assert!(xml.contains("type=\"single-active\""));
    assert!(xml.contains("reproduce: cargo xtask sim run scenarios/crash.toml --seed 2"));
}

#[test]
fn summary_md_has_the_table_and_the_failures() {
    let runs = vec![record("crash", 1, None), record("crash", 2, Some(broken()))];
    let md = ccr_reports::markdown::render(
        &runs,
        &ccr_reports::Meta {
            command: "ccr-sim run crash".into(),
        },
    );
    assert!(md.contains("2 runs: 1 passed, 1 failed"));
    assert!(md.contains("| crash | 2 | 1 | 15.5 / 15.5 / 15.5 s | 1180 | 0 |"));
    assert!(md.contains("`single-active` at 41.250 s"));
    assert!(md.contains("--seed 2"));
    let table = ccr_reports::stats::text_table(&runs);
    assert!(table.contains("2 runs: 1 passed, 1 failed"));
}

#[test]
fn runs_json_round_trips_and_bad_json_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let runs = vec![record("crash", 1, None), record("crash", 2, Some(broken()))];
    let written = ccr_reports::write_all(dir.path(), &runs, &Default::default()).unwrap();
    assert_eq!(written.len(), 4);
    let back = ccr_reports::read_runs(&dir.path().join("runs.json")).unwrap();
    assert_eq!(back, runs);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[\n  {\"scenario\": 3}\n]").unwrap();
    let err = ccr_reports::read_runs(&bad).unwrap_err();
    assert!(err.contains("bad.json:2:"), "{err}");
}

#[test]
fn a_json_line_leaves_the_timeline_out() {
    let line = record("crash", 1, None).json_line();
    assert!(!line.contains("timeline"));
    assert!(line.contains("\"outcome\":\"pass\""));
}

const HOSTILE: &str = r#"a<b & "c" 'd' </details><script>alert(1)</script>"#;

/// A failing and a passing run whose user-written text is all `HOSTILE`.
fn hostile_page() -> String {
    let mut fail = record(HOSTILE, 3, Some(broken()));
    fail.description = format!("described {HOSTILE}");
    fail.violation.as_mut().unwrap().message = format!("message {HOSTILE}");
    fail.timeline.steps[0].label = format!("step {HOSTILE}");
    fail.timeline.samples[35].machines[0].faults = vec![format!("fault {HOSTILE}")];
    let pass = record(HOSTILE, 4, None);
    ccr_reports::html::render(&[fail, pass], &Default::default())
}

/// What a reader of the page must find, judged on the document as parsed.
fn check_hostile_page(doc: &scraper::Html) {
    use scraper::Selector;
    let sel = |s: &str| Selector::parse(s).unwrap();
    let texts = |s: &str| -> Vec<String> {
        doc.select(&sel(s))
            .map(|e| e.text().collect::<String>())
            .collect()
    };
    assert_eq!(
        doc.select(&sel("script")).count(),
        0,
        "no element from the text"
    );
    assert_eq!(texts("h2"), vec![HOSTILE.to_string()]);
    assert_eq!(texts("table.summary td a"), vec![HOSTILE.to_string()]);
    assert_eq!(texts("p.description"), vec![format!("described {HOSTILE}")]);
    assert!(texts("div.violation")[0].contains(&format!("message {HOSTILE}")));
    assert!(texts("ol.steps li")
        .iter()
        .any(|t| t.ends_with(&format!("step {HOSTILE}"))));
    assert!(texts("svg.timeline rect.fault title")
        .iter()
        .any(|t| t.starts_with(&format!("fault {HOSTILE}"))));
    // Both runs' sections survive whole: the text closed no `details` early.
    assert_eq!(doc.select(&sel("body > details[id]")).count(), 2);
    assert_eq!(
        doc.select(&sel("details[open]")).count(),
        1,
        "the failure opens"
    );
    assert_eq!(doc.select(&sel("details[open] .badge.fail")).count(), 1);
    // Every shape of the timeline stays inside its svg.
    assert_eq!(
        doc.select(&sel("svg.timeline")).count(),
        2,
        "one timeline per run"
    );
    assert_eq!(doc.select(&sel("body > rect, body > text")).count(), 0);
}

/// Text users write (a scenario's name and description, a fault's label, a violation's
/// message) goes into the page as text: parsed by a browser-grade HTML parser (html5ever),
/// every such string reads back exactly as written and adds no element of its own.
#[test]
fn html_escapes_what_users_write_as_a_parser_reads_it() {
    check_hostile_page(&scraper::Html::parse_document(&hostile_page()));
}

/// The same page in headless Chromium: the DOM it builds (after running whatever scripts it
/// found) passes the same checks. Without a Chromium on the machine the test says so and
/// passes, unless `CCR_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs one).
#[test]
fn html_reads_the_same_in_headless_chromium() {
    let Some(browser) = ["chromium-headless-shell", "chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        assert!(
            std::env::var("CCR_REQUIRE_BROWSER").is_err(),
            "CCR_REQUIRE_BROWSER is set and no Chromium was found"
        );
        eprintln!("skipped: no headless Chromium on this machine");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.html");
    std::fs::write(&path, hostile_page()).unwrap();
    let out = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", path.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{browser} failed: {out:?}");
    let dom = String::from_utf8(out.stdout).unwrap();
    assert!(
        dom.contains("<svg"),
        "{browser} rendered the page: {dom:.200}"
    );
    check_hostile_page(&scraper::Html::parse_document(&dom));
}
