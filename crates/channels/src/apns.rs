//! Apple Push Notification service over HTTP/2 with token (ES256 JWT) authentication.
