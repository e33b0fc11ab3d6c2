//! The session protocol over real sockets (SPEC 11.1–11.5), with a raw
//! WebSocket client.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn open_assigns_fixed_properties_and_keeps_trusted_ones() {
    let s = start().await;
    let mut c = Raw::connect(&s.url()).await;
    // Nothing but open first: 111, and the connection stays.
    assert_eq!(c.code("permissions", json!({})).await, 111);
    let r = c
        .ok(
            "open",
            json!({"client_type": "PYTHON",
                   "properties": {"Desk": "FX", "Colour": "red", "$Country": "FR", "Desk2": "x"}}),
        )
        .await;
    let id = r["session_id"].as_str().unwrap();
    assert!(regex_like_id(id), "{id}");
    assert!(r["token"].as_str().unwrap().len() >= 32);
    assert_eq!(r["reconnect_timeout_ms"], 2000);
    let p = &r["properties"];
    for (k, v) in [
        ("$SessionId", id),
        ("$Principal", ""),
        ("$Roles", "\"CLIENT\""),
        ("$Transport", "WEBSOCKET"),
        ("$ClientType", "PYTHON"),
        ("$Connector", "tests"),
        ("$ServerName", "test-1"),
        ("$Country", ""),
        ("$Language", ""),
        ("$Latitude", "NaN"),
        ("$Longitude", "NaN"),
        ("$ClientIP", "127.0.0.1"),
        ("Desk", "FX"),
    ] {
        assert_eq!(p[k], json!(v), "{k}: {p}");
    }
    assert!(p.get("Colour").is_none() && p.get("Desk2").is_none());
    // open twice: 111.
    assert_eq!(c.code("open", json!({})).await, 111);
    // A bad client type and a non-string property are -32602.
    let mut d = Raw::connect(&s.url()).await;
    assert_eq!(d.code("open", json!({"client_type": "FAX"})).await, -32602);
    assert_eq!(
        d.code("open", json!({"properties": {"Desk": 3}})).await,
        -32602
    );
}

fn regex_like_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            p.len() == 16
                && p.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
}

#[tokio::test]
async fn denied_opens_close_the_connection() {
    let s = start().await;
    for params in [
        json!({"principal": "ops", "credentials": "wrong"}),
        json!({"principal": "nobody", "credentials": PASSWORD}),
        json!({"principal": "ops"}),
    ] {
        let mut c = Raw::connect(&s.url()).await;
        assert_eq!(c.code("open", params).await, 103);
        c.closed().await;
    }
    // Without [anonymous], anonymous sessions are refused.
    let strict =
        start_with(|c| c.replace("[anonymous]\nallow = true", "[anonymous]\nallow = false")).await;
    let mut c = Raw::connect(&strict.url()).await;
    assert_eq!(c.code("open", json!({})).await, 103);
    c.closed().await;
}

#[tokio::test]
async fn framing_errors_keep_the_connection() {
    let s = start().await;
    let (mut c, _) = anonymous(&s.url(), None).await;
    c.send_text("{not json").await;
    let m = c.read().await.unwrap();
    assert_eq!(
        (m["error"]["code"].as_i64(), &m["id"]),
        (Some(-32700), &Value::Null)
    );
    c.send_text(r#"[{"jsonrpc":"2.0","id":1,"method":"permissions"}]"#)
        .await;
    let m = c.read().await.unwrap();
    assert_eq!(
        (m["error"]["code"].as_i64(), &m["id"]),
        (Some(-32600), &Value::Null)
    );
    assert_eq!(c.code("clients.teleport", json!({})).await, -32601);
    assert_eq!(c.code("clients.count", json!({"filter": 7})).await, -32602);
    // Still usable.
    assert_eq!(c.ok("permissions", json!({})).await["global"], json!([]));
}

#[tokio::test]
async fn binary_and_oversized_messages_close_the_session() {
    let s = start().await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (mut c, id) = anonymous(&s.url(), None).await;
    c.ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    let closed = c.note("closed").await;
    assert_eq!(closed["params"]["reason"], "INVALID_INBOUND_MESSAGE");
    c.closed().await;
    assert_eq!(
        ops.ok("clients.count", json!({"filter": only(&[&id])}))
            .await["count"],
        0
    );

    let (mut big, id) = anonymous(&s.url(), None).await;
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"clients.count","params":{{"filter":"{}"}}}}"#,
        "a".repeat(70_000)
    );
    big.send_text(&huge).await;
    let closed = big.note("closed").await;
    assert_eq!(closed["params"]["reason"], "MESSAGE_TOO_LARGE");
    big.closed().await;
    assert_eq!(
        ops.ok("clients.count", json!({"filter": only(&[&id])}))
            .await["count"],
        0
    );
}

