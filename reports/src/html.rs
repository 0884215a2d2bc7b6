//! `index.html`: one self-contained page (inline CSS and SVG, no scripts, no network) with a
//! summary table and, per scenario and seed, a timeline of every machine's state with faults
//! shaded, failover windows and client outages marked, plots of the passive's queues and of
//! acknowledged messages, and for a violation the events that led to it.

use std::fmt::Write;

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

pub fn render(runs: &[RunRecord], meta: &Meta) -> String {
    let failed = runs.iter().filter(|r| !r.passed()).count();
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str("<title>ccr-sim report</title>\n<style>\n");
    out.push_str(CSS);
    out.push_str("</style></head><body>\n");
    let _ = write!(
        out,
        "<h1>ccr-sim report</h1>\n<p class=\"total {}\">{} runs: {} passed, {failed} failed</p>\n",
        if failed == 0 { "pass" } else { "fail" },
        runs.len(),
        runs.len() - failed
    );
    if !meta.command.is_empty() {
        let _ = writeln!(out, "<p>Command: <code>{}</code></p>", esc(&meta.command));
    }
    out.push_str("<table class=\"summary\"><tr><th>scenario</th><th>runs</th><th>failed</th><th>failover min / median / max</th><th>acknowledged</th><th>lost</th></tr>\n");
    for s in by_scenario(runs) {
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if s.failed == 0 { "pass" } else { "fail" },
            anchor(&s.scenario, None),
            esc(&s.scenario),
            s.runs,
            s.failed,
            s.failover_text(),
            s.acked,
            s.lost
        );
    }
    out.push_str("</table>\n");
    out.push_str("<details><summary>Coverage: the situations these runs reached, rarest first</summary><table class=\"summary\"><tr><th>situation</th><th>runs</th><th>times</th></tr>\n");
    for row in crate::stats::coverage(runs) {
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            if row.runs == 0 { "fail" } else { "pass" },
            esc(&row.situation),
            row.runs,
            row.count
        );
    }
    out.push_str("</table></details>\n");
    out.push_str(LEGEND);

    let mut drawn_passing = 0;
    let mut current = None;
    for r in runs {
        if current != Some(&r.scenario) {
            current = Some(&r.scenario);
            let _ = writeln!(
                out,
                "<h2 id=\"{}\">{}</h2>",
                anchor(&r.scenario, None),
                esc(&r.scenario)
            );
        }
        let draw = !r.passed() || drawn_passing < DRAW_PASSING;
        if r.passed() && draw {
            drawn_passing += 1;
        }
        run_section(&mut out, r, draw);
    }
    if runs.iter().filter(|r| r.passed()).count() > DRAW_PASSING {
        let _ = writeln!(
            out,
            "<p class=\"note\">Timelines are drawn for every failure and the first {DRAW_PASSING} passing runs; runs.json holds all of them.</p>"
        );
    }
    out.push_str("</body></html>\n");
    out
}

fn run_section(out: &mut String, r: &RunRecord, draw: bool) {
    let failovers: Vec<String> = r
        .failovers
        .iter()
        .map(|f| format!("{:.1} s", f.duration_s))
        .collect();
    let _ = writeln!(
        out,
        "<details id=\"{}\"{}><summary><span class=\"badge {}\">{}</span> seed {} — failovers [{}], acknowledged {}, lost {}, {:.0} s simulated in {} ms</summary>",
        anchor(&r.scenario, Some(r.seed)),
        if r.passed() { "" } else { " open" },
        if r.passed() { "pass" } else { "fail" },
        esc(&r.outcome),
        r.seed,
        failovers.join(", "),
        r.acked,
        r.lost,
        r.sim_seconds,
        r.wall_ms
    );
    if let Some(v) = &r.violation {
        let _ = writeln!(
            out,
            "<div class=\"violation\"><b>{}</b> at {:.3} s: {}<br>Reproduce: <code>{}</code><pre>{}</pre></div>",
            v.invariant.name(),
            v.at_s,
            esc(&v.message),
            esc(&r.repro()),
            esc(&v.last_events.join("\n"))
        );
    }
    let _ = writeln!(
        out,
        "<p class=\"end\">End: {} · trace hash <code>{}</code></p>",
        esc(&r.final_state),
        r.trace_hash
    );
    if draw && !r.timeline.samples.is_empty() {
        let end = r.sim_seconds.max(1.0);
        timeline_svg(out, &r.timeline, end, r.violation.as_ref().map(|v| v.at_s));
        queues_svg(out, &r.timeline.samples, end);
        acked_svg(out, &r.timeline.samples, end);
        steps_list(out, &r.timeline);
    }
    out.push_str("</details>\n");
}

