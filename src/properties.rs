//! The fixed properties a server assigns: one constant per
//! key, and [`FIXED_PROPERTIES`], all of them in the spec's order.
//!
//! ```
//! use session_filter::properties::{COUNTRY, FIXED_PROPERTIES, ROLES};
//! assert_eq!(COUNTRY, "$Country");
//! assert!(FIXED_PROPERTIES.contains(&ROLES));
//! ```

pub use crate::util::properties::{
    is_fixed_property, CLIENT_IP, CLIENT_TYPE, CONNECTOR, COUNTRY, FIXED_PROPERTIES, GATEWAY_ID,
    GATEWAY_TYPE, LANGUAGE, LATITUDE, LONGITUDE, MQTT_CLIENT_ID, PRINCIPAL, ROLES, SERVER_NAME,
    SESSION_ID, START_TIME, TRANSPORT,
};