#[tokio::test]
async fn permissions_are_checked_per_request() {
    let s = start().await;
    let (mut anon, anon_id) = anonymous(&s.url(), None).await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let cases = [
        ("clients.count", json!({"filter": "all"}), "VIEW_SESSION"),
        ("clients.fetch", json!({"filter": "all"}), "VIEW_SESSION"),
        (
            "clients.get_properties",
            json!({"session_id": anon_id}),
            "VIEW_SESSION",
        ),
        ("clients.close", json!({"filter": "all"}), "MODIFY_SESSION"),
        (
            "clients.change_roles",
            json!({"filter": "all", "add": ["X"]}),
            "MODIFY_SESSION",
        ),
        (
            "clients.set_properties",
            json!({"filter": "all", "properties": {"A": "b"}}),
            "VIEW_SESSION",
        ),
        ("clients.listen", json!({"filter": "all"}), "VIEW_SESSION"),
        ("locks.list", json!({}), "VIEW_SERVER"),
        (
            "locks.acquire",
            json!({"name": "locks/orders"}),
            "ACQUIRE_LOCK",
        ),
        (
            "messaging.send",
            json!({"filter": "all", "path": "alerts", "request": 1}),
            "SEND_TO_SESSION",
        ),
    ];
    for (method, params, permission) in cases {
        let r = anon.request(method, params).await;
        assert_eq!(r["error"]["code"], 103, "{method}: {r}");
        assert_eq!(
            r["error"]["data"]["permission"], permission,
            "{method}: {r}"
        );
    }
    // A viewer may count but not modify.
    let (mut viewer, viewer_id) = principal(&s.url(), "viewer").await;
    assert!(
        viewer.ok("clients.count", json!({"filter": "all"})).await["count"]
            .as_u64()
            .unwrap()
            >= 3
    );
    let r = viewer
        .request(
            "clients.set_properties",
            json!({"filter": "all", "properties": {"A": "b"}}),
        )
        .await;
    assert_eq!(r["error"]["data"]["permission"], "MODIFY_SESSION");
    // Roles change: the permission follows at once.
    ops.ok(
        "clients.change_roles",
        json!({"session_id": viewer_id, "add": ["OPS"]}),
    )
    .await;
    assert_eq!(
        viewer
            .ok(
                "clients.set_properties",
                json!({"session_id": anon_id, "properties": {"A": "b"}})
            )
            .await,
        json!({"changed": {"A": null}})
    );
    ops.ok(
        "clients.change_roles",
        json!({"session_id": viewer_id, "remove": ["OPS", "VIEWER"]}),
    )
    .await;
    assert_eq!(
        viewer.code("clients.count", json!({"filter": "all"})).await,
        103
    );
    // Path permissions: the nearest assignment decides.
    let r = anon
        .request("locks.acquire", json!({"name": "locks/public/x"}))
        .await;
    assert!(r.get("result").is_some(), "{r}");
    let r = ops
        .request("locks.acquire", json!({"name": "locks/forbidden/x"}))
        .await;
    assert_eq!(
        r["error"]["data"],
        json!({"permission": "ACQUIRE_LOCK", "path": "locks/forbidden/x"})
    );
    // Checks run in order: params before permissions.
    assert_eq!(anon.code("clients.count", json!({})).await, -32602);
}

