#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/seeds/<target>/) from the inputs the tests use: the frames of
tests/ws.rs, the bodies of tests/core_api.rs and tests/v4.rs, the Xiaomi replies of
src/providers/xiaomi/reply.rs and the other vendors' reply tests, and UserSig tickets from Tencent's generator when it is installed
(scripts/test puts it in target/venv-usersig). Re-run after adding cases: python3 fuzz/seeds.py"""
import hashlib
import json
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


def msgpack(v):
    """Just enough MessagePack for JSON-like values (maps, arrays, str, int, bool, null)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, list):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(msgpack(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(msgpack(k) + msgpack(x) for k, x in v.items())
    raise TypeError(v)


def write(target, data):
    d = os.path.join(ROOT, "seeds", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


# tests/ws.rs client frames
frames = [
    {"type": "ping"},
    {"type": "ack", "id": 42},
    {"type": "background", "unread": 3},
    {"type": "foreground"},
    {"type": "logout"},
    {"type": "set_push_token", "certificate_id": 1, "token": "regid-a"},
    {"type": 7},
]
for f in frames:
    write("ws_frame", json.dumps(f))
    write("ws_frame", msgpack(f))

# tests/core_api.rs bodies
v1 = [
    {"events": [{"user": "alice", "platform": "Android", "device": "d1", "action": "login"}]},
    {"events": [{"user": "alice", "platform": "iPhone", "device": "d2", "action": "disconnect"}]},
    {"user": "alice", "platform": "Android", "device": "d1", "certificate_id": 1, "token": "regid-alice"},
    {"user": "alice", "device": "d1"},
    {"to": ["alice", "bob"], "from": "carol", "text": "hello"},
    {"to": ["alice"], "from": "carol", "text": "hi", "online_only": True, "detail": True,
     "conversation": "c1", "offline_push": {"title": "T", "desc": "D"}},
]
for b in v1:
    write("v1_body", json.dumps(b))
    write("v1_body", msgpack(b))

# tests/v4.rs bodies
v4 = [
    {"To_Account": "alice", "MsgRandom": 1,
     "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "晚上好 🌙"}}]},
    {"To_Account": ["alice", "bob"], "MsgRandom": 2, "From_Account": "admin",
     "MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "x", "Desc": "d"}}],
     "OfflinePushInfo": {"PushFlag": 0, "Title": "T", "Desc": "D", "Ext": "{}"}},
    {"To_Account": "alice", "MsgLifeTime": 0, "MsgBody": [
        {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": "f"}},
        {"MsgType": "TIMLocationElem", "MsgContent": {"Desc": "here", "Latitude": 1.5, "Longitude": 2.5}}]},
    {"To_Account": ["alice"], "IsNeedDetail": 1},
]
for b in v4:
    write("v4_body", json.dumps(b, ensure_ascii=False))

# src/providers/xiaomi/reply.rs cases; the first byte is the HTTP status / 4
replies = [
    (200, '{"result":"ok","trace_id":"Xcm07b77488763663927bm","code":0,"data":{"id":"scm01b20510561935064bK","bad_regids":"r2, r3,"},"description":"成功","info":"Received push messages for 1 REGID"}'),
    (200, '{"result":"ok","code":0,"trace_id":"Xt","data":{"id":"s1","channel_exceed_quota":{"101556":2}}}'),
    (200, '{"result":"error","reason":"No valid targets!","trace_id":"Xc","code":20301}'),
    (400, '{"result":"error","trace_id":"Xc","code":21301,"reason":"Invalid application secret."}'),
    (200, '{"result":"error","code":200001,"reason":"exceed quota, quota: 10, have acked: 10"}'),
    (200, '{"result":"error","code":"65015"}'),
    (500, "{not json"),
    (428, ""),
]
for status, body in replies:
    write("xiaomi_reply", bytes([status // 4]) + body.encode())

# The other vendors' replies, from their reply.rs / emulator tests; first byte = HTTP status / 4.
vendor_replies = {
    "huawei_reply": [
        (200, '{"code":"80000000","msg":"Success","requestId":"157440955549500001002006"}'),
        (200, '{"code":"80100000","msg":"{\\"success\\":1,\\"failure\\":2,\\"illegal_tokens\\":[\\"dead1\\",\\"dead2\\"]}","requestId":"r"}'),
        (200, '{"code":"80300007","msg":"All the tokens are invalid","requestId":"r"}'),
        (401, '{"code":"80200003","msg":"OAuth token expired","requestId":"r"}'),
        (401, '{"code":"80200005","msg":"Jwt token expired","requestId":"r"}'),
        (200, '{"access_token":"CV7x","expires_in":3600,"token_type":"Bearer"}'),
        (400, '{"error":1101,"sub_error":12304,"error_description":"client secret invalid"}'),
        (200, '{"statuses":[{"biTag":"m-1","appid":"10086","token":"t1","status":0,"timestamp":1700000000000,"requestId":"r1"}]}'),
        (200, 'timestamp=1700000000000;nonce=abc;value=ZGVhZGJlZWY='),
        (503, '<html><body><h1>503</h1></body></html>'),
    ],
    "honor_reply": [
        (200, '{"code":200,"message":"success","data":{"sendResult":true,"requestId":"r1","failTokens":["f1"],"expireTokens":["e1","e2"]}}'),
        (200, '{"code":"80000000","data":{}}'),
        (401, '{"code":80200003,"message":"token expired"}'),
        (200, '{"code":80100017,"message":"too many"}'),
        (200, '{"code":80300007,"message":"all invalid"}'),
        (200, "garbage"),
    ],
    "oppo_reply": [
        (200, '{"code":0,"message":"Success","data":[{"messageId":"5ee1-1-1-abc","registrationId":"CN_a"},{"registrationId":"CN_b","errorCode":10000,"errorMessage":"Invalid Registration_id"},{"registrationId":"CN_c","errorCode":-2,"errorMessage":"flow control"}]}'),
        (200, '{"code":0,"message":"Success","data":{"messageId":"m1"}}'),
        (200, '{"code":33,"message":"The number of messages exceeds the daily limit"}'),
        (200, '{"code":0,"message":"Success","data":{"auth_token":"58ad47319e8d725350a5afd5","create_time":1470000000000}}'),
        (200, '{"code":16,"message":"Invalid Signature"}'),
        (502, "<html/>"),
    ],
    "vivo_reply": [
        (200, '{"result":0,"desc":"","taskId":"5367","invalidUsers":[{"userid":"v2-a","status":1},{"userid":"v2-b","status":2}]}'),
        (200, '{"result":0,"taskId":123,"invalidUser":{"userid":"v2-x","status":"2"}}'),
        (200, '{"result":0,"taskId":"t9"}'),
        (200, '{"result":10252,"desc":"x"}'),
        (200, '{"result":0,"desc":"","authToken":"24ojr9ejt","expire":1700086400000}'),
        (500, "Internet server error!"),
    ],
    "meizu_reply": [
        (200, '{"code":"200","message":"","value":{"110003":["bad"],"110010":["off1","off2"],"520":["folded"]},"redirect":"","msgId":"NS2016"}'),
        (200, '{"code":"300","redirect":"https://other/push"}'),
        (200, '{"code":"110010","message":"too fast"}'),
        (400, "<html/>"),
    ],
}
for target, cases in vendor_replies.items():
    for status, body in cases:
        write(target, bytes([status // 4]) + body.encode())

# FCM: status / 4, Retry-After length, Retry-After, body.
fcm = [
    (200, "", '{"name":"projects/p/messages/1"}'),
    (404, "", '{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}'),
    (429, "7", '{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"}]}}'),
    (503, "Wed, 21 Oct 2015 07:28:00 GMT", "<html>"),
    (400, "", '{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"Invalid value at \'message.android.ttl\'"}}'),
    (200, "", '{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}'),
    (400, "", '{"error":"invalid_grant","error_description":"Invalid JWT Signature."}'),
]
for status, retry, body in fcm:
    write("fcm_reply", bytes([status // 4, len(retry)]) + retry.encode() + body.encode())

# APNs: status / 4, a byte for apns-id (odd) and Retry-After (> 1), body.
apns = [
    (200, 1, ""),
    (410, 1, '{"reason":"Unregistered","timestamp":1700000000000}'),
    (400, 0, '{"reason":"BadDeviceToken"}'),
    (429, 61, '{"reason":"TooManyRequests"}'),
    (403, 0, '{"reason":"ExpiredProviderToken"}'),
    (500, 0, "<html>"),
]
for status, flags, body in apns:
    write("apns_reply", bytes([status // 4, flags]) + body.encode())

# UserSig: tickets from Tencent's generator for the key the fuzz target verifies with
py = os.environ.get("PUSHGATE_TLS_SIG_PYTHON") or os.path.join(ROOT, "..", "target", "venv-usersig", "bin", "python")
gen = """
import TLSSigAPIv2
api = TLSSigAPIv2.TLSSigAPIv2(1400000000, '5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e')
print(api.gen_sig('alice', 86400 * 365 * 30))
print(api.gen_sig('bob', 1))
print(api.gen_sig_with_userbuf('alice', 3600, b'buf'))
"""
try:
    out = subprocess.run([py, "-c", gen], capture_output=True, text=True, check=True).stdout
    for line in out.split():
        write("usersig", line)
except (OSError, subprocess.CalledProcessError) as e:
    print(f"seeds: no UserSig generator ({e}); usersig seeds kept as they are", file=sys.stderr)
write("usersig", "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwsamRqVQseKU7MSCgswUJSsDQwMDA1OgIrhwckpmsXNqSWqSlSN")
print("seeds written under", os.path.join(ROOT, "seeds"))
