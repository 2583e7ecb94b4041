//! Which VirtualServices a proxy sees and in which order, as istiod lists them
//! (`initVirtualServices`, `configCompareByCreationTime`): by `exportTo` class, then
//! creation time, then name.

use crate::istio::VirtualService;

/// Which proxies see a VirtualService (`exportTo`, `initVirtualServices`): 0 private to its
/// namespace, 1 exported to the proxy's namespace by name, 2 public; `None`, invisible.
/// istiod lists the classes in that order, each oldest first.
pub(crate) fn visibility(vs: &VirtualService, vs_ns: &str, proxy_ns: &str) -> Option<u8> {
    let export_to = vs.spec.export_to.as_deref().unwrap_or(&[]);
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return Some(2);
    }
    let private = export_to.iter().any(|e| e == "." || e == vs_ns);
    if private && proxy_ns == vs_ns {
        return Some(0);
    }
    export_to.iter().any(|e| e == proxy_ns).then_some(1)
}

/// The order istiod sorts VirtualServices in (`configCompareByCreationTime`): creation time,
/// then name. `None` where a creation time is missing (objects read from files).
pub(crate) fn creation_order(a: &VirtualService, b: &VirtualService) -> Option<std::cmp::Ordering> {
    let (ta, tb) = (
        a.metadata.creation_timestamp.as_ref()?,
        b.metadata.creation_timestamp.as_ref()?,
    );
    // The API server stores seconds: equal seconds fall back to the name.
    Some(
        ta.0.as_second()
            .cmp(&tb.0.as_second())
            .then_with(|| a.metadata.name.cmp(&b.metadata.name)),
    )
}

/// The visible VirtualServices in istiod's order: by visibility class, then creation.
pub(crate) fn in_istiod_order<'a>(
    vss: &[&'a VirtualService],
    vs_ns: &str,
    proxy_ns: &str,
) -> Vec<(u8, &'a VirtualService)> {
    let mut visible: Vec<(u8, &VirtualService)> = vss
        .iter()
        .filter_map(|vs| visibility(vs, vs_ns, proxy_ns).map(|c| (c, *vs)))
        .collect();
    visible.sort_by(|(ca, a), (cb, b)| {
        ca.cmp(cb)
            .then_with(|| creation_order(a, b).unwrap_or(std::cmp::Ordering::Equal))
    });
    visible
}
