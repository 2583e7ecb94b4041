//! The sampled checks: a weighted split, a mirrored share, and the 50% variant of the
//! routing. Each sends a batch sized by [`sampling::plan`] and accepts the counts its
//! acceptance region allows, and reports what it measured.

use super::Suite;
use super::checks::{CheckFailure, Passed, passed};
use super::traffic::lock;
use crate::istio::{HttpMatchRequest, Percent, StringMatch, VirtualService};
use crate::mesh::Mesh;
use crate::report::{MIRRORED_SHARE, SPLIT};
use crate::retry::{RetryError, Stable};
use crate::sampling;

impl<M: Mesh> Suite<M> {
    /// `routing::<identity>_served_by_<subset>_<percent>_...`: a weighted split. One batch
    /// of the size [`sampling::plan`] gives the shares, each share's count inside its
    /// acceptance region; the split served is reported, passing or failing.
    pub async fn split(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let identity = &self.spec.identity(i);
        let who = &self.spec.identities[i].name;
        let shares = &self.spec.identities[i].served_by;
        let percents: Vec<f64> = shares.iter().map(|(_, p)| *p).collect();
        let plan = sampling::plan(&percents).map_err(|e| format!("{who}'s split: {e}"))?;
        let mut by_subset = Vec::new();
        for ((subset, _), acceptance) in shares.iter().zip(plan) {
            by_subset.push((subset.clone(), acceptance, self.workloads_of(subset)?));
        }
        let n = by_subset.first().map_or(0, |(_, a, _)| a.batch);
        let by_subset = &by_subset;
        let measured = &std::sync::Mutex::new(None::<String>);
        let stable = self
            .retry_with(self.policy.sampled(), |a| async move {
                let tags: Vec<String> = (0..n).map(|k| self.tag(name, a, &k.to_string())).collect();
                let replies = self.send_all(identity, &tags).await?;
                let mut counts = vec![0u32; by_subset.len()];
                for (reply, tag) in replies.iter().zip(&tags) {
                    let served = reply.workload.as_deref().unwrap_or("");
                    match by_subset.iter().position(|(_, _, w)| w.iter().any(|x| x == served)) {
                        Some(k) => counts[k] += 1,
                        None => {
                            return Err(format!(
                                "{tag} was served by {}, which no expected subset selects{}",
                                if served.is_empty() { "an unknown workload" } else { served },
                                self.trail(tag, identity)
                            ));
                        }
                    }
                }
                let words = split_words(by_subset.iter().map(|(s, _, _)| s.as_str()), &counts, n);
                *lock(measured) = Some(words.clone());
                for ((subset, acceptance, _), count) in by_subset.iter().zip(&counts) {
                    if !acceptance.accepts(*count) {
                        return Err(format!(
                            "{count} of {n} {who} requests served by {subset} ({}), expected {}%, accepting {}; served {words}",
                            sampling::percent_of(*count, n),
                            acceptance.percent,
                            acceptance.region()
                        ));
                    }
                }
                Ok(())
            })
            .await;
        let measured = lock(measured).take();
        let stable = match stable {
            Ok(stable) => stable,
            Err(e) => {
                let mut failure = CheckFailure::from(e);
                if let Some(words) = measured {
                    failure.cause = Some(format!("{who} requests were served {words}"));
                    failure.observed.push((SPLIT.into(), words));
                }
                return Err(failure);
            }
        };
        let accepted = by_subset
            .iter()
            .filter(|(_, a, _)| a.low != a.high)
            .map(|(s, a, _)| format!("{s} {}", a.region()))
            .collect::<Vec<_>>()
            .join(", ");
        let measured = measured.unwrap_or_default();
        Ok(passed(
            stable,
            format!("{n} {who} requests per batch, served {measured}; accepting {accepted}"),
        )
        .observing(SPLIT, measured))
    }

