//! `junit.xml` for CI: a case per check; blocked and left-out checks are skipped cases
//! that say why.

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::RunReport;

impl RunReport {
    /// The JUnit XML report: a case per check; a blocked check and one the selection left
    /// out are skipped cases saying why, so a partial run does not look complete.
    pub fn junit(&self) -> String {
        let mut report = quick_junit::Report::new("mirror-e2e");
        let mut suite = TestSuite::new(format!("mirror-e2e-{}", self.mode));
        suite.add_property(Property::new("run-id", self.run_id.as_str()));
        suite.add_property(Property::new("istio", self.istio.as_str()));
        for (name, d) in &self.phases {
            suite.add_property(Property::new(
                format!("phase.{name}"),
                format!("{:.3}s", d.as_secs_f64()),
            ));
        }
        let case = |name: &str, status: TestCaseStatus| {
            let (class, name) = name.rsplit_once("::").unwrap_or(("", name));
            let mut case = TestCase::new(name, status);
            case.set_classname(class);
            case
        };
        for c in &self.checks {
            let status = match (c.passed, &c.blocked_by) {
                (true, _) => TestCaseStatus::success(),
                (false, Some(_)) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(c.message.as_str());
                    s
                }
                (false, None) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(c.message.as_str());
                    s
                }
            };
            let mut case = case(&c.name, status);
            case.set_time(c.duration);
            case.add_property(Property::new("attempts", c.attempts.to_string()));
            if c.passed {
                case.set_system_out(c.message.as_str());
            }
            suite.add_test_case(case);
        }
        for name in &self.not_run {
            let mut status = TestCaseStatus::skipped();
            status.set_message(format!(
                "not run: not selected{}",
                self.selection
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ));
            suite.add_test_case(case(name, status));
        }
        if let Some(error) = &self.error {
            // A run that stopped early is a failure CI must see, not an empty suite.
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(error.as_str());
            let mut case = TestCase::new("run", status);
            case.set_classname("mirror-e2e");
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }
}
