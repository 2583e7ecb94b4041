//! Which checks need which: a mirror check proves nothing about mirroring when the tester's
//! requests never reach the mirroring route, so it waits for that route's check and, when it
//! failed, is reported as blocked by it instead of spending its own patience on a failure
//! that only repeats the cause.

use crate::report::CheckResult;

/// The check that blocks a check needing `needs` (`Check::needs`, direct prerequisites
/// only: `Spec::checks` derives them), given the checks that ran before it: the root cause
/// (a prerequisite that failed, or what blocked it), or `None` when every prerequisite that
/// ran passed. A filter that leaves a prerequisite out runs the check normally.
///
/// - A mirroring check needs its identity's requests to take their route.
/// - The shadow-host, percentage and mirror-down checks learn that the mirror received
///   something from a mirrored identity's request, so they need that identity's requests
///   to be mirrored at all; with the mirror down, it must still be served as expected, so
///   that needs its route too.
/// - An absence check needs nothing: its barrier goes straight to the mirror.
pub fn blocked_by(needs: &[String], ran: &[CheckResult]) -> Option<String> {
    needs.iter().find_map(|p| {
        let result = ran.iter().find(|r| &r.name == p)?;
        match (&result.blocked_by, result.passed) {
            (Some(root), _) => Some(root.clone()),
            (None, false) => Some(result.name.clone()),
            (None, true) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{Check, Spec};

    fn checks() -> Vec<Check> {
        Spec::default().checks()
    }

    fn needs(name: &str) -> Vec<String> {
        checks()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.needs)
            .unwrap_or_default()
    }

    fn result(name: &str, passed: bool, blocked_by: Option<&str>) -> CheckResult {
        CheckResult {
            name: name.into(),
            passed,
            blocked_by: blocked_by.map(Into::into),
            ..CheckResult::default()
        }
    }

    #[test]
    fn prerequisites_run_before_their_dependents() {
        // The harness runs the checks in CHECKS order, one at a time: a prerequisite that
        // came later would never have a result to block on.
        let checks = checks();
        for (i, check) in checks.iter().enumerate() {
            for p in &check.needs {
                let at = checks
                    .iter()
                    .position(|c| &c.name == p)
                    .expect("a real check");
                assert!(at < i, "{p} must run before {}", check.name);
            }
        }
    }

    #[test]
    fn a_failed_route_blocks_every_mirror_check_naming_the_root_cause() {
        let mut ran = vec![
            result("routing::anonymous_served_by_v1", true, None),
            result("routing::tester_served_by_v2", false, None),
        ];
        for check in &checks()[2..] {
            let blocked = blocked_by(&check.needs, &ran);
            if check.name == "mirror::anonymous_requests_not_mirrored" {
                // Its barrier goes straight to the mirror: the tester route does not matter.
                assert_eq!(blocked, None);
                continue;
            }
            assert_eq!(
                blocked.as_deref(),
                Some("routing::tester_served_by_v2"),
                "{}",
                check.name
            );
            ran.push(result(&check.name, false, blocked.as_deref()));
        }
    }

    #[test]
    fn nothing_blocks_when_the_prerequisites_passed_or_did_not_run() {
        let passed = [
            result("routing::tester_served_by_v2", true, None),
            result("mirror::tester_requests_mirrored_with_end_user", true, None),
        ];
        for check in checks() {
            assert_eq!(blocked_by(&check.needs, &passed), None, "{}", check.name);
            // A filter that leaves the prerequisites out: the check runs normally.
            assert_eq!(blocked_by(&check.needs, &[]), None, "{}", check.name);
        }
        // The anonymous route blocks nothing: no mirror check needs it.
        let anonymous_failed = [result("routing::anonymous_served_by_v1", false, None)];
        for check in checks() {
            assert_eq!(
                blocked_by(&check.needs, &anonymous_failed),
                None,
                "{}",
                check.name
            );
        }
    }

    #[test]
    fn a_failed_mirror_blocks_the_checks_that_need_a_mirrored_request() {
        let ran = [
            result("routing::tester_served_by_v2", true, None),
            result(
                "mirror::tester_requests_mirrored_with_end_user",
                false,
                None,
            ),
        ];
        assert_eq!(
            blocked_by(&needs("mirror::shadow_host_matches_istio_version"), &ran).as_deref(),
            Some("mirror::tester_requests_mirrored_with_end_user")
        );
    }
}
