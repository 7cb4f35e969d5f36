//! Apple Push Notification service (spec/vendors/apns.md).
