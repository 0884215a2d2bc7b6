//! `index.html`: one self-contained page (inline CSS and SVG, no scripts, no network) with a
//! summary table and, per scenario and seed, a timeline of every machine's state with faults
//! shaded, failover windows and client outages marked, plots of the passive's queues and of
//! acknowledged messages, and for a violation the events that led to it.
//!
//! Drawn with maud, which escapes every spliced value: scenario names, descriptions, fault
//! labels and violation messages come from files users write, and none of them can break out
//! of the page. Only the fixed style sheet goes in unescaped.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::record::{RunRecord, Sample, Timeline};
use crate::stats::by_scenario;
use crate::Meta;

/// Beyond this many runs, passing runs are listed without their timeline (a 10,000-seed
/// sweep would otherwise make a page no browser opens); failures always get theirs.
const DRAW_PASSING: usize = 200;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 20.0;
const LANE: f64 = 22.0;
const STRIP: f64 = 7.0;
const GAP: f64 = 8.0;

/// A coordinate as SVG gets it.
fn c(v: f64) -> String {
    format!("{v:.1}")
}

fn pass_class(passed: bool) -> &'static str {
    if passed {
        "pass"
    } else {
        "fail"
    }
}

pub fn render(runs: &[RunRecord], meta: &Meta) -> String {
    let failed = runs.iter().filter(|r| !r.passed()).count();
    let passing = runs.len() - failed;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "ccr-sim report" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "ccr-sim report" }
                p class={ "total " (pass_class(failed == 0)) } {
                    (runs.len()) " runs: " (passing) " passed, " (failed) " failed"
                }
                @if !meta.command.is_empty() {
                    p { "Command: " code { (meta.command) } }
                }
                (summary_table(runs))
                (coverage_table(runs))
                (legend())
                (runs_sections(runs))
                @if runs.iter().filter(|r| r.passed()).count() > DRAW_PASSING {
                    p class="note" {
                        "Timelines are drawn for every failure and the first " (DRAW_PASSING)
                        " passing runs; runs.json holds all of them."
                    }
                }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
}

fn summary_table(runs: &[RunRecord]) -> Markup {
    html! {
        table class="summary" {
            tr {
                th { "scenario" } th { "runs" } th { "failed" }
                th { "failover min / median / max" } th { "acknowledged" } th { "lost" }
                th { "resubmitted" } th { "duplicates" }
            }
            @for s in by_scenario(runs) {
                tr class=(pass_class(s.failed == 0)) {
                    td { a href={ "#" (anchor(&s.scenario, None)) } { (s.scenario) } }
                    td { (s.runs) } td { (s.failed) } td { (s.failover_text()) }
                    td { (s.acked) } td { (s.lost) }
                    td { (s.resubmitted) } td { (s.duplicated) }
                }
            }
        }
    }
}

fn coverage_table(runs: &[RunRecord]) -> Markup {
    html! {
        details {
            summary { "Coverage: the situations these runs reached, rarest first" }
            table class="summary" {
                tr { th { "situation" } th { "runs" } th { "times" } }
                @for row in crate::stats::coverage(runs) {
                    tr class=(pass_class(row.runs > 0)) {
                        td { (row.situation) } td { (row.runs) } td { (row.count) }
                    }
                }
            }
        }
    }
}

fn runs_sections(runs: &[RunRecord]) -> Markup {
    // Which runs open a new scenario's heading, and which get their timeline drawn.
    let mut drawn_passing = 0;
    let plan: Vec<(bool, bool, &RunRecord)> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let heading = i == 0 || runs[i - 1].scenario != r.scenario;
            let draw = !r.passed() || drawn_passing < DRAW_PASSING;
            if r.passed() && draw {
                drawn_passing += 1;
            }
            (heading, draw, r)
        })
        .collect();
    html! {
        @for (heading, draw, r) in plan {
            @if heading {
                h2 id=(anchor(&r.scenario, None)) { (r.scenario) }
                @if !r.description.is_empty() {
                    p class="description" { (r.description) }
                }
            }
            (run_section(r, draw))
        }
    }
}

