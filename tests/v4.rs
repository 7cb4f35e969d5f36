//! The TIM-compatible REST surface (/v4) over real sockets: the gateway in-process on
//! 127.0.0.1:0, the Xiaomi emulator as the vendor, users set up through /v1. Bodies are the
//! shapes of Tencent's documentation (spec/tim-offline-push.md §1, §2, §5.2).

mod common;

use std::time::Duration;

use actix::prelude::*;
use common::{cert_body_with, regid, Harness, PACKAGE, SDKAPPID, USERSIG_KEY as KEY};
use pushgate::gateway::{SessionAction, SessionEvent};
use pushgate::session::SessionCommand;
use pushgate::usersig::UserSigKey;
use serde_json::{json, Value};

/// The TIM administrator account (`tim_admins`); "ops" is the other one.
const ADMIN: &str = "administrator";

async fn start() -> Harness {
    Harness::builder()
        .config(|c| c.tim_admins = vec![ADMIN.into(), "ops".into()])
        .certificate(cert_body_with(
            500,
            json!({"channel_id": "default_channel"}),
        ))
        .start()
        .await
}

/// Calls on the /v4 surface, as the IM cluster's REST client makes them.
trait TimSurface {
    fn query(&self, command: &str, identifier: &str, usersig: &str) -> String;
    async fn raw(&self, command: &str, body: impl Into<reqwest::Body>) -> Value;
    async fn send_to(&self, url: &str, body: impl Into<reqwest::Body>) -> Value;
    async fn call(&self, command: &str, body: Value) -> Value;
}

impl TimSurface for Harness {
    fn query(&self, command: &str, identifier: &str, usersig: &str) -> String {
        let q = serde_urlencoded::to_string([
            ("sdkappid", SDKAPPID.to_string()),
            ("identifier", identifier.to_string()),
            ("usersig", usersig.to_string()),
            ("random", "99999999".to_string()),
            ("contenttype", "json".to_string()),
        ])
        .expect("query");
        self.server.url(&format!("/v4/{command}?{q}"))
    }

    /// POSTs raw bytes as the admin; every answer must be HTTP 200 with the envelope.
    async fn raw(&self, command: &str, body: impl Into<reqwest::Body>) -> Value {
        let url = self.query(command, ADMIN, &admin_sig());
        self.send_to(&url, body).await
    }

    async fn send_to(&self, url: &str, body: impl Into<reqwest::Body>) -> Value {
        let res = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("body");
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&bytes));
        let v: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert!(
            v["ActionStatus"] == "OK" || v["ActionStatus"] == "FAIL",
            "{v}"
        );
        assert!(v["ErrorCode"].is_u64(), "{v}");
        assert!(v["ErrorInfo"].is_string(), "{v}");
        assert_eq!(v["ActionStatus"] == "OK", v["ErrorCode"] == 0, "{v}");
        v
    }

    async fn call(&self, command: &str, body: Value) -> Value {
        self.raw(command, body.to_string()).await
    }
}

fn admin_sig() -> String {
    UserSigKey::new(SDKAPPID, KEY).generate(ADMIN, 86_400)
}

fn code(v: &Value) -> u64 {
    v["ErrorCode"].as_u64().expect("ErrorCode")
}

fn text(t: &str) -> Value {
    json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": t}}])
}

