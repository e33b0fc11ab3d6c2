//! SPEC section 4: escaping, roles strings, and section 1: property keys.

mod common;

use proptest::prelude::*;
use serde_json::Value as Json;
use session_filter::properties::FIXED_PROPERTIES;
use session_filter::{
    escape, roles_to_string, string_to_roles, unescape, validate_user_key, Filter,
};

/// Runs one `roles.jsonl` case through the library; returns a description
/// of the mismatch, if any.
fn run_case(case: &Json) -> Result<(), String> {
    let func = case["fn"].as_str().ok_or("no fn")?;
    let expect_error = case.get("error").is_some();
    let got: Result<Json, String> = match func {
        "escape" => Ok(Json::from(escape(case["input"].as_str().ok_or("input")?))),
        "string_to_roles" => string_to_roles(case["input"].as_str().ok_or("input")?)
            .map(Json::from)
            .map_err(|e| e.to_string()),
        "roles_to_string" => {
            let roles: Vec<String> =
                serde_json::from_value(case["input"].clone()).map_err(|e| e.to_string())?;
            Ok(Json::from(roles_to_string(&roles)))
        }
        other => return Err(format!("unknown fn {other}")),
    };
    match (got, expect_error) {
        (Ok(out), false) if out == case["output"] => Ok(()),
        (Err(_), true) => Ok(()),
        (got, _) => Err(format!("{case}: got {got:?}")),
    }
}

#[test]
fn conformance_roles_cases() {
    for dir in common::case_dirs() {
        let cases = common::read_jsonl(&dir.join("roles.jsonl"));
        assert!(cases.len() > 100, "{}", dir.display());
        let failures: Vec<String> = cases.iter().filter_map(|c| run_case(c).err()).collect();
        assert!(
            failures.is_empty(),
            "{}:\n{}",
            dir.display(),
            failures.join("\n")
        );
    }
}

#[test]
fn escape_example_from_the_spec() {
    assert_eq!(escape("xyz\"\\"), "xyz\\\"\\\\");
    assert_eq!(escape("xyz\"\\").chars().count(), 7);
}

#[test]
fn roles_errors_point_at_the_opening_quote() {
    let e = string_to_roles("\"a\", 'b").unwrap_err();
    assert_eq!(e.offset, 5);
    assert!(e.to_string().contains("byte 5"), "{e}");
}

#[test]
fn fixed_property_constants_match_the_spec_list() {
    let spec = "$ClientIP $ClientType $Connector $Country $GatewayType $GatewayId $Language \
                $Latitude $Longitude $MQTTClientId $Principal $Roles $ServerName $SessionId \
                $StartTime $Transport";
    assert_eq!(
        FIXED_PROPERTIES.to_vec(),
        spec.split_whitespace().collect::<Vec<_>>()
    );
    assert_eq!(session_filter::properties::ROLES, "$Roles");
    assert_eq!(session_filter::properties::CLIENT_IP, "$ClientIP");
    assert_eq!(session_filter::properties::MQTT_CLIENT_ID, "$MQTTClientId");
}

#[test]
fn user_keys_that_validate_are_filter_keys() {
    for key in ["Department", "a$b", "weird[key]", "東京", "x,y", "not"] {
        validate_user_key(key).unwrap();
        let f = Filter::parse(&format!("has {key}")).unwrap();
        assert_eq!(f.to_string(), format!("has {key}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn roles_round_trip(roles in prop::collection::vec(any::<String>(), 0..6)) {
        let mut set: Vec<String> = Vec::new();
        for r in &roles {
            if !set.contains(r) {
                set.push(r.clone());
            }
        }
        let s = roles_to_string(&roles);
        prop_assert_eq!(string_to_roles(&s).unwrap(), set.clone());
        prop_assert_eq!(roles_to_string(&set), s);
    }

    #[test]
    fn escape_round_trips_in_both_quotes(s in any::<String>()) {
        let escaped = escape(&s);
        prop_assert_eq!(unescape(&escaped).unwrap(), s.clone());
        for q in ['"', '\''] {
            let f = Filter::parse(&format!("k is {q}{escaped}{q}")).unwrap();
            let session_filter::syntax::Expr::Is { value, .. } = f.expr() else { panic!() };
            prop_assert_eq!(&value.text, &s);
        }
    }

    #[test]
    fn string_to_roles_never_panics(s in "[a-z\"' ,\\\\\\[\\]é]{0,24}") {
        if let Ok(roles) = string_to_roles(&s) {
            let again = string_to_roles(&roles_to_string(&roles)).unwrap();
            prop_assert_eq!(again, roles);
        }
    }
}
