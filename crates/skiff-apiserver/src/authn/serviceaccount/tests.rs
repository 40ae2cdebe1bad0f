use std::sync::Mutex;

use super::*;

#[derive(Default)]
struct Objects(Mutex<BTreeMap<String, Value>>);

impl Objects {
    fn put(&self, resource: &str, ns: Option<&str>, name: &str, uid: &str, extra: Value) {
        let mut obj = json!({"metadata": {"name": name, "uid": uid}});
        if let Some(ns) = ns {
            obj["metadata"]["namespace"] = json!(ns);
        }
        if let (Some(o), Some(e)) = (obj.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        self.0.lock().expect("test value").insert(format!("{resource}/{}/{name}", ns.unwrap_or("")), obj);
    }
    fn remove(&self, resource: &str, ns: Option<&str>, name: &str) {
        self.0.lock().expect("test value").remove(&format!("{resource}/{}/{name}", ns.unwrap_or("")));
    }
}

impl ObjectSource for Objects {
    fn core_object(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.0.lock().expect("test value").get(&format!("{resource}/{}/{name}", namespace.unwrap_or(""))).cloned()
    }
}

const NOW: i64 = 1_800_000_000;

fn setup() -> (ServiceAccountTokens, Arc<Objects>) {
    let objects = Arc::new(Objects::default());
    objects.put("serviceaccounts", Some("ns"), "sa", "sa-uid", json!({}));
    let tokens =
        ServiceAccountTokens::new(SigningKey::generate().expect("test value"), "cluster.local", objects.clone());
    (tokens, objects)
}

fn spec(tokens: &ServiceAccountTokens) -> TokenSpec {
    TokenSpec {
        namespace: "ns".into(),
        service_account: ObjectRef { name: "sa".into(), uid: "sa-uid".into() },
        audiences: tokens.api_audiences().to_vec(),
        expiration_seconds: 3600,
        ..Default::default()
    }
}

#[test]
fn claims_are_upstreams() {
    let (tokens, _) = setup();
    let mut s = spec(&tokens);
    s.pod = Some(ObjectRef { name: "p".into(), uid: "p-uid".into() });
    s.node = Some(ObjectRef { name: "n".into(), uid: "n-uid".into() });
    s.warn_after = Some(NOW + 3607);
    let (token, exp) = tokens.issue(&s, NOW).expect("test value");
    assert_eq!(exp, NOW + 3600);
    let c = super::super::jwt::unverified_claims(&token).expect("test value");
    assert_eq!(c["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(c["sub"], "system:serviceaccount:ns:sa");
    assert_eq!(c["aud"], json!(["https://kubernetes.default.svc.cluster.local"]));
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["nbf"], NOW);
    assert_eq!(c["exp"], NOW + 3600);
    assert_eq!(c["jti"].as_str().expect("test value").len(), 36);
    let k = &c["kubernetes.io"];
    assert_eq!(k["namespace"], "ns");
    assert_eq!(k["serviceaccount"], json!({"name": "sa", "uid": "sa-uid"}));
    assert_eq!(k["pod"], json!({"name": "p", "uid": "p-uid"}));
    assert_eq!(k["node"], json!({"name": "n", "uid": "n-uid"}));
    assert_eq!(k["warnafter"], NOW + 3607);
    assert!(k.get("secret").is_none());
}

#[test]
fn a_valid_token_authenticates_as_the_service_account() {
    let (tokens, objects) = setup();
    objects.put("pods", Some("ns"), "p", "p-uid", json!({}));
    let mut s = spec(&tokens);
    s.pod = Some(ObjectRef { name: "p".into(), uid: "p-uid".into() });
    s.node = Some(ObjectRef { name: "n".into(), uid: "n-uid".into() });
    let (token, _) = tokens.issue(&s, NOW).expect("test value");
    let a = tokens.authenticate(&token, NOW + 10).expect("test value").expect("test value");
    assert_eq!(a.user.name, "system:serviceaccount:ns:sa");
    assert_eq!(a.user.uid, "sa-uid");
    assert_eq!(a.user.groups, ["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"]);
    assert_eq!(a.user.extra[extra::POD_NAME], ["p"]);
    assert_eq!(a.user.extra[extra::POD_UID], ["p-uid"]);
    assert_eq!(a.user.extra[extra::NODE_NAME], ["n"]);
    assert_eq!(a.user.extra[extra::NODE_UID], ["n-uid"]);
    assert!(a.user.extra[extra::CREDENTIAL_ID][0].starts_with("JTI="));
    assert_eq!(a.audiences, tokens.api_audiences());
}

#[test]
fn time_window_has_a_minute_of_leeway() {
    let (tokens, _) = setup();
    let (token, exp) = tokens.issue(&spec(&tokens), NOW).expect("test value");
    assert!(tokens.authenticate(&token, exp + 60).expect("test value").is_ok());
    assert_eq!(
        tokens.authenticate(&token, exp + 61).expect("test value").expect_err("an error"),
        "service account token has expired"
    );
    assert!(tokens.authenticate(&token, NOW - 60).expect("test value").is_ok());
    assert_eq!(
        tokens.authenticate(&token, NOW - 61).expect("test value").expect_err("an error"),
        "service account token is not valid yet"
    );
}

#[test]
fn wrong_audience_is_refused() {
    let (tokens, _) = setup();
    let mut s = spec(&tokens);
    s.audiences = vec!["vault".into()];
    let (token, _) = tokens.issue(&s, NOW).expect("test value");
    let err = tokens.authenticate(&token, NOW).expect("test value").expect_err("an error");
    assert!(err.contains("is invalid for the target audiences"), "{err}");
    let ok =
        tokens.authenticate_for(&token, &["vault".into(), "x".into()], NOW).expect("test value").expect("test value");
    assert_eq!(ok.audiences, ["vault"]);
}

#[test]
fn configured_api_audiences_replace_the_issuer() {
    let (tokens, _) = setup();
    let issuer_token = tokens.issue(&spec(&tokens), NOW).expect("test value").0;
    let tokens = tokens.with_api_audiences(vec!["https://api.example".into()]);
    assert_eq!(tokens.api_audiences(), ["https://api.example"]);
    let err = tokens.authenticate(&issuer_token, NOW).expect("test value").expect_err("an error");
    assert!(err.contains("is invalid for the target audiences"), "{err}");
    let token = tokens.issue(&spec(&tokens), NOW).expect("test value").0;
    assert!(tokens.authenticate(&token, NOW).expect("test value").is_ok());
    let unchanged = tokens.with_api_audiences(Vec::new());
    assert_eq!(unchanged.api_audiences(), ["https://api.example"]);
}

#[test]
fn deleted_or_recreated_objects_revoke_the_token() {
    let (tokens, objects) = setup();
    objects.put("pods", Some("ns"), "p", "p-uid", json!({}));
    let mut s = spec(&tokens);
    s.pod = Some(ObjectRef { name: "p".into(), uid: "p-uid".into() });
    let (token, _) = tokens.issue(&s, NOW).expect("test value");
    assert!(tokens.authenticate(&token, NOW).expect("test value").is_ok());
    objects.put(
        "pods",
        Some("ns"),
        "p",
        "p-uid",
        json!({"metadata": {"name": "p", "uid": "p-uid", "deletionTimestamp": "x"}}),
    );
    assert_eq!(
        tokens.authenticate(&token, NOW).expect("test value").expect_err("an error"),
        "pod ns/p has been deleted"
    );
    objects.put("pods", Some("ns"), "p", "other", json!({}));
    assert!(
        tokens
            .authenticate(&token, NOW)
            .expect("test value")
            .expect_err("an error")
            .starts_with("pod UID (other) does not match")
    );
    objects.remove("pods", Some("ns"), "p");
    assert!(tokens.authenticate(&token, NOW).expect("test value").is_err());
    // The service account itself.
    let (plain, _) = tokens.issue(&spec(&tokens), NOW).expect("test value");
    objects.put("serviceaccounts", Some("ns"), "sa", "new-uid", json!({}));
    assert!(
        tokens.authenticate(&plain, NOW).expect("test value").expect_err("an error").contains("does not match claim")
    );
    objects.remove("serviceaccounts", Some("ns"), "sa");
    assert_eq!(
        tokens.authenticate(&plain, NOW).expect("test value").expect_err("an error"),
        "service account token has been invalidated"
    );
}

#[test]
fn secret_bound_and_legacy_tokens_need_their_secret() {
    let (tokens, objects) = setup();
    objects.put("secrets", Some("ns"), "s", "s-uid", json!({}));
    let mut s = spec(&tokens);
    s.secret = Some(ObjectRef { name: "s".into(), uid: "s-uid".into() });
    let (token, _) = tokens.issue(&s, NOW).expect("test value");
    assert!(tokens.authenticate(&token, NOW).expect("test value").is_ok());
    objects.remove("secrets", Some("ns"), "s");
    assert!(tokens.authenticate(&token, NOW).expect("test value").is_err());

    let sa = ObjectRef { name: "sa".into(), uid: "sa-uid".into() };
    let legacy = tokens.issue_legacy("ns", &sa, "legacy").expect("test value");
    assert!(tokens.authenticate(&legacy, NOW).expect("test value").is_err(), "no secret yet");
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &legacy);
    objects.put("secrets", Some("ns"), "legacy", "l-uid", json!({"data": {"token": data}}));
    let a = tokens.authenticate(&legacy, NOW).expect("test value").expect("test value");
    assert_eq!(a.user.name, "system:serviceaccount:ns:sa");
    objects.remove("secrets", Some("ns"), "legacy");
    assert!(tokens.authenticate(&legacy, NOW).expect("test value").is_err());
}

#[test]
fn foreign_tokens_are_not_ours_and_forged_ones_fail() {
    let (tokens, _) = setup();
    assert!(tokens.authenticate("0123456789abcdef", NOW).is_none());
    let other = ServiceAccountTokens::new(
        SigningKey::generate().expect("test value"),
        "other.local",
        Arc::new(Objects::default()),
    );
    let (foreign, _) = other.issue(&spec(&other), NOW).expect("test value");
    assert!(tokens.authenticate(&foreign, NOW).is_none(), "another issuer");
    // Same issuer, another key.
    let twin = ServiceAccountTokens::new(
        SigningKey::generate().expect("test value"),
        "cluster.local",
        Arc::new(Objects::default()),
    );
    let (forged, _) = twin.issue(&spec(&twin), NOW).expect("test value");
    assert_eq!(tokens.authenticate(&forged, NOW).expect("test value").expect_err("an error"), "invalid signature");
}

#[test]
fn discovery_documents() {
    let (tokens, _) = setup();
    let c = tokens.openid_configuration();
    assert_eq!(c["issuer"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(c["jwks_uri"], "https://kubernetes.default.svc.cluster.local/openid/v1/jwks");
    assert_eq!(c["id_token_signing_alg_values_supported"], json!(["ES256"]));
    let j = tokens.jwks();
    assert_eq!(j["keys"][0]["kid"], tokens.key().verifying_key().kid());
}
