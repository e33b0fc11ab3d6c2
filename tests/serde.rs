//! The `serde` feature: filters and programs travel as canonical text,
//! sessions as maps of properties.
#![cfg(feature = "serde")]

use session_filter::{Filter, Program, Session};

#[test]
fn filters_and_programs_travel_as_canonical_text() {
    let filter = Filter::parse("$Country IN ['UK','DE'] And NOT (Tier eq 'gold')").unwrap();
    let json = serde_json::to_string(&filter).unwrap();
    assert_eq!(
        json,
        r#""$Country in [\"UK\", \"DE\"] and not Tier is \"gold\"""#
    );
    assert_eq!(serde_json::from_str::<Filter>(&json).unwrap(), filter);
    let program: Program = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&program).unwrap(), json);
}

#[test]
fn a_bad_filter_is_a_deserialization_error_with_its_position() {
    let err = serde_json::from_str::<Filter>(r#""Department is""#).unwrap_err();
    assert!(
        err.to_string().contains("1:14: expected a quoted value"),
        "{err}"
    );
    assert!(serde_json::from_str::<Program>(r#""(""#).is_err());
}

#[test]
fn sessions_travel_as_maps_and_are_validated() {
    let s = Session::new([
        ("$SessionId", "s1"),
        ("$Roles", r#""a","b""#),
        ("Tier", "gold"),
    ])
    .unwrap();
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"$SessionId": "s1", "$Roles": "\"a\",\"b\"", "Tier": "gold"})
    );
    let back: Session = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
    assert!(serde_json::from_str::<Session>(r#"{"bad key": "x"}"#).is_err());
    assert!(serde_json::from_str::<Session>(r#"{"$Roles": "unterminated \""}"#).is_err());
    assert!(serde_json::from_str::<Session>(r#"{"k": 1}"#).is_err());
}
