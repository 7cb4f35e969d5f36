//! Decoding cost of the two most frequent client frames, in both encodings.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pushgate::session::frame::{decode_binary, decode_text, ClientFrame, Encoded, Encoding};

fn wire(frame: &ClientFrame, enc: Encoding) -> Encoded {
    frame.encode(enc)
}

fn bench_decode(c: &mut Criterion) {
    let frames = [
        ("ack", ClientFrame::Ack { id: 1_234_567 }),
        (
            "set_push_token",
            ClientFrame::SetPushToken {
                certificate_id: 42,
                // A MiPush regId is 64 characters of base64.
                token: "d//igwEhgBGCI2TG6lWqlKH+dA1Td7IbvPdLqE8pydyLhjnGOVm5EIQ+4Y2yXL3c".into(),
            },
        ),
    ];
    let mut group = c.benchmark_group("frame_decode");
    for (name, frame) in &frames {
        if let Encoded::Text(text) = wire(frame, Encoding::Json) {
            group.bench_function(format!("json/{name}"), |b| {
                b.iter(|| decode_text(black_box(&text)))
            });
        }
        if let Encoded::Binary(bytes) = wire(frame, Encoding::MsgPack) {
            group.bench_function(format!("msgpack/{name}"), |b| {
                b.iter(|| decode_binary(black_box(&bytes)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
