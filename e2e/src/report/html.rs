//! `report.html`: the run's report as one self-contained page (no script, no network, no
//! external asset): the verdict, the checks, the phases, each failure's expectation and
//! evidence, and two pictures drawn as inline SVG from what the run observed:
//! - a timeline of the phases and of every check attempt (retries visible);
//! - the journey of one tester and one anonymous request: ingress -> productpage -> the
//!   reviews workload that served it, and the mirrored copy -> mirror with its `end-user`.

use std::fmt::Write as _;

use super::{CheckResult, RunReport};

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse}\
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}\
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}\
code{font-family:ui-monospace,monospace;font-size:12px}.verdict{font-size:18px}\
svg text{font:12px system-ui,sans-serif}";

/// The whole page.
pub fn render(report: &RunReport) -> String {
    let failed: Vec<&CheckResult> = report.checks.iter().filter(|c| !c.passed).collect();
    let verdict = match report.verdict() {
        (true, text) => format!("<span class=pass>PASS</span>: {}", esc(&text)),
        (false, text) => format!("<span class=fail>FAIL</span>: {}", esc(&text)),
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>mirror-e2e {} {}</title><style>{STYLE}</style></head><body>",
        esc(&report.mode),
        esc(&report.run_id)
    );
    let _ = write!(
        s,
        "<h1>mirror-e2e: {} mode, Istio {}, run <code>{}</code></h1><p class=verdict id=verdict>{verdict}</p>",
        esc(&report.mode),
        esc(&report.istio),
        esc(&report.run_id)
    );
    let _ = write!(
        s,
        "<h2>Checks</h2><table id=checks><tr><th></th><th>check</th><th>attempts</th><th>time</th><th>what was seen</th></tr>"
    );
    for c in &report.checks {
        let _ = write!(
            s,
            "<tr class=check><td class={}>{}</td><td><code>{}</code></td><td>{}</td><td>{:.3}s</td><td>{}</td></tr>",
            if c.passed { "pass" } else { "fail" },
            if c.passed { "PASS" } else { "FAIL" },
            esc(&c.name),
            c.attempts,
            c.duration.as_secs_f64(),
            esc(&c.message)
        );
    }
    s.push_str("</table>");
    for c in &failed {
        let _ = write!(
            s,
            "<h2 class=fail>{}</h2><p>expected: {}</p><p>seen: {}</p><p>open first: <code>{}</code></p>",
            esc(&c.name),
            esc(crate::suite::expectation(&c.name)),
            esc(&c.message),
            esc(report.first_evidence(&c.name))
        );
    }
    let _ = write!(s, "<h2>Timeline</h2>{}", timeline(report));
    let _ = write!(
        s,
        "<h2>Two requests through the mesh</h2>{}",
        journey(report)
    );
    let _ = write!(s, "<h2>Phases</h2><table id=phases>");
    for (name, d) in &report.phases {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{:.3}s</td></tr>",
            esc(name),
            d.as_secs_f64()
        );
    }
    s.push_str("</table>");
    for note in &report.notes {
        let _ = write!(s, "<p>note: {}</p>", esc(note));
    }
    s.push_str("</body></html>\n");
    s
}

/// Phases as one lane, the checks (inside the "checks" phase) one lane each, every attempt a
/// bar: green passed, red failed.
fn timeline(report: &RunReport) -> String {
    let total: f64 = report
        .phases
        .iter()
        .map(|(_, d)| d.as_secs_f64())
        .sum::<f64>()
        .max(0.001);
    let (left, width, lane) = (260.0, 640.0, 22.0);
    let x = |t: f64| left + t / total * width;
    let lanes = 1 + report.checks.len();
    let mut s = format!(
        "<svg id=timeline xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' role=img aria-label='timeline'>",
        left + width + 20.0,
        (lanes as f64 + 1.0) * lane
    );
    let mut t = 0.0;
    let mut checks_start = 0.0;
    for (i, (name, d)) in report.phases.iter().enumerate() {
        let secs = d.as_secs_f64();
        if name == "checks" {
            checks_start = t;
        }
        let fill = if i % 2 == 0 { "#8c959f" } else { "#afb8c1" };
        let _ = write!(
            s,
            "<rect x='{:.1}' y='2' width='{:.1}' height='16' fill='{fill}'><title>{} {:.3}s</title></rect>",
            x(t),
            (secs / total * width).max(1.0),
            esc(name),
            secs
        );
        t += secs;
    }
    let _ = write!(s, "<text x='0' y='14'>phases ({total:.2}s)</text>");
    let mut start = checks_start;
    for (row, c) in report.checks.iter().enumerate() {
        let y = (row as f64 + 1.0) * lane + 2.0;
        let _ = write!(s, "<text x='0' y='{:.1}'>{}</text>", y + 12.0, esc(&c.name));
        for (offset, dur, ok) in &c.timeline {
            let _ = write!(
                s,
                "<rect x='{:.1}' y='{y:.1}' width='{:.1}' height='16' fill='{}'><title>attempt at +{offset:.3}s, {dur:.3}s, {}</title></rect>",
                x(start + offset),
                (dur / total * width).max(1.5),
                if *ok { "#2da44e" } else { "#cf222e" },
                if *ok { "passed" } else { "failed" }
            );
        }
        start += c.duration.as_secs_f64();
    }
    s.push_str("</svg>");
    s
}