#[tokio::test]
async fn sendmsg_with_the_documented_body_reaches_xiaomi() {
    let env = start().await;
    env.killed("lumotuwe2", "phone-1").await;
    // The sample request of 单发单聊消息, with Chinese text and emoji.
    let v = env
        .call(
            "openim/sendmsg",
            json!({
                "SyncOtherMachine": 2,
                "From_Account": "lumotuwe1",
                "To_Account": "lumotuwe2",
                "MsgLifeTime": 60,
                "MsgSeq": 93847636,
                "MsgRandom": 1287657,
                "ForbidCallbackControl": ["ForbidBeforeSendMsgCallback", "ForbidAfterSendMsgCallback"],
                "SendMsgControl": ["NoUnread", "NoLastMsg"],
                "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "晚上好 🌙"}}],
                "CloudCustomData": "your cloud custom data",
                "SupportMessageExtension": 0,
                "OfflinePushInfo": {
                    "PushFlag": 0,
                    "Title": "你好 👋",
                    "Desc": "离线推送内容 🎉",
                    "Ext": "{\"entity\":{\"sender\":\"lumotuwe1\"}}",
                    "AndroidInfo": {"Sound": "android.mp3"},
                    "ApnsInfo": {"Sound": "apns.mp3", "BadgeMode": 1, "Title": "apns title",
                                 "SubTitle": "apns subtitle", "Image": "www.image.com"}
                },
                "IsNeedReadReceipt": 0
            }),
        )
        .await;
    assert_eq!(v["ActionStatus"], "OK", "{v}");
    assert_eq!(v["ErrorInfo"], "");
    let msg_time = v["MsgTime"].as_u64().expect("MsgTime");
    assert!(msg_time.abs_diff(pushgate::domain::now_secs()) < 60);
    let key = v["MsgKey"].as_str().expect("MsgKey");
    assert!(!key.is_empty() && key.len() <= 50);

    let got = env.wait_pushes(&regid("lumotuwe2"), 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let n = &got[0];
    assert_eq!(n.package, PACKAGE);
    assert_eq!(n.title, "你好 👋");
    assert_eq!(n.description, "离线推送内容 🎉");
    assert_eq!(
        n.extras.get("ext").map(String::as_str),
        Some("{\"entity\":{\"sender\":\"lumotuwe1\"}}")
    );
    assert_eq!(
        n.extras.get("channel_id").map(String::as_str),
        Some("default_channel")
    );
}

#[tokio::test]
async fn default_text_placeholders_and_channel_override() {
    let env = start().await;
    env.killed("小明", "phone-1").await;
    let v = env
        .call(
            "openim/sendmsg",
            json!({
                "To_Account": "小明",
                "MsgRandom": 42,
                "MsgBody": [
                    {"MsgType": "TIMTextElem", "MsgContent": {"Text": "看这里 👀"}},
                    {"MsgType": "TIMLocationElem", "MsgContent": {"Desc": "深圳腾讯大厦", "Latitude": 113.93, "Longitude": 22.54}},
                    {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": "content"}},
                    {"MsgType": "TIMSoundElem", "MsgContent": {"Url": "https://example.com/a.m4a", "UUID": "305c02", "Size": 62351, "Second": 1, "Download_Flag": 2}},
                    {"MsgType": "TIMImageElem", "MsgContent": {"UUID": "1853095_D61040894AC3DE44CDFFFB3EC7EB720F", "ImageFormat": 1,
                        "ImageInfoArray": [{"Type": 1, "Size": 1853095, "Width": 2448, "Height": 3264, "URL": "https://example.com/i.jpg"}]}},
                    {"MsgType": "TIMFileElem", "MsgContent": {"Url": "https://example.com/f.txt", "UUID": "f1", "FileSize": 1773552, "FileName": "文件.txt", "Download_Flag": 2}},
                    {"MsgType": "TIMVideoFileElem", "MsgContent": {"VideoUrl": "https://example.com/v.mp4", "VideoUUID": "v1", "VideoSize": 1775496,
                        "VideoSecond": 5, "VideoFormat": "mp4", "VideoDownloadFlag": 2, "ThumbUrl": "https://example.com/t.jpg", "ThumbUUID": "t1",
                        "ThumbSize": 13907, "ThumbWidth": 720, "ThumbHeight": 1280, "ThumbFormat": "JPG", "ThumbDownloadFlag": 2}},
                    {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "message", "Desc": "【自定义】", "Ext": "url", "Sound": "dingdong.aiff"}}
                ],
                "OfflinePushInfo": {"AndroidInfo": {"XiaoMiChannelID": "high_system"}}
            }),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    let got = env.wait_pushes(&regid("小明"), 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].title, "a new message");
    assert_eq!(
        got[0].description,
        "看这里 👀[位置][表情][语音][图片][文件][视频]【自定义】"
    );
    assert_eq!(
        got[0].extras.get("channel_id").map(String::as_str),
        Some("high_system")
    );
    // OfflinePushInfo is present: the custom element's legacy Ext is not the push's Ext.
    assert_eq!(got[0].extras.get("ext"), None);
}

#[tokio::test]
async fn messages_that_must_not_be_pushed() {
    let env = start().await;
    env.killed("alice", "a1").await;
    let custom_only = json!([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "{\"cmd\":1}"}}]);
    for (i, body) in [
        // Custom element only, no Desc anywhere.
        json!({"To_Account": "alice", "MsgRandom": 1, "MsgBody": custom_only}),
        json!({"To_Account": "alice", "MsgRandom": 2, "MsgBody": custom_only, "OfflinePushInfo": {"Title": "只有标题"}}),
        // PushFlag = 1.
        json!({"To_Account": "alice", "MsgRandom": 3, "MsgBody": text("不推送"), "OfflinePushInfo": {"PushFlag": 1}}),
        // MsgLifeTime = 0: online users only.
        json!({"To_Account": "alice", "MsgRandom": 4, "MsgBody": text("仅在线"), "MsgLifeTime": 0}),
    ]
    .into_iter()
    .enumerate()
    {
        let v = env.call("openim/sendmsg", body).await;
        assert_eq!(code(&v), 0, "case {i}: {v}");
    }
    // A custom element with OfflinePushInfo.Desc is pushed: the marker.
    let v = env
        .call(
            "openim/sendmsg",
            json!({"To_Account": "alice", "MsgRandom": 5, "MsgBody": custom_only,
                   "OfflinePushInfo": {"Desc": "你有一条新消息 📩"}}),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    let got = env.wait_pushes(&regid("alice"), 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got_later = env.wait_pushes(&regid("alice"), 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got_later.len(), 1, "{got_later:?}");
    assert_eq!(got[0].description, "你有一条新消息 📩");
}

#[tokio::test]
async fn duplicates_within_the_window_are_sent_once() {
    let env = start().await;
    env.killed("alice", "a1").await;
    let body = json!({"From_Account": "bob", "To_Account": "alice", "MsgRandom": 777,
                      "MsgBody": text("只发一次 ✅")});
    let a = env.call("openim/sendmsg", body.clone()).await;
    let b = env.call("openim/sendmsg", body.clone()).await;
    assert_eq!(code(&a), 0, "{a}");
    assert_eq!(a["MsgKey"], b["MsgKey"]);
    assert_eq!(a["MsgTime"], b["MsgTime"]);
    // Another random is another message (other text too: the sender merges identical
    // notifications to one device that are queued together).
    let mut other = body.clone();
    other["MsgRandom"] = json!(778);
    other["MsgBody"] = text("第二条 2️⃣");
    let c = env.call("openim/sendmsg", other).await;
    assert_ne!(a["MsgKey"], c["MsgKey"]);
    let got = env.wait_pushes(&regid("alice"), 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        env.wait_pushes(&regid("alice"), 2).await.len(),
        2,
        "{got:?}"
    );
}

#[tokio::test]
async fn each_bad_input_has_its_code() {
    let env = start().await;
    env.killed("alice", "a1").await;
    let ok = |extra: Value| {
        let mut b = json!({"To_Account": "alice", "MsgRandom": 1, "MsgBody": text("x")});
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                b.as_object_mut().expect("object").remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let cases: Vec<(Value, u64)> = vec![
        (ok(json!({"To_Account": null})), 90003),
        (ok(json!({"To_Account": 123})), 90003),
        (ok(json!({"MsgRandom": null})), 90005),
        (ok(json!({"MsgRandom": "1"})), 90005),
        (ok(json!({"MsgRandom": 4294967296u64})), 90005),
        (ok(json!({"MsgBody": null})), 90002),
        (ok(json!({"MsgBody": []})), 90002),
        (
            ok(json!({"MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": 1}}]})),
            90002,
        ),
        (
            ok(json!({"MsgBody": [{"MsgType": "TIMUnknownElem", "MsgContent": {}}]})),
            90002,
        ),
        (ok(json!({"MsgBody": {"MsgType": "TIMTextElem"}})), 90007),
        (ok(json!({"MsgLifeTime": 604801})), 90026),
        (ok(json!({"MsgLifeTime": "60"})), 90044),
        (ok(json!({"SyncOtherMachine": "2"})), 90031),
        (ok(json!({"MsgSeq": -1})), 90004),
        (ok(json!({"From_Account": 7})), 90008),
        (ok(json!({"OfflinePushInfo": {"PushFlag": 3}})), 90010),
        (ok(json!({"To_Account": "nobody-知道"})), 90012),
    ];
    for (body, want) in cases {
        let v = env.call("openim/sendmsg", body.clone()).await;
        assert_eq!(code(&v), want, "{body} → {v}");
        assert_eq!(v["ActionStatus"], "FAIL");
    }
    // Not JSON, empty, not an object.
    assert_eq!(
        code(&env.raw("openim/sendmsg", "{\"To_Account\":").await),
        60003
    );
    assert_eq!(code(&env.raw("openim/sendmsg", "").await), 60003);
    assert_eq!(code(&env.raw("openim/sendmsg", "[1,2]").await), 90001);
    // Over 12 KB.
    let big = ok(json!({"MsgBody": text(&"长".repeat(4200))}));
    assert_eq!(code(&env.call("openim/sendmsg", big.clone()).await), 93000);
    let mut big_batch = big;
    big_batch["To_Account"] = json!(["alice"]);
    assert_eq!(
        code(&env.call("openim/batchsendmsg", big_batch).await),
        93000
    );
    let huge = "x".repeat(1 << 20);
    assert_eq!(code(&env.raw("openim/batchsendmsg", huge).await), 93000);

    // The envelope.
    let sig = admin_sig();
    let key = UserSigKey::new(SDKAPPID, KEY);
    let body = ok(json!({})).to_string();
    let expired = key.generate_at(ADMIN, 60, pushgate::domain::now_secs() - 3600, None);
    assert_eq!(
        code(
            &env.send_to(&env.query("openim/sendmsg", ADMIN, &expired), body.clone())
                .await
        ),
        70001
    );
    let alice_sig = key.generate("alice", 3600);
    assert_eq!(
        code(
            &env.send_to(
                &env.query("openim/sendmsg", "alice", &alice_sig),
                body.clone()
            )
            .await
        ),
        60010
    );
    assert_eq!(
        code(
            &env.send_to(&env.query("openim/sendmsg", "ops", &sig), body.clone())
                .await
        ),
        70013
    );
    let wrong_app = env
        .query("openim/sendmsg", ADMIN, &sig)
        .replace(&SDKAPPID.to_string(), "1400000999");
    assert_eq!(code(&env.send_to(&wrong_app, body.clone()).await), 60006);
    let no_app = env
        .server
        .url("/v4/openim/sendmsg?identifier=administrator&usersig=x");
    assert_eq!(code(&env.send_to(&no_app, body.clone()).await), 60012);
    assert_eq!(
        code(
            &env.send_to(
                &env.query("openim/nosuchcommand", ADMIN, &sig),
                body.clone()
            )
            .await
        ),
        60009
    );
    assert_eq!(
        code(
            &env.send_to(&env.query("a/b/c", ADMIN, &sig), body.clone())
                .await
        ),
        60009
    );
    let res = env
        .http
        .get(env.query("openim/sendmsg", ADMIN, &sig))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status().as_u16(), 200);
    let v: Value = serde_json::from_slice(&res.bytes().await.expect("body")).expect("JSON");
    assert_eq!(code(&v), 60002);
}