fn run_section(r: &RunRecord, draw: bool) -> Markup {
    let failovers: Vec<String> = r
        .failovers
        .iter()
        .map(|f| format!("{:.1} s", f.duration_s))
        .collect();
    html! {
        details id=(anchor(&r.scenario, Some(r.seed))) open[!r.passed()] {
            summary {
                span class={ "badge " (pass_class(r.passed())) } { (r.outcome) }
                " seed " (r.seed) " — failovers [" (failovers.join(", ")) "], acknowledged "
                (r.acked) ", lost " (r.lost) ", resubmitted " (r.resubmitted) ", duplicates "
                (r.duplicated) ", " (format!("{:.0}", r.sim_seconds))
                " s simulated in " (r.wall_ms) " ms"
            }
            @if let Some(v) = &r.violation {
                div class="violation" {
                    b { (v.invariant.name()) } " at " (format!("{:.3}", v.at_s)) " s: " (v.message)
                    br;
                    "Reproduce: " code { (r.repro()) }
                    pre { (v.last_events.join("\n")) }
                }
            }
            p class="end" { "End: " (r.final_state) " · trace hash " code { (r.trace_hash) } }
            @if draw && !r.timeline.samples.is_empty() {
                @let end = r.sim_seconds.max(1.0);
                (timeline_svg(&r.timeline, end, r.violation.as_ref().map(|v| v.at_s)))
                (queues_svg(&r.timeline.samples, end))
                (acked_svg(&r.timeline.samples, end))
                (steps_list(&r.timeline))
            }
        }
    }
}

struct Scale {
    end: f64,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.end).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }
}

/// One lane's state at a sample: its label and the faults acting on it.
fn lane_state(tl: &Timeline, lane: usize, s: &Sample) -> (String, Vec<String>) {
    let machines = tl.machines.len();
    match s.machines.get(lane) {
        Some(m) => (m.state.clone(), m.faults.clone()),
        None if lane == machines => (
            if s.network_faults.is_empty() {
                "clean"
            } else {
                "degraded"
            }
            .into(),
            s.network_faults.clone(),
        ),
        None => (
            s.witness_owner.clone().unwrap_or_else(|| "none".into()),
            Vec::new(),
        ),
    }
}

fn timeline_svg(tl: &Timeline, end: f64, violation_at: Option<f64>) -> Markup {
    let sc = Scale { end };
    let lanes: Vec<String> = tl
        .machines
        .iter()
        .cloned()
        .chain(["networks".to_string(), "witness lock".to_string()])
        .collect();
    let lane_h = LANE + STRIP + GAP;
    // Step numbers on the first text row, phase and failover labels on the second.
    let top = 34.0;
    let height = top + lanes.len() as f64 * lane_h + 22.0;
    let bottom = top + lanes.len() as f64 * lane_h;
    let width = |from: f64, to: f64, min: f64| c((sc.x(to) - sc.x(from)).max(min));
    html! {
        svg class="timeline" width=(WIDTH) height=(height)
            viewBox={ "0 0 " (WIDTH) " " (height) } xmlns="http://www.w3.org/2000/svg" {
            @if let Some(from) = tl.liveness_from_s {
                rect class="liveness" x=(c(sc.x(from))) y=(top) width=(width(from, end, 0.0))
                    height=(c(bottom - top)) {
                    title { "liveness phase: faults stopped, everything healed" }
                }
                text class="small" x=(c(sc.x(from) + 3.0)) y=(c(top - 6.0)) { "liveness phase" }
            }
            @for (i, name) in lanes.iter().enumerate() {
                @let y = top + i as f64 * lane_h;
                text class="lane" x=(c(LEFT - 8.0)) y=(c(y + LANE * 0.7)) { (name) }
                @for (from, to, (state, faults)) in segments(&tl.samples, end, |s| lane_state(tl, i, s)) {
                    @let cls = if i > tl.machines.len() {
                        format!("owner-{}", class_name(&state))
                    } else {
                        format!("st-{}", class_name(&state))
                    };
                    rect class=(cls) x=(c(sc.x(from))) y=(c(y)) width=(width(from, to, 0.5))
                        height=(LANE) {
                        title { (name) ": " (state) " (" (format!("{from:.0}–{to:.0}")) " s)" }
                    }
                    @if !faults.is_empty() {
                        rect class="fault" x=(c(sc.x(from))) y=(c(y + LANE))
                            width=(width(from, to, 0.5)) height=(STRIP) {
                            title { (faults.join("; ")) " (" (format!("{from:.0}–{to:.0}")) " s)" }
                        }
                    }
                }
            }
            @for w in &tl.failover_windows {
                @let took = format!("{:.1}", w.to_s - w.from_s);
                rect class="window" x=(c(sc.x(w.from_s))) y=(top)
                    width=(width(w.from_s, w.to_s, 1.0)) height=(c(bottom - top)) {
                    title { "failover: " (took) " s" }
                }
                text class="small" x=(c(sc.x(w.from_s))) y=(c(top - 6.0)) { "failover " (took) " s" }
            }
            @for (n, m) in tl.steps.iter().enumerate() {
                @let x = c(sc.x(m.t_s));
                line class="step" x1=(x) y1=(c(top - 22.0)) x2=(x) y2=(c(bottom)) {
                    title { (format!("{:.1}", m.t_s)) " s: " (m.label) }
                }
                text class="stepno" x=(x) y=(c(top - 24.0)) { (n + 1) }
            }
            @if let Some(at) = violation_at {
                @let x = c(sc.x(at));
                line class="violation" x1=(x) y1=(top) x2=(x) y2=(c(bottom)) {
                    title { "violation at " (format!("{at:.3}")) " s" }
                }
            }
            (axis(&sc, bottom + STRIP + 2.0))
        }
    }
}