struct Scale {
    end: f64,
}

impl Scale {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.end).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }
}

fn timeline_svg(out: &mut String, tl: &Timeline, end: f64, violation_at: Option<f64>) {
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
    let _ = writeln!(
        out,
        "<svg class=\"timeline\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    if let Some(from) = tl.liveness_from_s {
        let _ = writeln!(
            out,
            "<rect class=\"liveness\" x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\"><title>liveness phase: faults stopped, everything healed</title></rect><text class=\"small\" x=\"{:.1}\" y=\"{:.1}\">liveness phase</text>",
            sc.x(from),
            sc.x(end) - sc.x(from),
            bottom - top,
            sc.x(from) + 3.0,
            top - 6.0
        );
    }
    for (i, name) in lanes.iter().enumerate() {
        let y = top + i as f64 * lane_h;
        let _ = writeln!(
            out,
            "<text class=\"lane\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT - 8.0,
            y + LANE * 0.7,
            esc(name)
        );
        let machines = tl.machines.len();
        let state_of = |s: &Sample| -> (String, Vec<String>) {
            match s.machines.get(i) {
                Some(m) => (m.state.clone(), m.faults.clone()),
                None if i == machines => (
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
        };
        for (from, to, (state, faults)) in segments(&tl.samples, end, state_of) {
            let cls = if i > machines {
                format!("owner-{}", class_name(&state))
            } else {
                format!("st-{}", class_name(&state))
            };
            let _ = writeln!(
                out,
                "<rect class=\"{cls}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{LANE}\"><title>{}: {} ({from:.0}–{to:.0} s)</title></rect>",
                sc.x(from),
                (sc.x(to) - sc.x(from)).max(0.5),
                esc(name),
                esc(&state)
            );
            if !faults.is_empty() {
                let _ = writeln!(
                    out,
                    "<rect class=\"fault\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{STRIP}\"><title>{} ({from:.0}–{to:.0} s)</title></rect>",
                    sc.x(from),
                    y + LANE,
                    (sc.x(to) - sc.x(from)).max(0.5),
                    esc(&faults.join("; "))
                );
            }
        }
    }
    for w in &tl.failover_windows {
        let _ = writeln!(
            out,
            "<rect class=\"window\" x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{:.1}\"><title>failover: {:.1} s</title></rect><text class=\"small\" x=\"{:.1}\" y=\"{:.1}\">failover {:.1} s</text>",
            sc.x(w.from_s),
            (sc.x(w.to_s) - sc.x(w.from_s)).max(1.0),
            bottom - top,
            w.to_s - w.from_s,
            sc.x(w.from_s),
            top - 6.0,
            w.to_s - w.from_s
        );
    }
    for (n, m) in tl.steps.iter().enumerate() {
        let x = sc.x(m.t_s);
        let _ = writeln!(
            out,
            "<line class=\"step\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"><title>{:.1} s: {}</title></line><text class=\"stepno\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
            top - 22.0,
            m.t_s,
            esc(&m.label),
            top - 24.0,
            n + 1
        );
    }
    if let Some(at) = violation_at {
        let x = sc.x(at);
        let _ = writeln!(
            out,
            "<line class=\"violation\" x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"><title>violation at {at:.3} s</title></line>"
        );
    }
    axis(out, &sc, bottom + STRIP + 2.0);
    out.push_str("</svg>\n");
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

fn axis(out: &mut String, sc: &Scale, y: f64) {
    let step = nice_step(sc.end / 10.0);
    let mut t = 0.0;
    while t <= sc.end + 1e-9 {
        let x = sc.x(t);
        let _ = write!(
            out,
            "<line class=\"tick\" x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text class=\"small\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y + 4.0,
            y + 14.0,
            fmt_time(t)
        );
        t += step;
    }
    out.push('\n');
}

fn fmt_time(t: f64) -> String {
    format!("{t}s")
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

/// A line plot of several series over time.
/// A named line: its label, its CSS class, its (time, value) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

fn plot(out: &mut String, title: &str, end: f64, series: &[Series]) {
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
    let _ = writeln!(
        out,
        "<svg class=\"plot\" width=\"{WIDTH}\" height=\"{total}\" viewBox=\"0 0 {WIDTH} {total}\" xmlns=\"http://www.w3.org/2000/svg\"><text class=\"lane\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        LEFT + 10.0,
        top - 12.0,
        esc(title)
    );
    for v in [0.0, ymax / 2.0, ymax] {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><text class=\"small\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            y(v),
            WIDTH - RIGHT,
            y(v),
            LEFT - 8.0,
            y(v) + 4.0
        );
    }
    let mut legend_x = LEFT + 130.0;
    for (name, cls, pts) in series {
        let path: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", sc.x(*t), y(*v)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"{cls}\" points=\"{}\"/><text class=\"small {cls}-label\" x=\"{legend_x:.1}\" y=\"{:.1}\">— {}</text>",
            path.join(" "),
            top - 12.0,
            esc(name)
        );
        legend_x += 160.0;
    }
    axis(out, &sc, top + h + 2.0);
    out.push_str("</svg>\n");
}

fn queues_svg(out: &mut String, samples: &[Sample], end: f64) {
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
        out,
        "queues (logs)",
        end,
        &[
            ("copy queue", "copy", series(|m| m.copy_queue)),
            ("replay queue", "replay", series(|m| m.replay_queue)),
        ],
    );
}

fn acked_svg(out: &mut String, samples: &[Sample], end: f64) {
    let pts = samples.iter().map(|s| (s.t_s, s.acked as f64)).collect();
    plot(
        out,
        "acknowledged",
        end,
        &[("messages acknowledged", "acked", pts)],
    );
}

fn steps_list(out: &mut String, tl: &Timeline) {
    if tl.steps.is_empty() {
        return;
    }
    out.push_str("<ol class=\"steps\">");
    for m in &tl.steps {
        let _ = write!(
            out,
            "<li><span class=\"t\">{:.1} s</span> {}</li>",
            m.t_s,
            esc(&m.label)
        );
    }
    out.push_str("</ol>\n");
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

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const LEGEND: &str = "<p class=\"legend\">Lanes: \
<span class=\"key st-active\"></span> active \
<span class=\"key st-onlining\"></span> onlining / draining \
<span class=\"key st-moving\"></span> moving \
<span class=\"key st-passive\"></span> passive \
<span class=\"key st-blocked\"></span> blocked by the mount dial \
<span class=\"key st-offline\"></span> offline \
<span class=\"key st-paused\"></span> paused \
<span class=\"key st-down\"></span> down · \
<span class=\"key st-outage\"></span> client outage · \
<span class=\"key fault\"></span> fault acting (hover for what) · \
<span class=\"key window\"></span> failover window · numbered lines: scenario steps</p>\n";

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
.st-witness-up,.st-clean{fill:#e0eedd}.st-degraded{fill:#ffcdd2}.st-witness-down{fill:#e57373}.st-served{fill:#e0eedd}.st-outage{fill:#e53935;background:#e53935}
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