#[tokio::test]
async fn batchsendmsg_routes_each_recipient_and_lists_unknown_accounts() {
    let env = start().await;
    env.killed("alice", "a1").await;
    env.killed("小红", "x1").await;
    // bob: connected in the foreground (his connection is held by the IM cluster).
    env.events(json!([{"user": "bob", "platform": "Android", "device": "b1", "action": "login"}]))
        .await;
    // carol: logged out.
    env.killed("carol", "c1").await;
    env.events(
        json!([{"user": "carol", "platform": "Android", "device": "c1", "action": "logout"}]),
    )
    .await;

    // The sample request of 批量发单聊消息.
    let v = env
        .call(
            "openim/batchsendmsg",
            json!({
                "SyncOtherMachine": 2,
                "From_Account": "admin_sender",
                "To_Account": ["alice", "小红", "bob", "carol", "ghost-幽灵", "alice"],
                "MsgSeq": 28460,
                "MsgRandom": 19901224,
                "MsgBody": [
                    {"MsgType": "TIMTextElem", "MsgContent": {"Text": "大家好 🎈"}},
                    {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 6, "Data": "abc\u{0000}\u{0001}"}}
                ],
                "CloudCustomData": "your cloud custom data",
                "OfflinePushInfo": {"PushFlag": 0, "Desc": "离线推送内容", "Ext": "{\"k\":\"这是透传的内容\"}",
                                    "AndroidInfo": {"Sound": "android.mp3"},
                                    "ApnsInfo": {"Sound": "apns.mp3", "BadgeMode": 1}}
            }),
        )
        .await;
    assert_eq!(v["ActionStatus"], "OK", "{v}");
    assert!(v["MsgKey"].is_string());
    assert_eq!(
        v["ErrorList"],
        json!([{"To_Account": "ghost-幽灵", "ErrorCode": 70107}])
    );
    for user in ["alice", "小红"] {
        let got = env.wait_pushes(&regid(user), 1).await;
        assert_eq!(got.len(), 1, "{user}: {got:?}");
        assert_eq!(got[0].title, "a new message");
        assert_eq!(got[0].description, "离线推送内容");
        assert_eq!(
            got[0].extras.get("ext").map(String::as_str),
            Some("{\"k\":\"这是透传的内容\"}")
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // alice listed twice gets one notification; bob is online (no push), carol logged out.
    assert_eq!(env.wait_pushes(&regid("alice"), 1).await.len(), 1);
    assert!(env
        .emu
        .received()
        .iter()
        .all(|n| n.regid == regid("alice") || n.regid == regid("小红")));

    // Limits.
    let many: Vec<String> = (0..501).map(|i| format!("user{i}")).collect();
    let v = env
        .call(
            "openim/batchsendmsg",
            json!({"To_Account": many, "MsgRandom": 1, "MsgBody": text("x")}),
        )
        .await;
    assert_eq!(code(&v), 90011, "{v}");
    let v = env
        .call(
            "openim/batchsendmsg",
            json!({"To_Account": ["ghost1", "ghost2"], "MsgRandom": 1, "MsgBody": text("x")}),
        )
        .await;
    assert_eq!(code(&v), 90012, "{v}");
    assert_eq!(v["ErrorList"].as_array().map(Vec::len), Some(2));
    for (body, want) in [
        (
            json!({"To_Account": "alice", "MsgRandom": 1, "MsgBody": text("x")}),
            90003,
        ),
        (
            json!({"To_Account": [], "MsgRandom": 1, "MsgBody": text("x")}),
            90003,
        ),
        (
            json!({"To_Account": ["alice", 5], "MsgRandom": 1, "MsgBody": text("x")}),
            90003,
        ),
        (
            json!({"To_Account": ["alice"], "MsgBody": text("x")}),
            90005,
        ),
        (
            json!({"To_Account": ["alice"], "MsgRandom": 1, "MsgBody": 1}),
            90007,
        ),
        (
            json!({"To_Account": ["alice"], "MsgRandom": 1, "MsgBody": text("x"), "MsgLifeTime": 700000}),
            90026,
        ),
    ] {
        let v = env.call("openim/batchsendmsg", body.clone()).await;
        assert_eq!(code(&v), want, "{body} → {v}");
    }
}

#[tokio::test]
async fn query_online_status_and_querystate() {
    let env = start().await;
    env.killed("alice", "a1").await;
    env.events(json!([
        {"user": "bob", "platform": "Android", "device": "b1", "action": "login"},
        {"user": "bob", "platform": "Web", "device": "b-web", "action": "login"},
        {"user": "carol", "platform": "iPhone", "device": "c1", "action": "login"},
        {"user": "carol", "platform": "iPhone", "device": "c1", "action": "logout"}
    ]))
    .await;
    let v = env
        .call(
            "openim/query_online_status",
            json!({"IsNeedDetail": 1, "To_Account": ["alice", "bob", "carol", "陌生人"]}),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    let results = v["QueryResult"].as_array().expect("QueryResult");
    assert_eq!(results.len(), 3, "{v}");
    assert_eq!(results[0]["To_Account"], "alice");
    assert_eq!(results[0]["Status"], "PushOnline");
    assert_eq!(
        results[0]["Detail"],
        json!([{"Platform": "Android", "Status": "PushOnline"}])
    );
    assert_eq!(results[1]["Status"], "Online");
    let mut platforms: Vec<&str> = results[1]["Detail"]
        .as_array()
        .expect("Detail")
        .iter()
        .map(|d| d["Platform"].as_str().expect("Platform"))
        .collect();
    platforms.sort_unstable();
    assert_eq!(platforms, ["Android", "Web"]);
    assert_eq!(results[2]["Status"], "Offline");
    assert_eq!(
        results[2]["Detail"],
        json!([{"Platform": "iPhone", "Status": "Offline"}])
    );
    assert_eq!(
        v["ErrorList"],
        json!([{"To_Account": "陌生人", "ErrorCode": 70107}])
    );

    // Without detail; the old command names the field State.
    let v = env
        .call("openim/querystate", json!({"To_Account": ["alice"]}))
        .await;
    assert_eq!(
        v["QueryResult"],
        json!([{"To_Account": "alice", "State": "PushOnline"}])
    );
    for (body, want) in [
        (json!({"To_Account": []}), 90001),
        (json!({}), 90001),
        (json!({"To_Account": [1]}), 90003),
        (
            json!({"To_Account": ["alice"], "IsNeedDetail": "yes"}),
            70402,
        ),
        (
            json!({"To_Account": (0..501).map(|i| i.to_string()).collect::<Vec<_>>()}),
            90011,
        ),
    ] {
        let v = env.call("openim/query_online_status", body.clone()).await;
        assert_eq!(code(&v), want, "{body} → {v}");
    }
}

/// Stands in for a WebSocket session: forwards what the gateway tells it.
struct Probe(tokio::sync::mpsc::Sender<SessionCommand>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<SessionCommand> for Probe {
    type Result = ();
    fn handle(&mut self, msg: SessionCommand, _: &mut Context<Self>) {
        let _ = self.0.try_send(msg);
    }
}

#[actix_rt::test]
async fn kick_takes_every_device_offline_and_tells_live_connections() {
    let env = start().await;
    env.killed("alice", "a1").await;
    // A second device of alice, connected live on this gateway.
    let gw = env.server.gateway.clone();
    let conn = gw.hub().next_conn_id();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    gw.hub().register(conn, Probe(tx).start().recipient());
    let ev = SessionEvent {
        user: "alice".into(),
        platform: pushgate::domain::Platform::Web,
        device: "a-web".into(),
        action: SessionAction::Login,
        unread: None,
    };
    let (res, ticket) = gw.session_event(&ev, Some(conn));
    res.expect("login");
    if let Some(t) = ticket {
        t.wait().await.expect("durable");
    }

    let v = env
        .call("im_open_login_svc/kick", json!({"UserID": "alice"}))
        .await;
    assert_eq!(code(&v), 0, "{v}");
    let cmd = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a command within 5 s")
        .expect("probe alive");
    assert!(matches!(cmd, SessionCommand::Kick { .. }), "{cmd:?}");

    let v = env
        .call(
            "openim/query_online_status",
            json!({"To_Account": ["alice"], "IsNeedDetail": 1}),
        )
        .await;
    assert_eq!(v["QueryResult"][0]["Status"], "Offline", "{v}");
    assert!(v["QueryResult"][0]["Detail"]
        .as_array()
        .expect("Detail")
        .iter()
        .all(|d| d["Status"] == "Offline"));

    // No more pushes.
    let v = env
        .call(
            "openim/sendmsg",
            json!({"To_Account": "alice", "MsgRandom": 9, "MsgBody": text("还在吗？")}),
        )
        .await;
    assert_eq!(code(&v), 0, "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.emu.received().is_empty());

    for (body, want) in [
        (json!({"UserID": "nobody"}), 70107),
        (json!({"UserID": 1}), 70402),
        (json!({}), 70402),
        (json!([]), 70402),
    ] {
        let v = env.call("im_open_login_svc/kick", body.clone()).await;
        assert_eq!(code(&v), want, "{body} → {v}");
    }
}
