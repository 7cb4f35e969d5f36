//! Xiaomi MiPush: wire format, client, emulator.