#[tokio::test]
async fn control_by_id_and_by_filter() {
    let s = start().await;
    let (mut ops, ops_id) = principal(&s.url(), "ops").await;
    let (mut fx, fx_id) = anonymous(&s.url(), Some("FX")).await;
    let (mut rates, rates_id) = anonymous(&s.url(), Some("Rates")).await;
    let mine = only(&[&fx_id, &rates_id]);
    assert_eq!(
        ops.ok("clients.count", json!({"filter": mine})).await["count"],
        2
    );
    let page = ops
        .ok(
            "clients.fetch",
            json!({"filter": mine, "properties": ["Desk"], "order_by": "Desk", "descending": true}),
        )
        .await;
    assert_eq!(page["total"], 2);
    assert_eq!(
        page["sessions"][0],
        json!({"id": rates_id, "properties": {"Desk": "Rates"}})
    );
    assert_eq!(
        ops.code("clients.fetch", json!({"filter": "all", "limit": 10001}))
            .await,
        -32602
    );
    let props = ops
        .ok(
            "clients.get_properties",
            json!({"session_id": fx_id, "keys": ["*U"]}),
        )
        .await;
    assert_eq!(props["properties"], json!({"Desk": "FX"}));
    // Targets: neither or both is -32602; unknown id 107; bad filter 106.
    assert_eq!(ops.code("clients.close", json!({})).await, -32602);
    assert_eq!(
        ops.code(
            "clients.close",
            json!({"filter": "all", "session_id": fx_id})
        )
        .await,
        -32602
    );
    assert_eq!(
        ops.code("clients.close", json!({"session_id": "0-0"}))
            .await,
        107
    );
    let r = ops
        .request("clients.count", json!({"filter": "Desk is"}))
        .await;
    assert_eq!(r["error"]["code"], 106);
    assert_eq!(r["error"]["data"]["column"], 8, "{r}");
    // Role checks.
    assert_eq!(
        ops.code("clients.change_roles", json!({"filter": "all"}))
            .await,
        -32602
    );
    assert_eq!(
        ops.code(
            "clients.change_roles",
            json!({"filter": "all", "add": ["A"], "remove": ["A"]})
        )
        .await,
        -32602
    );
    assert_eq!(
        ops.ok(
            "clients.change_roles",
            json!({"filter": mine, "add": ["trader"]})
        )
        .await["count"],
        2
    );
    assert_eq!(
        ops.ok("clients.count", json!({"filter": "hasRoles ['trader']"}))
            .await["count"],
        2
    );
    // Property changes: by filter a count; `$` keys other than the four are 106.
    let r = ops
        .ok(
            "clients.set_properties",
            json!({"filter": mine, "properties": {"$Country": "fr"}}),
        )
        .await;
    assert_eq!(r["count"], 2);
    assert_eq!(
        ops.ok("clients.count", json!({"filter": "$Country is 'FR'"}))
            .await["count"],
        2
    );
    assert_eq!(
        ops.code(
            "clients.set_properties",
            json!({"session_id": fx_id, "properties": {"$Principal": "x"}})
        )
        .await,
        106
    );
    assert_eq!(
        ops.code(
            "clients.set_properties",
            json!({"session_id": fx_id, "properties": {"Desk": 1}})
        )
        .await,
        -32602
    );
    // Close by filter: each victim gets `closed` with the reason.
    assert_eq!(
        ops.ok("clients.close", json!({"filter": mine})).await["count"],
        2
    );
    for victim in [&mut fx, &mut rates] {
        assert_eq!(
            victim.note("closed").await["params"]["reason"],
            "CLOSED_BY_CONTROLLER"
        );
        victim.closed().await;
    }
    // Closing oneself: the answer first, then `closed`.
    let r = ops
        .request("clients.close", json!({"session_id": ops_id}))
        .await;
    assert_eq!(r["result"]["count"], 1);
    assert_eq!(
        ops.note("closed").await["params"]["reason"],
        "CLOSED_BY_CONTROLLER"
    );
}

