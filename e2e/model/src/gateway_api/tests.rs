//! Tests of the Gateway API types: the CRD's defaults and istiod's mirror percentage.

use super::*;

fn mirror(yaml: &str) -> RequestMirror {
    serde_yaml::from_str(yaml).expect("mirror parses")
}

#[test]
fn mirror_percentage_follows_istiods_create_mirror_filter() {
    assert_eq!(mirror("backendRef: {name: m, port: 1}").percentage(), 100.0);
    assert_eq!(mirror("percent: 10").percentage(), 10.0);
    assert_eq!(
        mirror("fraction: {numerator: 25, denominator: 50}").percentage(),
        50.0
    );
    assert_eq!(mirror("fraction: {numerator: 5}").percentage(), 5.0);
    assert!(!mirror("percent: 0").mirrors());
    assert!(!mirror("fraction: {numerator: 0, denominator: 3}").mirrors());
    assert!(mirror("fraction: {numerator: 1, denominator: 1000}").mirrors());
}

#[test]
fn defaults_are_the_crds() {
    let route: KubeHttpRoute = serde_yaml::from_str(
        "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{group: '', kind: Service, name: reviews}, {name: gw}]
  rules:
    - matches: [{path: {value: /a}, headers: [{name: end-user, value: tester}]}]
      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: mirror, port: 9080}}}, {type: URLRewrite, urlRewrite: {}}]
      backendRefs: [{name: reviews-v2, port: 9080}]
",
    )
    .expect("route parses");
    let spec = &route.spec;
    assert!(spec.parent_refs[0].is_service() && !spec.parent_refs[0].is_gateway());
    assert!(spec.parent_refs[1].is_gateway());
    let rule = &spec.rules[0];
    let path = rule.matches[0].path.as_ref().expect("path");
    assert_eq!(
        (path.match_type(), path.value()),
        (PathMatchType::PathPrefix, "/a")
    );
    assert_eq!(rule.matches[0].headers[0].match_type, None);
    assert_eq!(rule.filters[0].filter_type, FilterType::RequestMirror);
    assert_eq!(rule.filters[1].filter_type.as_str(), "URLRewrite");
    assert!(
        rule.filters[0]
            .request_mirror
            .as_ref()
            .is_some_and(|m| m.backend_ref.is_service())
    );
    assert_eq!(rule.backend_refs[0].weight(), 1);
    assert!(rule.backend_refs[0].is_service());
}

#[test]
fn a_filter_type_the_crd_lacks_is_kept_by_name() {
    let filter: HttpRouteFilter = serde_yaml::from_str("type: RequestMirrors").expect("parses");
    assert_eq!(
        filter.filter_type,
        FilterType::Other("RequestMirrors".into())
    );
    assert_eq!(
        serde_json::to_value(&filter).expect("serializes"),
        serde_json::json!({"type": "RequestMirrors"})
    );
}

#[test]
fn only_the_gateway_api_group_is_gateway_api() {
    assert!(is_gateway_api("gateway.networking.k8s.io/v1"));
    assert!(is_gateway_api("gateway.networking.k8s.io/v1beta1"));
    assert!(!is_gateway_api("networking.istio.io/v1"));
    assert!(!is_gateway_api(""));
}