    /// `mirror::<identity>_requests_mirrored_<p>_percent`: a sampled mirror. One batch of
    /// the size [`sampling::plan`] gives; after it a barrier straight to the mirror says the
    /// log has caught up; the count mirrored must be inside the acceptance region, and each
    /// mirrored request carries the headers.
    pub async fn mirrored_sample(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let identity = &self.spec.identity(i);
        let who = &self.spec.identities[i].name;
        let percent = self.spec.identities[i].mirrored;
        let acceptance = &one_share(percent).map_err(|e| format!("{who}'s mirrored share: {e}"))?;
        let n = acceptance.batch;
        let measured = &std::sync::Mutex::new(None::<String>);
        let stable = self
            .retry_with(self.policy.sampled(), |a| async move {
                let tags: Vec<String> = (0..n).map(|k| self.tag(name, a, &k.to_string())).collect();
                self.send_all(identity, &tags).await?;
                self.barrier(name, a).await?;
                let seen = self.mesh.mirror_records().observe(&tags);
                let mirrored = seen.found.len() as u32;
                *lock(measured) = Some(share_words(mirrored, n));
                if !acceptance.accepts(mirrored) {
                    return Err(format!(
                        "{mirrored} of {n} {who} requests mirrored ({}), expected {percent}%, accepting {}",
                        sampling::percent_of(mirrored, n),
                        acceptance.region()
                    ));
                }
                self.expect_headers(i, seen.found.values())
            })
            .await;
        let measured = lock(measured).take();
        let stable = sampled_outcome(stable, measured.clone(), who)?;
        let measured = measured.unwrap_or_default();
        Ok(passed(
            stable,
            format!(
                "{n} {who} requests per batch, {measured} mirrored{}; accepting {}",
                self.sees(i),
                acceptance.region()
            ),
        )
        .observing(MIRRORED_SHARE, measured))
    }

    /// `mirror::percentage_within_tolerance`: a 50% variant of the routing, one batch of
    /// the size [`sampling::plan`] gives for 50%; the original routing is restored
    /// afterwards.
    pub async fn percentage(&self, i: usize, name: &str) -> Result<Passed, CheckFailure> {
        let original = self.routing_under_test()?;
        let barrier_prefix = format!("{}barrier/", super::tag_prefix(&self.run_id));
        let variant = percentage_variant(&original, sampling::PERCENT, &barrier_prefix)?;
        let acceptance = &one_share(sampling::PERCENT).map_err(|e| e.to_string())?;
        let n = acceptance.batch;
        self.apply(&variant).await?;
        let user = self.spec.identity(i);
        let who = &self.spec.identities[i].name;
        let measured = &std::sync::Mutex::new(None::<String>);
        let sampled = self
            .retry_with(self.policy.sampled(), |a| {
                let (user, barrier_prefix) = (user.clone(), barrier_prefix.clone());
                async move {
                    let tags: Vec<String> =
                        (0..n).map(|k| self.tag(name, a, &k.to_string())).collect();
                    self.send_all(&user, &tags).await?;
                    let barrier = format!("{barrier_prefix}{}", a.number);
                    self.send(&user, &barrier).await?;
                    let seen = self.wait_for_tags(std::slice::from_ref(&barrier)).await;
                    if !seen.contains(&barrier) {
                        return Err(format!(
                            "the barrier request {barrier} never reached the mirror; {}",
                            seen.describe()
                        ));
                    }
                    let mirrored = self.mesh.mirror_records().observe(&tags).found.len() as u32;
                    *lock(measured) = Some(share_words(mirrored, n));
                    if !acceptance.accepts(mirrored) {
                        return Err(format!(
                            "{mirrored} of {n} requests mirrored ({}) at {}%, accepting {}",
                            sampling::percent_of(mirrored, n),
                            sampling::PERCENT,
                            acceptance.region()
                        ));
                    }
                    Ok(())
                }
            })
            .await;
        let restored: Result<String, String> = async {
            self.apply(&original).await?;
            self.restore_mirror(name, i).await
        }
        .await;
        let measured = lock(measured).take();
        let stable = sampled_outcome(sampled, measured.clone(), who)?;
        let restored = restored?;
        let measured = measured.unwrap_or_default();
        Ok(passed(
            stable,
            format!(
                "{n} requests per batch at {}%, {measured} mirrored, accepting {}; the original routing restored: {restored}",
                sampling::PERCENT,
                acceptance.region()
            ),
        )
        .observing(MIRRORED_SHARE, measured))
    }
}

/// The plan of a check over one share.
fn one_share(percent: f64) -> Result<sampling::Acceptance, sampling::SamplingError> {
    let mut plan = sampling::plan(&[percent])?;
    Ok(plan.remove(0))
}