#[tokio::test]
async fn reconnect_with_the_token() {
    let s = start().await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (mut lost, id) = anonymous(&s.url(), Some("Credit")).await;
    let token = {
        let r = ops
            .ok("clients.get_properties", json!({"session_id": id}))
            .await;
        assert_eq!(r["properties"]["Desk"], "Credit");
        // the token is only known to the session itself: open again to learn it
        drop(r);
        String::new()
    };
    let _ = token;
    let listener = ops
        .ok(
            "clients.listen",
            json!({"filter": only(&[&id]), "properties": ["Desk"]}),
        )
        .await;
    let snapshot = ops.note("clients.event").await;
    assert_eq!(snapshot["params"]["event"], "open");
    assert_eq!(snapshot["params"]["listener"], listener["listener"]);
    lost.ws.close(None).await.unwrap();
    let update = ops.note("clients.event").await;
    assert_eq!(
        (
            update["params"]["event"].as_str(),
            update["params"]["state"].as_str()
        ),
        (Some("update"), Some("disconnected"))
    );
    assert_eq!(
        ops.ok("clients.count", json!({"filter": only(&[&id])}))
            .await["count"],
        1
    );
    // A wrong token: 103 and the connection closes; an unknown id: 107.
    let mut wrong = Raw::connect(&s.url()).await;
    assert_eq!(
        wrong
            .code(
                "open",
                json!({"reconnect": {"session_id": id, "token": "nope"}})
            )
            .await,
        103
    );
    wrong.closed().await;
    let mut unknown = Raw::connect(&s.url()).await;
    assert_eq!(
        unknown
            .code(
                "open",
                json!({"reconnect": {"session_id": "0-1", "token": "x"}})
            )
            .await,
        107
    );
}

