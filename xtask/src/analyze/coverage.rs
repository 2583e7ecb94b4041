//! The coverage table: for each message `istioctl analyze` can give on the project's kind
//! of input, lint's rule that reports the same thing, or why lint says nothing.

/// What lint says where analyze says something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Lint's rule of this code reports it, on the same object.
    Rule(&'static str),
    /// Lint does not report it, for the reason given.
    Not(&'static str),
}

/// One kind of analyze message: its code, text it contains ("" for any), and lint's answer.
pub struct Entry {
    pub code: &'static str,
    pub text: &'static str,
    pub coverage: Coverage,
}

const fn entry(code: &'static str, text: &'static str, coverage: Coverage) -> Entry {
    Entry {
        code,
        text,
        coverage,
    }
}

/// Analyze's messages (codes and templates from istio/istio
/// `pkg/config/analysis/msg/messages.yaml`) and lint's rule for each; the first entry whose
/// code matches and whose text the message contains wins.
///
/// Offline, istioctl reads no Services, Pods, Namespaces, Nodes or Secrets from the files
/// (`kuberesource.DefaultExcludedSchemas`; istio/istio#17686), so the analyzers that need
/// them are skipped: the host, mirror host and host:port IST0101, IST0173 and IST0174 only
/// come from `istioctl analyze` against a cluster. They are here for when it is run so.
pub const COVERAGE: &[Entry] = &[
    // virtualservice.DestinationHostAnalyzer (needs Services): "Referenced %s not found: %q".
    entry(
        "IST0101",
        "Referenced host not found",
        Coverage::Rule("unknown-host"),
    ),
    entry(
        "IST0101",
        "Referenced mirror host not found",
        Coverage::Rule("unknown-host"),
    ),
    entry(
        "IST0101",
        "Referenced host:port not found",
        Coverage::Rule("unknown-port"),
    ),
    // virtualservice.DestinationRuleAnalyzer (VirtualServices and DestinationRules only).
    entry(
        "IST0101",
        "Referenced host+subset in destinationrule not found",
        Coverage::Rule("unknown-subset"),
    ),
    entry(
        "IST0101",
        "Referenced mirror+subset in destinationrule not found",
        Coverage::Rule("unknown-subset"),
    ),
    // schema.ValidationAnalyzer: the webhook's validation (`validateHTTPRoute`,
    // `validateHTTPMirrors`, `validateHTTPRouteConflict`), one message per error.
    entry(
        "IST0106",
        "Schema validation error: mirror_percentage must have",
        Coverage::Rule("percentage-range"),
    ),
    entry(
        "IST0106",
        "Schema validation error: mirror percentage must have",
        Coverage::Rule("percentage-range"),
    ),
    entry(
        "IST0106",
        "Schema validation error: mirror_percent must have",
        Coverage::Rule("percentage-range"),
    ),
    entry(
        "IST0106",
        "Schema validation error: HTTP route cannot contain both mirror and mirrors",
        Coverage::Rule("mirror-and-mirrors"),
    ),
    entry(
        "IST0133",
        "Schema validation warning: using deprecated setting \"mirrorPercent\"",
        Coverage::Rule("deprecated-field"),
    ),
    // The same validation's `analyzeUnreachableHTTPRules`.
    entry("IST0130", "", Coverage::Rule("unreachable-rule")),
    entry(
        "IST0131",
        " of prefix ",
        Coverage::Not(
            "a URI prefix that an earlier rule's prefix covers (with its method, authority, headers and port); lint checks exact duplicates only, which is what a mirroring rule after a header match meets",
        ),
    ),
    entry("IST0131", "", Coverage::Rule("ineffective-match")),
    // destinationrule.SubsetSelectPodAnalyzer (needs Services and Pods).
    entry("IST0173", "", Coverage::Rule("subset-selects-nothing")),
    entry("IST0174", "", Coverage::Rule("unknown-host")),
    // virtualservice.ConflictingMeshGatewayHostsAnalyzer: "The VirtualServices %s associated
    // with mesh gateway define the same host %s which can lead to undefined behavior."
    entry("IST0109", "", Coverage::Rule("conflicting-hosts")),
];
