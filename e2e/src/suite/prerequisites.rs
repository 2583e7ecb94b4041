//! Which checks need which: a mirror check proves nothing about mirroring when the tester's
//! requests never reach the mirroring route, so it waits for that route's check and, when it
//! failed, is reported as blocked by it instead of spending its own patience on a failure
//! that only repeats the cause.

use crate::report::CheckResult;

/// The checks each check needs to have passed, when they ran in the same run (a filter that
/// leaves a prerequisite out runs the check normally). Only direct prerequisites: a blocked
/// check blocks its own dependents in turn, and every one names the root cause.
///
/// - The tester's mirroring needs the tester's requests to take the tester route.
/// - Every other mirror check learns that the mirror received something from a tester
///   request (the barrier of the absence and percentage checks, the one request of the
///   shadow-host check, the restore of the mirror-down check), so it needs tester requests
///   to be mirrored at all.
/// - With the mirror down, the tester must still be served by v2: that needs v2 to serve
///   the tester first.
pub fn prerequisites(check: &str) -> &'static [&'static str] {
    const TESTER_ROUTE: &str = "routing::tester_served_by_v2";
    const TESTER_MIRRORED: &str = "mirror::tester_requests_mirrored_with_end_user";
    match check {
        "mirror::tester_requests_mirrored_with_end_user" => &[TESTER_ROUTE],
        "mirror::anonymous_requests_not_mirrored"
        | "mirror::shadow_host_matches_istio_version"
        | "mirror::percentage_within_tolerance" => &[TESTER_MIRRORED],
        "mirror::primary_unaffected_when_mirror_down" => &[TESTER_ROUTE, TESTER_MIRRORED],
        _ => &[],
    }
}

/// The check that blocks `check`, given the checks that ran before it: the root cause (a
/// prerequisite that failed, or what blocked it), or `None` when every prerequisite that ran
/// passed.
pub fn blocked_by(check: &str, ran: &[CheckResult]) -> Option<String> {
    prerequisites(check).iter().find_map(|p| {
        let result = ran.iter().find(|r| r.name == *p)?;
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
    use crate::suite::CHECKS;

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
        for (i, check) in CHECKS.iter().enumerate() {
            for p in prerequisites(check) {
                let at = CHECKS.iter().position(|c| c == p).expect("a real check");
                assert!(at < i, "{p} must run before {check}");
            }
        }
    }

    #[test]
    fn a_failed_route_blocks_every_mirror_check_naming_the_root_cause() {
        let mut ran = vec![
            result("routing::anonymous_served_by_v1", true, None),
            result("routing::tester_served_by_v2", false, None),
        ];
        for check in &CHECKS[2..] {
            let blocked = blocked_by(check, &ran);
            assert_eq!(
                blocked.as_deref(),
                Some("routing::tester_served_by_v2"),
                "{check}"
            );
            ran.push(result(check, false, blocked.as_deref()));
        }
    }

    #[test]
    fn nothing_blocks_when_the_prerequisites_passed_or_did_not_run() {
        let passed = [
            result("routing::tester_served_by_v2", true, None),
            result("mirror::tester_requests_mirrored_with_end_user", true, None),
        ];
        for check in CHECKS {
            assert_eq!(blocked_by(check, &passed), None, "{check}");
            // A filter that leaves the prerequisites out: the check runs normally.
            assert_eq!(blocked_by(check, &[]), None, "{check}");
        }
        // The anonymous route blocks nothing: no mirror check needs it.
        let anonymous_failed = [result("routing::anonymous_served_by_v1", false, None)];
        for check in CHECKS {
            assert_eq!(blocked_by(check, &anonymous_failed), None, "{check}");
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
            blocked_by("mirror::shadow_host_matches_istio_version", &ran).as_deref(),
            Some("mirror::tester_requests_mirrored_with_end_user")
        );
    }
}