#[tokio::test]
async fn reconnect_takes_the_session_back_with_queued_notifications() {
    let s = start().await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let mut first = Raw::connect(&s.url()).await;
    let opened = first
        .ok("open", json!({"principal": "ops", "credentials": PASSWORD}))
        .await;
    let (id, token) = (
        opened["session_id"].as_str().unwrap().to_owned(),
        opened["token"].as_str().unwrap().to_owned(),
    );
    let (_other, other_id) = anonymous(&s.url(), Some("FX")).await;
    // The session listens, then loses its connection; events wait for it.
    first
        .ok(
            "clients.listen",
            json!({"filter": only(&[&other_id]), "properties": ["Desk"]}),
        )
        .await;
    let _snapshot = first.note("clients.event").await;
    first.ws.close(None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    ops.ok(
        "clients.set_properties",
        json!({"session_id": other_id, "properties": {"Desk": "Rates"}}),
    )
    .await;
    let mut back = Raw::connect(&s.url()).await;
    let again = back
        .ok(
            "open",
            json!({"reconnect": {"session_id": id, "token": token}}),
        )
        .await;
    assert_eq!(again["session_id"], id.as_str());
    assert_eq!(again["token"], token.as_str());
    let queued = back.note("clients.event").await;
    assert_eq!(queued["params"]["event"], "update");
    assert_eq!(queued["params"]["changed"], json!({"Desk": "FX"}));
    assert_eq!(queued["params"]["properties"], json!({"Desk": "Rates"}));
    // A reconnect while the connection is up takes it over.
    let mut thief = Raw::connect(&s.url()).await;
    thief
        .ok(
            "open",
            json!({"reconnect": {"session_id": id, "token": token}}),
        )
        .await;
    back.closed().await;
    assert!(
        thief.ok("permissions", json!({})).await["global"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
}

#[tokio::test]
async fn listener_events_in_order() {
    let s = start().await;
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (_early, early_id) = anonymous(&s.url(), Some("Equities")).await;
    let l = ops
        .ok(
            "clients.listen",
            json!({"filter": "Desk is 'Equities'", "properties": ["Desk", "Note"]}),
        )
        .await;
    let listener = l["listener"].clone();
    let snap = ops.note("clients.event").await["params"].clone();
    assert_eq!(
        (
            snap["session_id"].as_str(),
            snap["event"].as_str(),
            snap["state"].as_str()
        ),
        (Some(early_id.as_str()), Some("open"), Some("active"))
    );
    assert_eq!(snap["properties"], json!({"Desk": "Equities"}));
    let (mut late, late_id) = anonymous(&s.url(), Some("Equities")).await;
    let open = ops.note("clients.event").await["params"].clone();
    assert_eq!(
        (open["session_id"].as_str(), open["event"].as_str()),
        (Some(late_id.as_str()), Some("open"))
    );
    ops.ok(
        "clients.set_properties",
        json!({"session_id": late_id, "properties": {"Note": "n"}}),
    )
    .await;
    let upd = ops.note("clients.event").await["params"].clone();
    assert_eq!(upd["event"], "update");
    assert_eq!(upd["changed"], json!({"Note": null}));
    assert_eq!(upd["properties"], json!({"Desk": "Equities", "Note": "n"}));
    ops.ok(
        "clients.set_properties",
        json!({"session_id": early_id, "properties": {"Desk": "FX"}}),
    )
    .await;
    let left = ops.note("clients.event").await["params"].clone();
    assert_eq!(
        (left["event"].as_str(), left["session_id"].as_str()),
        (Some("left"), Some(early_id.as_str()))
    );
    assert_eq!(left["properties"], json!({"Desk": "FX"}));
    late.ok("close", json!({})).await;
    let close = ops.note("clients.event").await["params"].clone();
    assert_eq!(
        (
            close["event"].as_str(),
            close["reason"].as_str(),
            close["state"].as_str()
        ),
        (Some("close"), Some("CLOSED_BY_CLIENT"), Some("closed"))
    );
    assert_eq!(close["properties"], json!({}));
    assert_eq!(
        ops.ok("clients.unlisten", json!({"listener": listener}))
            .await,
        json!({})
    );
    let (_x, _) = anonymous(&s.url(), Some("Equities")).await;
    // Nothing more for the stopped listener: the next answer comes first.
    ops.ok("permissions", json!({})).await;
    assert!(
        ops.notes.iter().all(|n| n["method"] != "clients.event"),
        "{:?}",
        ops.notes
    );
}

#[tokio::test]
async fn a_slow_listener_is_closed_and_others_keep_answering() {
    let s = start().await; // max_queued_messages = 200
    let (mut ops, _) = principal(&s.url(), "ops").await;
    let (slow, slow_id) = principal(&s.url(), "ops").await;
    let mut slow = slow;
    slow.ok(
        "clients.listen",
        json!({"filter": "all", "properties": ["Note"]}),
    )
    .await;
    // The slow session never reads again; flood it with events of 8 KiB,
    // more than the socket buffers and its queue of 200 hold.
    let (_t, target) = anonymous(&s.url(), None).await;
    let pad = "x".repeat(8192);
    for i in 0..3000 {
        let r = ops
            .request(
                "clients.set_properties",
                json!({"session_id": target, "properties": {"Note": format!("{i}{pad}")}}),
            )
            .await;
        assert!(r.get("result").is_some(), "{r}");
    }
    // Closed for its queue, and gone from the store.
    let mut gone = false;
    for _ in 0..50 {
        if ops
            .ok("clients.count", json!({"filter": only(&[&slow_id])}))
            .await["count"]
            == 0
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the slow listener's session is still open");
    drop(slow);
}

#[tokio::test]
async fn cross_origin_upgrades_are_refused() {
    let s = start().await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s.url())
            .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "a cross-origin upgrade was accepted");
    let mut same =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s.url())
            .unwrap();
    let origin = format!("http://{}", s.addr);
    same.headers_mut().insert("origin", origin.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(same).await.is_ok());
    let mut host =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(s.url())
            .unwrap();
    host.headers_mut()
        .insert("host", "attacker.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(host).await.is_err());
}
