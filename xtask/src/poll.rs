//! Bounded polls for what offers no event to wait on (a process the kernel has yet to
//! start or end, an API server that is starting): xtask's counterpart of the suite's
//! `e2e::wait::poll_until`. Every poll has a name and a limit, stops at Ctrl-C, and its
//! error carries the last thing it saw.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::interrupt::Interrupt;

/// Polls `probe` until it returns `Ok(Some(value))`, for at most `limit`, or until
/// `interrupt` is set. `Ok(None)` means "not yet" (the probe writes what it saw into its
/// argument, quoted when the limit runs out); `Err` ends the poll at once. The interval
/// starts at 2 ms and doubles to 50 ms, so a fast answer is seen fast.
pub fn poll_until<T>(
    what: &str,
    limit: Duration,
    interrupt: Option<&Interrupt>,
    mut probe: impl FnMut(&mut String) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let mut interval = Duration::from_millis(2);
    let mut last_seen = "nothing yet".to_owned();
    loop {
        if let Some(interrupt) = interrupt {
            interrupt.check()?;
        }
        if let Some(value) = probe(&mut last_seen)? {
            return Ok(value);
        }
        if start.elapsed() >= limit {
            bail!(
                "waited {:.1?} for {what}; last seen: {last_seen}",
                start.elapsed()
            );
        }
        // Pacing between probes of state that sends no event; never a wait for something
        // assumed to be ready by then.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_that_runs_out_names_what_it_waited_for_and_what_it_saw() {
        let mut n = 0;
        let err = poll_until::<()>("the answer", Duration::from_millis(20), None, |seen| {
            n += 1;
            *seen = format!("attempt {n}");
            Ok(None)
        })
        .expect_err("runs out");
        let text = err.to_string();
        assert!(
            text.contains("for the answer; last seen: attempt"),
            "{text}"
        );
    }

    #[test]
    fn a_poll_returns_the_value_and_stops_on_an_error_or_ctrl_c() {
        let mut n = 0;
        let got = poll_until("three", Duration::from_secs(5), None, |_| {
            n += 1;
            Ok((n == 3).then_some(n))
        });
        assert_eq!(got.expect("value"), 3);
        let fatal = poll_until::<()>("x", Duration::from_secs(5), None, |_| bail!("broken"));
        assert_eq!(fatal.expect_err("fatal").to_string(), "broken");
        let interrupt = Interrupt::default();
        interrupt.trigger();
        let stopped = poll_until::<()>("x", Duration::from_secs(5), Some(&interrupt), |_| Ok(None));
        assert!(crate::interrupt::is_interrupted(
            &stopped.expect_err("interrupted")
        ));
    }
}
