//! The OTLP environment as it is read: what asks for traces, where they go, and what
//! cannot be honoured and names its variable.

use super::*;
use std::collections::HashMap;

fn otlp(vars: &[(&str, &str)]) -> Result<Option<Otlp>, Unusable> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Otlp::from_env(&Env(&|name| vars.get(name).cloned()))
}

fn endpoint_of(vars: &[(&str, &str)]) -> String {
    otlp(vars).unwrap().unwrap().endpoint.to_string()
}

fn problem(vars: &[(&str, &str)]) -> Unusable {
    otlp(vars).expect_err("unusable")
}

#[test]
fn nothing_set_or_switched_off_asks_for_no_traces() {
    assert!(otlp(&[]).unwrap().is_none());
    assert!(otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])
        .unwrap()
        .is_none());
    for off in [
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ] {
        let set = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), off];
        assert!(otlp(&set).unwrap().is_none(), "{off:?}");
    }
}

#[test]
fn endpoints_follow_the_specification() {
    let grpc = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")];
    assert_eq!(endpoint_of(&grpc), "http://c:4317/");
    let http = |endpoint: &'static str| {
        endpoint_of(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ])
    };
    assert_eq!(http("http://c:4318"), "http://c:4318/v1/traces");
    assert_eq!(http("http://c:4318/"), "http://c:4318/v1/traces");
    assert_eq!(http("https://c/otlp/"), "https://c/otlp/v1/traces");
    // The traces' own variable is the whole URL, and wins.
    let own = [
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/ingest"),
    ];
    let found = otlp(&own).unwrap().unwrap();
    assert_eq!(found.wire, Wire::HttpJson);
    assert_eq!(found.endpoint.to_string(), "http://c:4318/ingest");
    // A protocol alone: the collector on this host, on its protocol's port.
    let local = |protocol| endpoint_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)]);
    assert_eq!(local("grpc"), "http://localhost:4317/");
    assert_eq!(local("http/protobuf"), "http://localhost:4318/v1/traces");
    // gRPC without a scheme: TLS unless insecure.
    assert_eq!(
        endpoint_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317")]),
        "https://c:4317/"
    );
    assert_eq!(
        endpoint_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true")
        ]),
        "http://c:4317/"
    );
}

#[test]
fn headers_are_percent_decoded_and_their_values_never_echoed() {
    let found = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=s%3Dcr%2Ct, X-Tenant = a b ,",
        ),
    ])
    .unwrap()
    .unwrap();
    let headers: Vec<(String, String)> = found
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        headers,
        [
            ("api-key".to_string(), "s=cr,t".to_string()),
            ("x-tenant".to_string(), "a b".to_string())
        ]
    );
    for bad in [
        "secret-token",
        "api-key=s3cr%zzt",
        "api-key=s3cr%0At",
        "bad key=s3cr",
    ] {
        let said = problem(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", bad),
        ]);
        assert_eq!(said.variable, "OTEL_EXPORTER_OTLP_TRACES_HEADERS");
        assert!(!said.problem.contains("s3cr"), "{bad}: {said}");
        assert!(!said.problem.contains("secret"), "{bad}: {said}");
    }
}

#[test]
fn what_cannot_be_honoured_names_its_variable() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
    let cases: [(&[(&str, &str)], &str); 9] = [
        (
            &[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[not-an-address")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://c:4317")],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:pw@c:4317")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
        (
            &[endpoint, ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ),
        (
            &[endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")],
            "OTEL_TRACES_EXPORTER",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
            ],
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/key.pem"),
            ],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ),
    ];
    for (vars, variable) in cases {
        let said = problem(vars);
        assert_eq!(said.variable, variable, "{vars:?}: {said}");
    }
    assert!(
        !problem(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:pw@c:4317")])
            .to_string()
            .contains("pw")
    );
}

#[test]
fn certificates_are_read_only_for_tls() {
    // A certificate for a plaintext endpoint is never read, so never wrong.
    let plaintext = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
    ]);
    assert!(plaintext.unwrap().unwrap().tls.is_none());
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let said = problem(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4317"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", not_pem.to_str().unwrap()),
    ]);
    assert!(said.problem.contains("no certificate"), "{said}");
}
