//! Firebase Cloud Messaging HTTP v1 with the OAuth2 service-account flow.