/// Runs of equal values: (from, to, value).
fn segments<T: PartialEq + Clone>(
    samples: &[Sample],
    end: f64,
    value: impl Fn(&Sample) -> T,
) -> Vec<(f64, f64, T)> {
    let mut out: Vec<(f64, f64, T)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let v = value(s);
        let to = samples.get(i + 1).map_or(end, |n| n.t_s);
        match out.last_mut() {
            Some(last) if last.2 == v => last.1 = to,
            _ => out.push((s.t_s, to, v)),
        }
    }
    out
}

fn axis(sc: &Scale, y: f64) -> Markup {
    let step = nice_step(sc.end / 10.0);
    let ticks =
        std::iter::successors(Some(0.0), |t| Some(t + step)).take_while(|t| *t <= sc.end + 1e-9);
    html! {
        @for t in ticks {
            @let x = c(sc.x(t));
            line class="tick" x1=(x) y1=(c(y)) x2=(x) y2=(c(y + 4.0)) {}
            text class="small" x=(x) y=(c(y + 14.0)) text-anchor="middle" { (t) "s" }
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    (nice * mag).max(1.0)
}

/// A named line: its label, its CSS class, its (time, value) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// A line plot of several series over time.
fn plot(title: &str, end: f64, series: &[Series]) -> Markup {
    let sc = Scale { end };
    let (h, top) = (110.0, 24.0);
    let max = series
        .iter()
        .flat_map(|(_, _, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let ymax = nice_step(max / 4.0) * (max / nice_step(max / 4.0)).ceil();
    let y = |v: f64| top + h - v / ymax * h;
    let total = top + h + 22.0;
    html! {
        svg class="plot" width=(WIDTH) height=(total) viewBox={ "0 0 " (WIDTH) " " (total) }
            xmlns="http://www.w3.org/2000/svg" {
            text class="lane" x=(c(LEFT + 10.0)) y=(c(top - 12.0)) { (title) }
            @for v in [0.0, ymax / 2.0, ymax] {
                line class="grid" x1=(LEFT) y1=(c(y(v))) x2=(c(WIDTH - RIGHT)) y2=(c(y(v))) {}
                text class="small" x=(c(LEFT - 8.0)) y=(c(y(v) + 4.0)) text-anchor="end" { (v) }
            }
            @for (i, (name, cls, pts)) in series.iter().enumerate() {
                @let points: Vec<String> = pts
                    .iter()
                    .map(|(t, v)| format!("{:.1},{:.1}", sc.x(*t), y(*v)))
                    .collect();
                polyline class=(cls) points=(points.join(" ")) {}
                text class={ "small " (cls) "-label" } x=(c(LEFT + 130.0 + 160.0 * i as f64))
                    y=(c(top - 12.0)) { "— " (name) }
            }
            (axis(&sc, top + h + 2.0))
        }
    }
}

fn queues_svg(samples: &[Sample], end: f64) -> Markup {
    let nodes = samples.first().map_or(0, |s| s.machines.len().min(2));
    let series = |pick: fn(&crate::record::MachineSample) -> u32| -> Vec<(f64, f64)> {
        samples
            .iter()
            .map(|s| {
                let v: u32 = s.machines.iter().take(nodes).map(pick).sum();
                (s.t_s, f64::from(v))
            })
            .collect()
    };
    plot(
        "queues (logs)",
        end,
        &[
            ("copy queue", "copy", series(|m| m.copy_queue)),
            ("replay queue", "replay", series(|m| m.replay_queue)),
        ],
    )
}

fn acked_svg(samples: &[Sample], end: f64) -> Markup {
    let pts = samples.iter().map(|s| (s.t_s, s.acked as f64)).collect();
    plot(
        "acknowledged",
        end,
        &[("messages acknowledged", "acked", pts)],
    )
}

fn steps_list(tl: &Timeline) -> Markup {
    html! {
        @if !tl.steps.is_empty() {
            ol class="steps" {
                @for m in &tl.steps {
                    li { span class="t" { (format!("{:.1}", m.t_s)) " s" } " " (m.label) }
                }
            }
        }
    }
}

fn class_name(state: &str) -> String {
    state
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn anchor(scenario: &str, seed: Option<u64>) -> String {
    match seed {
        Some(s) => format!("{}-seed-{s}", class_name(scenario)),
        None => class_name(scenario),
    }
}

fn legend() -> Markup {
    let key = |cls: &str| html! { span class={ "key " (cls) } {} };
    html! {
        p class="legend" {
            "Lanes: "
            (key("st-active")) " active "
            (key("st-onlining")) " onlining / draining "
            (key("st-moving")) " moving "
            (key("st-passive")) " passive "
            (key("st-blocked")) " blocked by the mount dial "
            (key("st-offline")) " offline "
            (key("st-paused")) " paused "
            (key("st-down")) " down · "
            (key("st-outage")) " client outage · "
            (key("fault")) " fault acting (hover for what) · "
            (key("window")) " failover window · numbered lines: scenario steps"
        }
    }
}

const CSS: &str = r#"body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222}
h1{margin:0 0 6px}h2{margin:28px 0 6px;border-bottom:1px solid #ddd}
code,pre{font:12px ui-monospace,Consolas,monospace}pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:320px}
.total.pass{color:#1b7a2f;font-weight:bold}.total.fail{color:#b71c1c;font-weight:bold}
table.summary{border-collapse:collapse}table.summary td,table.summary th{border:1px solid #ddd;padding:3px 10px;text-align:right}
table.summary td:first-child,table.summary th:first-child{text-align:left}tr.fail td{background:#fdecea}
details{margin:6px 0;padding:4px 8px;border:1px solid #e4e4e4;border-radius:4px}summary{cursor:pointer}
.badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-weight:bold}.badge.pass{background:#2e7d32}.badge.fail{background:#c62828}
.violation{background:#fdecea;border-left:4px solid #c62828;padding:6px 10px;margin:6px 0}
.end{color:#555;margin:4px 0}.note{color:#555}
svg{display:block;margin:4px 0}
text{font:11px system-ui,sans-serif;fill:#333}text.lane{text-anchor:end;font-weight:bold}svg.plot text.lane{text-anchor:start}text.small{font-size:10px;fill:#555}
text.stepno{font-size:10px;text-anchor:middle;fill:#6a1b9a;font-weight:bold}
.st-active{fill:#2e9e44;background:#2e9e44}.st-onlining,.st-draining{fill:#9ccc65;background:#9ccc65}.st-moving{fill:#42a5f5;background:#42a5f5}
.st-passive{fill:#b0c4de;background:#b0c4de}.st-blocked{fill:#ff9800;background:#ff9800}.st-offline{fill:#d5d5d5;background:#d5d5d5}
.st-paused{fill:#9575cd;background:#9575cd}.st-down{fill:#424242;background:#424242}
.st-witness-up,.st-hub-up,.st-clean{fill:#e0eedd}.st-degraded{fill:#ffcdd2}.st-witness-down,.st-hub-down{fill:#e57373}.st-served{fill:#e0eedd}.st-outage{fill:#e53935;background:#e53935}
.owner-node1{fill:#80cbc4}.owner-node2{fill:#ffcc80}.owner-none{fill:#f0f0f0}
rect.fault{fill:#d32f2f;opacity:.75}.key.fault{background:#d32f2f}
rect.window{fill:#fff176;opacity:.35;stroke:#f9a825}.key.window{background:#fff59d}
rect.liveness{fill:#eceff1}
line.step{stroke:#6a1b9a;stroke-dasharray:3 2}line.violation{stroke:#c62828;stroke-width:2}
line.tick{stroke:#999}line.grid{stroke:#eee}
polyline{fill:none;stroke-width:1.5}polyline.copy{stroke:#1e88e5}polyline.replay{stroke:#fb8c00}polyline.acked{stroke:#2e7d32}
.copy-label{fill:#1e88e5}.replay-label{fill:#fb8c00}.acked-label{fill:#2e7d32}
.key{display:inline-block;width:14px;height:10px;margin:0 2px 0 8px;border:1px solid #999;vertical-align:middle}
ol.steps{font-size:12px;columns:2;margin:4px 0}ol.steps .t{color:#6a1b9a;display:inline-block;min-width:56px}
"#;
