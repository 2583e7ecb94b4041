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
.blocked{color:#6e7781;font-weight:600}\
code{font-family:ui-monospace,monospace;font-size:12px}.verdict{font-size:18px}\
svg text{font:12px system-ui,sans-serif}";

/// Escapes text for HTML and renders its Markdown code spans (`x`) as `<code>`, as the
/// messages are written for summary.md too.
fn text(t: &str) -> String {
    let mut out = String::new();
    for (i, part) in t.split('`').enumerate() {
        // An odd count of backticks leaves the last part outside any span.
        if i % 2 == 1 && t.matches('`').count() > i {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            if i % 2 == 1 {
                out.push('`');
            }
            out.push_str(&esc(part));
        }
    }
    out
}

/// The whole page.
pub fn render(report: &RunReport) -> String {
    let verdict = match report.verdict() {
        (true, t) => format!("<span class=pass>PASS</span>: {}", text(&t)),
        (false, t) => format!("<span class=fail>FAIL</span>: {}", text(&t)),
    };
    let exit = report.exit();
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>mirror-e2e {} {}</title><style>{STYLE}</style></head><body>",
        esc(&report.mode),
        esc(&report.run_id)
    );
    let _ = write!(
        s,
        "<h1>mirror-e2e: {} mode, Istio {}, run <code>{}</code></h1><p class=verdict id=verdict>{verdict}</p><p id=exit>exit {} ({})</p>",
        esc(&report.mode),
        esc(report.istio_label()),
        esc(&report.run_id),
        exit.code(),
        esc(exit.meaning())
    );
    let _ = write!(
        s,
        "<h2>Checks</h2><table id=checks><tr><th></th><th>check</th><th>attempts</th><th>time</th><th>what was seen</th></tr>"
    );
    for c in &report.checks {
        let _ = write!(
            s,
            "<tr class=check><td class={}>{}</td><td><code>{}</code></td><td>{}</td><td>{:.3}s</td><td>{}</td></tr>",
            c.status().to_lowercase(),
            c.status(),
            esc(&c.name),
            esc(&c.attempts_text()),
            c.duration.as_secs_f64(),
            text(&c.message)
        );
    }
    for name in &report.not_run {
        let _ = write!(
            s,
            "<tr class=not-run><td class=blocked>NOT RUN</td><td><code>{}</code></td><td>-</td><td>-</td><td>not selected{}</td></tr>",
            esc(name),
            report
                .selection
                .as_deref()
                .map(|sel| format!(" ({})", text(sel)))
                .unwrap_or_default()
        );
    }
    s.push_str("</table>");
    for c in report.causes() {
        let _ = write!(
            s,
            "<h2 class=fail>{}</h2><p>expected: {}</p><p>seen: {}</p>",
            esc(&c.name),
            text(c.expectation()),
            text(&c.message),
        );
        for (what, value) in &c.observed {
            let _ = write!(
                s,
                "<p>observed {}: <code>{}</code></p>",
                esc(what),
                esc(value)
            );
        }
        let _ = write!(
            s,
            "<p>open first: <code>{}</code></p>",
            esc(&report.first_evidence(c))
        );
    }
    let _ = write!(s, "<h2>Timeline</h2>{}", timeline(report));
    // A run stopped before any check sent a request has no journey to draw.
    if !report.checks.is_empty() {
        let _ = write!(
            s,
            "<h2>Two requests through the mesh</h2>{}",
            journey(report)
        );
    }
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
        let _ = write!(s, "<p>note: {}</p>", text(note));
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

/// What a check observed, and whether it passed; `None` when it did not run or recorded
/// nothing of `what`.
fn observed<'a>(report: &'a RunReport, check: &str, what: &str) -> Option<(&'a str, bool)> {
    let c = report.checks.iter().find(|c| c.name == check)?;
    Some((c.observed.get(what)?.as_str(), c.passed))
}

/// Whether check `check` ran and passed.
fn passed(report: &RunReport, check: &str) -> bool {
    report.checks.iter().any(|c| c.name == check && c.passed)
}

/// What the mirror got of one identity's requests: a passing mirror check's observation, or
/// the count a failed routing check kept, red where it differs from the expectation.
fn mirrored_label(
    report: &RunReport,
    routing: &str,
    mirror_check: &str,
    when_passed: Option<String>,
) -> (String, Colour) {
    if passed(report, mirror_check)
        && let Some(label) = when_passed
    {
        return (label, Colour::AsExpected);
    }
    match observed(report, routing, "mirrored") {
        Some((count, _)) if count.starts_with("0 of") => (
            format!("nothing mirrored ({count} requests)"),
            Colour::Differs,
        ),
        Some((count, _)) => (
            format!("mirror: {count} requests mirrored"),
            Colour::Differs,
        ),
        None => ("mirror: not observed".to_owned(), Colour::NotObserved),
    }
}

/// How a box or label of the journey is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Colour {
    /// What was observed is what was expected.
    AsExpected,
    /// What was observed differs from the expectation: red.
    Differs,
    /// Nothing was observed (the check did not run, or recorded nothing).
    NotObserved,
}

impl Colour {
    fn fill(self) -> &'static str {
        match self {
            Colour::AsExpected => "#ddf4ff",
            Colour::Differs => "#ffebe9",
            Colour::NotObserved => "#f6f8fa",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Colour::AsExpected => "#1f2328",
            Colour::Differs => "#cf222e",
            Colour::NotObserved => "#6e7781",
        }
    }
}