/// A sampled check's retry outcome, its failure keeping the share it measured last.
fn sampled_outcome(
    outcome: Result<Stable, RetryError>,
    measured: Option<String>,
    who: &str,
) -> Result<Stable, CheckFailure> {
    outcome.map_err(|e| {
        let mut failure = CheckFailure::from(e);
        if let Some(words) = measured {
            failure.cause = Some(format!("{words} of {who}'s requests were mirrored"));
            failure.observed.push((MIRRORED_SHARE.into(), words));
        }
        failure
    })
}

/// `count` of `n`, as reports say it: `5.2% (189 of 3650)`.
fn share_words(count: u32, n: u32) -> String {
    format!("{} ({count} of {n})", sampling::percent_of(count, n))
}

/// The split served, as reports say it: `v1 94.8% (3461), v2 5.2% (189)`.
fn split_words<'a>(subsets: impl Iterator<Item = &'a str>, counts: &[u32], n: u32) -> String {
    subsets
        .zip(counts)
        .map(|(s, c)| format!("{s} {} ({c})", sampling::percent_of(*c, n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The original routing with every mirror at `percent`, and a first route that sends
/// requests whose user-agent starts with `barrier_prefix` like the first mirrored route but
/// mirrors all of them: the barrier that tells when a batch's shadows have arrived.
pub fn percentage_variant(
    original: &VirtualService,
    percent: f64,
    barrier_prefix: &str,
) -> Result<VirtualService, String> {
    let mut variant = original.clone();
    let mut barrier = None;
    for route in &mut variant.spec.http {
        if route.mirror.is_none() && route.mirrors.is_none() {
            continue;
        }
        if barrier.is_none() {
            let mut b = route.clone();
            b.name = Some("mirror-e2e-barrier".into());
            b.matches = vec![HttpMatchRequest {
                headers: Some(
                    [(
                        "user-agent".to_owned(),
                        StringMatch {
                            prefix: Some(barrier_prefix.to_owned()),
                            ..Default::default()
                        },
                    )]
                    .into(),
                ),
                ..Default::default()
            }];
            b.mirror_percentage = Some(Percent { value: 100.0 });
            b.mirror_percent = None;
            b.mirror_percent_snake = None;
            for m in b.mirrors.iter_mut().flatten() {
                m.percentage = Some(Percent { value: 100.0 });
            }
            barrier = Some(b);
        }
        if route.mirror.is_some() {
            route.mirror_percentage = Some(Percent { value: percent });
            route.mirror_percent = None;
            route.mirror_percent_snake = None;
        }
        for m in route.mirrors.iter_mut().flatten() {
            m.percentage = Some(Percent { value: percent });
        }
    }
    let barrier = barrier
        .ok_or("the routing under test mirrors nothing, so there is no percentage to vary")?;
    variant.spec.http.insert(0, barrier);
    Ok(variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_sets_percentages_and_prepends_a_full_barrier() {
        let original: VirtualService = serde_yaml::from_str(
            "
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
    - match: [{headers: {end-user: {exact: tester}}}]
      route: [{destination: {host: reviews, subset: v2}}]
      mirror: {host: mirror}
      mirror_percent: 100
    - route: [{destination: {host: reviews, subset: v1}}]
",
        )
        .expect("fixture parses");
        let v = percentage_variant(&original, 50.0, "bar/").expect("has a mirror");
        assert_eq!(v.spec.http.len(), 3);
        let barrier = &v.spec.http[0];
        assert_eq!(barrier.mirror_percentage, Some(Percent { value: 100.0 }));
        assert_eq!(
            barrier.matches[0]
                .headers
                .as_ref()
                .and_then(|h| h.get("user-agent"))
                .and_then(|m| m.prefix.as_deref()),
            Some("bar/")
        );
        assert_eq!(barrier.route, original.spec.http[0].route);
        let sampled = &v.spec.http[1];
        assert_eq!(sampled.mirror_percentage, Some(Percent { value: 50.0 }));
        assert_eq!(
            sampled.mirror_percent_snake, None,
            "the deprecated field would be overridden anyway; drop it"
        );
        assert_eq!(v.spec.http[2], original.spec.http[1]);
    }

    #[test]
    fn variant_of_routing_without_mirror_is_an_error() {
        let original: VirtualService =
            serde_yaml::from_str("spec: {http: [{route: [{destination: {host: reviews}}]}]}")
                .expect("fixture parses");
        assert!(percentage_variant(&original, 50.0, "b/").is_err());
    }
}