/// One observation of a check, when it passed and recorded it.
fn observed<'a>(report: &'a RunReport, check: &str, what: &str) -> Option<&'a str> {
    report
        .checks
        .iter()
        .find(|c| c.name == check && c.passed)?
        .observed
        .get(what)
        .map(String::as_str)
}

/// The tester's and an anonymous request's path, from what the checks observed.
fn journey(report: &RunReport) -> String {
    let tester_served = observed(report, "routing::tester_served_by_v2", "served by");
    let anon_served = observed(report, "routing::anonymous_served_by_v1", "served by");
    let end_user = observed(
        report,
        "mirror::tester_requests_mirrored_with_end_user",
        "end-user seen by the mirror",
    );
    let host = observed(
        report,
        "mirror::shadow_host_matches_istio_version",
        "shadow host",
    );
    let anon_not_mirrored = report
        .checks
        .iter()
        .any(|c| c.name == "mirror::anonymous_requests_not_mirrored" && c.passed);
    let boxed = |x: f64, y: f64, label: &str, ok: bool| {
        format!(
            "<rect x='{x}' y='{y}' width='150' height='34' rx='6' fill='{}' stroke='#57606a'/><text x='{}' y='{}' text-anchor='middle'>{}</text>",
            if ok { "#ddf4ff" } else { "#ffebe9" },
            x + 75.0,
            y + 21.0,
            esc(label)
        )
    };
    let arrow = |x1: f64, y1: f64, x2: f64, y2: f64, dashed: bool| {
        format!(
            "<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='#57606a' stroke-width='1.5' marker-end='url(#arrow)'{}/>",
            if dashed {
                " stroke-dasharray='5 4'"
            } else {
                ""
            }
        )
    };
    let mut s = String::from(
        "<svg id=journey xmlns='http://www.w3.org/2000/svg' width='900' height='250' role=img aria-label='request journeys'>\
         <defs><marker id='arrow' markerWidth='8' markerHeight='8' refX='7' refY='4' orient='auto'><path d='M0,0 L8,4 L0,8 z' fill='#57606a'/></marker></defs>",
    );
    for (row, (who, served, mirrored)) in [
        (
            "tester",
            tester_served,
            end_user.map(|u| format!("mirror: end-user {u}, host {}", host.unwrap_or("?"))),
        ),
        (
            "anonymous",
            anon_served,
            anon_not_mirrored.then(|| "not mirrored".to_owned()),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let y = 20.0 + row as f64 * 120.0;
        let _ = write!(s, "<text x='0' y='{}'>{who}</text>", y + 21.0);
        s.push_str(&boxed(90.0, y, "ingress gateway", true));
        s.push_str(&arrow(240.0, y + 17.0, 280.0, y + 17.0, false));
        s.push_str(&boxed(280.0, y, "productpage", true));
        s.push_str(&arrow(430.0, y + 17.0, 470.0, y + 17.0, false));
        s.push_str(&boxed(
            470.0,
            y,
            served.unwrap_or("not observed"),
            served.is_some(),
        ));
        let label = mirrored.unwrap_or_else(|| "mirror: not observed".to_owned());
        s.push_str(&arrow(545.0, y + 34.0, 545.0, y + 62.0, true));
        let _ = write!(
            s,
            "<text x='560' y='{}' fill='{}'>{}</text>",
            y + 58.0,
            if label.contains("not observed") {
                "#cf222e"
            } else {
                "#1f2328"
            },
            esc(&label)
        );
    }
    s.push_str("</svg>");
    s
}