/// The journey picture as it is drawn: its SVG elements, and how far right they reach (the
/// picture is as wide as its longest label: a failing run's labels, a route's name or what
/// served the request, are longer than a passing run's).
#[derive(Default)]
struct Canvas {
    svg: String,
    right: f64,
}

impl Canvas {
    fn boxed(&mut self, x: f64, y: f64, label: &str, colour: Colour) {
        let width = BOX_WIDTH.max(text_width(label, FONT_PX) + 16.0);
        self.right = self.right.max(x + width);
        self.svg.push_str(&format!(
            "<rect x='{x}' y='{y}' width='{width}' height='34' rx='6' fill='{}' stroke='{}'/><text x='{}' y='{}' text-anchor='middle' fill='{}'>{}</text>",
            colour.fill(),
            if colour == Colour::Differs {
                "#cf222e"
            } else {
                "#57606a"
            },
            x + width / 2.0,
            y + 21.0,
            colour.text(),
            esc(label)
        ));
    }

    fn label(&mut self, x: f64, y: f64, px: f64, fill: &str, text: &str) {
        self.right = self.right.max(x + text_width(text, px));
        self.svg.push_str(&format!(
            "<text x='{x}' y='{y}' font-size='{px}' fill='{fill}'>{}</text>",
            esc(text)
        ));
    }

    fn arrow(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), dashed: bool) {
        self.svg.push_str(&format!(
            "<line x1='{x1}' y1='{y1}' x2='{x2}' y2='{y2}' stroke='#57606a' stroke-width='1.5' marker-end='url(#arrow)'{}/>",
            if dashed {
                " stroke-dasharray='5 4'"
            } else {
                ""
            }
        ));
    }

    fn into_svg(self) -> String {
        let width = (self.right + 12.0).max(900.0).ceil();
        format!(
            "<svg id=journey xmlns='http://www.w3.org/2000/svg' width='{width}' height='250' role=img aria-label='request journeys'>\
             <defs><marker id='arrow' markerWidth='8' markerHeight='8' refX='7' refY='4' orient='auto'><path d='M0,0 L8,4 L0,8 z' fill='#57606a'/></marker></defs>{}</svg>",
            self.svg
        )
    }
}

/// Who sends, the routing check that says who served them, and what the mirror saw of it.
fn journey_rows(report: &RunReport) -> [(&'static str, &'static str, (String, Colour)); 2] {
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
    [
        (
            "tester",
            "routing::tester_served_by_v2",
            mirrored_label(
                report,
                "routing::tester_served_by_v2",
                "mirror::tester_requests_mirrored_with_end_user",
                end_user.map(|(u, _)| {
                    format!("mirror: end-user {u}, host {}", host.map_or("?", |h| h.0))
                }),
            ),
        ),
        (
            "anonymous",
            "routing::anonymous_served_by_v1",
            mirrored_label(
                report,
                "routing::anonymous_served_by_v1",
                "mirror::anonymous_requests_not_mirrored",
                Some("not mirrored".to_owned()),
            ),
        ),
    ]
}

/// The tester's and an anonymous request's path, from what the checks observed, passing or
/// failing: a failed routing check draws the workload and route that really served the
/// request, in red.
fn journey(report: &RunReport) -> String {
    let mut canvas = Canvas::default();
    for (row, (who, routing, (mirrored, mirror_colour))) in
        journey_rows(report).into_iter().enumerate()
    {
        let y = 20.0 + row as f64 * 120.0;
        canvas.label(0.0, y + 21.0, FONT_PX, "#1f2328", who);
        canvas.boxed(80.0, y, "ingress gateway", Colour::AsExpected);
        canvas.arrow((250.0, y + 17.0), (290.0, y + 17.0), false);
        canvas.boxed(290.0, y, "productpage", Colour::AsExpected);
        canvas.arrow((460.0, y + 17.0), (580.0, y + 17.0), false);
        let (served, colour) = match observed(report, routing, "served by") {
            Some((w, true)) => (w.to_owned(), Colour::AsExpected),
            Some((w, false)) => (w.to_owned(), Colour::Differs),
            None => ("not observed".to_owned(), Colour::NotObserved),
        };
        // Above the box it led to, where a long route name has the row to itself.
        if let Some((route, ok)) = observed(report, routing, "route") {
            let fill = if ok { "#1f2328" } else { "#cf222e" };
            canvas.label(580.0, y - 4.0, 11.0, fill, &format!("route {route}"));
        }
        canvas.boxed(580.0, y, &served, colour);
        if colour == Colour::Differs {
            let expected = report
                .checks
                .iter()
                .find(|c| c.name == routing)
                .map_or("(not recorded)", CheckResult::expectation)
                .replace('`', "");
            canvas.label(
                460.0,
                y + 96.0,
                FONT_PX,
                "#cf222e",
                &format!("expected: {expected}"),
            );
        }
        canvas.arrow((665.0, y + 34.0), (665.0, y + 62.0), true);
        canvas.label(675.0, y + 60.0, FONT_PX, mirror_colour.text(), &mirrored);
    }
    canvas.into_svg()
}

/// The journey's boxes are at least this wide.
const BOX_WIDTH: f64 = 170.0;

/// The journey's font size (`svg text` in [`STYLE`]).
const FONT_PX: f64 = 12.0;

/// A generous width of `text` at `px`: wider than system-ui's average glyph (about 0.55
/// em), so an estimate never clips.
fn text_width(text: &str, px: f64) -> f64 {
    text.chars().count() as f64 * px * 0.62
}
