//! UserSig v2 tickets (spec/usersig-v2.md).
